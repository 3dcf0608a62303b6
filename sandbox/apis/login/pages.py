"""The simulated user of the Login API: the login page, its consent and cancel, the phone's CIBA cards, and the
control plane CI uses instead (approve a pending login, answer a CIBA request, register redirect URIs).

The page is served in the shared frame (gateway/page_shell.py) under the pages' CSP; its form-action is widened
to the login's redirect_uri origin only, since Consent and Cancel redirect on to it. The forms carry nothing but
the login's id: where the browser goes next is the registered redirect_uri the login was started with, never
anything the page or the form says (no open redirect). Cross-site posts to them are refused by the front door
(gateway/hosts.py).
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from sandbox.apis.login import redirects
from sandbox.apis.login.backend import ErrorPage, LoginBackend, PendingLogin
from sandbox.apis.login.ciba import Ciba
from sandbox.core.claims import SCOPE_TEXT
from sandbox.core.errors import Detail, Problem
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_security import policy
from sandbox.gateway.page_shell import page
from sandbox.gateway.phone_cards import PhoneAction, PhoneCard, add_phone_source

CSS = (".field{display:block;margin:.5rem 0}.field input,.field select{display:block;width:100%;"
       "box-sizing:border-box;padding:.35rem;font-size:1rem}.scopes li{margin:.2rem 0}")
MSISDN = re.compile(r"[1-9][0-9]{7,14}")


def error_page(error: ErrorPage) -> web.Response:
    esc = html.escape
    response = page(f"Vipps MobilePay sandbox: {error.title}",
                    f"<h1>{esc(error.title)}</h1><div class=\"why\" data-error=\"{esc(error.rule)}\">"
                    f"{esc(error.message)}</div>", error.status)
    response.headers["Vipps-Sandbox-Rule"] = error.rule
    return response


def _user_options(request: web.Request, market: str, selected: str | None) -> str:
    world = request.app[RUNTIME].world
    users = sorted(world.users.values(), key=lambda user: (user.market != market, user.market, user.phone_number))
    esc = html.escape
    return "".join(
        f"<option value=\"{esc(user.phone_number)}\" data-role=\"{esc(user.role)}\""
        f"{' selected' if user.phone_number == selected else ''}>{esc(user.name)} ({esc(user.phone_number)}, "
        f"{esc(user.market)}{', ' + esc(user.role) if user.role else ''})</option>" for user in users)


def login_html(request: web.Request, login: PendingLogin, why: str | None = None, selected: str | None = None) -> str:
    esc = html.escape
    world = request.app[RUNTIME].world
    asked = login.request
    unit = world.sales_units.get(asked.msn)
    name = unit.name if unit else asked.msn
    shares = [scope for scope in asked.scopes if scope != "openid"]
    items = "".join(f"<li data-scope=\"{esc(scope)}\">{esc(SCOPE_TEXT.get(scope, scope))}</li>" for scope in shares)
    parts = [f"<h1>Log in to {esc(name)}</h1>",
             f"<p>{esc(name)} asks to share:</p><ul class=\"scopes\">{items}</ul>" if shares
             else f"<p>{esc(name)} asks only who you are (no profile data).</p>",
             "<p><small>All or nothing: consent shares everything listed.</small></p>"]
    if why:
        parts.append(f"<div class=\"why\" data-refusal>{esc(why)}</div>")
    hidden = f"<input type=\"hidden\" name=\"login\" value=\"{esc(login.id)}\">"
    market = unit.market if unit else "NO"
    parts.append(f"<form method=\"post\" action=\"/_sandbox/login/consent\" class=\"consent\">{hidden}"
                 f"<label class=\"field\">Test user<select name=\"user\">{_user_options(request, market, selected)}"
                 "</select></label><label class=\"field\">Or type a phone number<input name=\"phoneNumber\" "
                 "inputmode=\"numeric\" autocomplete=\"off\"></label>"
                 "<button class=\"approve\" type=\"submit\">Consent and log in</button></form>"
                 f"<form method=\"post\" action=\"/_sandbox/login/cancel\">{hidden}"
                 "<button class=\"reject\" type=\"submit\">Cancel</button></form>")
    return "".join(parts)


def login_page(request: web.Request, login: PendingLogin, why: str | None = None, selected: str | None = None,
               status: int = 200) -> web.Response:
    response = page("Vipps MobilePay sandbox: log in", login_html(request, login, why, selected), status, CSS)
    # Consent and Cancel redirect on to the redirect_uri: the form-action must allow its origin (only that).
    response.headers["Content-Security-Policy"] = policy([redirects.form_target(login.request.redirect_uri)])
    return response


async def _fields(request: web.Request) -> dict:
    if request.content_type == "application/json":
        body = await read_json(request)
        return body if isinstance(body, dict) else {}
    try:
        return dict(await request.post())
    except (ValueError, UnicodeDecodeError, AssertionError):
        return {}


def _text(fields: dict, name: str) -> str | None:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else None


def chosen_phone(fields: dict) -> str | None:
    """The typed phone number (spaces and a leading + dropped), else the chosen test user."""
    typed = (_text(fields, "phoneNumber") or "").replace(" ", "").lstrip("+")
    return typed or _text(fields, "user")


def _phone_cards(request: web.Request, ciba: Ciba, number: str) -> list[PhoneCard]:
    world = request.app[RUNTIME].world
    cards = []
    for pending in ciba.pending_for(call(request).env, number):
        unit = world.sales_units.get(pending.request.msn)
        shares = ", ".join(SCOPE_TEXT.get(scope, scope) for scope in pending.request.scopes if scope != "openid")
        lines = [f"Log in to {unit.name if unit else pending.request.msn}?"]
        if pending.binding_message:
            lines.append(f"Check that the merchant shows the code {pending.binding_message}.")
        if shares:
            lines.append(f"Shares {shares}.")
        hidden = (("auth_req_id", pending.id), ("backToPhone", number))
        cards.append(PhoneCard(
            "ciba", unit.name if unit else pending.request.msn, lines=tuple(lines),
            actions=(PhoneAction("Approve", "approve", "/_sandbox/login/ciba/approve", hidden),
                     PhoneAction("Reject", "reject", "/_sandbox/login/ciba/reject", hidden)),
            data=(("auth-req-id", pending.id), ("msn", pending.request.msn),
                  ("binding-message", pending.binding_message or "")), order=pending.created))
    return cards


def setup(app: web.Application, login_key: web.AppKey, ciba_key: web.AppKey) -> None:
    def backend(request: web.Request) -> LoginBackend:
        return request.app[login_key]

    async def login_get(request: web.Request) -> web.Response:
        try:
            return login_page(request, backend(request).pending(request.query.get("login")))
        except ErrorPage as error:
            return error_page(error)

    async def consent(request: web.Request) -> web.Response:
        fields = await _fields(request)
        login_id, phone = _text(fields, "login") or "", chosen_phone(fields)
        try:
            url = backend(request).consent(login_id, phone)
        except ErrorPage as error:
            if error.rule != "login-user-refused":
                return error_page(error)
            return login_page(request, backend(request).pending(login_id), error.message, phone, 400)
        raise web.HTTPSeeOther(url)

    async def cancel(request: web.Request) -> web.Response:
        fields = await _fields(request)
        try:
            url = backend(request).cancel(_text(fields, "login") or "")
        except ErrorPage as error:
            return error_page(error)
        raise web.HTTPSeeOther(url)

    async def control_approve(request: web.Request) -> web.Response:
        """CI consents (or cancels) as a user: {"loginId", "phoneNumber", "cancel": false} -> {"location"}."""
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("loginId"), str):
            raise Problem(400, "Bad Request", "The body is {\"loginId\": \"<login from /_sandbox/login?login=...>\", "
                          "\"phoneNumber\": \"4791234567\"}.", details=[Detail("loginId", "Required.")],
                          rule="login-control-body")
        phone = body.get("phoneNumber")
        if phone is None:  # the first test user of the sales unit's market
            login = _or_404(backend(request), body["loginId"])
            unit = request.app[RUNTIME].world.sales_units.get(login.request.msn)
            adults = [user for user in request.app[RUNTIME].world.market_users.get(unit.market if unit else "NO", [])
                      if backend(request).refusal(user) is None]
            phone = adults[0].phone_number if adults else None
        try:
            url = backend(request).cancel(body["loginId"]) if body.get("cancel") is True \
                else backend(request).consent(body["loginId"], phone if isinstance(phone, str) else None)
        except ErrorPage as error:
            raise Problem(409 if error.status == 400 else error.status, error.title, error.message,
                          rule=error.rule) from None
        return web.json_response({"location": url})

    def ciba_answer(approve: bool):
        async def handler(request: web.Request) -> web.Response:
            fields = await _fields(request)
            ciba = request.app[ciba_key]
            pending = ciba.find(_text(fields, "auth_req_id") or _text(fields, "authReqId"))
            if pending is None:
                raise Problem(404, "Not Found", "No CIBA login request has this auth_req_id.",
                              rule="ciba-control-unknown")
            try:
                url = ciba.answer(pending, approve)
            except ValueError as exc:
                raise Problem(409, "Conflict", str(exc), rule="ciba-control-not-pending") from exc
            number = _text(fields, "backToPhone")
            if number and MSISDN.fullmatch(number):
                raise web.HTTPSeeOther(f"/_sandbox/phone/{number}")
            return web.json_response({"auth_req_id": pending.id, "status": pending.status, "location": url})
        handler.__doc__ = f"The user {'approves' if approve else 'rejects'} a CIBA login on the phone."
        return handler

    async def client_get(request: web.Request) -> web.Response:
        try:
            return web.json_response(backend(request).client_view(request.match_info["client_id"]))
        except KeyError:
            raise _no_client() from None

    async def client_update(request: web.Request) -> web.Response:
        body = await read_json(request)
        uris, basic = (body.get("redirectUris"), body.get("basicOnly")) if isinstance(body, dict) else (0, 0)
        if not isinstance(body, dict) or not (uris is None or isinstance(uris, list) and all(
                isinstance(uri, str) and _registrable(uri) for uri in uris)) or not (basic is None or isinstance(
                basic, bool)):
            raise Problem(400, "Bad Request", "The body is {\"redirectUris\": [\"https://shop.example/callback\"], "
                          "\"basicOnly\": false}: absolute URIs without a fragment (an app's scheme needs a path).",
                          details=[Detail("redirectUris", "A list of URIs.")], rule="login-client-body")
        try:
            return web.json_response(backend(request).update_client(request.match_info["client_id"], uris, basic))
        except KeyError:
            raise _no_client() from None

    add_phone_source(app, lambda request, number: _phone_cards(request, request.app[ciba_key], number))
    router = routes(app)
    router.add_get("/_sandbox/login", login_get, name="sandbox.login.page")
    router.add_post("/_sandbox/login/consent", consent, name="sandbox.login.consent")
    router.add_post("/_sandbox/login/cancel", cancel, name="sandbox.login.cancel")
    router.add_post("/_sandbox/login/approve", control_approve, name="sandbox.login.approve")
    router.add_post("/_sandbox/login/ciba/approve", ciba_answer(True), name="sandbox.login.ciba.approve")
    router.add_post("/_sandbox/login/ciba/reject", ciba_answer(False), name="sandbox.login.ciba.reject")
    router.add_get("/_sandbox/login/clients/{client_id}", client_get, name="sandbox.login.clients.get")
    router.add_post("/_sandbox/login/clients/{client_id}", client_update, name="sandbox.login.clients.update")


def _or_404(login: LoginBackend, login_id: str) -> PendingLogin:
    try:
        return login.pending(login_id)
    except ErrorPage as error:
        raise Problem(404, "Not Found", error.message, rule=error.rule) from None


def _no_client() -> Problem:
    return Problem(404, "Not Found", "No merchant (sales unit) keys have this client_id: only they are Login clients.",
                   rule="login-client-unknown")


REGISTRABLE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:[^\s#]+")


def _registrable(uri: str) -> bool:
    """An absolute URI without a fragment or spaces; an app's custom scheme needs a path (myapp://path)."""
    if len(uri) > 2000 or not REGISTRABLE.fullmatch(uri):
        return False
    scheme, rest = uri.split(":", 1)
    return scheme.lower() in ("http", "https") and rest.startswith("//") and len(rest) > 2 or \
        scheme.lower() not in ("http", "https", "javascript", "data", "vbscript", "file") and rest.strip("/") != ""
