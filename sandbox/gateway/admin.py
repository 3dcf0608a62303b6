"""The admin token: the control plane is open on loopback, and needs a bearer token anywhere else.

Bound to anything but loopback (as in Docker), anyone on the network could otherwise reset the
sandbox or read every key. Pages a user's browser opens (landing, QR, product order) stay open.
"""

from __future__ import annotations

import hmac
import secrets

from aiohttp import web

from sandbox.core import errors
from sandbox.core.errors import Problem, RenderContext
from sandbox.core.net import is_loopback
from sandbox.core.settings import ADMIN_TOKEN_VAR, Settings
from sandbox.gateway.context import CallContext
from sandbox.gateway.policy import Decision, allow, deny

ENV_VAR = ADMIN_TOKEN_VAR
#: /_sandbox routes that real users' browsers open (they cannot send a bearer token), and the health check.
PUBLIC_ROUTES = frozenset({
    "sandbox.health", "sandbox.landing", "sandbox.landing.approve", "sandbox.landing.reject", "sandbox.qr",
    "sandbox.recurring.confirm", "sandbox.recurring.confirm.approve", "sandbox.recurring.confirm.reject",
    "sandbox.product_orders.page", "sandbox.product_orders.view", "sandbox.product_orders.submit",
    # The dashboard's page and files hold no state; its JSON feeds still need the token, which the page asks for.
    "sandbox.dashboard", "sandbox.dashboard.bare", "sandbox.dashboard.asset",
    # The webhook inbox receives the sandbox's own signed deliveries (no bearer token); reading it stays closed.
    "sandbox.inbox.post",
})
ADMIN_TOKEN_GENERATED = web.AppKey("admin_token_generated", bool)


def is_control_plane(path: str) -> bool:
    return path == "/_sandbox" or path.startswith("/_sandbox/")


def admin_required(settings: Settings) -> bool:
    """Off loopback always; on loopback only when a token was given explicitly."""
    return not is_loopback(settings.host) or bool(settings.admin_token)


def ensure_admin_token(settings: Settings) -> bool:
    """Generates settings.admin_token when one is required and none was given; True when generated."""
    if settings.admin_token or not admin_required(settings):
        return False
    settings.admin_token = secrets.token_urlsafe(32)
    return True


def check(settings: Settings, route_name: str | None, authorization: str) -> Decision:
    if not admin_required(settings):
        return allow("control-plane-open-on-loopback",
                     "The sandbox listens on loopback only, so its control plane needs no admin token.")
    if route_name in PUBLIC_ROUTES:
        return allow("sandbox-public-page", "Pages a user's browser opens need no admin token.")
    if not authorization.startswith("Bearer "):
        return deny("admin-token-required",
                    "The sandbox is bound to a non-loopback address, so its control plane needs "
                    "'Authorization: Bearer <admin token>' (printed at start, or set with --admin-token or "
                    f"{ENV_VAR}).", 401)
    given = authorization[7:].strip().encode()
    if not hmac.compare_digest(given, (settings.admin_token or "").encode()):
        return deny("admin-token-wrong", "The admin token is wrong: use the one printed at start, or set with "
                    f"--admin-token or {ENV_VAR}.", 401)
    return allow("admin-token-accepted", "The admin token was accepted.")


def refusal(request: web.Request, ctx: CallContext, settings: Settings) -> web.Response | None:
    """The 401 for a control-plane request without the admin token, else None (called by the front door)."""
    info = request.match_info
    route_name = info.route.name if info.http_exception is None else None
    decision = ctx.admin = check(settings, route_name, request.headers.get("Authorization", ""))
    if decision.allowed:
        return None
    error = Problem(401, "Unauthorized", decision.reason, rule=decision.rule)
    return errors.render(error, RenderContext(api="sandbox", path=request.path, extra_headers={
        "WWW-Authenticate": 'Bearer realm="vipps-sandbox control plane"'}))
