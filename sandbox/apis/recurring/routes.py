"""The Recurring API v3 (/recurring/v3): thin handlers over sandbox.apis.recurring.backend.RecurringBackend.

The gateway has already checked keys and policy; `call(request).msn` is the sales unit the call acts for.
Handlers read the request, call one backend method and render JSON (or 204).
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.apis.recurring import pages, state
from sandbox.apis.recurring import services as recurring_services
from sandbox.apis.recurring.backend import RecurringBackend
from sandbox.apis.recurring.rules import (
    RATE_LIMITS,
    check_idempotency_key,
    invalid,
    problem,
)
from sandbox.core.errors import Problem
from sandbox.gateway import rate_limits
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.fast_reply import json_bytes
from sandbox.gateway.front_door import routes

RECURRING = web.AppKey("recurring", RecurringBackend)
BASE = "/recurring/v3"
STATUSES = ("PENDING", "ACTIVE", "STOPPED", "EXPIRED")
CHARGE_STATUSES = ("PENDING", "DUE", "RESERVED", "CHARGED", "PARTIALLY_CAPTURED", "FAILED", "CANCELLED",
                   "PARTIALLY_REFUNDED", "REFUNDED", "PROCESSING")


def backend(request: web.Request) -> RecurringBackend:
    return request.app[RECURRING]


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def acting(request: web.Request):
    ctx = call(request)
    assert ctx.msn is not None
    return ctx.env, ctx.msn


def key_of(request: web.Request) -> str:
    return check_idempotency_key(request.headers.get("Idempotency-Key"))


async def body_of(request: web.Request) -> object:
    """The JSON body: 415 unsupported-media-type for another content type, 400 invalid-json when it is not JSON."""
    raw = await request.read()
    if raw and request.content_type not in ("application/json", "application/octet-stream") \
            and not request.content_type.endswith("+json"):
        raise problem("unsupported-media-type", f"The Content-Type {request.content_type[:60]} is not supported: "
                      "send application/json.")
    try:
        return await read_json(request)
    except Problem as error:
        raise problem("invalid-json", error.detail, details=error.details) from error


def reply(status: int, body: object) -> web.Response:
    if status == 204 or body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def query_int(request: web.Request, name: str, low: int, high: int | None = None) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise invalid(f"{name} must be a whole number.", name, "Must be an integer") from exc
    if value < low or (high is not None and value > high):
        raise invalid(f"{name} must be between {low} and {high if high is not None else 'any'}.", name,
                      "Out of range")
    return value


def query_status(request: web.Request, allowed: tuple[str, ...]) -> str | None:
    status = request.query.get("status") or None
    if status is not None and status not in allowed:
        raise invalid(f"status must be one of {', '.join(allowed)}.", "status", "Unknown status")
    return status


# -- agreements ------------------------------------------------------------------------------------------
async def list_agreements(request: web.Request) -> web.Response:
    env, msn = acting(request)
    status = query_status(request, STATUSES)
    created_after = query_int(request, "createdAfter", -2**63, 2**63 - 1)  # int64 epoch ms: before 1970 is allowed
    page_number = query_int(request, "pageNumber", 1, 2**31 - 1)
    page_size = query_int(request, "pageSize", 1, 2000)
    return reply(200, backend(request).list_agreements(env, msn, status, created_after, page_number, page_size,
                                                       origin(request)))


async def draft(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    return reply(*backend(request).draft(env, msn, body, key, origin(request)))


async def get_agreement(request: web.Request) -> web.Response:
    env, msn = acting(request)
    recurring = backend(request)
    recurring.unit_allowed(msn)
    agreement = recurring.agreement(env, msn, request.match_info["agreementId"])
    body = recurring.agreement_bytes(agreement, origin(request))
    return json_bytes(body)


async def update(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    return reply(*backend(request).update(env, msn, request.match_info["agreementId"], body, key))


async def accept(request: web.Request) -> web.Response:
    """Test only (the policy makes it a gateway 404 in production)."""
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    return reply(*backend(request).force_accept(env, msn, request.match_info["agreementId"], body, key))


# -- charges -------------------------------------------------------------------------------------------------
async def list_charges(request: web.Request) -> web.Response:
    env, msn = acting(request)
    status = query_status(request, CHARGE_STATUSES)
    token = request.headers.get("Continuation-Token") or None
    charges, following = backend(request).list_charges(env, msn, request.match_info["agreementId"], status, token)
    response = reply(200, charges)
    if following is not None:
        response.headers["Continuation-Token"] = following
    return response


async def create_charge(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    return reply(*backend(request).create_charge(env, msn, request.match_info["agreementId"], body, key))


async def batch(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    return reply(*backend(request).batch(env, msn, body, key))


async def get_charge(request: web.Request) -> web.Response:
    env, msn = acting(request)
    recurring = backend(request)
    recurring.unit_allowed(msn)
    charge = recurring.charge(env, msn, request.match_info["agreementId"], request.match_info["chargeId"])
    return reply(200, recurring.view_charge(charge))


async def get_charge_by_id(request: web.Request) -> web.Response:
    env, msn = acting(request)
    recurring = backend(request)
    recurring.unit_allowed(msn)
    charge = recurring.charge(env, msn, None, request.match_info["chargeId"])
    return reply(200, recurring.view_charge(charge))


async def cancel_charge(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    info = request.match_info
    return reply(*backend(request).cancel_charge(env, msn, info["agreementId"], info["chargeId"], key))


async def capture(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    info = request.match_info
    return reply(*backend(request).capture(env, msn, info["agreementId"], info["chargeId"], body, key))


async def refund(request: web.Request) -> web.Response:
    env, msn = acting(request)
    key = key_of(request)
    body = await body_of(request)
    info = request.match_info
    return reply(*backend(request).refund(env, msn, info["agreementId"], info["chargeId"], body, key))


def setup(app: web.Application) -> None:
    recurring = app[RECURRING] = RecurringBackend(app[RUNTIME])
    app[RUNTIME].reset_hooks.append(recurring.clear)
    app[RUNTIME].clock_hooks.append(recurring.sweep)
    app[RUNTIME].state_providers["recurring"] = (lambda: state.dump(recurring),
                                                 lambda data: state.load(recurring, data))
    rate_limits.register(RATE_LIMITS)
    recurring_services.register(recurring)  # what Checkout's subscription sessions use without importing this
    router = routes(app)
    agreement = BASE + "/agreements/{agreementId}"
    charge = agreement + "/charges/{chargeId}"
    # GETs first: the router tries routes sharing a prefix in this order, and GET agreement is the hot path.
    router.add_get(agreement, get_agreement, name="recurring.agreements.get")
    router.add_get(BASE + "/agreements", list_agreements, name="recurring.agreements.list")
    router.add_post(BASE + "/agreements", draft, name="recurring.agreements.draft")
    # The batch path /agreements/charges must come before /agreements/{agreementId}/... (no clash: one segment).
    router.add_post(BASE + "/agreements/charges", batch, name="recurring.charges.batch")
    router.add_patch(agreement, update, name="recurring.agreements.update")
    router.add_patch(agreement + "/accept", accept, name="recurring.agreements.accept")
    router.add_get(agreement + "/charges", list_charges, name="recurring.charges.list")
    router.add_post(agreement + "/charges", create_charge, name="recurring.charges.create")
    router.add_get(charge, get_charge, name="recurring.charges.get")
    router.add_delete(charge, cancel_charge, name="recurring.charges.cancel")
    router.add_get(BASE + "/charges/{chargeId}", get_charge_by_id, name="recurring.charges.get_by_id")
    router.add_post(charge + "/capture", capture, name="recurring.charges.capture")
    router.add_post(charge + "/refund", refund, name="recurring.charges.refund")
    pages.setup(app, RECURRING)
