"""Webhook deliveries never carry control-plane power.

On loopback the control plane (/_sandbox/) needs no token, and a webhook URL is chosen by a
merchant. The webhook backend already refuses URLs that point at the sandbox's own listeners (except
its inbox); this is the second wall. Every delivery carries DELIVERY_HEADER, and the front door
refuses any /_sandbox/ request that carries it, whatever its value, except the inbox's POST. Its
value is random per process (MARKER), so a delivery also says which process sent it; the refusal does
not depend on the value, so a delivery from another sandbox instance is refused as well.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from sandbox.core import errors
from sandbox.core.errors import Problem, RenderContext
from sandbox.gateway.context import CallContext
from sandbox.gateway.policy import deny

DELIVERY_HEADER = "Vipps-Sandbox-Delivery"
#: Random per process: never the same in two sandbox processes, never guessable.
MARKER = secrets.token_urlsafe(24)
#: The one control-plane route a delivery may reach: the inbox that collects deliveries.
DELIVERY_ROUTES = frozenset({"sandbox.inbox.post"})
RULE = "webhook-delivery-never-reaches-control-plane"


def delivery_headers() -> dict[str, str]:
    """The header every webhook delivery sends (sandbox/apis/webhooks/backend.py)."""
    return {DELIVERY_HEADER: MARKER}


def delivery_refusal(request: web.Request, ctx: CallContext) -> web.Response | None:
    """The 403 for a control-plane request made by a webhook delivery, else None (called by the front door)."""
    if DELIVERY_HEADER not in request.headers:
        return None
    info = request.match_info
    if info.http_exception is None and info.route.name in DELIVERY_ROUTES:
        return None
    decision = ctx.admin = deny(RULE, "This request is a webhook delivery (it carries the "
                                f"{DELIVERY_HEADER} header): deliveries may post to /_sandbox/inbox/{{name}} "
                                "only, never drive the control plane.")
    error = Problem(403, "Forbidden", decision.reason, rule=decision.rule)
    return errors.render(error, RenderContext(api="sandbox", path=request.path))
