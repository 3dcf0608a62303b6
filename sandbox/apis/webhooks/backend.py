"""Webhook registrations and their signed deliveries, knowing nothing of the HTTP API in front.

Registrations belong to a scope: one sales unit ("msn", MSN), or, for partner keys that register
without a Merchant-Serial-Number, the partner ("partner", id), which covers every sales unit
connected to it at delivery time, or, for merchant-level keys (donations.* events only), the merchant
("merchant", merchant key), which covers every sales unit of that merchant. The limit of 25
registrations per event type counts per scope.

Each registration has its own queue and background task, so deliveries keep their order per
registration while a slow receiver never holds up another. A failed attempt (non-2xx, no answer
within the timeout, connection error) is retried with backoff on the VIRTUAL clock, so a test
moves the clock forward instead of waiting.

Each registration also has its own HTTP client session with a one-connection pool, so receivers that
never answer hold up their own registration only, never another tenant's deliveries. Where a webhook
may be delivered (and never: the sandbox's own control plane) is sandbox/gateway/targets.py,
checked at registration and again on every delivery; the attempt log says only "delivered", "the
receiver answered N" or one coarse failure, so it cannot be used to tell closed, silent and refused
ports apart.
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
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from sandbox.core.clock import iso_utc
from sandbox.core.errors import OpaqueDenial, Problem
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime
from sandbox.gateway.delivery_guard import delivery_headers
from sandbox.gateway.targets import GuardedResolver, Rules, Target, TargetError, parse

log = logging.getLogger("sandbox.webhooks")

EPAYMENT_EVENTS = tuple(f"epayments.payment.{kind}.v1" for kind in (
    "created", "aborted", "expired", "cancelled", "captured", "refunded", "authorized", "terminated"))
RECURRING_EVENTS = tuple(f"recurring.agreement-{k}.v1" for k in ("activated", "rejected", "stopped", "expired")) + \
    tuple(f"recurring.charge-{k}.v1" for k in ("reserved", "captured", "canceled", "refunded", "failed",
                                                "creation-failed"))
#: The Donations API's four events (reference section 6), the only ones merchant-level keys may register.
DONATIONS_EVENTS = tuple(f"donations.agreement.{k}.v1" for k in ("started", "stopped", "withdrawal-day-changed",
                                                                  "amount-changed"))
KNOWN_EVENTS = frozenset(EPAYMENT_EVENTS + RECURRING_EVENTS + DONATIONS_EVENTS + ("user.checked-in.v1",
                                                                                   "login.merchant-initiated.ping.v1"))
MAX_PER_EVENT = 25
EVENT_LIMITS = {"user.checked-in.v1": 1}  # the QR check-in event allows one registration only
#: Events where a sales unit's own registration is the only one delivered when it exists, even if its partner
#: registered too ("the sales unit's wins", QR API guide via reference section 7).
SALES_UNIT_WINS = frozenset({"user.checked-in.v1"})
SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
#: An ePayment event's body (the spec's WebhookEvent), in the order of the documentation's example: the required
#: fields, plus `idempotencyKey` where an event has one (KEYED_EVENTS) and the optional fields of OPTIONAL_FIELDS.
PAYLOAD_FIELDS = ("msn", "reference", "pspReference", "name", "amount", "timestamp", "idempotencyKey", "success")
#: Events that carry the Idempotency-Key of the merchant's request that caused them (create, capture, refund
#: require one). Cancel takes none (the spec lists no Idempotency-Key on cancel, and the documentation's event
#: log shows CANCELLED without one), so CANCELLED and TERMINATED carry none; nor do ABORTED and EXPIRED, which
#: no merchant request causes. AUTHORIZED carries the create request's key, as both documentation examples
#: show, unless Settings.webhook_authorized_key is off. A missing key is left out, never null.
KEYED_EVENTS = frozenset({"CREATED", "CAPTURED", "REFUNDED"})
#: Optional WebhookEvent fields, sent when the domain event has them: `sub` on AUTHORIZED when profile.scope
#: was asked for; `userDetails` and `shippingDetails` when the payment has them (Express), on any event whose
#: domain payload carries them.
SUB_EVENTS = frozenset({"AUTHORIZED"})
OPTIONAL_FIELDS = ("sub", "userDetails", "shippingDetails")
RETRY_BASE_SECONDS = 5.0  # 5 s, 10 s, 20 s ... on the virtual clock
RETRY_MAX_SECONDS = 3600.0
GIVE_UP_AFTER_SECONDS = 7 * 86400.0  # the real API retries for up to 7 days
CLOCK_POLL_SECONDS = 0.02
ATTEMPT_LOG_SIZE = 10_000
CONNECTIONS_PER_REGISTRATION = 1  # each registration delivers one at a time, in order, on its own pool

Scope = tuple[str, str]  # ("msn", "123456"), ("partner", "<partner id>") or ("merchant", "<merchant key>")


def _scope_words(scope: Scope) -> str:
    kind, owner = scope
    if kind == "merchant":
        return f"merchant {owner} (all its sales units)"
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


class InboxTooLarge(Exception):
    """A message bigger than one inbox message may be."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} > {limit}")
        self.size = size
        self.limit = limit


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
    session: aiohttp.ClientSession | None = None  # its own, with its own small pool: see _session

    def public(self) -> dict:
        return {"id": self.id, "url": self.url, "events": list(self.events)}


class WebhookBackend:
    """Registrations, the per-registration delivery workers, the attempt log and the inboxes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.timeout_seconds = 10.0  # the real API's limit; tests may lower it
        settings = runtime.settings
        self.rules = Rules(lambda: runtime.port_env.keys(), settings.webhook_allow_private)
        #: The name resolver behind each registration's GuardedResolver (None: the system's, in a thread).
        self.base_resolver: Callable[[], AbstractResolver] | None = None
        self.registrations: dict[str, Registration] = {}
        self.by_scope: dict[tuple[Env, Scope], dict[str, Registration]] = {}
        self.by_event: dict[tuple[Env, Scope, str], dict[str, Registration]] = {}
        self.attempt_log: deque[dict] = deque(maxlen=ATTEMPT_LOG_SIZE)
        self.inboxes: OrderedDict[str, deque[tuple[int, int, dict]]] = OrderedDict()  # (seq, size, entry)
        self.inbox_bytes = 0
        self._inbox_seq = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._attempt_seq = 0
        self._delivery_seq = 0
        self._loop_thread: int | None = None
        #: --state only (runtime.in_flight): while the journal replays, deliveries queue but nothing is sent; each
        #: delivery done (delivered or given up) is told to the hooks by its mark (`delivery_mark`).
        self._held = False
        self.progress_hooks: list[Callable[[str], None]] = []
        runtime.listeners.append(self.on_event)
        runtime.reset_hooks.append(self.reset)
        runtime.in_flight["webhooks"] = self

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    async def stop(self) -> None:
        sessions = [r.session for r in self.registrations.values() if r.session is not None]
        for registration in self.registrations.values():
            self._cancel(registration)
        for session in sessions:
            await session.close()

    def reset(self) -> None:
        for registration in self.registrations.values():
            self._cancel(registration)
        self.registrations.clear()
        self.by_scope.clear()
        self.by_event.clear()
        self.attempt_log.clear()
        self.inboxes.clear()
        self.inbox_bytes = 0
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

    # -- deliveries in flight, kept by --state (runtime.in_flight["webhooks"], sandbox/ops/persistence.py) --------
    def hold(self) -> None:
        self._held = True

    def pending(self) -> dict:
        """The deliveries due or being retried, per registration in order, with their ids and attempts so far."""
        return {"seq": self._delivery_seq, "deliveries": [
            {"webhookId": r.id, "id": d.id, "event": d.event, "body": d.body.decode("utf-8"), "msn": d.msn,
             "reference": d.reference, "firstAttemptAt": d.first_attempt_at, "attempts": d.attempts}
            for r in self.registrations.values() for d in r.queue]}

    def compacted(self) -> None:
        """Nothing to do: the marks are kept by --state (sandbox/ops/persistence.py), which starts them afresh."""

    def restore(self, data: object) -> None:
        """Queues a compaction's pending deliveries again (for registrations that still exist), ids and all."""
        if data is None:
            return
        if not isinstance(data, dict) or not isinstance(data.get("deliveries"), list) or \
                not isinstance(data.get("seq"), int):
            raise ValueError("the webhooks in flight must be {seq, deliveries: [...]}")
        self._delivery_seq = max(self._delivery_seq, data["seq"])
        for row in data["deliveries"]:
            registration = self.registrations.get(row["webhookId"])
            if registration is not None:
                registration.queue.append(Delivery(int(row["id"]), str(row["event"]), str(row["body"]).encode(),
                                                   str(row["msn"]), str(row["reference"]), row.get("firstAttemptAt"),
                                                   int(row.get("attempts") or 0)))

    def release(self, marks: object | None) -> int:
        """Drops from the queues the deliveries `marks` name as done (a list of `delivery_mark`s), then starts
        delivering the rest: at least once, with their delivery ids."""
        left: dict[str, int] = {}
        for mark in marks if isinstance(marks, list) else ():
            if isinstance(mark, str):
                left[mark] = left.get(mark, 0) + 1
        self._held = False
        pending = 0
        for registration in self.registrations.values():
            if left:
                kept = deque()
                for delivery in registration.queue:
                    mark = delivery_mark(registration, delivery)
                    if left.get(mark):
                        left[mark] -= 1
                    else:
                        kept.append(delivery)
                registration.queue = kept
            pending += len(registration.queue)
            if registration.queue and self.loop is not None and (registration.task is None or
                                                                 registration.task.done()):
                registration.task = self.loop.create_task(self._worker(registration))
        return pending

    def _finished(self, registration: Registration) -> None:
        """The queue's first delivery is done (delivered, or given up): off the queue, and told to the hooks."""
        delivery = registration.queue.popleft()
        if self._held or not self.progress_hooks:
            return
        mark = delivery_mark(registration, delivery)
        for hook in self.progress_hooks:
            try:
                hook(mark)
            except Exception:  # noqa: BLE001 - losing a mark means a delivery again, never a lost one
                log.exception("webhooks: writing the deliveries' progress failed")

    # -- the API ---------------------------------------------------------------------------------
    async def register(self, env: Env, scope: Scope, url: str, events: list[str]) -> dict:
        try:
            await self.rules.check(parse(url), self._resolver())
        except TargetError as exc:
            raise WebhookError("url", str(exc)) from exc
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
            if kind.startswith("epayment."):
                event = f"epayments.payment.{kind.split('.', 1)[1]}.v1"
            elif kind.startswith(("recurring.", "donations.")) and isinstance(payload.get("webhook"), dict):
                event = f"{kind}.v1"  # recurring.agreement-activated -> recurring.agreement-activated.v1
            elif payload.get("webhookEvent") in KNOWN_EVENTS and isinstance(payload.get("webhook"), dict):
                event = payload["webhookEvent"]  # an API that names its event and brings its body (QR's check-in)
            else:
                return
            env, msn = Env(payload["env"]), str(payload["msn"])
            targets = list(self.by_event.get((env, ("msn", msn), event), {}).values())
            unit = self.runtime.world.sales_units.get(msn)
            if unit is not None and unit.partner_id and not (targets and event in SALES_UNIT_WINS):
                targets += self.by_event.get((env, ("partner", unit.partner_id), event), {}).values()
            if unit is not None and event.startswith("donations."):  # merchant-level keys' registrations
                targets += self.by_event.get((env, ("merchant", unit.merchant), event), {}).values()
            if not targets:
                return
            # A Recurring or Donations domain event carries its webhook body ready made (by its backend).
            document = payload["webhook"] if "webhook" in payload else \
                webhook_payload(payload, self.runtime.settings.webhook_authorized_key)
            body = json.dumps(document, separators=(",", ":")).encode("utf-8")
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
        if self._held:
            return  # the journal is being replayed: sent once it is done (release)
        if registration.task is None or registration.task.done():
            registration.task = loop.create_task(self._worker(registration))

    def _cancel(self, registration: Registration) -> None:
        if registration.task is not None and not registration.task.done():
            registration.task.cancel()
        registration.queue.clear()
        session, registration.session = registration.session, None
        loop = self.loop
        if session is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(lambda: loop.create_task(session.close()))

    def _resolver(self) -> AbstractResolver:
        return self.base_resolver() if self.base_resolver is not None else ThreadedResolver()

    def _session(self, registration: Registration, target: Target) -> aiohttp.ClientSession:
        """The registration's own session: a pool of one connection, and a resolver that applies the URL rules
        to every address it connects to (a host name that now resolves somewhere refused gets nothing)."""
        session = registration.session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=CONNECTIONS_PER_REGISTRATION, use_dns_cache=False,
                                             resolver=GuardedResolver(self.rules, target, self._resolver()))
            session = registration.session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                                   trust_env=False)
        return session

    # -- deliveries out -------------------------------------------------------------------------
    async def _worker(self, registration: Registration) -> None:
        clock = self.runtime.clock
        while registration.queue:
            delivery = registration.queue[0]
            record = await self._attempt(registration, delivery)
            if record["outcome"] == "delivered":
                self._finished(registration)
                continue
            delay = min(RETRY_BASE_SECONDS * 2 ** (delivery.attempts - 1), RETRY_MAX_SECONDS)
            due = clock.time() + delay
            assert delivery.first_attempt_at is not None
            if due - delivery.first_attempt_at > GIVE_UP_AFTER_SECONDS:
                record["outcome"] += " (gave up)"
                self._finished(registration)
                continue
            record["nextAttemptAt"] = iso_utc(due)
            while clock.time() < due:  # the virtual clock: time passes, or a test moves it
                await asyncio.sleep(min(CLOCK_POLL_SECONDS, max(due - clock.time(), 0.001)))

    async def _attempt(self, registration: Registration, delivery: Delivery) -> dict:
        """One signed POST; returns its record in the attempt log.

        The URL is sent exactly as stored (yarl's encoded=True: no re-quoting), so the path and query signed
        are the ones on the wire. Whatever keeps a 2xx from coming back (nothing listening, no answer in time,
        a URL the rules refuse now) is the same coarse failure in the log."""
        clock = self.runtime.clock
        now = clock.time()
        if delivery.first_attempt_at is None:
            delivery.first_attempt_at = now
        delivery.attempts += 1
        date = formatdate(now, usegmt=True)
        content_hash = content_sha256(delivery.body)
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            target = parse(registration.url)
            host, path_and_query = target.host_header, target.path_and_query
        except TargetError:  # only from a snapshot made by hand: registrations are checked
            parts = urlsplit(registration.url)
            host, path_and_query = parts.netloc, parts.path
            target = None
        signed = string_to_sign(path_and_query, date, host, content_hash)
        headers = {"Content-Type": "application/json", "Host": host, "x-ms-date": date,
                   "x-ms-content-sha256": content_hash, "Authorization": authorization(registration.secret, signed),
                   **delivery_headers()}
        try:
            if target is None:
                raise TargetError("not a valid URL")
            self.rules.check_static(target)  # again: the sandbox's ports may have changed since (a restart)
            timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
            async with self._session(registration, target).post(
                    URL(registration.url, encoded=True), data=delivery.body, headers=headers, timeout=timeout,
                    allow_redirects=False) as response:  # a redirect is an answer, never followed
                status = response.status
                await response.read()
            outcome = "delivered" if 200 <= status < 300 else "failed"
            if outcome == "failed":
                error = f"the receiver answered {status}, not 2xx"
        except Exception as exc:  # noqa: BLE001 - every way of getting no answer is the same failure
            log.debug("webhook %s: attempt %s got no answer (%s)", registration.id, delivery.attempts,
                      type(exc).__name__)
            outcome, error = "failed", f"no 2xx response within {self.timeout_seconds:g} s"
        latency = round((time.perf_counter() - started) * 1000, 3) if status is not None else None
        self._attempt_seq += 1
        record = {
            "attemptId": self._attempt_seq, "deliveryId": delivery.id, "webhookId": registration.id,
            "environment": str(registration.env), "event": delivery.event, "msn": delivery.msn,
            "reference": delivery.reference, "url": registration.url, "attempt": delivery.attempts,
            "sentAt": iso_utc(now), "status": status, "outcome": outcome, "error": error,
            "latencyMs": latency, "nextAttemptAt": None,
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
        """Keeps one message, within the limits: inboxes, messages per inbox and bytes in all (the oldest go
        first); a message over the per-message limit raises InboxTooLarge."""
        settings = self.runtime.settings
        size = len(body) + len(path_and_query) + sum(len(k) + len(v) for k, v in headers)
        if size > settings.inbox_message_bytes:
            raise InboxTooLarge(size, settings.inbox_message_bytes)
        entry = {"receivedAt": self.runtime.clock.iso(), "method": method, "path": path_and_query,
                 "headers": dict(headers), "body": body.decode("utf-8", "replace")}
        inbox = self.inboxes.get(name)
        if inbox is None:
            while len(self.inboxes) >= max(settings.inbox_count, 1):
                _, dropped = self.inboxes.popitem(last=False)  # the inbox written to least recently
                self.inbox_bytes -= sum(item[1] for item in dropped)
            inbox = self.inboxes[name] = deque()
        else:
            self.inboxes.move_to_end(name)
        self._inbox_seq += 1
        inbox.append((self._inbox_seq, size, entry))
        self.inbox_bytes += size
        while len(inbox) > max(settings.inbox_messages, 1):
            self.inbox_bytes -= inbox.popleft()[1]
        while self.inbox_bytes > settings.inbox_bytes:
            oldest = min(self.inboxes, key=lambda n: self.inboxes[n][0][0] if self.inboxes[n] else 0)
            queue = self.inboxes[oldest]
            self.inbox_bytes -= queue.popleft()[1]
            if not queue:
                del self.inboxes[oldest]
        return entry

    def inbox(self, name: str) -> list[dict]:
        return [item[2] for item in self.inboxes.get(name, ())]


#: Body fields the journal's replay does not make again to the millisecond (it runs at each request's start).
VOLATILE_FIELDS = ("timestamp", "occurred")


def delivery_mark(registration: Registration, delivery: Delivery) -> str:
    """What names a delivery across a restart: its registration, id, event and body but for the moment it tells
    (VOLATILE_FIELDS). The replay gives a delivery its id again; when it cannot (a read's sweep made it first),
    a done delivery's mark names none, and it is sent again rather than another one dropped."""
    try:
        document = json.loads(delivery.body)
    except ValueError:
        document = None
    stable = {k: v for k, v in document.items() if k not in VOLATILE_FIELDS} if isinstance(document, dict) \
        else delivery.body.decode("utf-8", "replace")
    text = json.dumps([registration.id, delivery.id, delivery.event, stable], sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def webhook_payload(payload: dict, authorized_key: bool = True) -> dict:
    """The delivered body of an ePayment event: the spec's WebhookEvent, from the domain event's fields.

    `authorized_key`: the AUTHORIZED event carries the create request's Idempotency-Key (the documentation's
    examples) or none. Which fields each event carries: KEYED_EVENTS, SUB_EVENTS, OPTIONAL_FIELDS above."""
    name = payload.get("name")
    body = {name_: payload.get(name_) for name_ in PAYLOAD_FIELDS}
    if isinstance(body["timestamp"], int | float):
        body["timestamp"] = iso_utc(float(body["timestamp"]))
    key = payload.get("idempotencyKey") if name in KEYED_EVENTS else \
        payload.get("createIdempotencyKey") if name == "AUTHORIZED" and authorized_key else None
    if key is None:
        del body["idempotencyKey"]
    else:
        body["idempotencyKey"] = key
    for optional in OPTIONAL_FIELDS:
        value = payload.get(optional)
        if value is not None and (optional != "sub" or name in SUB_EVENTS):
            body[optional] = value
    return body
