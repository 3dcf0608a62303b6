"""The sandbox's own control plane under /_sandbox/: health, the virtual clock, the key list."""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.context import RUNTIME, call
from sandbox.errors import Detail, Problem, clip
from sandbox.front_door import routes
from sandbox.keys_listing import UnknownRole, keyset_rows
from sandbox.model import Env, KeyType
from sandbox.runtime import Runtime


class ClockBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def read(self) -> dict:
        """The clock, after whatever fell due by now has happened (payments expire, and tell listeners)."""
        for hook in self.runtime.clock_hooks:
            hook()
        clock = self.runtime.clock
        return {"now": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "frozen": clock.frozen}

    def change(self, body: object) -> dict:
        """Checks the whole body first, then applies it: a bad field changes nothing."""
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", "The body must be a JSON object such as {\"advanceSeconds\": 60}.")
        unknown = sorted(set(body) - {"advanceSeconds", "freeze"})
        if unknown:
            raise Problem(400, "Bad Request", f"Unknown field {unknown[0]!r}.",
                          details=[Detail(unknown[0], "Unknown field.")])
        if "freeze" in body and not isinstance(body["freeze"], bool):
            raise Problem(400, "Bad Request", "freeze must be true or false.",
                          details=[Detail("freeze", "Must be a boolean.")])
        seconds = body.get("advanceSeconds", 0)
        number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        if not number or not 0 <= seconds <= 10 * 365 * 86400:
            raise Problem(400, "Bad Request", "advanceSeconds must be a number from 0 to ten years.",
                          details=[Detail("advanceSeconds", "Must be a non-negative number of seconds.")])
        clock = self.runtime.clock
        if "freeze" in body:
            clock.freeze() if body["freeze"] else clock.unfreeze()
        if "advanceSeconds" in body:
            clock.advance(seconds)
        return self.read()


async def read_json(request: web.Request) -> object:
    """The request body as JSON, or a 400 problem saying why it is not."""
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "Bad Request", f"The body is not valid JSON: {clip(str(exc), 200)}",
                      details=[Detail("body", "Malformed JSON.")]) from exc
    except RecursionError as exc:  # [[[[...]]]] nested past the parser's stack
        raise Problem(400, "Bad Request", "The body is not valid JSON: nested too deeply.",
                      details=[Detail("body", "Nested too deeply.")]) from exc


def _not_json(constant: str) -> object:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser would accept them."""
    raise ValueError(f"{constant} is not a JSON value")


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
        raise Problem(400, "Bad Request", f"{exc}; type is merchant|partner|management|accounting and env is "
                      "test|production.") from exc
    try:
        rows = keyset_rows(request.app[RUNTIME].world, key_type, env, query.get("msn"), query.get("role"))
    except UnknownRole as exc:
        raise Problem(400, "Bad Request", clip(str(exc), 2000), details=[Detail("role", "Unknown role.")]) from exc
    return web.json_response(rows)


def setup(app: web.Application) -> None:
    router = routes(app)
    router.add_get("/_sandbox/health", health, name="sandbox.health")
    router.add_get("/_sandbox/clock", clock_get, name="sandbox.clock.get")
    router.add_post("/_sandbox/clock", clock_set, name="sandbox.clock.set")
    router.add_get("/_sandbox/keys", keys_list, name="sandbox.keys")
