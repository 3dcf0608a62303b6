"""Every successful Report API response a test client sees is checked against the official spec.

The test client (sandbox/testing.py) calls `violations()` on each reply, so no test can receive a body
that breaks the bundled report.yaml (2023-12) without failing. Where the sandbox follows the newer
documentation instead, the spec's schema is patched here, one documented difference at a time:

- `entryType`: the 2026 docs' entry-type reference adds `payout-scheduled` (the spec's `scheduled-for-payout`),
  `credit-note` and `service-fee`; both spellings of the payout are accepted.
- `recipientHandle`: the spec types it as a string; the docs show it empty on fees-retained and payout
  entries ("The payout transaction does not have an recipientHandle", JSON example `"recipientHandle": null`),
  and the reference says it "may be null": nullable here.
- the descriptions' rules the schema cannot say: `hasMore` on every dates page, and `cursor` exactly when
  `hasMore` is true; on the feed `cursor` always, and never empty.
"""

from __future__ import annotations

import copy
import json
import re
from functools import cache

from sandbox.core.spec import SpecSchemas

DOCS_ENTRY_TYPES = ["payout-scheduled", "credit-note", "service-fee"]
LEDGERS = re.compile(r"^/settlement/v1/ledgers$")
DATES = re.compile(r"^/report/v2/ledgers/[^/]+/[^/]+/dates/[^/]+$")
FEED = re.compile(r"^/report/v2/ledgers/[^/]+/[^/]+/feed$")


@cache
def schemas() -> SpecSchemas:
    return SpecSchemas("report.yaml")


@cache
def transaction_schema() -> dict:
    schema = copy.deepcopy(schemas().spec["components"]["schemas"]["Transaction"])
    props = schema["properties"]
    props["entryType"]["enum"] = props["entryType"]["enum"] + DOCS_ENTRY_TYPES
    props["recipientHandle"]["nullable"] = True
    return schema


@cache
def page_validator():
    schema = copy.deepcopy(schemas().spec["components"]["responses"][200]["content"]["application/json"]["schema"])
    schema["properties"]["items"]["items"] = transaction_schema()
    return schemas().schema_for(schema)


@cache
def ledgers_validator():
    operation = schemas().spec["paths"]["/settlement/v1/ledgers"]["get"]
    return schemas().schema_for(operation["responses"][200]["content"]["application/json"]["schema"])


def _errors(validator, body: object) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}" for e in validator.iter_errors(body)]


def page_violations(body: object, *, feed: bool) -> list[str]:
    """A dates or feed page, by the (patched) spec schema and the rules its descriptions give."""
    found = _errors(page_validator(), body)
    if found or not isinstance(body, dict):
        return found or ["body: expected an object"]
    if feed:
        if not body.get("cursor"):
            found.append("cursor: the feed always gives a cursor, never an empty one")
        if "hasMore" in body:
            found.append("hasMore: only on the dates endpoint")
    else:
        if "hasMore" not in body:
            found.append("hasMore: always present on the dates endpoint")
        elif bool(body["hasMore"]) != ("cursor" in body):
            found.append("cursor: present exactly when hasMore is true")
    return found


def ledgers_violations(body: object) -> list[str]:
    return _errors(ledgers_validator(), body)


def violations(method: str, path: str, status: int, text: str) -> list[str]:
    """What is wrong with a Report API response, by the spec; empty when it conforms or no schema applies."""
    if method != "GET" or not 200 <= status < 300 or not text:
        return []
    path = path.split("?", 1)[0]
    if LEDGERS.match(path):
        return ledgers_violations(json.loads(text))
    if DATES.match(path) or FEED.match(path):
        return page_violations(json.loads(text), feed=bool(FEED.match(path)))
    return []
