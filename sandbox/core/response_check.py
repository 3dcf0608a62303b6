"""Checking a success body against its API's spec, the same way for every API: which schema applies to
(method, path), and "[X]" meaning an array of X.

Each API's response_schemas.py keeps only what is its own: the table of routes and schemas, and how one
item is checked (the spec's validator, minus the proven spec bugs that API lists). The test client runs
every API's check on every reply (sandbox/testing.py RESPONSE_CHECKS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

Routes = Sequence[tuple[str, re.Pattern[str], str]]
ItemCheck = Callable[[str, object], list[str]]


def schema_for(routes: Routes, method: str, path: str) -> str | None:
    """The schema of a 2xx body of `method path` (its query ignored), or None when no route says."""
    path = path.split("?", 1)[0]
    return next((name for verb, pattern, name in routes if verb == method and pattern.fullmatch(path)), None)


def body_errors(schema: str, body: object, item_errors: ItemCheck) -> list[str]:
    """What `item_errors` finds in `body` as `schema`; "[X]" checks each element of an array of X."""
    items, name = (body, schema[1:-1]) if schema.startswith("[") else ([body], schema)
    if not isinstance(items, list):
        return [f"{schema}: expected an array"]
    found: list[str] = []
    for item in items:
        found += item_errors(name, item)
    return found


def checker(routes: Routes, item_errors: ItemCheck) -> Callable[[str, str, int, str], list[str]]:
    """`violations(method, path, status, text)` for one API: empty when the body conforms or no schema applies."""
    def violations(method: str, path: str, status: int, text: str) -> list[str]:
        if not 200 <= status < 300 or not text:
            return []
        schema = schema_for(routes, method, path)
        return body_errors(schema, json.loads(text), item_errors) if schema else []
    return violations
