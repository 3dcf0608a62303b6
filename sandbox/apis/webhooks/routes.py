"""The Webhooks API (/webhooks/v1, both environments) and its /_sandbox/ views: attempts and inboxes.

Thin handlers over sandbox.apis.webhooks.backend.WebhookBackend. The gateway has already applied the
key-type policy (merchant and partner keys; the MSN is optional for partner keys), so a handler
only turns the caller into a scope: the sales unit it acts for, or the partner when partner keys
send no Merchant-Serial-Number.
"""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from sandbox.apis.webhooks.backend import InboxTooLarge, Scope, WebhookBackend, WebhookError
from sandbox.core.errors import Denied, Detail, Problem
from sandbox.core.model import KeyType
from sandbox.core.spec import SpecSchemas
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.policy import merchant_level_webhook_denial

WEBHOOKS = web.AppKey("webhooks", WebhookBackend)
INBOX_NAME = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_schemas: SpecSchemas | None = None


def schemas() -> SpecSchemas:
    global _schemas
    if _schemas is None:
        _schemas = SpecSchemas("webhooks.yaml")
    return _schemas


def scope_of(request: web.Request) -> Scope:
    ctx = call(request)
    assert ctx.keyset is not None
    if ctx.msn is not None:
        return ("msn", ctx.msn)
    if ctx.keyset.type is KeyType.PARTNER:
        return ("partner", ctx.keyset.owner)
    if ctx.keyset.type is KeyType.MERCHANT_LEVEL:
        return ("merchant", ctx.keyset.owner)  # an organisation's keys: all its sales units, donations.* only
    return ("msn", ctx.keyset.owner)


async def register(request: web.Request) -> web.Response:
    body = await read_json(request)
    schemas().validate("RegisterRequest", body)
    assert isinstance(body, dict)
    ctx = call(request)
    assert ctx.keyset is not None
    refused = merchant_level_webhook_denial(ctx.keyset, body["events"])
    if refused is not None:  # merchant-level keys: donations.* events only (sandbox/gateway/policy.py)
        ctx.decision = refused
        raise Denied(refused.reason, refused.rule)
    try:
        created = await request.app[WEBHOOKS].register(call(request).env, scope_of(request), body["url"],
                                                       body["events"])
    except WebhookError as exc:
        raise Problem(exc.status, "Bad Request", exc.reason, details=[Detail(exc.field, exc.reason)],
                      rule="webhook-registration-invalid") from exc
    return web.json_response(created, status=201)


async def list_webhooks(request: web.Request) -> web.Response:
    return web.json_response({"webhooks": request.app[WEBHOOKS].list(call(request).env, scope_of(request))})


async def delete(request: web.Request) -> web.Response:
    webhook_id = request.match_info["id"]
    try:
        uuid.UUID(webhook_id)
    except ValueError as exc:
        raise Problem(400, "Bad Request", "See extraDetails for further details",
                      details=[Detail("id", f"The value '{webhook_id}' is not valid.")]) from exc
    request.app[WEBHOOKS].delete(call(request).env, scope_of(request), webhook_id)
    return web.Response(status=204)


# -- /_sandbox/ -----------------------------------------------------------------------------------


async def deliveries(request: web.Request) -> web.Response:
    """Every delivery attempt: status, latency and the signature's inputs (never the secret)."""
    query = request.query
    attempts = request.app[WEBHOOKS].attempts(query.get("webhookId"), query.get("reference"))
    return web.json_response({"attempts": attempts})


def inbox_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if not INBOX_NAME.fullmatch(name):
        raise Problem(400, "Bad Request", "An inbox name is 1 to 64 letters, digits, '.', '_', '~' or '-'.",
                      details=[Detail("name", "Invalid inbox name.")])
    return name


def too_large(size: int | None, limit: int) -> Problem:
    said = f"is {size} bytes" if size is not None else "is larger than that"
    return Problem(413, "Payload Too Large", f"An inbox message (body, headers and path) may be at most {limit} "
                   f"bytes; this one {said}. (Settings.inbox_message_bytes, --inbox-message-bytes.)",
                   rule="inbox-message-too-large")


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The body, refused past `limit` bytes, announced or chunked.

    An announced size over the limit is refused before a byte is read. Otherwise the body is read through
    `request.read()`, which the front door may have called already (its JSON depth check) and which aiohttp
    caps at the app's client_max_size (1 MB): reading `request.content` here would find it drained."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(request.content_length, limit)
    body = await request.read()
    if len(body) > limit:
        raise too_large(None, limit)
    return body


async def inbox_post(request: web.Request) -> web.Response:
    name = inbox_name(request)
    backend = request.app[WEBHOOKS]
    body = await read_capped(request, backend.runtime.settings.inbox_message_bytes)
    try:
        entry = backend.receive(name, request.method, request.path_qs, list(request.headers.items()), body)
    except InboxTooLarge as exc:
        raise too_large(exc.size, exc.limit) from exc
    return web.json_response({"received": True, "receivedAt": entry["receivedAt"]})


async def inbox_get(request: web.Request) -> web.Response:
    name = inbox_name(request)
    return web.json_response({"name": name, "deliveries": request.app[WEBHOOKS].inbox(name)})


async def _start(app: web.Application) -> None:
    await app[WEBHOOKS].start()


async def _stop(app: web.Application) -> None:
    await app[WEBHOOKS].stop()


def setup(app: web.Application) -> None:
    backend = app[WEBHOOKS] = WebhookBackend(app[RUNTIME])
    app[RUNTIME].state_providers["webhooks"] = (backend.dump, backend.load)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    router = routes(app)
    router.add_post("/webhooks/v1/webhooks", register, name="webhooks.register")
    router.add_get("/webhooks/v1/webhooks", list_webhooks, name="webhooks.list")
    router.add_delete("/webhooks/v1/webhooks/{id}", delete, name="webhooks.delete")
    router.add_get("/_sandbox/webhooks/deliveries", deliveries, name="sandbox.webhooks.deliveries")
    router.add_post("/_sandbox/inbox/{name}", inbox_post, name="sandbox.inbox.post")
    router.add_get("/_sandbox/inbox/{name}", inbox_get, name="sandbox.inbox.get")
