"""The request log: every request on either port, with who called, what was decided and why.

A bounded ring (settings.request_log_size entries), so memory never grows. Secrets never enter
it: credentials appear as their last 4 characters at most, and bodies are never read.
The middleware sits outermost, so it sees the final status of everything, gateway errors included.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import jwt
from aiohttp import web

from sandbox.admin import ADMIN_DECISION
from sandbox.clock import iso_utc
from sandbox.context import CALL, RUNTIME
from sandbox.faults import FIRED
from sandbox.gateway import resolve_env
from sandbox.model import KeySet, KeyType
from sandbox.policy import ROUTES, TOKEN_ENDPOINT_KEY_TYPES, Decision, token_decision
from sandbox.world import World

log = logging.getLogger("sandbox")

#: Requests not recorded: reading the log itself (a polling dashboard would push everything else out).
QUIET: set[tuple[str, str]] = {("GET", "/_sandbox/requests")}
DEFAULT_LIMIT = 100
MAX_FIELD = 256  # paths and header values are cut to this length


def redact(secret: str | None) -> str | None:
    """At most the last 4 characters, and none of a short secret (4 of 8 would be half of it)."""
    if not secret:
        return None
    return "…" + secret[-4:] if len(secret) >= 16 else "…"


def _cut(value: str | None) -> str | None:
    return value if value is None or len(value) <= MAX_FIELD else value[:MAX_FIELD] + "…"


class RequestLog:
    """Two rings of the same size, read as one: successful reads under /_sandbox/ (a polling dashboard's
    feeds) go to their own ring, so polling never pushes API calls and control-plane changes out.
    Listeners (the dashboard's live view) get each new entry."""

    def __init__(self, size: int) -> None:
        self.capacity = max(1, size)
        self.entries: deque[Pending] = deque(maxlen=self.capacity)  # API calls, refusals, control-plane changes
        self.reads: deque[Pending] = deque(maxlen=self.capacity)  # successful GET/HEAD /_sandbox/...
        self._ids = itertools.count(1)
        self.listeners: list[Callable[[dict], None]] = []

    def __len__(self) -> int:
        return len(self.entries) + len(self.reads)

    def add(self, entry: Pending) -> Pending:
        entry.id = next(self._ids)
        read = entry.method in ("GET", "HEAD") and entry.path.startswith("/_sandbox/") \
            and entry.status is not None and entry.status < 400
        (self.reads if read else self.entries).append(entry)
        for listener in self.listeners:
            listener(entry.as_dict())
        return entry

    def clear(self) -> None:
        self.entries.clear()
        self.reads.clear()

    def newest_first(self) -> Iterator[dict]:
        merged = heapq.merge(reversed(self.entries), reversed(self.reads), key=lambda entry: -entry.id)
        return (entry.as_dict() for entry in merged)

    def query(self, limit: int = DEFAULT_LIMIT, key_type: KeyType | None = None, allowed: bool | None = None,
              msn: str | None = None, since: int | None = None) -> list[dict]:
        """Newest first, filtered; `since` keeps entries with a larger id (for polling)."""
        found = []
        for entry in self.newest_first():
            if len(found) >= limit or (since is not None and entry["id"] <= since):
                break
            if key_type is not None and (entry["caller"] or {}).get("keyType") != key_type:
                continue
            if allowed is not None and entry["decision"]["allowed"] is not allowed:
                continue
            if msn is not None and msn not in (entry["msn"], entry["actingFor"]):
                continue
            found.append(entry)
        return found


REQUEST_LOG = web.AppKey("request_log", RequestLog)


# ---------------------------------------------------------------------------------------------
# Building one entry
# ---------------------------------------------------------------------------------------------


def _basic(headers: Mapping[str, str]) -> tuple[str, str] | None:
    auth = headers.get("Authorization", "")
    if auth[:6].lower() != "basic ":
        return None
    try:
        client_id, _, secret = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return client_id, secret


def _bearer(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    return auth[7:].strip() or None if auth.startswith("Bearer ") else None


def credentials(request: web.Request) -> dict[str, str | None]:
    """The credentials the request presented, redacted."""
    headers = request.headers
    found: dict[str, str | None] = {}
    sub = headers.get("Ocp-Apim-Subscription-Key")
    if sub:
        found["subscriptionKey"] = redact(sub)
    auth = headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        bearer = auth[7:].strip()
        if bearer:
            found["adminToken" if request.path.startswith("/_sandbox") else "token"] = redact(bearer)
        secret = headers.get("client_secret")
    else:
        basic = _basic(headers) if auth else None
        secret = basic[1] if basic else headers.get("client_secret")
    if secret:
        found["clientSecret"] = redact(secret)
    return found


def claimed_keyset(request: web.Request, world: World) -> KeySet | None:
    """Whose keys a refused request presented (not verified: the request may have failed for that)."""
    headers = request.headers
    client_id = world.subscription_owner(headers.get("Ocp-Apim-Subscription-Key", ""))
    if client_id is None:
        basic = _basic(headers)
        client_id = basic[0] if basic else headers.get("client_id")
    if client_id is None and not request.path.startswith("/_sandbox"):
        token = _bearer(headers)
        if token:
            try:
                client_id = str(jwt.decode(token, options={"verify_signature": False}).get("cid"))
            except jwt.PyJWTError:
                client_id = None
    return world.keys.get(client_id) if client_id else None


def _caller(keyset: KeySet | None, verified: bool) -> dict | None:
    if keyset is None:
        return None
    return {"keyType": str(keyset.type), "owner": keyset.owner, "clientId": keyset.client_id,
            "environment": str(keyset.environment), "verified": verified}


def _decision_fields(decision: Decision) -> dict:
    return {"allowed": decision.allowed, "rule": decision.rule, "reason": decision.reason}


class Pending:
    """One request, captured cheaply while it is served and turned into its JSON entry only when read.

    Recording happens on every request, reading rarely: what is kept here is already redacted (or
    carries no secret), and the work of shaping the entry is left to `as_dict()`.
    """

    __slots__ = ("id", "wall", "virtual", "env", "method", "path", "route", "ctx", "claimed", "msn",
                 "credentials", "admin_decision", "status", "rule", "reason", "latency_ms", "fault", "interrupted",
                 "_dict")

    def __init__(self, request: web.Request, status: int | None, headers: Mapping[str, str], latency_ms: float,
                 interrupted: bool) -> None:
        runtime = request.app[RUNTIME]
        ctx = request.get(CALL)
        self.id = 0  # set by RequestLog.add
        self.wall = time.time()
        self.virtual = runtime.clock.time()
        self.env = ctx.env if ctx is not None else resolve_env(request, runtime)
        self.method = request.method
        self.path = _cut(request.path)
        route = ctx.route if ctx is not None else None
        if route is None and request.match_info.http_exception is None:  # refused before the gateway ran
            route = ROUTES.get(request.match_info.route.name or "")
        self.route = route
        self.ctx = ctx
        # Whose keys a request presented is looked up now only when no key set was verified (refusals).
        self.claimed = None if ctx is not None and ctx.keyset is not None else \
            claimed_keyset(request, runtime.world)
        self.msn = _cut(request.headers.get("Merchant-Serial-Number"))
        self.credentials = credentials(request)
        self.admin_decision = request.get(ADMIN_DECISION)
        self.fault = request.get(FIRED)
        self.status = None if self.fault is not None and self.fault.drop else status
        self.rule, self.reason = headers.get("Vipps-Sandbox-Rule"), headers.get("Vipps-Sandbox-Reason")
        self.latency_ms = latency_ms
        self.interrupted = interrupted
        self._dict: dict | None = None

    def _decision(self) -> Decision | None:
        ctx, status = self.ctx, self.status
        if ctx is not None and ctx.decision is not None:
            return ctx.decision
        route = ctx.route if ctx is not None else None
        if route is not None and route.name in TOKEN_ENDPOINT_KEY_TYPES and ctx.keyset is not None \
                and status is not None and status < 400:
            return token_decision(route.name, ctx.keyset, ctx.env)
        return self.admin_decision

    def as_dict(self) -> dict:
        if self._dict is not None:
            return self._dict
        ctx, status, rule, reason = self.ctx, self.status, self.rule, self.reason
        dropped = self.fault is not None and self.fault.drop
        keyset = ctx.keyset if ctx is not None else None
        caller = _caller(keyset, True) if keyset is not None else _caller(self.claimed, False)
        decision = self._decision()
        error = None
        if decision is not None:
            fields = _decision_fields(decision)
            if decision.allowed and (rule or (status is not None and status >= 400)):
                error = {"rule": rule, "reason": reason}  # let through, then refused by the handler (or a fault)
        elif rule:  # refused before any policy decision: bad token, token endpoint, unknown path
            fields = {"allowed": False, "rule": rule, "reason": reason}
        elif status is not None and status >= 400:
            fields = {"allowed": False, "rule": f"http-{status}", "reason": "Refused before any key-type decision."}
        else:
            fields = {"allowed": True, "rule": "no-decision-needed", "reason": "This route checks no keys."}
        route = self.route
        self._dict = {
            "id": self.id,
            "time": datetime.fromtimestamp(self.wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "virtualTime": iso_utc(self.virtual),
            "environment": str(self.env),
            "method": self.method,
            "path": self.path,
            "route": route.name if route else None,
            "api": str(route.api) if route else None,
            "caller": caller,
            "msn": self.msn,
            "actingFor": ctx.msn if ctx is not None else None,
            "credentials": self.credentials,
            "decision": fields,
            "error": error,
            "status": status,
            "latencyMs": round(self.latency_ms, 2),
            "fault": self.fault.id if self.fault is not None else None,
            "dropped": dropped,
            "interrupted": self.interrupted and not dropped,
            "warnings": list(ctx.warnings) if ctx is not None else [],
        }
        self.ctx = self.claimed = self.admin_decision = None  # the entry is all that is needed from now on
        return self._dict


@web.middleware
async def request_log_middleware(request: web.Request, handler) -> web.StreamResponse:
    ring = request.app.get(REQUEST_LOG)
    if ring is None or (request.method, request.path) in QUIET:
        return await handler(request)
    started = time.perf_counter()
    status: int | None = None
    headers: Mapping[str, str] = {}
    interrupted = False
    try:
        response = await handler(request)
        status, headers = response.status, response.headers
        return response
    except web.HTTPException as exc:  # redirects the gateway lets through
        status, headers = exc.status, exc.headers
        raise
    except BaseException:  # the client went away (CancelledError) or worse: still one entry
        interrupted = True
        raise
    finally:
        try:
            ring.add(Pending(request, status, headers, (time.perf_counter() - started) * 1000, interrupted))
        except Exception:  # the log must never break a request
            log.exception("could not record %s %s in the request log", request.method, request.path)
