"""Request bodies as JSON, read the same way by every API: a clear 400 problem when a body is not JSON."""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.core.errors import Detail, Problem, clip


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
