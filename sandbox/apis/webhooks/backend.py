"""Webhook registrations and their signed deliveries, knowing nothing of the HTTP API in front.

Registrations belong to a scope: one sales unit ("msn", MSN), or, for partner keys that register
without a Merchant-Serial-Number, the partner ("partner", id), which covers every sales unit
connected to it at delivery time. The limit of 25 registrations per event type counts per scope.

Each registration has its own queue and background task, so deliveries keep their order per
registration while a slow receiver never holds up another. A failed attempt (non-2xx, no answer
within the timeout, connection error) is retried with backoff on the VIRTUAL clock, so a test
moves the clock forward instead of waiting.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlsplit

import aiohttp

from sandbox.core.clock import iso_utc
from sandbox.core.errors import OpaqueDenial, Problem
from sandbox.core.model import Env
from sandbox.core.net import is_loopback
from sandbox.core.runtime import Runtime

log = logging.getLogger("sandbox.webhooks")

EPAYMENT_EVENTS = tuple(f"epayments.payment.{kind}.v1" for kind in (
    "created", "aborted", "expired", "cancelled", "captured", "refunded", "authorized", "terminated"))
RECURRING_EVENTS = tuple(f"recurring.agreement-{k}.v1" for k in ("activated", "rejected", "stopped", "expired")) + \
    tuple(f"recurring.charge-{k}.v1" for k in ("reserved", "captured", "canceled", "refunded", "failed",
                                                "creation-failed"))
KNOWN_EVENTS = frozenset(EPAYMENT_EVENTS + RECURRING_EVENTS + ("user.checked-in.v1",
                                                                "login.merchant-initiated.ping.v1"))
MAX_PER_EVENT = 25
EVENT_LIMITS = {"user.checked-in.v1": 1}  # the QR check-in event allows one registration only
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
PAYLOAD_FIELDS = ("msn", "reference", "pspReference", "name", "amount", "timestamp", "idempotencyKey", "success")
RETRY_BASE_SECONDS = 5.0  # 5 s, 10 s, 20 s ... on the virtual clock
RETRY_MAX_SECONDS = 3600.0
GIVE_UP_AFTER_SECONDS = 7 * 86400.0  # the real API retries for up to 7 days
CLOCK_POLL_SECONDS = 0.02
ATTEMPT_LOG_SIZE = 10_000
INBOX_SIZE = 1000

Scope = tuple[str, str]  # ("msn", "123456") or ("partner", "<partner id>")


def _scope_words(scope: Scope) -> str:
    kind, owner = scope
    return f"sales unit {owner}" if kind == "msn" else f"partner {owner} (all its sales units)"


class WebhookError(Exception):
    """A registration the API must refuse; `field` names the offending request field."""

    def __init__(self, field: str, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.status = status


# ---------------------------------------------------------------------------------------------
# Signing: exactly as the Webhooks API's request-authentication guide describes.
# ---------------------------------------------------------------------------------------------


def content_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def string_to_sign(path_and_query: str, date: str, host: str, content_hash: str) -> str:
    return f"POST\n{path_and_query}\n{date};{host};{content_hash}"


def signature(secret: str, signed: str) -> str:
    """base64(HMAC-SHA256(secret as raw UTF-8 bytes, string to sign))."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256).digest()
                            ).decode("ascii")


def authorization(secret: str, signed: str) -> str:
    return f"HMAC-SHA256 SignedHeaders={SIGNED_HEADERS}&Signature={signature(secret, signed)}"


def url_parts(url: str) -> tuple[str, str]:
    """(host as in the Host header, path and query) of a delivery URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default:
        host = f"{host}:{parts.port}"
    path = parts.path or "/"
    return host, path + (f"?{parts.query}" if parts.query else "")




def check_url(url: str) -> None:
    """https anywhere; http only on loopback, so local receivers and the sandbox's inbox work."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise WebhookError("url", f"The URL is not valid: {exc}.") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("url", "The URL must be an absolute https:// URL with a host.")
    if parts.username or parts.password:
        raise WebhookError("url", "The URL must not carry user credentials.")
    if parts.fragment:
        raise WebhookError("url", "The URL must not have a fragment.")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise WebhookError("url", "The URL must use HTTPS. (The sandbox accepts http:// only on loopback hosts "
                                  "such as 127.0.0.1 or localhost.)")


# ---------------------------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    id: int
    event: str
    body: bytes
    msn: str
    reference: str
    first_attempt_at: float | None = None
    attempts: int = 0


@dataclass
class Registration:
    id: str
    env: Env
    scope: Scope
    url: str
    events: list[str]
    secret: str
    queue: deque[Delivery] = field(default_factory=deque)
    task: asyncio.Task | None = None

    def public(self) -> dict:
        return {"id": self.id, "url": self.url, "events": list(self.events)}


class WebhookBackend:
    """Registrations, the per-registration delivery workers, the attempt log and the inboxes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.timeout_seconds = 10.0  # the real API's limit; tests may lower it
        self.registrations: dict[str, Registration] = {}
        self.by_scope: dict[tuple[Env, Scope], dict[str, Registration]] = {}
        self.by_event: dict[tuple[Env, Scope, str], dict[str, Registration]] = {}
        self.attempt_log: deque[dict] = deque(maxlen=ATTEMPT_LOG_SIZE)
        self.inboxes: dict[str, deque[dict]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.session: aiohttp.ClientSession | None = None
        self._attempt_seq = 0
        self._delivery_seq = 0
        self._loop_thread: int | None = None
        runtime.listeners.append(self.on_event)
        runtime.reset_hooks.append(self.reset)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self.session = aiohttp.ClientSession(auto_decompress=False)

    async def stop(self) -> None:
        for registration in self.registrations.values():
            self._cancel(registration)
        if self.session is not None:
            await self.session.close()

    def reset(self) -> None:
        for registration in self.registrations.values():
            self._cancel(registration)
        self.registrations.clear()
        self.by_scope.clear()
        self.by_event.clear()
        self.attempt_log.clear()
        self.inboxes.clear()
        self._attempt_seq = self._delivery_seq = 0

    # -- snapshots (runtime.state_providers["webhooks"]) ------------------------------------------
    def dump(self) -> dict[str, list[dict]]:
        """Registrations, with their secrets (deliveries after a restore need them); queues start empty."""
        return {"registrations": [
            {"id": r.id, "env": str(r.env), "scope": list(r.scope), "url": r.url, "events": list(r.events),
             "secret": r.secret} for r in self.registrations.values()]}

    def load(self, data: object) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("registrations", []), list):
            raise ValueError("expected a table of registrations")
        registrations = [Registration(r["id"], Env(r["env"]), (str(r["scope"][0]), str(r["scope"][1])), r["url"],
                                      list(r["events"]), r["secret"]) for r in data.get("registrations", [])]
        self.reset()
        for registration in registrations:
            key = (registration.env, registration.scope)
            self.registrations[registration.id] = registration
            self.by_scope.setdefault(key, {})[registration.id] = registration
            for event in registration.events:
                self.by_event.setdefault((*key, event), {})[registration.id] = registration

    # -- the API ---------------------------------------------------------------------------------
    def register(self, env: Env, scope: Scope, url: str, events: list[str]) -> dict:
        check_url(url)
        if not events:
            raise WebhookError("events", "At least one event type is required.")
        unique = list(dict.fromkeys(events))
        for index, event in enumerate(unique):
            if event not in KNOWN_EVENTS:
                raise WebhookError(f"events[{index}]", f"Unknown event type '{event}'.")
            limit = EVENT_LIMITS.get(event, MAX_PER_EVENT)
            if len(self.by_event.get((env, scope, event), {})) >= limit:
                raise WebhookError("events", f"At most {limit} webhooks can be registered for {event}.")
        ids = self.runtime.ids  # seeded: with --id-seed, ids and secrets are the same every run
        registration = Registration(ids.uuid4(), env, scope, url, unique, ids.b64(64))
        self.registrations[registration.id] = registration
        self.by_scope.setdefault((env, scope), {})[registration.id] = registration
        for event in unique:
            self.by_event.setdefault((env, scope, event), {})[registration.id] = registration
        return {"id": registration.id, "secret": registration.secret}

    def list(self, env: Env, scope: Scope) -> list[dict]:
        return [r.public() for r in self.by_scope.get((env, scope), {}).values()]

    def delete(self, env: Env, scope: Scope, webhook_id: str) -> None:
        """Deletes the caller's registration; a 404 with one body for an unknown id and another caller's."""
        registration = self.by_scope.get((env, scope), {}).pop(webhook_id, None)
        if registration is None:
            raise self._not_found(env, scope, webhook_id)
        del self.registrations[webhook_id]
        for event in registration.events:
            self.by_event.get((env, scope, event), {}).pop(webhook_id, None)
        self._cancel(registration)
        return True

    def _not_found(self, env: Env, scope: Scope, webhook_id: str) -> Problem:
        detail = f"No webhook {webhook_id} is registered for these keys (and this Merchant-Serial-Number)."
        other = self.registrations.get(webhook_id)
        if other is None:
            return Problem(404, "Not Found", detail, rule="webhook-not-found")
        if other.env is not env:
            why = f"Webhook {webhook_id} was registered in the {other.env} environment, not in {env}."
        else:
            why = (f"Webhook {webhook_id} belongs to {_scope_words(other.scope)}, not to {_scope_words(scope)} that "
                   "this call acts for: each registers and deletes its own webhooks.")
        return OpaqueDenial(404, "Not Found", detail, rule="webhook-of-another-owner",
                            reason=why + " The caller gets the 404 of a webhook that does not exist.")

    # -- events in ------------------------------------------------------------------------------
    def on_event(self, kind: str, payload: dict) -> None:
        """A runtime listener: must be fast and never raise, so it only queues."""
        try:
            if not kind.startswith("epayment."):
                return
            event = f"epayments.payment.{kind.split('.', 1)[1]}.v1"
            env, msn = Env(payload["env"]), str(payload["msn"])
            targets = list(self.by_event.get((env, ("msn", msn), event), {}).values())
            unit = self.runtime.world.sales_units.get(msn)
            if unit is not None and unit.partner_id:
                targets += self.by_event.get((env, ("partner", unit.partner_id), event), {}).values()
            if not targets:
                return
            body = json.dumps(webhook_payload(payload), separators=(",", ":")).encode("utf-8")
            for registration in targets:
                self._delivery_seq += 1
                delivery = Delivery(self._delivery_seq, event, body, msn, str(payload.get("reference")))
                self._enqueue(registration, delivery)
        except Exception:  # a listener never raises into the ePayment API
            log.exception("webhook listener failed for %s", kind)

    def _enqueue(self, registration: Registration, delivery: Delivery) -> None:
        loop = self.loop
        if loop is None:
            return  # the app is not serving: nothing could deliver
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._enqueue, registration, delivery)
            return
        if registration.id not in self.registrations:
            return
        registration.queue.append(delivery)
        if registration.task is None or registration.task.done():
            registration.task = loop.create_task(self._worker(registration))

    def _cancel(self, registration: Registration) -> None:
        if registration.task is not None and not registration.task.done():
            registration.task.cancel()
        registration.queue.clear()

    # -- deliveries out -------------------------------------------------------------------------
    async def _worker(self, registration: Registration) -> None:
        clock = self.runtime.clock
        while registration.queue:
            delivery = registration.queue[0]
            record = await self._attempt(registration, delivery)
            if record["outcome"] == "delivered":
                registration.queue.popleft()
                continue
            delay = min(RETRY_BASE_SECONDS * 2 ** (delivery.attempts - 1), RETRY_MAX_SECONDS)
            due = clock.time() + delay
            assert delivery.first_attempt_at is not None
            if due - delivery.first_attempt_at > GIVE_UP_AFTER_SECONDS:
                record["outcome"] += " (gave up)"
                registration.queue.popleft()
                continue
            record["nextAttemptAt"] = iso_utc(due)
            while clock.time() < due:  # the virtual clock: time passes, or a test moves it
                await asyncio.sleep(min(CLOCK_POLL_SECONDS, max(due - clock.time(), 0.001)))

    async def _attempt(self, registration: Registration, delivery: Delivery) -> dict:
        """One signed POST; returns its record in the attempt log."""
        assert self.session is not None
        clock = self.runtime.clock
        now = clock.time()
        if delivery.first_attempt_at is None:
            delivery.first_attempt_at = now
        delivery.attempts += 1
        host, path_and_query = url_parts(registration.url)
        date = formatdate(now, usegmt=True)
        content_hash = content_sha256(delivery.body)
        signed = string_to_sign(path_and_query, date, host, content_hash)
        headers = {"Content-Type": "application/json", "Host": host, "x-ms-date": date,
                   "x-ms-content-sha256": content_hash, "Authorization": authorization(registration.secret, signed)}
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
            async with self.session.post(registration.url, data=delivery.body, headers=headers, timeout=timeout,
                                         allow_redirects=False) as response:
                status = response.status
                await response.read()
            outcome = "delivered" if 200 <= status < 300 else "failed"
        except TimeoutError:
            outcome, error = "timeout", f"no answer within {self.timeout_seconds:g} s"
        except aiohttp.ClientError as exc:
            outcome, error = "error", f"{type(exc).__name__}: {exc}"
        self._attempt_seq += 1
        record = {
            "attemptId": self._attempt_seq, "deliveryId": delivery.id, "webhookId": registration.id,
            "environment": str(registration.env), "event": delivery.event, "msn": delivery.msn,
            "reference": delivery.reference, "url": registration.url, "attempt": delivery.attempts,
            "sentAt": iso_utc(now), "status": status, "outcome": outcome, "error": error,
            "latencyMs": round((time.perf_counter() - started) * 1000, 3), "nextAttemptAt": None,
            "body": delivery.body.decode("utf-8"),
            "signature": {"method": "POST", "pathAndQuery": path_and_query, "xMsDate": date, "host": host,
                          "xMsContentSha256": content_hash, "signedHeaders": SIGNED_HEADERS,
                          "stringToSign": signed, "authorization": headers["Authorization"]},
        }
        self.attempt_log.append(record)
        return record

    def attempts(self, webhook_id: str | None = None, reference: str | None = None) -> list[dict]:
        return [a for a in self.attempt_log
                if (webhook_id is None or a["webhookId"] == webhook_id)
                and (reference is None or a["reference"] == reference)]

    # -- the inbox: a receiver inside the sandbox, so a test needs no server of its own --------
    def receive(self, name: str, method: str, path_and_query: str, headers: list[tuple[str, str]],
                body: bytes) -> dict:
        entry = {"receivedAt": self.runtime.clock.iso(), "method": method, "path": path_and_query,
                 "headers": dict(headers), "body": body.decode("utf-8", "replace")}
        self.inboxes.setdefault(name, deque(maxlen=INBOX_SIZE)).append(entry)
        return entry

    def inbox(self, name: str) -> list[dict]:
        return list(self.inboxes.get(name, ()))


def webhook_payload(payload: dict) -> dict:
    """The delivered body: the domain event's fields the Webhooks API sends, timestamp as ISO 8601."""
    body = {name: payload.get(name) for name in PAYLOAD_FIELDS}
    if isinstance(body["timestamp"], int | float):
        body["timestamp"] = iso_utc(float(body["timestamp"]))
    return body
