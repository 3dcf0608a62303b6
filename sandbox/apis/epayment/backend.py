"""The ePayment backend: payments, their state machine, event log, idempotency and expiry.

Knows nothing of HTTP. Every public method is synchronous, so each check-then-update runs
without an `await` in between: concurrent captures on one payment can never overrun a limit.
Payments live in a dict keyed by (env, msn, reference); idempotency records by
(env, msn, route, key). CREATED payments also sit in a heap ordered by expiry time, so
expiring them costs O(log n) per payment and nothing per request when none is due.
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
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum

from sandbox.apis.epayment import express
from sandbox.apis.epayment.rules import (
    CANCEL_DAYS,
    CAPTURE_DAYS,
    IDEMPOTENCY_CONFLICT_CODE,
    LATE_CAPTURE_DAYS,
    MAGIC_AMOUNTS,
    MAGIC_REFUND_AMOUNTS,
    MINIMUM_AMOUNT,
    REFUND_DAYS,
    REFUND_PERIOD_FROM,
    RESTRICTED_SCOPES,
    check_modification_amount,
    check_reference,
    iso,
    parse_rfc3339,
    problem,
    scope_values,
    validate,
    validate_create,
)
from sandbox.core.claims import subject
from sandbox.core.errors import Detail, OpaqueDenial, Problem
from sandbox.core.events import ORDER_RECEIPT, PROFILE_SHARED, profile_event, receipt_event
from sandbox.core.idempotency import IdempotencyRecords
from sandbox.core.model import Env, SalesUnit
from sandbox.core.runtime import Runtime
from sandbox.gateway.targets import Rules

log = logging.getLogger("sandbox.epayment")

DEFAULT_EXPIRY_SECONDS = 600  # payments left in CREATED expire after 10 minutes
LONG_LIVING_MIN, LONG_LIVING_MAX = 600, 60 * 86400
PSP_REFERENCE_BASE = 3343121302  # the spec's example pspReference; numbers count up from it
DAY = 86400


class State(StrEnum):
    CREATED = "CREATED"
    AUTHORIZED = "AUTHORIZED"
    ABORTED = "ABORTED"
    EXPIRED = "EXPIRED"
    TERMINATED = "TERMINATED"


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Event:
    name: str
    value: int
    psp: int
    timestamp: float
    idempotency_key: str | None
    success: bool = True


@dataclass(slots=True)
class Payment:
    env: Env
    msn: str
    reference: str
    value: int
    currency: str
    psp: int  # the CREATED event's pspReference
    user_flow: str
    method: str
    expires_at: float
    return_url: str | None = None
    description: str | None = None
    phone: str | None = None
    metadata: dict | None = None
    scope: str | None = None
    origin: str | None = None  # where the user's links point (shared, interned); None for PUSH_MESSAGE
    qr: str | None = None  # QR flow: "svg", "text" or "png:<size>"
    shipping: dict | None = None  # Express: the create's `shipping` (fixedOptions or dynamicOptions)
    shipping_details: dict | None = None  # Express, once approved: the spec's ShippingDetails
    user_details: dict | None = None  # Express, once approved: the spec's UserDetails
    payer: str | None = None  # once approved: the phone number (MSISDN) of who paid, a test user's or typed
    state: State = State.CREATED
    authorized: int = 0
    cancelled: int = 0
    captured: int = 0
    refunded: int = 0
    events: list[Event] = field(default_factory=list)

    def amount(self, value: int) -> dict:
        return {"currency": self.currency, "value": value}

    def aggregate(self) -> dict:
        return {"authorizedAmount": self.amount(self.authorized), "cancelledAmount": self.amount(self.cancelled),
                "capturedAmount": self.amount(self.captured), "refundedAmount": self.amount(self.refunded)}

    def modification_view(self, snapshot: tuple | None = None) -> dict:
        """ModificationResponse (the pspReference is the CREATED event's), now or as `snapshot()` was."""
        state, authorized, cancelled, captured, refunded = snapshot or self.snapshot()
        aggregate = {"authorizedAmount": self.amount(authorized), "cancelledAmount": self.amount(cancelled),
                     "capturedAmount": self.amount(captured), "refundedAmount": self.amount(refunded)}
        return {"amount": self.amount(self.value), "state": str(state), "aggregate": aggregate,
                "pspReference": str(self.psp), "reference": self.reference}

    def snapshot(self) -> tuple:
        return (self.state, self.authorized, self.cancelled, self.captured, self.refunded)

    def view(self, redirect_url: str | None = None) -> dict:
        """GetPaymentResponse."""
        body = self.modification_view()
        body["paymentMethod"] = {"type": self.method}
        body["profile"] = {}
        sub = self.profile_sub()
        if sub:
            body["profile"]["sub"] = sub
        if redirect_url:
            body["redirectUrl"] = redirect_url
        if self.metadata:
            body["metadata"] = self.metadata
        if self.shipping_details:
            body["shippingDetails"] = self.shipping_details
        if self.user_details:
            body["userDetails"] = self.user_details
        return body

    def profile_sub(self) -> str | None:
        """The user's `sub`: once AUTHORIZED, when profile.scope was asked for (GET's profile.sub, and the
        AUTHORIZED webhook's `sub`); else None."""
        if self.scope and self.state is State.AUTHORIZED:
            # stable per (sales unit, user): the payer's phone number, as the create's customer.phoneNumber gave
            return subject(self.msn, self.payer or self.phone or self.reference)
        return None

    def event_views(self, authorized_key: bool = True) -> list[dict]:
        """The event log (the spec's PaymentEvent), with the same idempotencyKey as each event's webhook body."""
        create_key = self.events[0].idempotency_key if self.events else None
        return [{"reference": self.reference, "pspReference": str(e.psp), "name": e.name,
                 "amount": self.amount(e.value), "timestamp": iso(e.timestamp),
                 "idempotencyKey": event_key(e, create_key, authorized_key), "success": e.success}
                for e in self.events]

    @property
    def express(self) -> bool:
        return self.shipping is not None


#: The events that show the Idempotency-Key of the merchant's request that caused them, in the event log and in
#: the webhook bodies alike (sandbox/apis/webhooks/backend.py KEYED_EVENTS says the same). Cancel's key is not
#: shown (the documentation's event log and its webhook notes show CANCELLED without one), so CANCELLED and
#: TERMINATED show null, as ABORTED and EXPIRED do; AUTHORIZED shows the create's key, as the documentation's
#: examples do, unless Settings.webhook_authorized_key is off.
KEYED_EVENTS = frozenset({"CREATED", "CAPTURED", "REFUNDED"})


def event_key(event: Event, create_key: str | None, authorized_key: bool) -> str | None:
    if event.name in KEYED_EVENTS:
        return event.idempotency_key
    if event.name == "AUTHORIZED" and authorized_key:
        return create_key
    return None


@dataclass(slots=True)
class IdempotencyRecord:
    """Enough to give the first response again: for a modification, the aggregate it answered with."""

    fingerprint: bytes
    reference: str
    snapshot: tuple | None = None
    at: float = 0.0  # when it was made (virtual clock): set by IdempotencyRecords, which expires it


# ---------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------


def not_found(reference: str) -> Problem:
    """404 5090, for unknown and other-MSN references alike."""
    answer = problem("5090", f"Could not find a payment with reference {reference} for this sales unit.")
    answer.rule = "payment-not-found"  # the error-code rule would be epayment-error-5090: this one says more
    return answer


class PaymentsBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        # Landing tokens are signed with the runtime's landing key: random per process, or kept in the state
        # directory with --state (so links outlive a restart). Whoever holds a token may approve, reject or
        # read its payment, so it must be unforgeable.
        self._tokens: dict[str, str] = {}
        self._tokens_key: bytes | None = None  # the key the cached tokens were signed with
        #: Where the Express dynamic shipping callback may go: the webhooks' outgoing-URL rules.
        self.callback_rules = Rules(lambda: runtime.port_env.keys(), runtime.settings.webhook_allow_private,
                                    what="shipping callbacks")
        self.callback_timeout = express.CALLBACK_TIMEOUT
        self.clear()

    def clear(self) -> None:
        """The reset hook: no payments, no idempotency records, pspReferences count from the start."""
        self.payments: dict[tuple[Env, str, str], Payment] = {}
        #: Every payment's key in the order made (payments are never removed one by one), so that a page of the
        #: newest ones is a slice: O(page), however many payments there are.
        self.order: list[tuple[Env, str, str]] = []
        settings = self.runtime.settings
        #: By (env, msn, route, key); bounded by retention and a cap per sales unit (sandbox/core/idempotency.py).
        self.idempotency: IdempotencyRecords[IdempotencyRecord] = IdempotencyRecords(
            self.now, lambda: settings.idempotency_retention_seconds, lambda: settings.idempotency_max_per_unit)
        self._expiry_heap: list[tuple[float, tuple[Env, str, str]]] = []
        self._seq = 0
        self._views: dict[tuple[Env, str, str], tuple[int, str | None, bytes]] = {}

    # -- snapshots (runtime.state_providers["payments"]) -----------------------------------------
    def dump(self) -> dict[str, list[dict]]:
        """Payments with their events, the idempotency records and the pspReference counter."""
        payments = []
        for payment in self.payments.values():
            record = {name: getattr(payment, name) for name in PAYMENT_FIELDS}
            record["env"], record["state"] = str(payment.env), str(payment.state)
            record["events"] = [asdict(event) for event in payment.events]
            payments.append(record)
        idempotency = []
        for (env, msn, route, key), r in self.idempotency.items():
            snapshot = [str(r.snapshot[0]), *r.snapshot[1:]] if r.snapshot is not None else None
            idempotency.append({"env": str(env), "msn": msn, "route": route, "key": key,
                                "fingerprint": r.fingerprint.hex(), "reference": r.reference, "snapshot": snapshot,
                                "at": r.at})
        return {"payments": payments, "idempotency": idempotency, "counters": [{"seq": self._seq}]}

    def load(self, data: object) -> None:
        """Replaces every payment with the snapshot's (a ValueError, and no change, if it is malformed)."""
        tables = snapshot_tables(data, "payments", "idempotency", "counters")
        payments = {}
        for record in tables["payments"]:
            record = dict(record)
            record["env"], record["state"] = Env(record["env"]), State(record["state"])
            record["events"] = [Event(**event) for event in record.get("events", [])]
            payment = Payment(**record)
            payments[(payment.env, payment.msn, payment.reference)] = payment
        idempotency = []
        now = self.now()
        for r in tables["idempotency"]:
            snapshot = (State(r["snapshot"][0]), *r["snapshot"][1:]) if r.get("snapshot") else None
            at = r.get("at", now)  # none: a snapshot made before records expired (kept a whole period from now)
            if not isinstance(at, int | float) or isinstance(at, bool):
                raise ValueError("an idempotency record's at must be a number (epoch seconds)")
            idempotency.append(((Env(r["env"]), r["msn"], r["route"], r["key"]), IdempotencyRecord(
                bytes.fromhex(r["fingerprint"]), r["reference"], snapshot), float(at)))
        seq = int((tables["counters"] or [{"seq": 0}])[0]["seq"])
        heap = [(p.expires_at, key) for key, p in payments.items() if p.state is State.CREATED]
        heapq.heapify(heap)
        self.clear()
        self.payments, self._expiry_heap, self._seq = payments, heap, seq
        self.idempotency.load(idempotency)
        self.order = list(payments)

    # -- time and expiry ----------------------------------------------------------------------
    def now(self) -> float:
        return self.runtime.clock.time()

    def sweep(self) -> int:
        """Expires every CREATED payment whose time has come; O(1) when none is due."""
        heap, now, expired = self._expiry_heap, self.runtime.clock.time(), 0
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            payment = self.payments.get(key)
            if payment is not None and payment.state is State.CREATED and payment.expires_at <= now:
                self._transition(payment, State.EXPIRED, "EXPIRED", payment.value, None, at=payment.expires_at)
                expired += 1
        return expired

    def _next_psp(self) -> int:
        self._seq += 1
        return PSP_REFERENCE_BASE + self._seq

    # -- lookups ------------------------------------------------------------------------------
    def find(self, env: Env, msn: str, reference: str) -> Payment:
        """The payment, after any due expiry; 404 5090 for unknown and other-MSN references alike."""
        self.sweep()
        payment = self.payments.get((env, msn, reference))
        if payment is None:
            raise self._not_found(env, msn, reference)
        return payment

    def _not_found(self, env: Env, msn: str, reference: str) -> Problem:
        """404 5090, with the same body whether the reference is unknown or another sales unit's (or the other
        environment's); the sandbox's headers and log say which. Looked up on this error path only, over the
        directory's sales units."""
        answer = not_found(reference)
        for other_env in (env, *(e for e in Env if e is not env)):
            for other_msn in self.runtime.world.sales_units:
                if (other_env, other_msn) == (env, msn) or (other_env, other_msn, reference) not in self.payments:
                    continue
                if other_env is env:
                    rule, why = "payment-of-another-sales-unit", (
                        f"Payment {reference} belongs to sales unit {other_msn}, not to {msn} that this call acts for: "
                        "a sales unit sees only its own payments.")
                else:
                    rule, why = "payment-in-the-other-environment", (
                        f"Payment {reference} of sales unit {other_msn} was made in the {other_env} environment; "
                        f"this call is in {env}, and the environments share nothing.")
                return OpaqueDenial(answer.status, answer.title, answer.detail, code=answer.code, rule=rule,
                                    reason=why + " The caller gets the 404 of a reference that does not exist.")
        return answer

    def newest(self, limit: int, before: int | None = None) -> tuple[list[Payment], int | None]:
        """A page of payments, newest first: at most `limit` of those made before the `before`-th (all, when
        None), and the cursor of the next, older page (None when this one reaches the oldest). O(limit)."""
        end = len(self.order) if before is None else max(0, min(before, len(self.order)))
        start = max(0, end - limit)
        payments = self.payments
        page = [payments[key] for key in reversed(self.order[start:end])]
        return page, (start or None)

    # -- events -------------------------------------------------------------------------------
    def _record(self, payment: Payment, name: str, value: int, key: str | None, at: float | None = None,
                psp: int | None = None) -> Event:
        event = Event(name, value, psp if psp is not None else self._next_psp(), self.now() if at is None else at, key)
        payment.events.append(event)
        payload = {"env": str(payment.env), "msn": payment.msn, "reference": payment.reference,
                   "pspReference": str(event.psp), "name": name, "amount": payment.amount(value),
                   "timestamp": event.timestamp, "idempotencyKey": key, "success": event.success,
                   "paymentDescription": payment.description, "phoneNumber": payment.phone,
                   # for the webhook bodies (sandbox/apis/webhooks/backend.py webhook_payload):
                   "createIdempotencyKey": payment.events[0].idempotency_key, "sub": payment.profile_sub()}
        if name == "AUTHORIZED" and payment.express:  # Express: the user's details ride along on AUTHORIZED
            payload["userDetails"], payload["shippingDetails"] = payment.user_details, payment.shipping_details
        self._publish("epayment." + name.lower(), payload)
        return event

    def _publish(self, kind: str, payload: dict) -> None:
        try:
            self.runtime.publish(kind, payload)
        except Exception:  # a broken listener must not undo or fail a payment that already moved
            log.exception("a listener failed on %s", kind)

    def _transition(self, payment: Payment, state: State, name: str, value: int, key: str | None,
                    at: float | None = None) -> None:
        payment.state = state
        self._record(payment, name, value, key, at)

    # -- idempotency --------------------------------------------------------------------------
    @staticmethod
    def fingerprint(reference: str, body: object) -> bytes:
        canonical = json.dumps([reference, body], sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(canonical.encode(), digest_size=12).digest()

    def replay(self, env: Env, msn: str, route: str, key: str, fingerprint: bytes) -> IdempotencyRecord | None:
        """The record of this key's first success, or None; 409 when the key came with another body."""
        record = self.idempotency.get((env, msn, route, key))
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise problem(IDEMPOTENCY_CONFLICT_CODE[route],
                          f"The Idempotency-Key {key!r} was already used with a different request body.")
        return record

    def _replayed_modification(self, env: Env, msn: str, record: IdempotencyRecord) -> dict:
        payment = self.payments.get((env, msn, record.reference))
        if payment is None:  # cannot happen: payments and records are only cleared together
            raise problem("5090", f"Could not find a payment with reference {record.reference}.")
        return payment.modification_view(record.snapshot)

    def remember(self, env: Env, msn: str, route: str, key: str | None, fingerprint: bytes, payment: Payment,
                 snapshot: tuple | None = None) -> None:
        if key:
            self.idempotency.put((env, msn, route, key), IdempotencyRecord(fingerprint, payment.reference, snapshot))

    # -- create -------------------------------------------------------------------------------
    def create(self, env: Env, msn: str, body: object, key: str, origin: str,
               duplicate_metadata_keys: list[str] | tuple = ()) -> tuple[int, dict]:
        """POST /payments: validate (schema, then the 4xxx field rules), replay a known key, then the sales
        unit's configuration (5xxx), the market's minimum (6010), a long-living expiry (61xx), store, 201."""
        validate_create(body, duplicate_metadata_keys)
        assert isinstance(body, dict)
        express.check_create(body)
        fp = self.fingerprint("", body)
        replayed = self.replay(env, msn, "create", key, fp)
        if replayed is not None:
            return 201, self._create_response(self.payments[(env, msn, replayed.reference)], origin)
        self.sweep()
        reference, flow = body["reference"], body["userFlow"]
        value, currency = body["amount"]["value"], body["amount"]["currency"]
        method = body["paymentMethod"]["type"]
        unit = self.runtime.world.sales_units[msn]
        self._check_flow(env, body, flow, method)
        self._check_configuration(unit, body, flow, method)
        if value < MINIMUM_AMOUNT[currency]:
            raise problem("6010", f"The amount is below the minimum of {MINIMUM_AMOUNT[currency]} (minor units) "
                          f"for {currency}.", details=[Detail("amount.value", "Amount too small")])
        expires_at = self.now() + DEFAULT_EXPIRY_SECONDS
        if body.get("expiresAt"):
            expires_at = self._long_living_expiry(body)
        if (env, msn, reference) in self.payments:
            raise problem("4150", f"A payment with reference {reference} already exists for sales unit {msn}.")
        customer = body.get("customer") or {}
        payment = Payment(env=env, msn=unit.msn, reference=reference, value=value, currency=unit.currency,
                          psp=0, user_flow=sys.intern(flow), method=sys.intern(method), expires_at=expires_at,
                          return_url=body.get("returnUrl"), description=body.get("paymentDescription"),
                          phone=customer.get("phoneNumber"), metadata=body.get("metadata") or None,
                          scope=(body.get("profile") or {}).get("scope"), shipping=body.get("shipping"))
        if flow != "PUSH_MESSAGE":
            payment.origin = sys.intern(origin)
        if flow == "QR":
            payment.qr = _qr_kind(body.get("qrFormat") or {})
        stored_key = (env, unit.msn, reference)
        self.payments[stored_key] = payment
        self.order.append(stored_key)
        payment.psp = self._record(payment, "CREATED", value, key).psp
        if body.get("receipt"):  # readable through the Order Management API (sandbox/core/events.py ORDER_RECEIPT)
            self._publish(ORDER_RECEIPT, receipt_event(env=str(env), msn=unit.msn, payment_type="ecom",
                                                       order_id=reference, receipt=body["receipt"],
                                                       timestamp=self.now(), source="epayment"))
        heapq.heappush(self._expiry_heap, (expires_at, stored_key))
        self.remember(env, msn, "create", key, fp, payment)
        return 201, self._create_response(payment, origin)

    def _create_response(self, payment: Payment, origin: str) -> dict:
        redirect = self.redirect_url(payment, origin)
        return {"redirectUrl": redirect, "reference": payment.reference} if redirect \
            else {"reference": payment.reference}

    def _check_flow(self, env: Env, body: dict, flow: str, method: str) -> None:
        if flow == "WEB_REDIRECT" and not body.get("returnUrl"):
            raise problem("4140", "userFlow WEB_REDIRECT needs a returnUrl.",
                          details=[Detail("returnUrl", "The returnUrl field is required for WEB_REDIRECT.")])
        if flow == "PUSH_MESSAGE" and not body.get("customer"):
            raise problem("4140", "userFlow PUSH_MESSAGE needs a customer.",
                          details=[Detail("customer", "The customer field is required for PUSH_MESSAGE.")])
        if method == "CARD" and (flow != "WEB_REDIRECT" or env is Env.TEST):
            raise problem("4160", "paymentMethod CARD works only with userFlow WEB_REDIRECT, and not in the test "
                          "environment.", details=[Detail("paymentMethod.type", "Invalid payment method type")])

    def _check_configuration(self, unit: SalesUnit, body: dict, flow: str, method: str) -> None:
        """What the sales unit's configuration (the Management API's `configuration`) allows, and its market."""
        config, msn = unit.configuration, unit.msn
        if not config.get("paymentAllowed", True):
            raise problem("5070", f"Sales unit {msn} is not allowed to make payments (configuration.paymentAllowed "
                          "is false: a unit for the Login API only).", rule="sales-unit-payment-not-allowed")
        if config.get("captureType", "ReserveCapture") != "ReserveCapture":
            raise problem("5070", f"Sales unit {msn} has captureType {config.get('captureType')}; the ePayment API "
                          "supports only ReserveCapture.", rule="sales-unit-capture-type")
        currency = body["amount"]["currency"]
        if currency != unit.currency:
            raise problem("5040", f"The currency {currency} does not match sales unit {msn}'s market "
                          f"({unit.market}, {unit.currency}).", details=[Detail("amount.currency", "Invalid currency")])
        if body["paymentMethod"].get("blockedSources") and (unit.market == "NO" or method != "WALLET"):
            raise problem("5010", "paymentMethod.blockedSources applies only to WALLET payments in Denmark and "
                          f"Finland; sales unit {msn} is in {unit.market}.",
                          details=[Detail("paymentMethod.blockedSources", "Blocking sources not applicable")])
        if body.get("shipping") is not None and msn in self.runtime.settings.express_disabled:
            raise problem("5020", f"Sales unit {msn} is not enabled for Express (it is named by the sandbox's "
                          "--express-disabled setting), so shipping is not allowed.",
                          details=[Detail("shipping", "Express payment not allowed")])
        dynamic = (body.get("shipping") or {}).get("dynamicOptions")
        if dynamic is not None:
            why = express.check_callback_target(self.callback_rules, dynamic["callbackUrl"])
            if why is not None:
                raise problem("4090", "See extraDetails for further details",
                              details=[Detail("shipping.dynamicOptions.callbackUrl", why)],
                              rule="shipping-callback-url-refused",
                              reason=f"The sandbox never sends the shipping callback there: {why}")
        restricted = [value for value in scope_values(body.get("profile")) if value in RESTRICTED_SCOPES]
        if restricted:
            raise problem("5030", f"profile.scope asks for {restricted[0]}, which needs a permission sales unit {msn} "
                          "does not have.", details=[Detail("profile.scope", "Illegal scope")])
        if flow == "PUSH_MESSAGE" and not config.get("skipLandingPageAllowed", False):
            raise problem("5080", f"Sales unit {msn} is not approved to skip the landing page "
                          "(configuration.skipLandingPageAllowed is false), so userFlow PUSH_MESSAGE is not allowed.",
                          details=[Detail("userFlow", "PUSH_MESSAGE not allowed")])
        if body.get("expiresAt") and not config.get("longLivingPaymentAllowed", False):
            raise problem("5050", f"Sales unit {msn} is not approved for long-living payments "
                          "(configuration.longLivingPaymentAllowed is false), so expiresAt is not allowed.",
                          details=[Detail("expiresAt", "Long-living payment not allowed")])

    def _long_living_expiry(self, body: dict) -> float:
        try:
            at = parse_rfc3339(body["expiresAt"])
        except ValueError as exc:
            raise Problem(400, "Bad Request", "See extraDetails for further details",
                          details=[Detail("expiresAt", "Must be an RFC 3339 date-time.")]) from exc
        ahead = at - self.now()
        if ahead <= LONG_LIVING_MIN:
            raise problem("6120", "expiresAt must be more than 10 minutes ahead.",
                          details=[Detail("expiresAt", "Expiration date is too soon")])
        if ahead >= LONG_LIVING_MAX:
            raise problem("6110", "expiresAt must be less than 60 days ahead.",
                          details=[Detail("expiresAt", "Expiration date is too late")])
        if not body.get("receipt"):
            raise problem("6130", "A long-living payment (expiresAt) needs a receipt.",
                          details=[Detail("receipt", "The receipt field is required with expiresAt.")])
        return at

    # -- the simulated user's links ------------------------------------------------------------
    def _token_mac(self, data: bytes) -> bytes:
        return hmac.new(self.runtime.landing_key, LANDING_TOKEN_CONTEXT + data, hashlib.sha256).digest()[:TOKEN_MAC]

    def landing_token(self, payment: Payment) -> str:
        """A signed token naming the payment: HMAC-SHA256 over its environment, MSN, reference and pspReference
        (the CREATED event's, so a reused reference after a reset does not open the old link), with this
        sandbox's landing key. Another sandbox's token, or one for another payment, does not verify."""
        # References are [a-zA-Z0-9-] and MSNs digits, so "|" separates safely. GETs are hot, so recent
        # tokens are kept in a small bounded cache rather than on every payment (memory per payment).
        key = self.runtime.landing_key
        if key is not self._tokens_key:  # the key was set after start (--state): forget tokens of the old one
            self._tokens.clear()
            self._tokens_key = key
        raw = f"{payment.env.value}|{payment.msn}|{payment.reference}|{payment.psp}"
        token = self._tokens.get(raw)
        if token is None:
            data = raw.encode()
            token = _b64(data) + "." + _b64(self._token_mac(data))
            if len(self._tokens) >= TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[raw] = token
        return token

    def by_token(self, token: str) -> Payment:
        try:
            raw_b64, mac_b64 = token.split(".", 1)
            raw, mac = _unb64(raw_b64), _unb64(mac_b64)
            if not hmac.compare_digest(mac, self._token_mac(raw)):
                raise ValueError("bad signature")
            env, msn, reference, psp_text = raw.decode("ascii").split("|")
            psp = int(psp_text)
            key = (Env(env), msn, reference)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
            raise Problem(400, "Bad Request", "The token is not a landing page token of this sandbox.",
                          details=[Detail("token", "Invalid token")], rule="landing-token-invalid",
                          reason="The landing token is malformed, or was not signed by this sandbox (another "
                          "instance, or one started without this --state directory), or names another "
                          "payment than it was made for.") from exc
        self.sweep()
        payment = self.payments.get(key)
        if payment is None or payment.psp != psp:
            raise problem("5090", "The payment behind this token no longer exists (was the sandbox reset?).")
        return payment

    def token_matches(self, payment: Payment, token: object) -> bool:
        """True when `token` is this payment's landing token (compared in constant time)."""
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.landing_token(payment).encode())

    def redirect_url(self, payment: Payment, origin: str | None = None) -> str | None:
        """Where the user goes: the sandbox's landing page, or for QR a picture of it. None for PUSH_MESSAGE.

        On `origin`, the base URL of the request being answered (so a payment replayed from a --state journal,
        or read through another port or host name, links to where its reader reached the sandbox); the one it
        was created through only when there is no request (`payment.origin` mostly says there is a link)."""
        if payment.origin is None:
            return None
        base = origin or payment.origin
        token = self.landing_token(payment)
        if payment.qr is None or payment.qr == "text":
            return f"{base}/_sandbox/landing?token={token}"
        url = f"{base}/_sandbox/qr?token={token}"
        if payment.qr.startswith("png:"):
            url += f"&format=png&size={payment.qr[4:]}"
        return url

    def view(self, payment: Payment, origin: str | None = None) -> dict:
        """GetPaymentResponse, with the redirectUrl the create response gave (on the reader's `origin`)."""
        return payment.view(self.redirect_url(payment, origin))

    def view_bytes(self, env: Env, msn: str, reference: str, origin: str | None = None) -> bytes:
        """GetPaymentResponse as JSON bytes, for `GET …/payments/{reference}`, the hot path.

        A payment changes only with a new event, so the bytes of recently read payments are kept (bounded,
        and emptied when a snapshot is loaded). The reference is checked against the spec's pattern (400
        when malformed, as `find`'s callers answer) whenever those bytes are made, so a kept one passed."""
        self.sweep()
        key = (env, msn, reference)
        payment = self.payments.get(key)
        if payment is None:
            check_reference(reference)
            raise self._not_found(env, msn, reference)
        version = len(payment.events)
        cached = self._views.get(key)
        if cached is not None and cached[0] == version and cached[1] == origin:
            return cached[2]
        check_reference(reference)  # a hand-edited snapshot can hold any reference
        body = json.dumps(self.view(payment, origin)).encode()
        if len(self._views) >= TOKEN_CACHE:
            self._views.clear()
        self._views[key] = (version, origin, body)
        return body

    # -- the user's side ---------------------------------------------------------------------------
    def refusal(self, payment: Payment) -> tuple[str, str] | None:
        """Why this payment can never be approved (a test-environment magic amount), or None."""
        if payment.env is Env.TEST:
            return MAGIC_AMOUNTS.get(payment.value)
        return None

    def approve(self, payment: Payment, phone: str | None = None,
                choice: tuple[express.User, dict] | None = None, payer: str | None = None) -> bool:
        """The user approves: CREATED -> AUTHORIZED. False when it already was AUTHORIZED.

        Express: `choice` is the user's details and the chosen shipping option (from the payment's fixed
        options, or the dynamic callback's offer); without one, the defaults (fixed options only). The option's
        cost is added to the payment's amount, which is then authorized in full."""
        self.sweep()
        if payment.state is State.AUTHORIZED:
            return False
        if payment.state is not State.CREATED:
            raise problem("10020", f"The payment is {payment.state} and can no longer be approved.")
        refused = self.refusal(payment)
        if refused is not None:
            raise problem(refused[0], refused[1])
        if payment.express:
            if choice is None:
                groups = self.fixed_groups(payment)
                if groups is None:
                    raise Problem(409, "Conflict", "This Express payment has dynamic shipping options: the user "
                                  "chooses one on the landing page, after the merchant's callback offered them.",
                                  rule="express-needs-a-shipping-choice")
                choice = (self.express_user(payment), express.default_option(groups))
            user, option = choice
            payment.user_details = user.details()
            payment.shipping_details = express.shipping_details(user.address, option)
            payment.value += option["amount"]["value"]
            phone = phone or user.mobileNumber
        if phone and not payment.phone:
            payment.phone = phone
        # who paid: the user chosen (or typed) on the landing page, else the phone the payment went to
        payment.payer = payer or phone or payment.phone
        payment.authorized = payment.value
        self._transition(payment, State.AUTHORIZED, "AUTHORIZED", payment.value, None)
        self._profile_shared(payment)
        return True

    def _profile_shared(self, payment: Payment) -> None:
        """profile.scope was asked for and the user approved (all or nothing): the Userinfo API learns the consent."""
        sub = payment.profile_sub()
        if sub is None or payment.scope is None:
            return
        try:
            self.runtime.publish(PROFILE_SHARED, profile_event(
                env=str(payment.env), msn=payment.msn, sub=sub, phone=payment.payer or payment.phone or "",
                scope=payment.scope, timestamp=self._first(payment, "AUTHORIZED") or self.now(), source="epayment"))
        except Exception:  # a broken listener must not undo or fail a payment that already moved
            log.exception("a listener failed on %s", PROFILE_SHARED)

    # -- Express ---------------------------------------------------------------------------------------
    def fixed_groups(self, payment: Payment) -> list[dict] | None:
        return (payment.shipping or {}).get("fixedOptions")

    def express_user(self, payment: Payment, payer: str | None = None) -> express.User:
        """The details the landing page prefills: the chosen test user's (`payer`, else the one the payment's
        phone number belongs to, else one of the market's test users, deterministic per payment)."""
        unit = self._unit(payment)
        market = unit.market if unit else "NO"
        world = self.runtime.world
        chosen = world.user(payer) or world.user(payment.phone)
        return express.default_user(payment.msn, payment.reference, payer or payment.phone, market, chosen,
                                    world.market_users.get(market, []))

    def pending_for(self, env: Env, phone: str) -> list[Payment]:
        """The CREATED payments of this environment addressed to this phone number (customer.phoneNumber), oldest
        first: what the virtual phone shows. A scan of the payments (the phone page is a control-plane page)."""
        self.sweep()
        return [p for p in self.payments.values()
                if p.env is env and p.phone == phone and p.state is State.CREATED]

    def phone_locked(self, payment: Payment) -> str | None:
        """The phone number the landing page is locked to: customer.phoneNumber when the sales unit has
        configuration.landingPagePhoneNumberLocked; else None."""
        unit = self._unit(payment)
        locked = unit is not None and bool(unit.configuration.get("landingPagePhoneNumberLocked", False))
        return payment.phone if locked and payment.phone else None

    async def offer(self, payment: Payment, address: dict) -> express.Offer:
        """Asks the merchant's dynamic callback for the shipping groups for this address."""
        dynamic = (payment.shipping or {}).get("dynamicOptions")
        assert dynamic is not None
        return await express.fetch_groups(self.callback_rules, dynamic, payment.reference, payment.currency,
                                          address, self.callback_timeout)

    def sign_offer(self, payment: Payment, offer: express.Offer) -> str:
        """The offer's groups and address, signed with the landing key for this payment: the landing page's form
        carries them to approve, so approve needs no state kept from the page (and replays from a journal)."""
        data = json.dumps([payment.psp, payment.reference, offer.address, offer.groups],
                          separators=(",", ":")).encode()
        return _b64(data) + "." + _b64(self._token_mac(OFFER_CONTEXT + data))

    def read_offer(self, payment: Payment, text: object) -> tuple[dict, list[dict]]:
        """The address and groups of a signed offer for this payment; 400 when it is not one."""
        try:
            assert isinstance(text, str)
            data_b64, mac_b64 = text.split(".", 1)
            data = _unb64(data_b64)
            if not hmac.compare_digest(_unb64(mac_b64), self._token_mac(OFFER_CONTEXT + data)):
                raise ValueError("bad signature")
            psp, reference, address, groups = json.loads(data)
            if (psp, reference) != (payment.psp, payment.reference):
                raise ValueError("another payment's offer")
        except (AssertionError, ValueError, TypeError, binascii.Error) as exc:
            raise Problem(400, "Bad Request", "The shipping options are missing or were not offered for this "
                          "payment: show the landing page again.", details=[Detail("offer", "Invalid offer")],
                          rule="express-offer-invalid") from exc
        return address, groups

    def reject(self, payment: Payment) -> bool:
        """The user rejects: CREATED -> ABORTED. False when it already was ABORTED."""
        return self._end_created(payment, State.ABORTED, "be rejected")

    def expire(self, payment: Payment) -> bool:
        """Lets a CREATED payment expire now. False when it already was EXPIRED."""
        return self._end_created(payment, State.EXPIRED, "expire")

    def _end_created(self, payment: Payment, final: State, verb: str) -> bool:
        """CREATED -> a final state (its event has the state's name); False when already there."""
        self.sweep()
        if payment.state is final:
            return False
        if payment.state is not State.CREATED:
            raise Problem(409, "Conflict", f"The payment is {payment.state}; only a CREATED payment can {verb}.")
        self._transition(payment, final, final.value, payment.value, None)
        return True

    def force_approve(self, env: Env, msn: str, reference: str, body: object) -> None:
        """POST /test/payments/{reference}/approve (the policy keeps it out of production)."""
        if body is not None:
            validate("ForceApprove", body)
        payment = self.find(env, msn, reference)
        if payment.express:
            raise problem("10060", "Express checkout is not supported for this endpoint: the user approves an "
                          "Express payment on the landing page (or the sandbox's control plane), choosing a "
                          "shipping option.", rule="force-approve-not-for-express")
        body = body or {}
        assert isinstance(body, dict)
        if body.get("token") and not self.token_matches(payment, body["token"]):
            raise Problem(400, "Bad Request", "The token does not belong to this payment.",
                          details=[Detail("token", "The token from this payment's redirectUrl is expected.")])
        phone = (body.get("customer") or {}).get("phoneNumber")
        if phone and payment.phone and phone != payment.phone:
            raise problem("10020", "The payment was created for another customer's phone number.")
        if payment.state is State.AUTHORIZED:
            raise problem("6230", "The payment is already authorized (reserved); it cannot be approved again.")
        self.approve(payment, phone)

    # -- the merchant's modifications ------------------------------------------------------------
    def _modification_amount(self, payment: Payment, body: dict) -> int:
        amount = body["modificationAmount"]
        if amount["currency"] != payment.currency:
            raise problem("5040", f"The payment is in {payment.currency}, not {amount['currency']}.",
                          details=[Detail("modificationAmount.currency", "Invalid currency")])
        if amount["value"] < 1:
            raise problem("4040", "The modification amount must be at least 1.",
                          details=[Detail("modificationAmount.value", "Invalid amount")])
        return amount["value"]

    # -- time limits (on the virtual clock, checked at request time: nothing is scanned) -------------------
    def _unit(self, payment: Payment) -> SalesUnit | None:
        return self.runtime.world.sales_units.get(payment.msn)

    @staticmethod
    def _first(payment: Payment, name: str) -> float | None:
        """When the payment's first event of this name happened (AUTHORIZED is its second event)."""
        return next((event.timestamp for event in payment.events if event.name == name), None)

    def capture_days(self, payment: Payment) -> int:
        """The capture deadline in days after the reservation: Norway 180; Denmark and Finland 14, or 180 with
        configuration.lateCaptureAllowed (Norwegian units always have it)."""
        unit = self._unit(payment)
        market = unit.market if unit else "NO"
        days = CAPTURE_DAYS.get(market, LATE_CAPTURE_DAYS)
        if unit is not None and market != "NO" and unit.configuration.get("lateCaptureAllowed", False):
            days = LATE_CAPTURE_DAYS
        return days

    def _past(self, since: float | None, days: int) -> bool:
        return since is not None and self.now() > since + days * DAY

    def capture(self, env: Env, msn: str, reference: str, body: object, key: str) -> dict:
        check_modification_amount(body)
        validate("CaptureModificationRequest", body)
        assert isinstance(body, dict)
        fp = self.fingerprint(reference, body)
        replayed = self.replay(env, msn, "capture", key, fp)
        if replayed is not None:
            return self._replayed_modification(env, msn, replayed)
        payment = self.find(env, msn, reference)
        value = self._modification_amount(payment, body)
        state = payment.state
        if state is State.CREATED:
            raise problem("6080", "The amount you tried to capture is not reserved. The user must accept the "
                          "payment before capture can be done.")
        if state is State.TERMINATED or (state is State.AUTHORIZED and payment.cancelled):
            raise problem("6070", "The payment was cancelled; nothing more can be captured.")
        if state is not State.AUTHORIZED:
            raise problem("6200", f"The payment is {state} and cannot be captured.")
        days = self.capture_days(payment)
        if self._past(self._first(payment, "AUTHORIZED"), days):
            raise problem("6100", f"The capture period of {days} days after the reservation has expired "
                          "(Norway 180 days; Denmark and Finland 14, or 180 with late capture).")
        capturable = payment.authorized - payment.cancelled - payment.captured
        if capturable == 0 and payment.captured:
            raise problem("6170", "The authorized amount is already captured in full.")
        if value > capturable:
            raise problem("6090", f"Only {capturable} of the authorized amount can still be captured; "
                          f"tried {value}.")
        if value < capturable and not self._partial_capture(payment):
            raise problem("6140", f"Sales unit {payment.msn} may not capture partially "
                          "(configuration.partialCaptureAllowed is false): capture the full amount, "
                          f"{capturable}.", details=[Detail("modificationAmount.value", "Must capture full amount")])
        payment.captured += value
        self._record(payment, "CAPTURED", value, key)
        snapshot = payment.snapshot()
        self.remember(env, msn, "capture", key, fp, payment, snapshot)
        return payment.modification_view(snapshot)

    def _partial_capture(self, payment: Payment) -> bool:
        """configuration.partialCaptureAllowed, for Danish and Finnish units; Norwegian units always may."""
        unit = self._unit(payment)
        return unit is None or unit.market == "NO" or bool(unit.configuration.get("partialCaptureAllowed", False))

    def refund(self, env: Env, msn: str, reference: str, body: object, key: str) -> dict:
        check_modification_amount(body)
        validate("RefundModificationRequest", body)
        assert isinstance(body, dict)
        fp = self.fingerprint(reference, body)
        replayed = self.replay(env, msn, "refund", key, fp)
        if replayed is not None:
            return self._replayed_modification(env, msn, replayed)
        payment = self.find(env, msn, reference)
        value = self._modification_amount(payment, body)
        if payment.state is not State.AUTHORIZED:
            raise problem("6210", f"The payment is {payment.state} and cannot be refunded.")
        if payment.captured == 0:
            raise problem("6020", "Nothing has been captured, so there is nothing to refund.")
        start = self._first(payment, "AUTHORIZED" if REFUND_PERIOD_FROM == "reservation" else "CAPTURED")
        if self._past(start, REFUND_DAYS):
            raise problem("6220", f"The refund period of {REFUND_DAYS} days after the "
                          f"{'reservation' if REFUND_PERIOD_FROM == 'reservation' else 'first capture'} has expired.")
        refundable = payment.captured - payment.refunded
        if refundable == 0:
            raise problem("6180", "The captured amount is already refunded in full.")
        if value > refundable:
            raise problem("6150", f"Only {refundable} of the captured amount can still be refunded; tried {value}.")
        if env is Env.TEST and value in MAGIC_REFUND_AMOUNTS:
            code, why = MAGIC_REFUND_AMOUNTS[value]
            raise problem(code, why)
        payment.refunded += value
        self._record(payment, "REFUNDED", value, key)
        snapshot = payment.snapshot()
        self.remember(env, msn, "refund", key, fp, payment, snapshot)
        return payment.modification_view(snapshot)

    def cancel(self, env: Env, msn: str, reference: str, body: object, key: str | None) -> dict:
        """Before authorization: TERMINATED. After: release the uncaptured remainder (state stays AUTHORIZED)."""
        body = {} if body is None else body
        validate("CancelModificationRequest", body)
        assert isinstance(body, dict)
        fp = self.fingerprint(reference, body)
        if key:
            replayed = self.replay(env, msn, "cancel", key, fp)
            if replayed is not None:
                return self._replayed_modification(env, msn, replayed)
        payment = self.find(env, msn, reference)
        state = payment.state
        if state is State.CREATED:
            payment.cancelled = payment.value
            self._transition(payment, State.TERMINATED, "TERMINATED", payment.value, key)
        elif state is State.AUTHORIZED:
            if body.get("cancelTransactionOnly"):
                raise problem("6060", "cancelTransactionOnly was set, but the payment is already authorized.")
            days = min(CANCEL_DAYS, self.capture_days(payment))
            if self._past(self._first(payment, "AUTHORIZED"), days):
                raise problem("6030", f"The cancel period has expired: {days} days after the reservation "
                              "(180 days, and never past the capture deadline).")
            remainder = payment.authorized - payment.captured - payment.cancelled
            if remainder > 0:
                payment.cancelled += remainder
                self._record(payment, "CANCELLED", remainder, key)
            elif not payment.cancelled:
                raise problem("6040", "The payment is fully captured; there is nothing left to cancel. "
                              "Use refund instead.")
        elif state is not State.TERMINATED:
            raise problem("6050", f"The payment is {state}: it is not reserved, so there is nothing to cancel.")
        snapshot = payment.snapshot()
        self.remember(env, msn, "cancel", key, fp, payment, snapshot)
        return payment.modification_view(snapshot)


TOKEN_CACHE = 4096
TOKEN_MAC = 16  # bytes of the HMAC-SHA256 kept in a landing token: 128 bits
LANDING_TOKEN_CONTEXT = b"vipps-sandbox landing token v2|"  # what the MAC is for, so it signs nothing else
OFFER_CONTEXT = b"express offer v1|"  # inside the landing context: an offer's MAC is never a token's
PAYMENT_FIELDS = [f.name for f in fields(Payment)]


def snapshot_tables(data: object, *names: str) -> dict[str, list[dict]]:
    """The named tables of a snapshot part, or a ValueError saying what is missing."""
    if not isinstance(data, dict) or any(not isinstance(data.get(name, []), list) for name in names):
        raise ValueError(f"expected tables {', '.join(names)}")
    return {name: data.get(name, []) for name in names}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _qr_kind(qr_format: dict) -> str:
    fmt = qr_format.get("format", "IMAGE/SVG+XML")
    if fmt == "TEXT/TARGETURL":
        return "text"
    if fmt == "IMAGE/PNG":
        return f"png:{qr_format.get('size') or 1024}"
    return "svg"
