"""The request log: every request on either port, with who called, what was decided and why.

A bounded ring (settings.request_log_size entries), so memory never grows. Secrets never enter
it: credentials appear as their last 4 characters at most, and bodies are never read.
The front door (sandbox/gateway/front_door.py) records each request last, so the log sees the final status of
everything, gateway errors included.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

from aiohttp import web

from sandbox.core.clock import VirtualClock, iso_utc
from sandbox.core.errors import printable
from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World
from sandbox.gateway.admission import Admission
from sandbox.gateway.context import CallContext
from sandbox.gateway.headers import (
    AUTHORIZATION,
    CLIENT_ID,
    CLIENT_SECRET,
    HOST,
    MERCHANT_SERIAL_NUMBER,
    SANDBOX_REASON,
    SANDBOX_RULE,
    SUBSCRIPTION_KEY,
)
from sandbox.gateway.policy import ROUTES, TOKEN_ENDPOINT_KEY_TYPES, Decision, token_decision

#: Requests not recorded: reading the log itself (a polling dashboard would push everything else out).
QUIET: set[tuple[str, str]] = {("GET", "/_sandbox/requests")}
DEFAULT_LIMIT = 100
MAX_FIELD = 256  # paths and header values are cut to this length


def redact(secret: str | None) -> str | None:
    """At most the last 4 characters, and none of a short secret (4 of 8 would be half of it)."""
    if not secret:
        return None
    return "…" + secret[-4:] if len(secret) >= 16 else "…"


class RequestLog:
    """Two rings of the same size, read as one: successful reads under /_sandbox/ (a polling dashboard's
    feeds) go to their own ring, so polling never pushes API calls and control-plane changes out.
    Listeners (the dashboard's live view) get each new entry.

    Recording happens on every request and reading rarely, so an entry is kept as a plain tuple of what
    was captured (already redacted, or carrying no secret) and shaped into its JSON form only when read.
    """

    def __init__(self, size: int, clock: VirtualClock | None = None) -> None:
        self.capacity = max(1, size)
        self.clock = clock or VirtualClock()
        self.entries: deque[tuple] = deque(maxlen=self.capacity)  # API calls, refusals, control-plane changes
        self.reads: deque[tuple] = deque(maxlen=self.capacity)  # successful GET/HEAD /_sandbox/...
        self._ids = itertools.count(1)
        self._shaped: dict[int, dict] = {}  # entries already shaped for a reader, by id (bounded)
        self.listeners: list[Callable[[dict], None]] = []
        #: Called with (request, raw entry) for every recorded request: summaries that outlive the ring
        #: (the readiness report's evidence) read what they need here, without shaping the entry.
        self.observers: list[Callable[[web.Request, tuple], None]] = []

    def __len__(self) -> int:
        return len(self.entries) + len(self.reads)

    def record(self, request: web.Request, ctx: CallContext, world: World, status: int | None,
               headers: Mapping[str, str], started: float, interrupted: bool) -> None:
        """One request, captured after its response (or failure); `started` is its time.perf_counter() start."""
        latency_ms = (time.perf_counter() - started) * 1000
        wall = time.time()
        method, path = request.method, request.path or request.raw_path  # CONNECT host:port has no path
        if len(path) > MAX_FIELD:
            path = path[:MAX_FIELD] + "…"
        route = ctx.route
        request_headers = request.headers
        if route is None and request.match_info.http_exception is None:  # refused before the gateway ran
            route = ROUTES.get(request.match_info.route.name or "")
        msn, presented = header_fields(request_headers, path)
        # Whose keys a request presented is looked up now only when no key set was verified (refusals), and only
        # when it presented some (discovery, JWKS, pages: none).
        claimed = None if ctx.keyset is not None or (presented is None and CLIENT_ID not in request_headers
                                                   and AUTHORIZATION not in request_headers) \
            else claimed_keyset(request, world)
        rule = reason = None
        if status is not None and status >= 400:  # only error bodies (sandbox.core.errors) carry these headers
            rule, reason = headers.get(SANDBOX_RULE), headers.get(SANDBOX_REASON)
        # The Host header as sent (made printable when shaped); proxied: the connection's handler says so
        # (sandbox/gateway/proxy.py), an attribute rather than a request key a plain call would miss.
        entry = (next(self._ids), wall, self.clock.at(wall), ctx, method, path, route, claimed, msn,
                 presented, status, rule, reason, latency_ms, interrupted,
                 request_headers.get(HOST), request.scheme, getattr(request.protocol, "proxied", False))
        read = status is not None and status < 400 and (method == "GET" or method == "HEAD") \
            and path.startswith("/_sandbox/")
        (self.reads if read else self.entries).append(entry)
        for observer in self.observers:
            observer(request, entry)
        for listener in self.listeners:
            listener(self.shape(entry))

    def record_repeat(self, request: web.Request, ctx: CallContext, admission: Admission, status: int | None,
                      headers: Mapping[str, str], started: float, interrupted: bool) -> None:
        """`record`, for a repeat the gateway admitted (sandbox/gateway/admission.py): an API request (never a read
        under /_sandbox/) whose route and caller are known, and whose header fields the admission holds."""
        latency_ms = (time.perf_counter() - started) * 1000
        wall = time.time()
        path = request.path
        if len(path) > MAX_FIELD:
            path = path[:MAX_FIELD] + "…"
        rule = reason = None
        if status is not None and status >= 400:
            rule, reason = headers.get(SANDBOX_RULE), headers.get(SANDBOX_REASON)
        entry = (next(self._ids), wall, self.clock.at(wall), ctx, request.method, path, ctx.route, None,
                 admission.logged_msn, admission.presented, status, rule, reason, latency_ms, interrupted,
                 admission.host, request.scheme, getattr(request.protocol, "proxied", False))
        self.entries.append(entry)
        for observer in self.observers:
            observer(request, entry)
        if self.listeners:
            shaped = self.shape(entry)
            for listener in self.listeners:
                listener(shaped)

    def record_refused(self, env: Env, status: int, reason: str, *, method: str = "?",
                       path: str = "(unparsable request)", rule: str = "unparsable-request", host: str | None = None,
                       proxied: bool = False) -> None:
        """A request aiohttp's HTTP parser refused (a NUL byte, a line too long): it never reached the app,
        so its method and path are unknown; the entry says what was refused and why. The proxy's refusals
        (sandbox/gateway/proxy.py) come here too, with the method, target and host they named."""
        wall = time.time()
        entry = (next(self._ids), wall, self.clock.at(wall), CallContext(env=env), method, path, None,
                 None, None, None, status, rule, reason, 0.0, False, host, None, proxied)
        self.entries.append(entry)
        for listener in self.listeners:
            listener(self.shape(entry))

    def clear(self) -> None:
        self.entries.clear()
        self.reads.clear()
        self._shaped.clear()

    def newest(self) -> Iterator[tuple]:
        return heapq.merge(reversed(self.entries), reversed(self.reads), key=lambda entry: -entry[0])

    def newest_first(self) -> Iterator[dict]:
        return (self.shape(entry) for entry in self.newest())

    def query(self, limit: int = DEFAULT_LIMIT, key_type: KeyType | None = None, allowed: bool | None = None,
              msn: str | None = None, since: int | None = None) -> list[dict]:
        """Newest first, filtered; `since` keeps entries with a larger id (for polling)."""
        found = []
        for raw in self.newest():
            if len(found) >= limit or (since is not None and raw[0] <= since):
                break
            entry = self.shape(raw)
            if key_type is not None and (entry["caller"] or {}).get("keyType") != key_type:
                continue
            if allowed is not None and entry["decision"]["allowed"] is not allowed:
                continue
            if msn is not None and msn not in (entry["msn"], entry["actingFor"]):
                continue
            found.append(entry)
        return found

    def shape(self, entry: tuple) -> dict:
        """The entry's JSON form, made once per entry (while the entry is in the ring)."""
        shaped = self._shaped.get(entry[0])
        if shaped is None:
            if len(self._shaped) >= 4 * self.capacity:
                self._shaped.clear()
            shaped = self._shaped[entry[0]] = shape(entry)
        return shaped


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


def header_fields(headers: Mapping[str, str], path: str) -> tuple[str | None, tuple[str | None, ...] | None]:
    """The entry's fields that come from the request's headers alone: its Merchant-Serial-Number as logged and
    the credentials it presented, redacted."""
    msn = headers.get(MERCHANT_SERIAL_NUMBER)
    if msn is not None and not (msn.isascii() and msn.isdigit() and len(msn) <= 10):
        msn = printable(msn)  # malformed: maybe a credential sent in the wrong header, maybe a forged line
    return msn, credentials(headers, path)


def credentials(headers: Mapping[str, str], path: str) -> tuple[str | None, ...] | None:
    """The credentials the request presented, redacted: (subscriptionKey, token, adminToken, clientSecret),
    or None when it presented none."""
    sub = headers.get(SUBSCRIPTION_KEY)
    auth = headers.get(AUTHORIZATION)
    token = admin = None
    if auth is not None and auth.startswith("Bearer "):
        bearer = auth[7:].strip()
        if bearer:
            if path.startswith("/_sandbox"):
                admin = redact(bearer)
            else:
                token = redact(bearer)
        secret = headers.get(CLIENT_SECRET)
    else:
        basic = _basic(headers) if auth else None
        secret = basic[1] if basic else headers.get("client_secret")
    if not (sub or token or admin or secret):
        return None
    return (redact(sub) if sub else None, token, admin, redact(secret) if secret else None)


CREDENTIAL_FIELDS = ("subscriptionKey", "token", "adminToken", "clientSecret")


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
            import jwt  # imported on first use (sandbox/gateway/tokens.py warm)

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


def _decision(ctx: CallContext, status: int | None) -> Decision | None:
    if ctx.decision is not None:
        return ctx.decision
    route = ctx.route
    if route is not None and route.name in TOKEN_ENDPOINT_KEY_TYPES and ctx.keyset is not None \
            and status is not None and status < 400:
        return token_decision(route.name, ctx.keyset, ctx.env)
    return ctx.admin


def shape(entry: tuple) -> dict:
    """An entry of the ring (see RequestLog.record) as the JSON the control plane and dashboard show."""
    (entry_id, wall, virtual, ctx, method, path, route, claimed, msn, creds, status, rule, reason, latency_ms,
     interrupted, host, scheme, proxied) = entry
    fault = ctx.fault
    dropped = fault is not None and fault.drop
    if dropped:
        status = None
    keyset = ctx.keyset
    caller = _caller(keyset, True) if keyset is not None else _caller(claimed, False)
    decision = _decision(ctx, status)
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
    return {
        "id": entry_id,
        "time": datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "virtualTime": iso_utc(virtual),
        "environment": str(ctx.env),
        "method": method,
        "path": path,
        "route": route.name if route else None,
        "api": str(route.api) if route else None,
        "caller": caller,
        "msn": msn,
        "actingFor": ctx.msn,
        "credentials": {name: value for name, value in zip(CREDENTIAL_FIELDS, creds, strict=True) if value}
        if creds else {},
        "decision": fields,
        "error": error,
        "status": status,
        "latencyMs": round(latency_ms, 2),
        "fault": fault.id if fault is not None else None,
        "dropped": dropped,
        "interrupted": interrupted and not dropped,
        "warnings": list(ctx.warnings),
        "host": printable(host, 200) if host is not None else None,  # the Host header, never a forged line
        # (a refused proxy request: the host it named)
        "scheme": scheme,  # https on the TLS port and in the proxy's tunnels
        "proxied": proxied,  # came through the proxy port (sandbox/gateway/proxy.py)
    }
