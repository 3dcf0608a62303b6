"""The ePayment API (/epayment/v1): thin handlers over sandbox.apis.epayment.backend.PaymentsBackend.

The gateway has already checked keys and policy; `call(request).msn` is the sales unit the
call acts for. Handlers read the request, call one backend method and render JSON.
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.apis.epayment import pages as epayment_user
from sandbox.apis.epayment import services as epayment_services
from sandbox.apis.epayment.backend import PaymentsBackend
from sandbox.apis.epayment.rules import RATE_LIMITS, check_reference, duplicate_metadata_keys
from sandbox.core.errors import Detail, Problem
from sandbox.gateway import rate_limits
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.fast_reply import json_bytes
from sandbox.gateway.front_door import routes

PAYMENTS = web.AppKey("payments", PaymentsBackend)
IDEMPOTENCY_KEY_MAX = 50


def backend(request: web.Request) -> PaymentsBackend:
    return request.app[PAYMENTS]


def origin(request: web.Request) -> str:
    """This environment's own base URL, as the caller reached it (so links work from the caller's side)."""
    return f"{request.scheme}://{request.host}"


def idempotency_key(request: web.Request, required: bool) -> str | None:
    """The Idempotency-Key header: required on create, capture and refund; at most 50 characters."""
    key = request.headers.get("Idempotency-Key") or None
    if key is None:
        if required:
            raise Problem(400, "Bad Request", "The Idempotency-Key header is required on this request.",
                          details=[Detail("Idempotency-Key", "The Idempotency-Key header is required.")])
        return None
    if len(key) > IDEMPOTENCY_KEY_MAX:
        raise Problem(400, "Bad Request", f"The Idempotency-Key header is longer than {IDEMPOTENCY_KEY_MAX} "
                      "characters.", details=[Detail("Idempotency-Key", "The field must be at most 50 characters.")])
    return key


def reference_of(request: web.Request) -> str:
    reference = request.match_info["reference"]
    check_reference(reference)
    return reference


def json_reply(body: object, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def create(request: web.Request) -> web.Response:
    ctx = call(request)
    key = idempotency_key(request, required=True)
    body = await read_json(request)
    assert ctx.msn is not None and key is not None
    duplicates = duplicate_metadata_keys(await request.read())  # the raw text: a parsed dict cannot show them
    status, reply = backend(request).create(ctx.env, ctx.msn, body, key, origin(request), duplicates)
    return json_reply(reply, status)


async def get_payment(request: web.Request) -> web.Response:
    ctx = call(request)
    assert ctx.msn is not None
    return json_bytes(backend(request).view_bytes(ctx.env, ctx.msn, request.match_info["reference"], origin(request)))


async def events(request: web.Request) -> web.Response:
    ctx = call(request)
    reference = reference_of(request)
    assert ctx.msn is not None
    payment = backend(request).find(ctx.env, ctx.msn, reference)
    return json_reply(payment.event_views(request.app[RUNTIME].settings.webhook_authorized_key))


async def capture(request: web.Request) -> web.Response:
    ctx = call(request)
    reference = reference_of(request)
    key = idempotency_key(request, required=True)
    body = await read_json(request)
    assert ctx.msn is not None and key is not None
    return json_reply(backend(request).capture(ctx.env, ctx.msn, reference, body, key))


async def refund(request: web.Request) -> web.Response:
    ctx = call(request)
    reference = reference_of(request)
    key = idempotency_key(request, required=True)
    body = await read_json(request)
    assert ctx.msn is not None and key is not None
    return json_reply(backend(request).refund(ctx.env, ctx.msn, reference, body, key))


async def cancel(request: web.Request) -> web.Response:
    """Real clients send an empty body with a JSON content type; that means {}."""
    ctx = call(request)
    reference = reference_of(request)
    key = idempotency_key(request, required=False)
    body = await read_json(request)
    assert ctx.msn is not None
    return json_reply(backend(request).cancel(ctx.env, ctx.msn, reference, body, key))


async def force_approve(request: web.Request) -> web.Response:
    """Test only (the policy makes it a gateway 404 in production). An Idempotency-Key is ignored."""
    ctx = call(request)
    reference = reference_of(request)
    body = await read_json(request)
    assert ctx.msn is not None
    backend(request).force_approve(ctx.env, ctx.msn, reference, body)
    return web.Response(status=200)


def setup(app: web.Application) -> None:
    payments = app[PAYMENTS] = PaymentsBackend(app[RUNTIME])
    app[RUNTIME].reset_hooks.append(payments.clear)
    app[RUNTIME].state_providers["payments"] = (payments.dump, payments.load)
    app[RUNTIME].clock_hooks.append(payments.sweep)
    rate_limits.register(RATE_LIMITS)
    epayment_services.register(payments)  # what Checkout uses without importing this package
    router = routes(app)
    # GET first: the router tries routes sharing a prefix in this order, and GET is the hot path.
    router.add_get("/epayment/v1/payments/{reference}", get_payment, name="epayment.get")
    router.add_post("/epayment/v1/payments", create, name="epayment.create")
    router.add_get("/epayment/v1/payments/{reference}/events", events, name="epayment.events")
    router.add_post("/epayment/v1/payments/{reference}/capture", capture, name="epayment.capture")
    router.add_post("/epayment/v1/payments/{reference}/refund", refund, name="epayment.refund")
    router.add_post("/epayment/v1/payments/{reference}/cancel", cancel, name="epayment.cancel")
    router.add_post("/epayment/v1/test/payments/{reference}/approve", force_approve, name="epayment.force_approve")
    epayment_user.setup(app, PAYMENTS)
