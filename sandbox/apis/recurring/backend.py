"""The Recurring backend: agreements, charges, their state machines, idempotency and the clock-driven index.

Knows nothing of HTTP. Every public method is synchronous, so each check-then-update runs without an `await`
in between. Agreements live in a dict keyed by (env, msn, agreementId), charges in one keyed by
(env, msn, chargeId) (FetchChargeById, and orderIds unique per sales unit). Everything that happens on the
virtual clock (a PENDING agreement expiring after 10 minutes, a charge turning DUE 30 days before its due date,
being processed on it, failing after its retry days) sits in ONE heap ordered by time: `sweep` pops only what
fell due, so moving the clock costs O(k log n) for the k transitions due, never a scan of the agreements.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import logging
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sandbox.apis.recurring import rules
from sandbox.apis.recurring.rules import (
    BATCH_MAX,
    CHARGES_PAGE_SIZE,
    DEFAULT_TEST_PHONE,
    DUE_NOTICE_DAYS,
    FAILURE_REASONS,
    LEGACY_INTERVAL_FACTOR,
    MAGIC_AMOUNTS,
    MAX_DUE_DAYS,
    MIN_DUE_DAYS,
    PENDING_AGREEMENT_SECONDS,
    PHONE,
    REFUND_WINDOW_DAYS,
    check_amount,
    invalid,
    iso,
    iso_date,
    parse_datetime,
    parse_due,
    problem,
    validate,
)
from sandbox.core.claims import subject
from sandbox.core.errors import Detail, OpaqueDenial, Problem
from sandbox.core.events import MONEY_CAPTURED, MONEY_REFUNDED, PROFILE_SHARED, money_event, profile_event
from sandbox.core.idempotency import IdempotencyRecords
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime

log = logging.getLogger("sandbox.recurring")

DAY = 86400.0
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
COUNTRY = {"NO": "NO", "DK": "DK", "FI": "FI"}
INTERVAL_TEXT = {"DAY": "day", "WEEK": "week", "MONTH": "month", "YEAR": "year"}
TOKEN_CONTEXT = b"vipps-sandbox recurring confirmation token v1|"  # what the MAC is for, so it signs nothing else
TOKEN_MAC = 16
CONTINUATION_CONTEXT = b"vipps-sandbox recurring continuation token v1|"
VIEW_CACHE = 2048  # agreements whose GET bytes are kept (the recently read ones)
CANCELLABLE = frozenset({"PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED"})
REFUNDABLE = frozenset({"CHARGED", "PARTIALLY_CAPTURED", "PARTIALLY_REFUNDED"})
REFUNDED_STATES = frozenset({"PARTIALLY_REFUNDED", "REFUNDED"})
#: Charges that count towards the LEGACY interval limit (all but those that will never take money).
LIVE = frozenset({"PENDING", "DUE", "PROCESSING", "RESERVED", "CHARGED", "PARTIALLY_CAPTURED",
                  "PARTIALLY_REFUNDED", "REFUNDED"})


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Charge:
    env: Env
    msn: str
    agreement_id: str
    id: str
    amount: int
    currency: str
    description: str
    due: date
    retry_days: int
    transaction_type: str  # DIRECT_CAPTURE or RESERVE_CAPTURE
    type: str  # RECURRING, UNSCHEDULED or INITIAL
    processing_mode: str
    external_id: str
    create_key: str
    status: str = "PENDING"
    transaction_id: str | None = None
    failure_reason: str | None = None
    failure_description: str | None = None
    captured: int = 0
    refunded: int = 0
    cancelled: int = 0
    captured_at: float | None = None
    #: The failure waiting for the end of the retry days (reason, description); None: none yet.
    failing: tuple[str, str] | None = None
    next_at: float | None = None  # when the heap entry of this charge is due (None: no entry)
    #: (epoch, event, amount, idempotencyKey, success) per entry, rendered by `charge_history_view` (a tuple, not
    #: the response's dict with its own ISO string: ~200 B less per entry).
    history: list[tuple[float, str, int, str, bool]] = field(default_factory=list)

    @property
    def due_at(self) -> float:
        return datetime(self.due.year, self.due.month, self.due.day, tzinfo=UTC).timestamp()


@dataclass(slots=True)
class Agreement:
    env: Env
    msn: str
    id: str
    uuid: str
    pricing: dict
    interval: dict | None
    product_name: str
    created: float
    create_key: str
    country: str
    product_description: str | None = None
    redirect_url: str = ""
    agreement_url: str = ""
    phone: str | None = None
    external_id: str | None = None
    scope: str | None = None
    campaign: dict | None = None
    status: str = "PENDING"
    start: float | None = None
    stop: float | None = None
    sub: str | None = None
    initial_charge: str | None = None
    charges: list[str] = field(default_factory=list)  # charge ids, in the order created
    #: (epoch, event, actor) per entry, rendered by `agreement_history_view`.
    history: list[tuple[float, str, str]] = field(default_factory=list)

    @property
    def expires_at(self) -> float:
        return self.created + PENDING_AGREEMENT_SECONDS


@dataclass(slots=True)
class Remembered:
    """An Idempotency-Key's first answer: its status and body, or the 4xx it got (replayed as it was)."""

    fingerprint: bytes
    status: int = 0
    body: object = None  # the JSON body, or a Reply that rebuilds it
    error: Problem | None = None
    at: float = 0.0  # when it was made (virtual clock): set by IdempotencyRecords, which expires it


@dataclass(slots=True, frozen=True)
class Reply:
    """A remembered answer rebuilt from the live records each time it is replayed, byte for byte the first: a
    draft's (its vippsConfirmationUrl is ~200 B, and the token in it is an HMAC of the agreement, so it is derived
    again rather than kept) or a charge's {"chargeId"}. `key`: the agreement's key in agreements, or the charge id."""

    kind: str  # "draft" or "charge"
    key: tuple[Env, str, str] | str
    origin: str = ""


# ---------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------


class RecurringBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.clear()

    def clear(self) -> None:
        """The reset hook: no agreements, charges, idempotency records or timers."""
        self.agreements: dict[tuple[Env, str, str], Agreement] = {}
        #: Every agreement's key in the order drafted (never removed one by one): a page of the newest is a slice.
        self.order: list[tuple[Env, str, str]] = []
        self.by_unit: dict[tuple[Env, str], list[str]] = {}
        self.charges: dict[tuple[Env, str, str], Charge] = {}
        settings = self.runtime.settings
        #: By (env, msn, route, key); bounded by retention and a cap per sales unit (sandbox/core/idempotency.py).
        self.idempotency: IdempotencyRecords[Remembered] = IdempotencyRecords(
            self.now, lambda: settings.idempotency_retention_seconds, lambda: settings.idempotency_max_per_unit)
        self.continuations: dict[str, tuple[Env, str, str, str | None, int]] = {}
        self._heap: list[tuple[float, int, str, tuple]] = []
        #: One dict per distinct interval, shared by the agreements that have it (never changed in place: an update
        #: gives the agreement another): ~180 B less per agreement.
        self._intervals: dict[tuple[str, int, type], dict] = {}
        #: GET agreement's bytes per agreement: (the agreement, its history length, origin, landing key, bytes).
        self._views: dict[tuple[Env, str, str], tuple[Agreement, int, str, bytes, bytes]] = {}
        self._seq = 0
        self._transaction_seq = 0

    def shared_interval(self, unit: str, count: int) -> dict:
        """{"unit", "count"}, one dict per distinct value (at most 1,000 kept: the counts a sandbox sees are few)."""
        key = (unit, count, type(count))  # 1.0 passes as an integer and must stay 1.0, not become another's 1
        found = self._intervals.get(key)
        if found is None:
            found = {"unit": unit, "count": count}
            if len(self._intervals) < 1000:
                self._intervals[key] = found
        return found

    # -- time and the index by time --------------------------------------------------------------
    def now(self) -> float:
        return self.runtime.clock.time()

    def today(self) -> date:
        return datetime.fromtimestamp(self.now(), UTC).date()

    def _at(self, when: float, kind: str, key: tuple) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, kind, key))

    def _schedule_charge(self, charge: Charge, key: tuple[Env, str, str] | None = None) -> None:
        """The charge's next transition on the clock, by its state: DUE (30 days before), processing (on the due
        date) or failing (at the end of its retry days)."""
        if charge.status == "PENDING" and charge.type != "INITIAL":
            notice = charge.due_at - DUE_NOTICE_DAYS * DAY
            when, kind = (notice, "due") if notice > self.now() else (charge.due_at, "process")
            if kind == "process":
                self._make_due(charge, self.now())
        elif charge.status == "DUE" and charge.failing is None:
            when, kind = charge.due_at, "process"
        elif charge.status == "DUE":
            when, kind = charge.due_at + charge.retry_days * DAY, "fail"
        else:
            charge.next_at = None
            return
        charge.next_at = when
        self._at(when, kind, key or (charge.env, charge.msn, charge.id))

    def sweep(self) -> int:
        """Everything whose time has come, in time order; O(1) when nothing is due. Returns transitions made."""
        heap, now, done = self._heap, self.now(), 0
        while heap and heap[0][0] <= now:
            when, _, kind, key = heapq.heappop(heap)
            try:
                done += self._fire(when, kind, key)
            except Exception:  # one broken record must not stop the clock for every other
                log.exception("recurring: the %s transition of %s failed", kind, key)
        return done

    def _fire(self, when: float, kind: str, key: tuple) -> int:
        if kind == "expire":
            agreement = self.agreements.get(key)
            if agreement is None or agreement.status != "PENDING" or agreement.expires_at != when:
                return 0
            self._end_pending(agreement, "EXPIRED", "EXPIRE", "USER", when)
            return 1
        charge = self.charges.get(key)
        if charge is None or charge.next_at != when:
            return 0  # a stale entry: the charge moved on (cancelled, forced) after it was scheduled
        charge.next_at = None
        if kind == "due" and charge.status == "PENDING":
            self._make_due(charge, when)
            self._schedule_charge(charge)
        elif kind == "process" and charge.status == "DUE":
            self._process(charge, when)
        elif kind == "fail" and charge.status == "DUE" and charge.failing is not None:
            self._fail(charge, *charge.failing, when)
        else:
            return 0
        return 1

    # -- events -------------------------------------------------------------------------------------
    def _publish(self, kind: str, payload: dict) -> None:
        try:
            self.runtime.publish(kind, payload)
        except Exception:  # a broken listener must not undo an agreement or charge that already moved
            log.exception("a listener failed on %s", kind)

    def _agreement_event(self, agreement: Agreement, name: str, at: float, actor: str | None = None) -> None:
        """recurring.agreement-<name>: the domain event, with the webhook body the documentation describes."""
        body = {"agreementId": agreement.id, "agreementExternalId": agreement.external_id,
                "eventType": f"recurring.agreement-{name}.v1", "occurred": iso(at), "msn": agreement.msn}
        if actor is not None:
            body["actor"] = actor
        self._publish(f"recurring.agreement-{name}", {"env": str(agreement.env), "msn": agreement.msn,
                                                       "reference": agreement.id, "webhook": body})

    def _charge_event(self, charge: Charge, name: str, at: float, amount: int | None = None) -> None:
        agreement = self.agreements.get((charge.env, charge.msn, charge.agreement_id))
        body = {"agreementId": charge.agreement_id,
                "agreementExternalId": agreement.external_id if agreement else None,
                "chargeId": charge.id, "chargeExternalId": charge.external_id,
                "amount": charge.amount if amount is None else amount, "chargeType": charge.type,
                "currency": charge.currency, "eventType": f"recurring.charge-{name}.v1", "occurred": iso(at),
                "msn": charge.msn}
        if name == "failed":
            body["failureReason"] = charge.failure_reason
            body["failureDescription"] = charge.failure_description
        self._publish(f"recurring.charge-{name}", {
            "env": str(charge.env), "msn": charge.msn, "reference": charge.id, "agreementId": charge.agreement_id,
            "chargeId": charge.id, "amount": body["amount"], "currency": charge.currency, "timestamp": at,
            "webhook": body})

    def _creation_failed(self, env: Env, msn: str, item: dict, currency: str, error: Problem) -> None:
        """recurring.charge-creation-failed: a batch charge that passed the 202's checks but could not be created.
        The body has the charge events' fields, from the request (the charge was never made), and the reason in
        failureDescription: the error a single create would have answered (a 404 reads as for an unknown
        agreement, whoever's it is)."""
        now = self.now()
        agreement = self.agreements.get((env, msn, item["agreementId"]))
        reasons = "; ".join(f"{d.name}: {d.reason}" for d in error.details)
        body = {"agreementId": item["agreementId"],
                "agreementExternalId": agreement.external_id if agreement is not None else None,
                "chargeId": item["orderId"], "chargeExternalId": item.get("externalId") or item["orderId"],
                "amount": item["amount"], "chargeType": "RECURRING", "currency": currency,
                "eventType": "recurring.charge-creation-failed.v1", "occurred": iso(now), "msn": msn,
                "failureDescription": f"{error.detail}" + (f" ({reasons})" if reasons else "")}
        log.info("recurring: batch charge %s of agreement %s was not created: %s", item["orderId"],
                 item["agreementId"], error.detail)
        self._publish("recurring.charge-creation-failed", {
            "env": str(env), "msn": msn, "reference": item["orderId"], "agreementId": item["agreementId"],
            "chargeId": item["orderId"], "amount": item["amount"], "currency": currency, "timestamp": now,
            "webhook": body})

    def _money(self, charge: Charge, kind: str, amount: int, at: float) -> None:
        """The API-neutral money event (sandbox/core/events.py): the Report API books it in production ledgers.
        Its pspReference is the charge's transaction id, with the history position after the first movement."""
        agreement = self.agreements.get((charge.env, charge.msn, charge.agreement_id))
        moved = sum(1 for entry in charge.history if entry[1] in ("CAPTURE", "REFUND"))
        psp = str(charge.transaction_id) if moved <= 1 else f"{charge.transaction_id}-{moved}"
        self._publish(kind, money_event(env=str(charge.env), msn=charge.msn, psp_reference=psp, reference=charge.id,
                                        value=amount, currency=charge.currency, timestamp=at, source="recurring",
                                        description=charge.description,
                                        phone=agreement.phone if agreement is not None else None))

    @staticmethod
    def _history(agreement: Agreement, event: str, actor: str, at: float) -> None:
        agreement.history.append((at, event, actor))

    @staticmethod
    def _charge_history(charge: Charge, event: str, amount: int, key: str | None, at: float,
                        success: bool = True) -> None:
        charge.history.append((at, event, amount, key or charge.create_key, success))

    # -- ids --------------------------------------------------------------------------------------------
    def _random(self, n: int) -> str:
        ids = self.runtime.ids
        return "".join(ALNUM[ids.below(len(ALNUM))] for _ in range(n))

    def _agreement_id(self, env: Env, msn: str) -> str:
        while True:
            candidate = "agr_" + self._random(7)
            if (env, msn, candidate) not in self.agreements:
                return candidate

    def _charge_id(self, env: Env, msn: str) -> str:
        while True:
            candidate = "chr-" + self._random(10)
            if (env, msn, candidate) not in self.charges:
                return candidate

    def _transaction_id(self) -> str:
        self._transaction_seq += 1
        return str(5_000_000_000 + self._transaction_seq)

    # -- the sales unit ------------------------------------------------------------------------------
    def unit_allowed(self, msn: str) -> None:
        """The sales unit's configuration says recurringAllowed (as the Management API reports it), or 403
        invalid-sale-unit, the problems page's "The Sales unit is not allowed to use Recurring"."""
        unit = self.runtime.world.sales_units.get(msn)
        if unit is None or not unit.configuration.get("recurringAllowed"):
            raise OpaqueDenial(403, "Forbidden", "The sales unit is not allowed to use Recurring.",
                               code="invalid-sale-unit", rule="recurring-not-allowed",
                               reason=f"Sales unit {msn}'s configuration has recurringAllowed false (GET "
                               "/management/v1/sales-units/{msn} shows it): it cannot use the Recurring API.")

    def unscheduled_allowed(self, msn: str) -> bool:
        """UNSCHEDULED charges: only for allow-listed sales units (--recurring-unscheduled, or the sandbox's own
        configuration flag `unscheduledChargesAllowed` on the sales unit; off when absent)."""
        if msn in self.runtime.settings.recurring_unscheduled_msns:
            return True
        unit = self.runtime.world.sales_units.get(msn)
        return bool(unit is not None and unit.configuration.get("unscheduledChargesAllowed"))

    def min_due_days(self, env: Env) -> int:
        configured = self.runtime.settings.recurring_due_min_days
        return MIN_DUE_DAYS[str(env)] if configured is None else configured

    # -- idempotency ----------------------------------------------------------------------------------
    @staticmethod
    def fingerprint(route: str, params: tuple, body: object) -> bytes:
        canonical = json.dumps([route, list(params), body], sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.blake2b(canonical.encode(), digest_size=12).digest()

    def idempotent(self, env: Env, msn: str, route: str, key: str, fingerprint: bytes, work) -> tuple[int, object]:
        """Runs `work()` -> (status, body) once per Idempotency-Key: the same key and request replay the first
        answer, a 4xx included (the reference: "a 4xx is cached"); the same key with another request is 409
        idempotency-conflict."""
        record = self.idempotency.get((env, msn, route, key))
        if record is not None:
            if record.fingerprint != fingerprint:
                raise problem("idempotency-conflict", "The Idempotency-Key was already used with another request.",
                              details=[Detail("Idempotency-Key", "Used with a different request")])
            if record.error is not None:
                raise detached(record.error)
            return record.status, self.reply_body(record.body)
        try:
            status, body = work()
        except Problem as error:
            if 400 <= error.status < 500 and not isinstance(error, OpaqueDenial):
                self.idempotency.put((env, msn, route, key), Remembered(fingerprint, error=detached(error)))
            raise
        self.idempotency.put((env, msn, route, key), Remembered(fingerprint, status, body))
        return status, self.reply_body(body)

    def reply_body(self, body: object) -> object:
        """A remembered body as the client gets it: a Reply is rebuilt (its records are never removed one by one:
        only `clear` and a snapshot's load drop them, and those replace the idempotency records too)."""
        if not isinstance(body, Reply):
            return body
        if body.kind == "charge":
            return {"chargeId": body.key}
        assert isinstance(body.key, tuple)
        agreement = self.agreements[body.key]
        return {"agreementId": agreement.id, "uuid": agreement.uuid,
                "vippsConfirmationUrl": self.confirmation_url(agreement, body.origin),
                "chargeId": agreement.initial_charge}

    # -- lookups ----------------------------------------------------------------------------------------
    def agreement(self, env: Env, msn: str, agreement_id: str) -> Agreement:
        self.sweep()
        found = self.agreements.get((env, msn, agreement_id))
        if found is None:  # a kept agreement's id was checked when it was made: only others need the format check
            rules.check_agreement_id(agreement_id)
            raise self._not_found("agreement", agreement_id, env, msn,
                                  lambda e, m: (e, m, agreement_id) in self.agreements)
        return found

    def charge(self, env: Env, msn: str, agreement_id: str | None, charge_id: str) -> Charge:
        self.sweep()
        rules.check_charge_id(charge_id)
        if agreement_id is not None:
            agreement = self.agreement(env, msn, agreement_id)
            found = self.charges.get((env, msn, charge_id))
            if found is None or found.agreement_id != agreement.id:
                raise problem("resource-not-found", f"The agreement {agreement_id} has no charge {charge_id}.")
            return found
        found = self.charges.get((env, msn, charge_id))
        if found is None:
            raise self._not_found("charge", charge_id, env, msn, lambda e, m: (e, m, charge_id) in self.charges)
        return found

    def _not_found(self, what: str, ident: str, env: Env, msn: str, exists) -> Problem:
        """404 resource-not-found, the same body whether it is unknown or another sales unit's (or the other
        environment's); the sandbox's headers and log say which."""
        answer = problem("resource-not-found", f"No {what} with ID {ident} was found for this sales unit.")
        for other_env in Env:
            for other_msn in self.runtime.world.sales_units:
                if (other_env, other_msn) == (env, msn) or not exists(other_env, other_msn):
                    continue
                where = (f"sales unit {other_msn}" if other_env is env
                         else f"sales unit {other_msn} in the {other_env} environment")
                return OpaqueDenial(404, answer.title, answer.detail, code="resource-not-found",
                                    rule=f"recurring-{what}-of-another-sales-unit",
                                    reason=f"The {what} {ident} belongs to {where}, not to {msn} in {env} that this "
                                    "call acts for. The caller gets the 404 of one that does not exist.")
        return answer

    # -- views -------------------------------------------------------------------------------------------
    def agreement_view(self, agreement: Agreement, origin: str | None = None) -> dict:
        """AgreementResponseV3 (plus `history`, which the documentation shows and the spec does not name)."""
        body: dict = {"id": agreement.id, "uuid": agreement.uuid, "status": agreement.status,
                      "productName": agreement.product_name, "pricing": dict(agreement.pricing),
                      "interval": interval_view(agreement.interval), "created": iso(agreement.created),
                      "merchantAgreementUrl": agreement.agreement_url,
                      "merchantRedirectUrl": agreement.redirect_url, "countryCode": agreement.country}
        if agreement.product_description is not None:
            body["productDescription"] = agreement.product_description
        if agreement.start is not None:
            body["start"] = iso(agreement.start)
        if agreement.stop is not None:
            body["stop"] = iso(agreement.stop)
        if agreement.external_id is not None:
            body["externalId"] = agreement.external_id
        if agreement.campaign is not None:
            body["campaign"] = campaign_view(agreement.campaign, agreement)
        if agreement.sub is not None:
            body["sub"] = agreement.sub
            body["userinfoUrl"] = f"{origin or ''}/vipps-userinfo-api/userinfo/{agreement.sub}"
        if agreement.status == "PENDING" and origin is not None:
            body["vippsConfirmationUrl"] = self.confirmation_url(agreement, origin)
        body["history"] = agreement_history_view(agreement.history)
        return body

    def agreement_bytes(self, agreement: Agreement, origin: str) -> bytes:
        """`agreement_view` as JSON bytes, for `GET …/agreements/{agreementId}`, the hot path.

        Every change to an agreement adds a history entry (update, approve, stop, expire, reject), so the bytes of
        recently read agreements are kept with the history's length (bounded; emptied by `clear`, which reset and
        snapshot loads call). The agreement object itself and the landing key (in a PENDING agreement's
        vippsConfirmationUrl) are part of the check too."""
        key = (agreement.env, agreement.msn, agreement.id)
        version, landing_key = len(agreement.history), self.runtime.landing_key
        cached = self._views.get(key)
        if cached is not None and cached[0] is agreement and cached[1] == version and cached[2] == origin \
                and cached[3] is landing_key:
            return cached[4]
        body = json.dumps(self.agreement_view(agreement, origin)).encode()
        if len(self._views) >= VIEW_CACHE:
            self._views.clear()
        self._views[key] = (agreement, version, origin, landing_key, body)
        return body

    @staticmethod
    def charge_view(charge: Charge, agreement: Agreement | None = None) -> dict:
        """ChargeResponseV3. transactionId is null until the charge is DUE, as the spec's text says (its schema
        makes it a required string: a spec bug, set aside by the response check)."""
        body: dict = {"id": charge.id, "agreementId": charge.agreement_id, "amount": charge.amount,
                      "currency": charge.currency, "description": charge.description, "due": iso_date(charge.due),
                      "status": charge.status, "transactionId": charge.transaction_id, "type": charge.type,
                      "transactionType": charge.transaction_type, "retryDays": charge.retry_days,
                      "processingMode": charge.processing_mode, "externalId": charge.external_id,
                      "summary": {"captured": charge.captured, "refunded": charge.refunded,
                                  "cancelled": charge.cancelled},
                      "history": charge_history_view(charge.history)}
        if agreement is not None and agreement.external_id is not None:
            body["externalAgreementId"] = agreement.external_id
        if charge.status == "FAILED":
            body["failureReason"] = charge.failure_reason
            body["failureDescription"] = charge.failure_description
        return body

    def view_charge(self, charge: Charge) -> dict:
        return self.charge_view(charge, self.agreements.get((charge.env, charge.msn, charge.agreement_id)))

    # -- the confirmation page's token ---------------------------------------------------------------
    def _mac(self, data: bytes) -> bytes:
        return hmac.new(self.runtime.landing_key, TOKEN_CONTEXT + data, hashlib.sha256).digest()[:TOKEN_MAC]

    def token(self, agreement: Agreement) -> str:
        """HMAC-SHA256 over the agreement's environment, MSN, id and uuid, with this sandbox's landing key: a
        token of another sandbox, or for another agreement, does not verify."""
        data = f"{agreement.env.value}|{agreement.msn}|{agreement.id}|{agreement.uuid}".encode()
        return _b64(data) + "." + _b64(self._mac(data))

    def confirmation_url(self, agreement: Agreement, origin: str) -> str:
        return f"{origin}/_sandbox/recurring/confirm?token={self.token(agreement)}"

    def by_token(self, token: str) -> Agreement:
        try:
            raw_b64, mac_b64 = token.split(".", 1)
            raw, mac = _unb64(raw_b64), _unb64(mac_b64)
            if not hmac.compare_digest(mac, self._mac(raw)):
                raise ValueError("bad signature")
            env, msn, agreement_id, agreement_uuid = raw.decode("ascii").split("|")
            key = (Env(env), msn, agreement_id)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
            raise Problem(400, "Bad Request", "The token is not a confirmation token of this sandbox.",
                          details=[Detail("token", "Invalid token")], rule="recurring-token-invalid",
                          reason="The confirmation token is malformed, or was not signed by this sandbox (another "
                          "instance, or one started without this --state directory).") from exc
        self.sweep()
        agreement = self.agreements.get(key)
        if agreement is None or agreement.uuid != agreement_uuid:
            raise problem("resource-not-found", "The agreement behind this token no longer exists "
                          "(was the sandbox reset?).")
        return agreement

    # -- agreements --------------------------------------------------------------------------------------
    def draft(self, env: Env, msn: str, body: object, key: str, origin: str) -> tuple[int, object]:
        self.unit_allowed(msn)
        fingerprint = self.fingerprint("draft", (), body)
        return self.idempotent(env, msn, "draft", key, fingerprint, lambda: self._draft(env, msn, body, key, origin))

    def _draft(self, env: Env, msn: str, body: object, key: str, origin: str) -> tuple[int, object]:
        validate("DraftAgreementV3", body)
        assert isinstance(body, dict)
        self.sweep()
        unit = self.runtime.world.sales_units[msn]
        pricing = dict(body["pricing"])
        kind = pricing.setdefault("type", "LEGACY")
        currency = pricing["currency"]
        if currency != unit.currency:
            raise invalid(f"Sales unit {msn} takes {unit.currency}, not {currency}.", "pricing.currency",
                          "Not the sales unit's currency")
        if kind == "LEGACY":
            check_amount(pricing["amount"], currency, "pricing.amount", "validation-error")
            pricing = {"type": kind, "currency": currency, "amount": pricing["amount"]}
        elif kind == "VARIABLE":
            check_amount(pricing["suggestedMaxAmount"], currency, "pricing.suggestedMaxAmount",
                         "invalid-suggested-max-amount")
            pricing = {"type": kind, "currency": currency, "suggestedMaxAmount": pricing["suggestedMaxAmount"]}
        else:
            pricing = {"type": kind, "currency": currency}
        campaign = body.get("campaign")
        if campaign is not None:
            campaign = self._campaign(campaign, pricing)
        interval = body.get("interval")
        if interval is not None:
            interval = self.shared_interval(interval["unit"], interval["count"])
        now = self.now()
        agreement = Agreement(
            env=env, msn=msn, id=self._agreement_id(env, msn), uuid=self.runtime.ids.uuid4(), pricing=pricing,
            interval=interval, product_name=body["productName"], created=now, create_key=key,
            country=COUNTRY.get(unit.market, "NO"), product_description=body.get("productDescription"),
            redirect_url=body["merchantRedirectUrl"], agreement_url=body.get("merchantAgreementUrl") or "",
            phone=body.get("phoneNumber") or None, external_id=body.get("externalId"), scope=body.get("scope") or None,
            campaign=campaign)
        initial = body.get("initialCharge")
        charge = None
        if initial is not None:
            amount = check_amount(initial["amount"], currency, "initialCharge.amount")
            charge_id = initial.get("orderId") or self._charge_id(env, msn)
            if (env, msn, charge_id) in self.charges:
                raise problem("conflict", f"A charge with orderId {charge_id} already exists for this sales unit.",
                              details=[Detail("initialCharge.orderId", "Already used")])
            charge = Charge(env=env, msn=msn, agreement_id=agreement.id, id=charge_id, amount=amount,
                            currency=currency, description=initial["description"], due=self.today(), retry_days=0,
                            transaction_type=initial["transactionType"], type="INITIAL",
                            processing_mode="SINGLE_ATTEMPT", external_id=initial.get("externalId") or charge_id,
                            create_key=key)
            self._charge_history(charge, "CREATE", amount, key, now)
        self._history(agreement, "CREATE", "MERCHANT", now)
        record_key = (env, msn, agreement.id)  # one tuple for the dict, the order and the heap
        self.agreements[record_key] = agreement
        self.order.append(record_key)
        self.by_unit.setdefault((env, msn), []).append(agreement.id)
        if charge is not None:
            self.charges[(env, msn, charge.id)] = charge
            agreement.charges.append(charge.id)
            agreement.initial_charge = charge.id
        self._at(agreement.expires_at, "expire", record_key)
        return 201, Reply("draft", record_key, sys.intern(origin))

    def _campaign(self, campaign: dict, pricing: dict) -> dict:
        if pricing["type"] != "LEGACY":
            raise invalid("Campaigns are only for LEGACY pricing.", "campaign", "Only with pricing type LEGACY",
                          "unsupported-feature")
        price = campaign["price"]
        if not isinstance(price, int) or price < 0 or price > pricing["amount"]:
            raise invalid("The campaign price must be between 0 and the agreement's price.", "campaign.price",
                          "Out of range")
        kind = campaign["type"]
        if kind == "PRICE_CAMPAIGN":
            end = parse_datetime(campaign["end"], "campaign.end")
            if end <= self.now():
                raise invalid("The campaign's end is in the past.", "campaign.end", "Must be in the future")
            return {"type": kind, "price": price, "end": end}
        if kind == "PERIOD_CAMPAIGN":
            return {"type": kind, "price": price, "period": dict(campaign["period"])}
        return {"type": kind, "price": price, "eventDate": parse_datetime(campaign["eventDate"], "campaign.eventDate"),
                "eventText": campaign["eventText"]}

    def list_agreements(self, env: Env, msn: str, status: str | None, created_after: int | None,
                        page_number: int | None, page_size: int | None, origin: str) -> list[dict]:
        """ListAgreementsV3: oldest first. `status` defaults to ACTIVE, as the spec's AgreementStatus says
        (UNCERTAIN: a list without the parameter may give every status); createdAfter in epoch milliseconds."""
        self.unit_allowed(msn)
        self.sweep()
        status = status or "ACTIVE"
        found = []
        for agreement_id in self.by_unit.get((env, msn), ()):
            agreement = self.agreements[(env, msn, agreement_id)]
            if agreement.status != status:
                continue
            if created_after is not None and agreement.created * 1000 <= created_after:
                continue
            found.append(agreement)
        size = page_size or rules.LIST_PAGE_SIZE_DEFAULT
        start = ((page_number or 1) - 1) * size
        return [self.agreement_view(a, origin) for a in found[start:start + size]]

    def update(self, env: Env, msn: str, agreement_id: str, body: object, key: str) -> tuple[int, object]:
        self.unit_allowed(msn)
        fingerprint = self.fingerprint("update", (agreement_id,), body)
        return self.idempotent(env, msn, "update", key, fingerprint,
                               lambda: self._update(env, msn, agreement_id, body, key))

    def _update(self, env: Env, msn: str, agreement_id: str, body: object, key: str) -> tuple[int, object]:
        body = {} if body is None else body
        validate("PatchAgreementV3", body)
        assert isinstance(body, dict)
        agreement = self.agreement(env, msn, agreement_id)
        if "status" in body:
            if len(body) != 1:
                raise invalid("status STOPPED must be sent alone: no other field may change in the same request.",
                              "status", "Must be the only field")
            if agreement.status == "STOPPED":
                return 204, None  # stopping twice is no error
            if agreement.status == "EXPIRED":
                raise problem("illegal-agreement-update", "The agreement is EXPIRED and can no longer be updated.")
            self.stop(agreement, "MERCHANT")
            return 204, None
        if agreement.status not in ("PENDING", "ACTIVE"):
            raise problem("illegal-agreement-update", f"The agreement is {agreement.status} and can no longer be "
                          "updated.", details=[Detail("status", agreement.status)])
        pricing = body.get("pricing")
        if pricing:
            kind = agreement.pricing["type"]
            if "type" in pricing and pricing["type"] != kind:
                raise problem("illegal-agreement-update", "An agreement's pricing type can never change.",
                              details=[Detail("pricing.type", f"Is {kind}")])
            if "amount" in pricing:
                if kind != "LEGACY":
                    raise problem("illegal-agreement-update", "pricing.amount can only be updated on LEGACY pricing.",
                                  details=[Detail("pricing.amount", f"The pricing is {kind}")])
                check_amount(pricing["amount"], agreement.pricing["currency"], "pricing.amount", "validation-error")
            if "suggestedMaxAmount" in pricing:
                if kind != "VARIABLE":
                    raise problem("illegal-agreement-update", "suggestedMaxAmount can only be updated on VARIABLE "
                                  "pricing.", details=[Detail("pricing.suggestedMaxAmount", f"The pricing is {kind}")])
                check_amount(pricing["suggestedMaxAmount"], agreement.pricing["currency"],
                             "pricing.suggestedMaxAmount", "invalid-suggested-max-amount")
        interval = body.get("interval")
        new_interval: object = ...
        if interval:
            if interval.get("type", "RECURRING") == "FLEXIBLE":
                new_interval = None
            elif "period" not in interval:
                raise invalid("interval.period is required when the interval type is RECURRING.", "interval.period",
                              "Required")
            else:
                new_interval = self.shared_interval(interval["period"]["unit"], interval["period"]["count"])
        # Everything checked: apply.
        for field_name, attr in (("productName", "product_name"), ("productDescription", "product_description"),
                                 ("merchantAgreementUrl", "agreement_url"), ("externalId", "external_id")):
            if field_name in body:
                setattr(agreement, attr, body[field_name])
        if pricing:
            for name in ("amount", "suggestedMaxAmount"):
                if name in pricing:
                    agreement.pricing[name] = pricing[name]
        if new_interval is not ...:
            agreement.interval = new_interval  # type: ignore[assignment]
        if body:
            self._history(agreement, "UPDATE", "MERCHANT", self.now())
        return 204, None

    def stop(self, agreement: Agreement, actor: str) -> None:
        """STOPPED, for good. A merchant stop cancels the PENDING, DUE and RESERVED charges; a user stop leaves
        RESERVED ones (the merchant may still capture them)."""
        now = self.now()
        agreement.status = "STOPPED"
        agreement.stop = now
        self._history(agreement, "STOP", actor, now)
        cancel = ("PENDING", "DUE", "RESERVED") if actor == "MERCHANT" else ("PENDING", "DUE")
        for charge_id in agreement.charges:
            charge = self.charges.get((agreement.env, agreement.msn, charge_id))
            if charge is not None and charge.status in cancel:
                self._cancel(charge, None, now)
        self._agreement_event(agreement, "stopped", now, actor)

    def _end_pending(self, agreement: Agreement, status: str, event: str, actor: str, at: float) -> None:
        """A PENDING agreement that will never be ACTIVE: EXPIRED (no answer in time, or its initial charge failed)
        or STOPPED (the user rejected it). Its initial charge is cancelled unless it already failed."""
        agreement.status = status
        agreement.stop = at
        self._history(agreement, event, actor, at)
        if agreement.initial_charge is not None:
            charge = self.charges.get((agreement.env, agreement.msn, agreement.initial_charge))
            if charge is not None and charge.status == "PENDING":
                self._cancel(charge, None, at)
        self._agreement_event(agreement, "expired" if status == "EXPIRED" else "rejected", at)

    # -- the user's side ----------------------------------------------------------------------------------
    def pending_for(self, env: Env, phone: str) -> list[Agreement]:
        """The PENDING agreements of this environment drafted for this phone number, oldest first: what the virtual
        phone shows. A scan of the agreements (the phone page is a control-plane page, not a hot path)."""
        self.sweep()
        return [a for a in self.agreements.values() if a.env is env and a.phone == phone and a.status == "PENDING"]

    def refusal(self, agreement: Agreement) -> tuple[str, str] | None:
        """Why this agreement's initial charge would fail (a test-environment magic amount), or None."""
        if agreement.initial_charge is None or agreement.env is not Env.TEST:
            return None
        charge = self.charges.get((agreement.env, agreement.msn, agreement.initial_charge))
        return MAGIC_AMOUNTS.get(charge.amount) if charge is not None else None

    def approve(self, agreement: Agreement, phone: str | None = None, max_amount: int | None = None,
                drafted_only: bool = False) -> bool:
        """The user approves: PENDING -> ACTIVE, and an initial charge is charged or reserved at once. False when
        it already was ACTIVE. VARIABLE pricing: the user picks maxAmount (default: the suggested one).

        `phone` is who approves (the confirmation page's or the control plane's chosen test user, or a typed
        number): it becomes the agreement's phone number and, with a scope, decides its `sub`. The draft's
        phoneNumber only prefills the page (the spec: "Used to simplify the following interaction"), so another
        user may approve; force accept (`drafted_only`) must name the drafted number when there is one."""
        self.sweep()
        if agreement.status == "ACTIVE":
            return False
        if agreement.status != "PENDING":
            raise problem("operation-failed", f"The agreement is {agreement.status}; only a PENDING agreement can be "
                          "approved.", rule="recurring-agreement-not-pending")
        if drafted_only and phone is not None and agreement.phone and phone != agreement.phone:
            raise invalid("The agreement was drafted for another phone number.", "phoneNumber", "Not the agreement's")
        pricing = agreement.pricing
        if pricing["type"] == "VARIABLE":
            chosen = pricing["suggestedMaxAmount"] if max_amount is None else max_amount
            check_amount(chosen, pricing["currency"], "maxAmount", "validation-error")
            pricing["maxAmount"] = chosen
        now = self.now()
        agreement.phone = phone or agreement.phone or DEFAULT_TEST_PHONE
        refused = self.refusal(agreement)
        if agreement.initial_charge is not None:
            charge = self.charges[(agreement.env, agreement.msn, agreement.initial_charge)]
            charge.transaction_id = self._transaction_id()
            if refused is not None:
                self._fail(charge, refused[0], refused[1], now)
                self._end_pending(agreement, "EXPIRED", "EXPIRE", "USER", now)
                return True
        agreement.status = "ACTIVE"
        agreement.start = now
        if agreement.scope:
            # The same formula as ePayment's profile.sub (core/claims.py): stable per (sales unit, user).
            agreement.sub = subject(agreement.msn, agreement.phone)
        self._history(agreement, "ACTIVATE", "USER", now)
        if agreement.campaign is not None and agreement.campaign["type"] == "PERIOD_CAMPAIGN":
            agreement.campaign["end"] = add_period(now, agreement.campaign["period"])
        self._agreement_event(agreement, "activated", now)
        if agreement.sub is not None and agreement.scope:  # the user consented (all or nothing): Userinfo learns it
            self._publish(PROFILE_SHARED, profile_event(env=str(agreement.env), msn=agreement.msn, sub=agreement.sub,
                                                        phone=agreement.phone, scope=agreement.scope, timestamp=now,
                                                        source="recurring"))
        if agreement.initial_charge is not None:
            self._succeed(self.charges[(agreement.env, agreement.msn, agreement.initial_charge)], now)
        return True

    def reject(self, agreement: Agreement) -> bool:
        """The user rejects: PENDING -> STOPPED (recurring.agreement-rejected). False when it already was."""
        self.sweep()
        if agreement.status == "STOPPED" and agreement.history and agreement.history[-1][1] == "REJECT":
            return False
        if agreement.status != "PENDING":
            raise problem("operation-failed", f"The agreement is {agreement.status}; only a PENDING agreement can be "
                          "rejected.", rule="recurring-agreement-not-pending")
        self._end_pending(agreement, "STOPPED", "REJECT", "USER", self.now())
        return True

    def expire(self, agreement: Agreement) -> bool:
        """Lets a PENDING agreement expire now. False when it already was EXPIRED."""
        self.sweep()
        if agreement.status == "EXPIRED":
            return False
        if agreement.status != "PENDING":
            raise problem("operation-failed", f"The agreement is {agreement.status}; only a PENDING agreement can "
                          "expire.", rule="recurring-agreement-not-pending")
        self._end_pending(agreement, "EXPIRED", "EXPIRE", "USER", self.now())
        return True

    def user_stop(self, agreement: Agreement) -> bool:
        """The user stops an ACTIVE agreement in the app. False when it already was STOPPED."""
        self.sweep()
        if agreement.status == "STOPPED":
            return False
        if agreement.status != "ACTIVE":
            raise problem("operation-failed", f"The agreement is {agreement.status}; only an ACTIVE agreement can be "
                          "stopped by the user.", rule="recurring-agreement-not-active")
        self.stop(agreement, "USER")
        return True

    def force_accept(self, env: Env, msn: str, agreement_id: str, body: object, key: str) -> tuple[int, object]:
        """PATCH /agreements/{id}/accept (the policy keeps it out of production)."""
        self.unit_allowed(msn)
        fingerprint = self.fingerprint("accept", (agreement_id,), body)

        def work() -> tuple[int, object]:
            validate("ForceAcceptAgreementV3", body)
            assert isinstance(body, dict)
            phone = body["phoneNumber"]
            if not PHONE.match(phone):
                raise invalid("phoneNumber must be 8 to 15 digits, with the country code (4712345678).",
                              "phoneNumber", "Must be 8 to 15 digits")
            self.approve(self.agreement(env, msn, agreement_id), phone, drafted_only=True)
            return 204, None

        return self.idempotent(env, msn, "accept", key, fingerprint, work)

    # -- charges -------------------------------------------------------------------------------------------
    def create_charge(self, env: Env, msn: str, agreement_id: str, body: object, key: str) -> tuple[int, object]:
        self.unit_allowed(msn)
        fingerprint = self.fingerprint("charge", (agreement_id,), body)

        def work() -> tuple[int, object]:
            validate("CreateChargeV3", body)
            assert isinstance(body, dict)
            charge = self._new_charge(env, msn, agreement_id, body, key)
            return 201, Reply("charge", charge.id)

        return self.idempotent(env, msn, "charge", key, fingerprint, work)

    def _new_charge(self, env: Env, msn: str, agreement_id: str, body: dict, key: str) -> Charge:
        agreement = self.agreement(env, msn, agreement_id)
        if agreement.status != "ACTIVE":
            raise problem("charge-creation-failed", f"The agreement is {agreement.status}: charges can only be "
                          "created on ACTIVE agreements.", details=[Detail("agreementId", agreement.status)])
        currency = agreement.pricing["currency"]
        kind, amount, retry_days, mode, due = self._charge_request(env, msn, body, currency)
        self._check_limit(agreement, amount, due)
        charge_id = body.get("orderId") or self._charge_id(env, msn)
        if (env, msn, charge_id) in self.charges:
            raise problem("conflict", f"A charge with orderId {charge_id} already exists for this sales unit.",
                          details=[Detail("orderId", "Already used")])
        charge = Charge(env=env, msn=msn, agreement_id=agreement.id, id=charge_id, amount=amount, currency=currency,
                        description=body["description"], due=due, retry_days=retry_days,
                        transaction_type=body["transactionType"], type=kind, processing_mode=mode,
                        external_id=body.get("externalId") or charge_id, create_key=key)
        self._charge_history(charge, "CREATE", amount, key, self.now())
        record_key = (env, msn, charge.id)  # one tuple for the dict and the heap
        self.charges[record_key] = charge
        agreement.charges.append(charge.id)
        if kind == "UNSCHEDULED":
            self._make_due(charge, self.now())
            charge.next_at = self.now()
            self._at(charge.next_at, "process", record_key)
        else:
            self._schedule_charge(charge, record_key)
        return charge

    def _charge_request(self, env: Env, msn: str, body: dict, currency: str) -> tuple[str, int, int, str, date]:
        """The checks of a charge request that need no agreement: (type, amount, retryDays, processingMode, due).
        The batch endpoint makes these before its 202 ("passed API level validation"); the rest comes after."""
        kind = body.get("type", "RECURRING")
        amount = check_amount(body["amount"], currency, "amount")
        retry_days = body.get("retryDays", 0)
        mode = body.get("processingMode", "MULTIPLE_ATTEMPTS")
        if mode == "SINGLE_ATTEMPT" and retry_days:
            raise invalid("processingMode SINGLE_ATTEMPT needs retryDays 0.", "retryDays", "Must be 0 with "
                          "SINGLE_ATTEMPT")
        if len(body["description"]) > 45:
            raise invalid("The charge description is at most 45 characters.", "description", "At most 45 characters")
        today = self.today()
        if kind == "UNSCHEDULED":
            if not self.unscheduled_allowed(msn):
                raise invalid("Cannot create a charge with type 'UNSCHEDULED'", "type",
                              "Not allowed for this sales unit")
            return kind, amount, retry_days, mode, today
        if "due" not in body:
            raise invalid("A RECURRING charge needs a due date.", "due", "Required")
        due = parse_due(body["due"])
        minimum = self.min_due_days(env)
        if (due - today).days < minimum:
            raise invalid(f"The due date must be at least {minimum} day(s) after today ({today}).", "due",
                          "Too soon", "charge-due-too-soon")
        if (due - today).days > MAX_DUE_DAYS:
            raise invalid("The due date must be at most 2 years in the future.", "due", "Too far ahead",
                          "charge-due-in-too-long")
        return kind, amount, retry_days, mode, due

    def _check_limit(self, agreement: Agreement, amount: int, due: date) -> None:
        """The pricing's limit: LEGACY at most 5x the price in the interval of the due date (per charge without
        an interval), VARIABLE at most the user's maxAmount, FLEXIBLE the currency's maximum (checked already)."""
        pricing = agreement.pricing
        if pricing["type"] == "VARIABLE" and amount > pricing.get("maxAmount", pricing["suggestedMaxAmount"]):
            raise invalid(f"The amount is higher than the maxAmount {pricing.get('maxAmount')} the user chose.",
                          "amount", "Above maxAmount", "charge-amount-too-high")
        if pricing["type"] != "LEGACY":
            return
        cap = LEGACY_INTERVAL_FACTOR * pricing["amount"]
        total = amount
        if agreement.interval is not None:
            start, end = interval_window(agreement, due)
            for charge_id in agreement.charges:
                other = self.charges.get((agreement.env, agreement.msn, charge_id))
                if other is not None and other.status in LIVE and other.type != "INITIAL" and start <= other.due < end:
                    total += other.amount
        if total > cap:
            raise invalid(f"The charges of one interval may total at most {LEGACY_INTERVAL_FACTOR} times the price "
                          f"({cap}); this charge would make {total}.", "amount", "Too high", "charge-amount-too-high")

    def batch(self, env: Env, msn: str, body: object, key: str) -> tuple[int, object]:
        """POST /agreements/charges: up to 2,000 charges. 202 with `validCharges`, those that "passed API level
        validation" (the spec: the request's schema and the checks that need no agreement, `_charge_request`), and
        `invalidCharges`, each with its errors. The valid ones are then created one by one, as the real API does
        asynchronously (here right after the answer is made); one that fails then (no such agreement, not ACTIVE,
        over the pricing's limit, an orderId already used) is never created, and the merchant hears of it through
        `recurring.charge-creation-failed.v1` (UNCERTAIN: docs/reference/fidelity.md)."""
        self.unit_allowed(msn)
        fingerprint = self.fingerprint("batch", (), body)

        def work() -> tuple[int, object]:
            if not isinstance(body, list):
                raise invalid("The body must be an array of charges.", "body", "Must be an array")
            if len(body) > BATCH_MAX:
                raise invalid(f"At most {BATCH_MAX} charges in one request.", "body", f"At most {BATCH_MAX} items")
            strays = [index for index, item in enumerate(body) if not isinstance(item, dict)]
            if strays:  # not a charge at all: the body is malformed (an object with bad fields is listed instead)
                raise invalid("Every item of the array must be a charge object.", f"[{strays[0]}]", "Must be an object")
            valid, refused, accepted = [], [], []
            currency = self.runtime.world.sales_units[msn].currency  # an agreement's is always its unit's
            for index, item in enumerate(body):
                try:
                    validate("CreateChargeAsyncV3", item)
                    assert isinstance(item, dict)
                    item = {name: value for name, value in item.items() if name != "type"}  # no such field here
                    rules.check_agreement_id(item["agreementId"])
                    self._charge_request(env, msn, item, currency)
                    accepted.append((index, item))
                    valid.append(item["orderId"])
                except Problem as error:
                    reasons = [f"{d.name}: {d.reason}" for d in error.details] or [error.detail]
                    refused.append({"chargeBatchItemDto": batch_item(item), "errors": reasons[:10]})
            for index, item in accepted:  # after the 202, in the real API
                try:
                    self._new_charge(env, msn, item["agreementId"], item, f"{key}-{index}")
                except Problem as error:
                    self._creation_failed(env, msn, item, currency, error)
            return 202, {"validCharges": valid, "invalidCharges": refused}

        return self.idempotent(env, msn, "batch", key, fingerprint, work)

    def list_charges(self, env: Env, msn: str, agreement_id: str, status: str | None,
                     continuation: str | None) -> tuple[list[dict], str | None]:
        """ListChargesV3, oldest first, CHARGES_PAGE_SIZE at a time; the Continuation-Token header names the next
        page (a UUID, as the spec says, kept for this listing only)."""
        self.unit_allowed(msn)
        agreement = self.agreement(env, msn, agreement_id)
        start = 0
        if continuation:
            saved = self.continuations.get(continuation)
            if saved is None or saved[:4] != (env, msn, agreement_id, status):
                raise invalid("The Continuation-Token is unknown, or belongs to another listing.",
                              "Continuation-Token", "Unknown token")
            start = saved[4]
        found = [c for c in (self.charges.get((env, msn, i)) for i in agreement.charges)
                 if c is not None and (status is None or c.status == status)]
        page = found[start:start + CHARGES_PAGE_SIZE]
        token = None
        if start + CHARGES_PAGE_SIZE < len(found):
            # Not from runtime.ids: a read is not journaled, so it must not move the id stream that --state
            # replays (the ids of the charges and agreements made after it would differ).
            token = str(uuid.UUID(bytes=hmac.new(self.runtime.landing_key, CONTINUATION_CONTEXT + repr(
                (str(env), msn, agreement_id, status, start, len(self.continuations))).encode(),
                hashlib.sha256).digest()[:16], version=4))
            if len(self.continuations) >= 10_000:
                self.continuations.clear()
            self.continuations[token] = (env, msn, agreement_id, status, start + CHARGES_PAGE_SIZE)
        return [self.charge_view(c, agreement) for c in page], token

    # -- the charge's state machine ----------------------------------------------------------------------
    def _make_due(self, charge: Charge, at: float) -> None:
        charge.status = "DUE"
        if charge.transaction_id is None:
            charge.transaction_id = self._transaction_id()

    def _process(self, charge: Charge, at: float) -> None:
        """The due date: charged or reserved, or (a magic amount in test) failing until its retry days end."""
        agreement = self.agreements.get((charge.env, charge.msn, charge.agreement_id))
        failure = None
        if agreement is None or agreement.status != "ACTIVE":
            failure = ("non_technical_error", "The agreement is no longer active.")
        elif charge.env is Env.TEST:
            failure = MAGIC_AMOUNTS.get(charge.amount)
        if failure is None:
            self._succeed(charge, at)
        elif charge.retry_days == 0:
            self._fail(charge, failure[0], failure[1], at)
        else:
            charge.failing = failure
            self._schedule_charge(charge)

    def _succeed(self, charge: Charge, at: float) -> None:
        if charge.transaction_id is None:
            charge.transaction_id = self._transaction_id()
        charge.failing = None
        charge.next_at = None
        self._charge_history(charge, "RESERVE", charge.amount, None, at)
        if charge.transaction_type == "DIRECT_CAPTURE":
            charge.status = "CHARGED"
            charge.captured = charge.amount
            charge.captured_at = at
            self._charge_history(charge, "CAPTURE", charge.amount, None, at)
            self._charge_event(charge, "captured", at)
            self._money(charge, MONEY_CAPTURED, charge.amount, at)
        else:
            charge.status = "RESERVED"
            self._charge_event(charge, "reserved", at)

    def _fail(self, charge: Charge, reason: str, description: str, at: float) -> None:
        charge.status = "FAILED"
        charge.failure_reason, charge.failure_description = reason, description
        charge.failing = None
        charge.next_at = None
        self._charge_history(charge, "FAIL", charge.amount, None, at, success=False)
        self._charge_event(charge, "failed", at)

    def _cancel(self, charge: Charge, key: str | None, at: float) -> None:
        """Releases what is neither captured nor cancelled yet. A charge with money captured keeps its status
        (PARTIALLY_CAPTURED, or PARTIALLY_REFUNDED/REFUNDED after a refund); the others become CANCELLED."""
        remainder = charge.amount - charge.captured - charge.cancelled
        charge.cancelled += remainder
        if not charge.captured:
            charge.status = "CANCELLED"
        charge.failing = None
        charge.next_at = None
        self._charge_history(charge, "CANCEL", remainder, key, at)
        self._charge_event(charge, "canceled", at, remainder)

    def force_outcome(self, charge: Charge, outcome: str, reason: str | None) -> None:
        """The control plane: a PENDING or DUE charge is processed now, with this outcome (CHARGED, RESERVED or
        FAILED with a failureReason). A charge failing through its retry days may be made to succeed."""
        self.sweep()
        if charge.status not in ("PENDING", "DUE"):
            raise problem("operation-failed", f"The charge is {charge.status}; only a PENDING or DUE charge can be "
                          "given an outcome.")
        now = self.now()
        if charge.transaction_id is None:
            charge.transaction_id = self._transaction_id()
        if outcome == "FAILED":
            reason = reason or "user_action_required"
            if reason not in FAILURE_REASONS:
                raise invalid(f"failureReason must be one of {', '.join(FAILURE_REASONS)}.", "failureReason",
                              "Unknown reason")
            self._fail(charge, reason, f"Forced by the sandbox's control plane ({reason}).", now)
        elif outcome in ("CHARGED", "RESERVED"):
            charge.transaction_type = "DIRECT_CAPTURE" if outcome == "CHARGED" else "RESERVE_CAPTURE"
            self._succeed(charge, now)
        else:
            raise invalid("outcome must be CHARGED, RESERVED or FAILED.", "outcome", "Unknown outcome")

    # -- the merchant's modifications -------------------------------------------------------------------
    def cancel_charge(self, env: Env, msn: str, agreement_id: str, charge_id: str, key: str) -> tuple[int, object]:
        self.unit_allowed(msn)

        def work() -> tuple[int, object]:
            charge = self.charge(env, msn, agreement_id, charge_id)
            reserved = charge.amount - charge.captured - charge.cancelled
            if charge.status == "CANCELLED" or (charge.captured and charge.cancelled and not reserved):
                return 204, None  # nothing left to release: cancelling again is no error, and no second event
            # A partial capture's remainder stays reserved after a refund: it can still be released.
            if charge.status not in CANCELLABLE and not (charge.status in REFUNDED_STATES and reserved):
                raise problem("cancel-charge-failed", f"The charge is {charge.status}; only PENDING, DUE, RESERVED "
                              "and PARTIALLY_CAPTURED charges (or what a refunded partial capture left reserved) can "
                              "be cancelled.",
                              details=[Detail("status", charge.status)])
            self._cancel(charge, key, self.now())
            return 204, None

        return self.idempotent(env, msn, "cancel", key, self.fingerprint("cancel", (agreement_id, charge_id), None),
                               work)

    def capture(self, env: Env, msn: str, agreement_id: str, charge_id: str, body: object,
                key: str) -> tuple[int, object]:
        self.unit_allowed(msn)

        def work() -> tuple[int, object]:
            validate("CaptureRequestV3", body)
            assert isinstance(body, dict)
            charge = self.charge(env, msn, agreement_id, charge_id)
            amount = check_amount(body["amount"], charge.currency, "amount")
            if charge.status not in ("RESERVED", "PARTIALLY_CAPTURED"):
                raise problem("charge-capture-failed", f"The charge is {charge.status}; only a RESERVED charge can be "
                              "captured.", details=[Detail("status", charge.status)])
            capturable = charge.amount - charge.captured - charge.cancelled
            if amount > capturable:
                raise problem("charge-capture-failed", f"Only {capturable} can still be captured; tried {amount}.",
                              details=[Detail("amount", "Above the capturable amount")])
            now = self.now()
            charge.captured += amount
            charge.captured_at = now
            charge.status = "CHARGED" if charge.captured == charge.amount else "PARTIALLY_CAPTURED"
            self._charge_history(charge, "CAPTURE", amount, key, now)
            self._charge_event(charge, "captured", now, amount)
            self._money(charge, MONEY_CAPTURED, amount, now)
            return 204, None

        return self.idempotent(env, msn, "capture", key,
                               self.fingerprint("capture", (agreement_id, charge_id), body), work)

    def refund(self, env: Env, msn: str, agreement_id: str, charge_id: str, body: object,
               key: str) -> tuple[int, object]:
        self.unit_allowed(msn)

        def work() -> tuple[int, object]:
            validate("RefundRequest", body)
            assert isinstance(body, dict)
            charge = self.charge(env, msn, agreement_id, charge_id)
            amount = check_amount(body["amount"], charge.currency, "amount")
            if charge.status not in REFUNDABLE or charge.captured == 0:
                raise problem("operation-failed", f"The charge is {charge.status}; only a captured charge can be "
                              "refunded.", details=[Detail("status", charge.status)])
            now = self.now()
            if charge.captured_at is not None and now - charge.captured_at > REFUND_WINDOW_DAYS * DAY:
                raise problem("operation-failed", f"A charge can be refunded up to {REFUND_WINDOW_DAYS} days after "
                              "capture; this one was captured longer ago.")
            refundable = charge.captured - charge.refunded
            if amount > refundable:
                raise problem("operation-failed", f"Only {refundable} can still be refunded; tried {amount}.",
                              details=[Detail("amount", "Above the refundable amount")])
            charge.refunded += amount
            charge.status = "REFUNDED" if charge.refunded == charge.captured else "PARTIALLY_REFUNDED"
            self._charge_history(charge, "REFUND", amount, key, now)
            self._charge_event(charge, "refunded", now, amount)
            self._money(charge, MONEY_REFUNDED, amount, now)
            return 204, None

        return self.idempotent(env, msn, "refund", key,
                               self.fingerprint("refund", (agreement_id, charge_id), body), work)

    # -- the dashboard ------------------------------------------------------------------------------------
    def newest(self, limit: int, before: int | None = None) -> tuple[list[Agreement], int | None]:
        """A page of agreements of both environments, newest first: at most `limit` of those drafted before the
        `before`-th (all, when None), and the cursor of the next, older page (None at the oldest). O(limit)."""
        self.sweep()
        end = len(self.order) if before is None else max(0, min(before, len(self.order)))
        start = max(0, end - limit)
        return [self.agreements[key] for key in reversed(self.order[start:end])], (start or None)

    # -- numbers for the dashboard and benchmarks --------------------------------------------------------
    def counts(self) -> dict[str, int]:
        return {"agreements": len(self.agreements), "charges": len(self.charges), "timers": len(self._heap)}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def detached(error: Problem) -> Problem:
    """A copy of the problem without a traceback, context or cause, for keeping (and for raising again): a raised
    exception holds its traceback, whose frames hold the request being handled, its headers and body, so a
    remembered 4xx kept as raised pinned a whole request for the record's 30 days."""
    copy = type(error).__new__(type(error), *error.args)
    copy.__dict__.update(error.__dict__)
    return copy


def agreement_history_view(history: list[tuple[float, str, str]]) -> list[dict]:
    return [{"event": event, "actor": actor, "occurred": iso(at)} for at, event, actor in history]


def charge_history_view(history: list[tuple[float, str, int, str, bool]]) -> list[dict]:
    return [{"occurred": iso(at), "event": event, "amount": amount, "idempotencyKey": key, "success": success}
            for at, event, amount, key, success in history]


def interval_view(interval: dict | None) -> dict:
    """TimePeriodResponse; pay per use (no interval) has only a text. UNCERTAIN: the spec requires `interval` on
    every agreement and says nothing of how one without it looks."""
    if interval is None:
        return {"text": "pay per use"}
    unit, count = interval["unit"], interval["count"]
    word = INTERVAL_TEXT[unit]
    return {"unit": unit, "count": count, "text": f"every {word}" if count == 1 else f"every {count} {word}s"}


def campaign_view(campaign: dict, agreement: Agreement) -> dict:
    kind = campaign["type"]
    if kind == "PRICE_CAMPAIGN":
        return {"type": kind, "price": campaign["price"], "end": iso(campaign["end"]),
                "explanation": f"{campaign['price']} until {iso(campaign['end'])[:10]}"}
    if kind == "PERIOD_CAMPAIGN":
        end = campaign.get("end") or add_period(agreement.created, campaign["period"])
        return {"type": kind, "price": campaign["price"], "end": iso(end), "period": dict(campaign["period"]),
                "explanation": f"{campaign['price']} for the first {campaign['period']['count']} "
                f"{INTERVAL_TEXT[campaign['period']['unit']]}(s)"}
    return {"type": kind, "price": campaign["price"], "eventDate": iso(campaign["eventDate"]),
            "eventText": campaign["eventText"], "explanation": f"{campaign['price']} until {campaign['eventText']}"}


def add_period(start: float, period: dict) -> float:
    moment = datetime.fromtimestamp(start, UTC)
    unit, count = period["unit"], period["count"]
    if unit == "DAY":
        return (moment + timedelta(days=count)).timestamp()
    if unit == "WEEK":
        return (moment + timedelta(weeks=count)).timestamp()
    months = count * (12 if unit == "YEAR" else 1)
    year, month = divmod(moment.month - 1 + months, 12)
    day = min(moment.day, 28)
    return moment.replace(year=moment.year + year, month=month + 1, day=day).timestamp()


def interval_window(agreement: Agreement, due: date) -> tuple[date, date]:
    """The interval (counted from the agreement's start) that holds `due`: [start, end)."""
    assert agreement.interval is not None
    origin = datetime.fromtimestamp(agreement.start or agreement.created, UTC).date()
    unit, count = agreement.interval["unit"], agreement.interval["count"]
    if unit in ("DAY", "WEEK"):
        length = count * (7 if unit == "WEEK" else 1)
        index = max(0, (due - origin).days // length)
        start = origin + timedelta(days=index * length)
        return start, start + timedelta(days=length)
    months = count * (12 if unit == "YEAR" else 1)
    elapsed = (due.year - origin.year) * 12 + due.month - origin.month - (1 if due.day < min(origin.day, 28) else 0)
    index = max(0, elapsed // months)

    def shift(n: int) -> date:
        year, month = divmod(origin.month - 1 + n, 12)
        return date(origin.year + year, month + 1, min(origin.day, 28))

    return shift(index * months), shift((index + 1) * months)


def batch_item(item: object) -> dict:
    """ChargeBatchItemDto of a refused batch entry: the fields it had (of the right type), with the required ones
    always present."""
    item = item if isinstance(item, dict) else {}

    def text(name: str) -> str:
        value = item.get(name)
        return value[:100] if isinstance(value, str) else ""

    def number(name: str) -> int:
        value = item.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= rules.INT32_MAX else 0

    dto = {"due": text("due"), "retryDays": number("retryDays"), "amount": number("amount"),
           "description": text("description"),
           "transactionType": item.get("transactionType") if item.get("transactionType") in (
               "DIRECT_CAPTURE", "RESERVE_CAPTURE") else "DIRECT_CAPTURE",
           # ChargeBatchItemDto.orderId takes 1-64 of [a-zA-Z0-9-]: an empty, missing or malformed one is "invalid"
           "orderId": text("orderId") if rules.CHARGE_ID.match(text("orderId")) else "invalid",
           "agreementId": text("agreementId")}
    if item.get("processingMode") in ("MULTIPLE_ATTEMPTS", "SINGLE_ATTEMPT"):
        dto["processingMode"] = item["processingMode"]
    if isinstance(item.get("externalId"), str):
        dto["externalId"] = item["externalId"][:64]
    return dto


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
