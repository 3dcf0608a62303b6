"""The Checkout API v3 (/checkout/v3/session): thin handlers over sandbox.apis.checkout.backend.CheckoutBackend.

The gateway has already checked the keys (sent as raw headers: Auth.CLIENT_HEADERS) and the policy; `call(request)
.msn` is the sales unit the call acts for. Every error is a Checkout problem (sandbox/core/errors.py).
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.apis.checkout import pages as checkout_user
from sandbox.apis.checkout.backend import CheckoutBackend, Session
from sandbox.apis.checkout.callbacks import Callbacks
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.targets import Rules

CHECKOUT = web.AppKey("checkout", CheckoutBackend)
CALLBACKS = web.AppKey("checkout_callbacks", Callbacks)


def origin(request: web.Request) -> str:
    """This environment's own base URL, as the caller reached it (so the page's link works from the caller's side)."""
    return f"{request.scheme}://{request.host}"


def json_reply(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def create(request: web.Request) -> web.Response:
    ctx = call(request)
    body = await read_json(request)
    assert ctx.msn is not None
    return json_reply(request.app[CHECKOUT].create(ctx.env, ctx.msn, body, origin(request)))


async def get_session(request: web.Request) -> web.Response:
    ctx = call(request)
    assert ctx.msn is not None
    checkout = request.app[CHECKOUT]
    return json_reply(checkout.view(checkout.find(ctx.env, ctx.msn, request.match_info["reference"])))


async def update(request: web.Request) -> web.Response:
    ctx = call(request)
    body = await read_json(request)
    assert ctx.msn is not None
    request.app[CHECKOUT].update(ctx.env, ctx.msn, request.match_info["reference"], body)
    return web.Response(status=200)


async def expire(request: web.Request) -> web.Response:
    ctx = call(request)
    assert ctx.msn is not None
    request.app[CHECKOUT].expire(ctx.env, ctx.msn, request.match_info["reference"])
    return web.Response(status=200)


async def callback_attempts(request: web.Request) -> web.Response:
    """/_sandbox/checkout/callbacks[?reference=]: every payment-completed callback attempt, oldest first."""
    return json_reply(request.app[CALLBACKS].attempts(request.query.get("reference")))


def setup(app: web.Application) -> None:
    runtime = app[RUNTIME]
    checkout = app[CHECKOUT] = CheckoutBackend(runtime)
    callbacks = app[CALLBACKS] = Callbacks(runtime.clock, Rules(lambda: runtime.port_env.keys(),
                                                                 runtime.settings.webhook_allow_private,
                                                                 what="checkout callbacks"))

    def completed(session: Session) -> None:
        info = session.merchant_info
        callbacks.send(info["callbackUrl"], info["callbackAuthorizationToken"], lambda: checkout.view(session),
                       session.reference)

    checkout.completed_hooks.append(completed)
    runtime.listeners.append(checkout.on_event)  # the session follows its ePayment payment
    runtime.reset_hooks.extend((checkout.clear, callbacks.clear))
    runtime.clock_hooks.append(checkout.sweep)
    runtime.state_providers["checkout"] = (checkout.dump, checkout.load)

    async def stop(app: web.Application) -> None:
        callbacks.clear()  # deliveries still waiting for a retry end with the server

    app.on_cleanup.append(stop)
    router = routes(app)
    router.add_get("/checkout/v3/session/{reference}", get_session, name="checkout.session.get")
    router.add_post("/checkout/v3/session", create, name="checkout.session.create")
    router.add_patch("/checkout/v3/session/{reference}", update, name="checkout.session.update")
    router.add_post("/checkout/v3/session/{reference}/expire", expire, name="checkout.session.expire")
    router.add_get("/_sandbox/checkout/callbacks", callback_attempts, name="sandbox.checkout.callbacks")
    checkout_user.setup(app, CHECKOUT, CALLBACKS)
