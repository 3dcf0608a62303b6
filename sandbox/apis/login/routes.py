"""The Login API's endpoints: discovery, JWKS, /oauth2/auth, /oauth2/token, Login's userinfo, CIBA.

Thin handlers: they read the request where each endpoint takes it (query, form body, Authorization) and call
the backend. The client credentials of the token and CIBA endpoints are checked by clients.py against the one
policy table (Auth.CLIENT routes: the gateway checks no access token on them).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from sandbox.apis.login import clients, pages
from sandbox.apis.login.backend import AUTHORIZATION_CODE, ErrorPage, LoginBackend, RedirectError
from sandbox.apis.login.ciba import Ciba
from sandbox.apis.login.discovery import CIBA_GRANT, CIBA_REDIRECT_GRANT, PREFIX
from sandbox.core.errors import OAuthError
from sandbox.gateway.checks import parse_msn
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.fast_reply import json_bytes
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_security import add_page_headers
from sandbox.gateway.policy import ROUTES

LOGIN = web.AppKey("login_backend", LoginBackend)
#: RSA signing releases the GIL: id_tokens are signed on these threads while the event loop serves other requests.
SIGNERS = web.AppKey("login_signers", ThreadPoolExecutor)
CIBA = web.AppKey("login_ciba", Ciba)
JSON = "application/json"
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CACHED = {"Cache-Control": "max-age=3600"}


def origin(request: web.Request) -> str:
    """The scheme, host and port the client used, as aiohttp saw them (the Host header is vetted by the front door)."""
    return f"{request.scheme}://{request.host}"


#: The parsed form of the request, for the request log's observers (sandbox/readiness/routes.py).
FORM = web.RequestKey("login_form", dict)


async def form_of(request: web.Request) -> dict[str, str]:
    """A form body (application/x-www-form-urlencoded), each field once."""
    raw = await request.read()
    if not raw:
        return {}
    if request.content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded.", status=400,
                         rule="login-body-not-form")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "The form body is not valid UTF-8 form data.", status=400,
                         rule="login-body-not-form") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", "A parameter was sent more than once.", status=400,
                             rule="login-parameter-repeated")
        form[name] = value
    request[FORM] = form  # the readiness report reads grant_type, redirect_uri and auth_req_id, nothing else
    return form


def json_reply(body: dict, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers or NO_STORE)


async def discovery(request: web.Request) -> web.Response:
    body = request.app[LOGIN].documents.for_origin(origin(request))
    return json_bytes(body, headers=CACHED, content_type=JSON)


async def jwks(request: web.Request) -> web.Response:
    return json_bytes(request.app[LOGIN].signer.jwks_bytes, headers=CACHED, content_type=JSON)


def redirect(url: str) -> web.Response:
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})


async def authorize(request: web.Request) -> web.Response:
    login = request.app[LOGIN]
    env = call(request).env
    params = dict(request.query)
    try:
        if params.get("msn") and not params.get("client_id"):
            # Partners: Vipps answers with the same URL, msn replaced by the merchant's client_id [L23].
            params["client_id"] = login.client_for_msn(env, params.pop("msn"))
            return redirect(f"{request.path}?{urlencode(params)}")
        login_id = login.authorize(env, params)
    except ErrorPage as error:
        response = pages.error_page(error)
        add_page_headers(response.headers)
        return response
    except RedirectError as error:
        return redirect(error.url)
    return redirect(f"/_sandbox/login?{urlencode({'login': login_id})}")


async def token(request: web.Request) -> web.Response:
    ctx = call(request)
    form = await form_of(request)
    runtime = request.app[RUNTIME]
    client = clients.authenticate(runtime.world, runtime.tokens, ctx.env, ROUTES["login.token"],
                                  request.headers.get("Authorization", ""), form, parse_msn(request))
    ctx.keyset, ctx.msn, ctx.decision = client.keyset, client.msn, client.decision
    grant_type = form.get("grant_type")
    if grant_type == AUTHORIZATION_CODE:
        reply = request.app[LOGIN].exchange_code(client, form, origin(request))
    elif grant_type == CIBA_GRANT:
        reply = request.app[CIBA].poll(client, form, origin(request))
    elif grant_type == CIBA_REDIRECT_GRANT:
        reply = request.app[CIBA].exchange_redirect_code(client, form, origin(request))
    elif not grant_type:
        raise OAuthError("invalid_request", "grant_type is missing.", status=400, rule="login-grant-type-missing")
    else:
        raise OAuthError("unsupported_grant_type", "grant_type must be authorization_code or a CIBA grant (there "
                         "are no refresh tokens).", status=400, rule="login-grant-type-unsupported")
    signer = request.app[LOGIN].signer
    signer.header  # noqa: B018 -- the key is made (once) on the loop's thread, never by two workers at once
    id_token = await asyncio.get_running_loop().run_in_executor(request.app[SIGNERS], signer.sign, reply.claims)
    return json_reply({**reply.body, "id_token": id_token})


async def userinfo(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else None
    body = request.app[LOGIN].userinfo(call(request).env, bearer, request.headers.get("Ocp-Apim-Subscription-Key"))
    return web.json_response(body, content_type=JSON, headers={"Cache-Control": "no-store"})


async def _client(request: web.Request, route: str) -> tuple[clients.Client, dict[str, str]]:
    ctx = call(request)
    form = await form_of(request)
    runtime = request.app[RUNTIME]
    client = clients.authenticate(runtime.world, runtime.tokens, ctx.env, ROUTES[route],
                                  request.headers.get("Authorization", ""), form, parse_msn(request))
    ctx.keyset, ctx.msn, ctx.decision = client.keyset, client.msn, client.decision
    return client, form


async def ciba_start(request: web.Request) -> web.Response:
    client, form = await _client(request, "login.ciba")
    return json_reply(request.app[CIBA].start(client, form))


async def user_exists(request: web.Request) -> web.Response:
    _, form = await _client(request, "login.user_exists")
    return json_reply(request.app[CIBA].user_exists(form))


def setup(app: web.Application) -> None:
    runtime = app[RUNTIME]
    login = app[LOGIN] = LoginBackend(runtime)
    ciba = app[CIBA] = Ciba(login)
    app[SIGNERS] = ThreadPoolExecutor(max_workers=2, thread_name_prefix="login-sign")

    async def stop_signers(app: web.Application) -> None:
        app[SIGNERS].shutdown(wait=False)

    app.on_cleanup.append(stop_signers)
    runtime.reset_hooks.append(login.reset)
    runtime.reset_hooks.append(ciba.reset)
    router = routes(app)
    router.add_get(PREFIX + ".well-known/openid-configuration", discovery, name="login.discovery")
    router.add_get(PREFIX + ".well-known/jwks.json", jwks, name="login.jwks")
    router.add_get(PREFIX + "oauth2/auth", authorize, name="login.auth")
    router.add_post(PREFIX + "oauth2/token", token, name="login.token")
    # Exactly these two paths: the Userinfo API's /vipps-userinfo-api/userinfo/{sub} belongs to another package.
    router.add_get("/vipps-userinfo-api/userinfo/", userinfo, name="login.userinfo")
    router.add_get("/vipps-userinfo-api/userinfo", userinfo, name="login.userinfo_no_slash")
    router.add_post("/vipps-login-ciba/api/backchannel/authentication", ciba_start, name="login.ciba")
    router.add_post("/vipps-login-ciba/api/v1/user-exists", user_exists, name="login.user_exists")
    pages.setup(app, LOGIN, CIBA)
