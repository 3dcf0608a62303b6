"""The sandbox's own control plane under /_sandbox/: health, the clock, keys, the request log, reset,
snapshots, key regeneration and faults. Thin handlers over sandbox/control/backend.py and sandbox/ops/.
"""

from __future__ import annotations

import time

from aiohttp import web

from sandbox.control.backend import ClockBackend, KeyRotation
from sandbox.core.errors import Detail, Problem, clip
from sandbox.core.keys_listing import UnknownRole, keyset_rows
from sandbox.core.model import Env, KeyType
from sandbox.core.users_listing import UnknownMarket, today, user_rows
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.ops.faults import FAULTS, FaultBook
from sandbox.ops.requestlog import DEFAULT_LIMIT, REQUEST_LOG, RequestLog
from sandbox.ops.snapshots import Snapshots

KEY_ROTATION = web.AppKey("key_rotation", KeyRotation)
SNAPSHOTS = web.AppKey("snapshots", Snapshots)


def _bad_query(name: str, reason: str) -> Problem:
    return Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule="query-invalid")


def _int_param(query, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _bad_query(name, f"Must be a whole number from {low} to {high}.")
    return value


async def requests_list(request: web.Request) -> web.Response:
    """GET /_sandbox/requests?limit=&keyType=&decision=allow|deny&msn=&since= — newest first."""
    ring = request.app[REQUEST_LOG]
    query = request.query
    limit = _int_param(query, "limit", DEFAULT_LIMIT, 1, 100_000)
    since = _int_param(query, "since", None, 0, 2**62)
    key_type = query.get("keyType") or None
    if key_type is not None and key_type not in set(KeyType):
        raise _bad_query("keyType", "Must be merchant, partner, management or accounting.")
    decision = query.get("decision") or None
    if decision not in (None, "allow", "deny"):
        raise _bad_query("decision", "Must be allow or deny.")
    entries = ring.query(limit or DEFAULT_LIMIT, KeyType(key_type) if key_type else None,
                         None if decision is None else decision == "allow", query.get("msn") or None, since)
    return web.json_response({"entries": entries, "size": len(ring), "capacity": ring.capacity})


async def requests_clear(request: web.Request) -> web.Response:
    request.app[REQUEST_LOG].clear()
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    started = time.perf_counter()
    runtime.reset()
    elapsed = (time.perf_counter() - started) * 1000
    return web.json_response({"status": "reset", "virtualTime": runtime.clock.iso(), "resetMs": round(elapsed, 3)})


async def snapshot(request: web.Request) -> web.Response:
    return web.json_response(request.app[SNAPSHOTS].save(await read_json(request)))


async def restore(request: web.Request) -> web.Response:
    return web.json_response(request.app[SNAPSHOTS].restore(await read_json(request)))


async def regenerate(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(request.app[KEY_ROTATION].regenerate_secret(request.match_info["client_id"]),
                             headers={"Cache-Control": "no-store"})


async def regenerate_subscription_key(request: web.Request) -> web.Response:
    body = await read_json(request)
    result = request.app[KEY_ROTATION].regenerate_subscription_key(request.match_info["client_id"], body)
    return web.json_response(result, headers={"Cache-Control": "no-store"})


async def faults_create(request: web.Request) -> web.Response:
    rule = request.app[FAULTS].add(await read_json(request))
    return web.json_response(rule.as_json(), status=201)


async def faults_list(request: web.Request) -> web.Response:
    return web.json_response([rule.as_json() for rule in request.app[FAULTS].rules.values()])


async def faults_clear(request: web.Request) -> web.Response:
    request.app[FAULTS].rules.clear()
    return web.Response(status=204)


async def faults_delete(request: web.Request) -> web.Response:
    raw = request.match_info["id"]
    if not (raw.isascii() and raw.isdigit()) or not request.app[FAULTS].delete(int(raw)):  # not '²'
        raise Problem(404, "Not Found", f"No fault rule with id {raw!r}.", rule="fault-rule-unknown")
    return web.Response(status=204)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "environment": str(call(request).env)})


async def clock_get(request: web.Request) -> web.Response:
    return web.json_response(ClockBackend(request.app[RUNTIME]).read())


async def clock_set(request: web.Request) -> web.Response:
    body = await read_json(request)
    return web.json_response(ClockBackend(request.app[RUNTIME]).change(body if body is not None else {}))


async def keys_list(request: web.Request) -> web.Response:
    query = request.query
    try:
        key_type = KeyType(query["type"]) if query.get("type") else None
        env = Env(query["env"]) if query.get("env") else None
    except ValueError as exc:
        raise Problem(400, "Bad Request", f"{exc}; type is merchant|partner|management|accounting|"
                      "merchant-level and env is "
                      "test|production.") from exc
    try:
        rows = keyset_rows(request.app[RUNTIME].world, key_type, env, query.get("msn"), query.get("role"))
    except UnknownRole as exc:
        raise Problem(400, "Bad Request", clip(str(exc), 2000), details=[Detail("role", "Unknown role.")]) from exc
    return web.json_response(rows)


async def users_list(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        rows = user_rows(runtime.world, request.query.get("market") or None, today(runtime.clock))
    except UnknownMarket as exc:
        raise Problem(400, "Bad Request", clip(str(exc), 200), details=[Detail("market", "Unknown market.")],
                      rule="users-market-unknown") from exc
    return web.json_response(rows)


def setup(app: web.Application) -> None:
    runtime = app[RUNTIME]
    app[REQUEST_LOG] = RequestLog(runtime.settings.request_log_size, runtime.clock)
    book = app[FAULTS] = FaultBook()
    runtime.reset_hooks.append(book.reset)  # faults are part of a test's set-up: reset removes them
    app[KEY_ROTATION] = KeyRotation(runtime)
    app[SNAPSHOTS] = Snapshots(runtime)
    router = routes(app)
    router.add_get("/_sandbox/health", health, name="sandbox.health")
    router.add_get("/_sandbox/clock", clock_get, name="sandbox.clock.get")
    router.add_post("/_sandbox/clock", clock_set, name="sandbox.clock.set")
    router.add_get("/_sandbox/keys", keys_list, name="sandbox.keys")
    router.add_get("/_sandbox/users", users_list, name="sandbox.users")
    router.add_get("/_sandbox/requests", requests_list, name="sandbox.requests.list")
    router.add_delete("/_sandbox/requests", requests_clear, name="sandbox.requests.clear")
    router.add_post("/_sandbox/reset", reset, name="sandbox.reset")
    router.add_post("/_sandbox/snapshot", snapshot, name="sandbox.snapshot")
    router.add_post("/_sandbox/restore", restore, name="sandbox.restore")
    router.add_post("/_sandbox/keys/{client_id}/regenerate", regenerate, name="sandbox.keys.regenerate")
    router.add_post("/_sandbox/keys/{client_id}/regenerate-subscription-key", regenerate_subscription_key,
                    name="sandbox.keys.regenerate_subscription_key")
    router.add_post("/_sandbox/faults", faults_create, name="sandbox.faults.create")
    router.add_get("/_sandbox/faults", faults_list, name="sandbox.faults.list")
    router.add_delete("/_sandbox/faults", faults_clear, name="sandbox.faults.clear")
    router.add_delete("/_sandbox/faults/{id}", faults_delete, name="sandbox.faults.delete")
