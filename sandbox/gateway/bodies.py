"""Request bodies as JSON, read the same way by every API: a clear 400 problem when a body is not JSON.

Nesting is capped at MAX_DEPTH levels for every JSON body, before anything parses or stores it: the gateway
checks each body sent as JSON (sandbox/gateway/checks.py), and `read_json` each body it parses, whatever
its content type. Deeper bodies answer 400; Python's parser would recurse past its stack on them, and a
stored one would break every later snapshot.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate

from aiohttp import web

from sandbox.core.errors import Detail, Problem, clip

MAX_DEPTH = 64
#: A JSON string literal (it may hold brackets that nest nothing); possessive, so never backtracking.
STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` levels deep: the highest count of brackets
    open, outside strings. Up to the first error a parser meets (where it stops), that is how deep it recurses.
    All in C loops: about 25 ms for the worst megabyte."""
    if raw.count(b"[") + raw.count(b"{") <= limit:  # the usual body: too few brackets to nest that deep
        return False
    steps = array("b", STRING.sub(b"", raw).translate(STEPS, NOT_BRACKETS))
    return max(accumulate(steps), default=0) > limit


def too_deep_problem() -> Problem:
    return Problem(400, "Bad Request", f"The body is not accepted: JSON nested more than {MAX_DEPTH} levels deep.",
                   details=[Detail("body", f"Nested more than {MAX_DEPTH} levels deep.")], rule="json-too-deep")


def check_depth(raw: bytes) -> None:
    if too_deep(raw):
        raise too_deep_problem()


def is_json_type(content_type: str) -> bool:
    """application/json and the +json types (problem+json, merge-patch+json)."""
    return content_type == "application/json" or content_type.startswith("application/") \
        and content_type.endswith("+json")


async def read_json(request: web.Request) -> object:
    """The request body as JSON, or a 400 problem saying why it is not."""
    raw = await request.read()
    if not raw:
        return None
    check_depth(raw)
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Problem(400, "Bad Request", f"The body is not valid JSON: {clip(str(exc), 200)}",
                      details=[Detail("body", "Malformed JSON.")]) from exc
    except RecursionError as exc:  # cannot happen below MAX_DEPTH; kept so that it never is a 500
        raise too_deep_problem() from exc


def _not_json(constant: str) -> object:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser would accept them."""
    raise ValueError(f"{constant} is not a JSON value")


async def read_fields(request: web.Request) -> dict:
    """A simulated-user or control-plane form's fields: a JSON object's, or a posted form's; {} for anything
    else (a multipart body, bad encoding), so a handler answers with its own clear 400 instead of a 500."""
    if is_json_type(request.content_type):
        body = await read_json(request)
        return body if isinstance(body, dict) else {}
    try:
        return dict(await request.post())
    except (ValueError, UnicodeDecodeError, AssertionError):
        return {}
