"""The Access token API: POST /accesstoken/get and POST /miami/v1/token, as the real ones behave.

Thin handlers: they read the credentials where each endpoint takes them and call TokenBackend.
"""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qs

from aiohttp import web

from sandbox.apis.token.backend import TokenBackend
from sandbox.core.errors import OAuthError, clip
from sandbox.core.model import KeyType
from sandbox.gateway.checks import parse_msn, partner_header_warning
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes


def backend(request: web.Request) -> TokenBackend:
    return request.app[TOKEN_BACKEND]


TOKEN_BACKEND = web.AppKey("token_backend", TokenBackend)


async def accesstoken_get(request: web.Request) -> web.Response:
    ctx = call(request)
    headers = request.headers
    await request.read()  # the body is ignored: real clients send nothing, or "{}" with a JSON content type
    keyset, body = backend(request).standard(
        ctx.env, headers.get("client_id"), headers.get("client_secret"), headers.get("Ocp-Apim-Subscription-Key"),
        parse_msn(request))
    ctx.keyset = keyset
    if keyset.type is KeyType.PARTNER:
        partner_header_warning(request, ctx, ctx.missing_system_headers)
    return web.json_response(body, content_type="application/json", headers={"Cache-Control": "no-store"})


def _basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise OAuthError("invalid_request", "The Authorization header is not valid Basic base64(client_id:"
                         "client_secret).", status=400, rule="miami-basic-auth-malformed") from exc
    client_id, sep, client_secret = decoded.partition(":")
    if not sep or not client_id:
        raise OAuthError("invalid_request", "Basic credentials must be base64(client_id:client_secret).",
                         status=400, rule="miami-basic-auth-malformed")
    return client_id, client_secret


async def miami_token(request: web.Request) -> web.Response:
    ctx = call(request)
    headers = request.headers
    auth = headers.get("Authorization", "")
    if auth[:6].lower() == "basic ":
        client_id, client_secret = _basic_credentials(auth)
    elif headers.get("client_id") and headers.get("client_secret"):
        client_id, client_secret = headers["client_id"], headers["client_secret"]  # the older, header form
    else:
        raise OAuthError("invalid_client", "Send Authorization: Basic base64(client_id:client_secret).",
                         rule="miami-credentials-missing")
    raw = await request.read()
    content_type = request.content_type
    grant_type = scope = None
    if raw:
        if content_type != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded "
                             "(grant_type=client_credentials), not " + clip(content_type or "untyped") + ".",
                             status=400, rule="miami-body-not-form")
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError as exc:
            raise OAuthError("invalid_request", "The form body is not valid UTF-8.", status=400,
                             rule="miami-body-not-form") from exc
        values = form.get("grant_type")
        grant_type = values[0] if values else None
        scopes = form.get("scope")
        scope = scopes[0] if scopes else None
    keyset, body = backend(request).miami(ctx.env, client_id, client_secret, grant_type,
                                          headers.get("Ocp-Apim-Subscription-Key"), scope)
    ctx.keyset = keyset
    return web.Response(text=json.dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app[TOKEN_BACKEND] = TokenBackend(app[RUNTIME])
    # The real gateway matches this path case-insensitively (/accessToken/get is common in clients).
    router = routes(app)
    router.add_post(r"/{_a:(?i:accesstoken)}/{_g:(?i:get)}", accesstoken_get, name="token.accesstoken")
    router.add_post("/miami/v1/token", miami_token, name="token.miami")
