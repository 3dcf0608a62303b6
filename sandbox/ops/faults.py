"""Fault injection: rules that make matching API calls fail, slow down or lose their connection.

Tests of retry logic need a 429 or a 503 on demand. The gateway calls `before_handler` once the
request is matched, authenticated and allowed, so rules can filter on key type and MSN. Errors
are raised as typed errors, so the gateway renders them in the route's own API format.
Probabilities use one seeded random per rule: the same traffic fires the same faults every run.
"""

from __future__ import annotations

import asyncio
import itertools
import re

from aiohttp import web

from sandbox.core.errors import HTTP_TITLES, Detail, GatewayError, Problem, rate_limited
from sandbox.core.model import KeyType
from sandbox.gateway.context import CallContext
from sandbox.gateway.policy import Api
from sandbox.ops.fault_rule import FaultRule

METHODS = frozenset({"*", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
FIELDS = frozenset({"method", "path", "keyType", "msn", "status", "latencyMs", "drop", "retryAfterSeconds",
                    "count", "probability", "seed"})
MSN = re.compile(r"^[0-9]{4,10}$")
MAX_LATENCY_MS = 60_000
RULE = "fault-injected"


def _bad(name: str, reason: str) -> Problem:
    return Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule="fault-rule-invalid")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FaultBook:
    """The rules, in the order they were added; the first one that matches and fires wins."""

    def __init__(self) -> None:
        self.rules: dict[int, FaultRule] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        self.rules.clear()
        self._ids = itertools.count(1)

    def delete(self, rule_id: int) -> bool:
        return self.rules.pop(rule_id, None) is not None

    def pick(self, method: str, path: str, key_type: KeyType | None, msn: str | None) -> FaultRule | None:
        for rule in self.rules.values():
            if rule.matches(method, path, key_type, msn) and rule.fire():
                return rule
        return None

    def add(self, body: object) -> FaultRule:
        """Validates a rule from its JSON body (400 naming the field) and adds it."""
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", 'The body must be a JSON object such as {"method": "POST", "path": '
                          '"/epayment/v1/payments", "status": 503, "count": 1}.', rule="fault-rule-invalid")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise _bad(unknown[0], "Unknown field.")
        method = body.get("method", "*")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise _bad("method", "Must be an HTTP method or '*'.")
        path = body.get("path")
        if not isinstance(path, str) or path[:1] not in ("/", "*") or len(path) > 512:
            raise _bad("path", "Required: a glob of request paths such as /epayment/v1/payments/*.")
        if path.startswith("/_sandbox"):
            raise _bad("path", "Faults never apply to the sandbox's own /_sandbox/ routes.")
        key_type = body.get("keyType")
        if key_type is not None and key_type not in set(KeyType):
            raise _bad("keyType", "Must be merchant, partner, management or accounting.")
        msn = body.get("msn")
        if msn is not None and not (isinstance(msn, str) and MSN.fullmatch(msn)):
            raise _bad("msn", "Must be a Merchant-Serial-Number of 4 to 10 digits.")
        effects = [name for name in ("status", "latencyMs", "drop") if body.get(name) is not None]
        if len(effects) != 1:
            raise _bad("status", "Give exactly one of status, latencyMs or drop.")
        status, latency = body.get("status"), body.get("latencyMs")
        if status is not None and not (_int(status) and 400 <= status <= 599):
            raise _bad("status", "Must be an HTTP error status from 400 to 599.")
        if latency is not None and not (_number(latency) and 0 < latency <= MAX_LATENCY_MS):
            raise _bad("latencyMs", f"Must be a number of milliseconds from 1 to {MAX_LATENCY_MS}.")
        if "drop" in body and body["drop"] is not True:
            raise _bad("drop", "Must be true.")
        retry_after = body.get("retryAfterSeconds", 1)
        if not (_int(retry_after) and 0 <= retry_after <= 3600):
            raise _bad("retryAfterSeconds", "Must be a whole number of seconds from 0 to 3600.")
        count = body.get("count")
        if count is not None and not (_int(count) and count >= 1):
            raise _bad("count", "Must be a whole number of times, at least 1.")
        probability = body.get("probability")
        if probability is not None and not (_number(probability) and 0 < probability <= 1):
            raise _bad("probability", "Must be a number above 0 and at most 1.")
        rule_id = next(self._ids)
        seed = body.get("seed", rule_id)
        if not _int(seed):
            raise _bad("seed", "Must be a whole number.")
        rule = FaultRule(rule_id, method.upper(), path, KeyType(key_type) if key_type else None, msn, status,
                         float(latency) if latency is not None else None, "drop" in body, retry_after, count,
                         float(probability) if probability is not None else None, seed)
        self.rules[rule_id] = rule
        return rule


FAULTS = web.AppKey("faults", FaultBook)


async def before_handler(request: web.Request, ctx: CallContext, book: FaultBook) -> None:
    """Called by the gateway just before the handler: delays, fails or drops the call when a rule fires.
    The rule that fired is kept in ctx.fault, for the request log."""
    if not book.rules or request.path.startswith("/_sandbox"):
        return
    msn = ctx.msn or request.headers.get("Merchant-Serial-Number")
    rule = book.pick(request.method, request.path, ctx.keyset.type if ctx.keyset else None, msn)
    if rule is None:
        return
    ctx.fault = rule
    if rule.latency_ms is not None:
        await asyncio.sleep(rule.latency_ms / 1000)
        return
    if rule.drop:
        if request.transport is not None:
            request.transport.close()  # the client sees the connection closed before any response
        raise GatewayError(f"The connection was dropped by fault rule {rule.id}.", status=503, rule=RULE)
    assert rule.status is not None
    if rule.status == 429:
        raise rate_limited(rule.retry_after, RULE)
    reason = f"Injected by fault rule {rule.id} of the sandbox."
    if ctx.route is not None and ctx.route.api is Api.TOKEN:
        raise GatewayError(reason, status=rule.status, rule=RULE)
    raise Problem(rule.status, HTTP_TITLES.get(rule.status, "Error"), reason, rule=RULE)
