"""Checkout v3 sessions: their states, their payment (an ePayment payment under the same reference), their expiry.

A session is created by the merchant (SessionCreated). When the user pays on the hosted checkout page, the session
makes an ePayment payment under its own reference, through the service registry (sandbox/core/services.py; this
package never imports the ePayment package): PaymentInitiated. From then on the session follows that payment's
`epayment.*` events (runtime.listeners): AUTHORIZED makes it PaymentSuccessful, ABORTED, EXPIRED, TERMINATED or
CANCELLED before that PaymentTerminated. Capture, cancel and refund go through the ePayment API, as the real
Checkout requires. A session the user never paid expires after SESSION_LIFETIME_SECONDS on the virtual clock
(SessionExpired), through an index by time. The edges between the states are not documented (UNCERTAIN): these are
the reference's inferred ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

from sandbox.apis.checkout.rules import check_create, check_options, check_reference, check_update, problem
from sandbox.core import services
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime

log = logging.getLogger("sandbox")

#: How long a session nobody paid stays open (UNCERTAIN: not documented; one hour, like a typical checkout).
SESSION_LIFETIME_SECONDS = 3600
CREATED, INITIATED, EXPIRED = "SessionCreated", "PaymentInitiated", "SessionExpired"
SUCCESSFUL, TERMINATED = "PaymentSuccessful", "PaymentTerminated"
FINAL = frozenset({EXPIRED, SUCCESSFUL, TERMINATED})
#: The ePayment events that end the payment before it was reserved: the session is then PaymentTerminated.
ENDING_EVENTS = frozenset({"epayment.aborted", "epayment.expired", "epayment.terminated", "epayment.cancelled"})
TOKEN_PAGE = "/_sandbox/checkout/session"


@dataclass
class Session:
    env: Env
    msn: str
    reference: str
    session_id: str
    value: int
    currency: str
    description: str
    merchant_info: dict
    created_at: float
    expires_at: float
    fixed_options: list[dict] = field(default_factory=list)
    dynamic_callback: str | None = None
    prefill: dict = field(default_factory=dict)
    configuration: dict = field(default_factory=dict)
    order_summary: dict | None = None
    state: str = CREATED
    payment_state: str | None = None  # CREATED, AUTHORIZED or TERMINATED once the payment exists
    shipping: dict | None = None
    billing: dict | None = None
    paid_value: int | None = None  # the amount the payment was made for (the transaction plus shipping)
    #: The dynamic-logistics callback's answer: {"address": the address it was asked for, "options": [...]}.
    offered: dict | None = None
    #: A subscription session: its `subscription` (product, amount, interval), and the Recurring agreement made
    #: when the user subscribes; `one_time` when it also has a transaction (the agreement's initial charge).
    subscription: dict | None = None
    one_time: bool = True
    agreement_id: str | None = None
    subscription_state: str | None = None  # PENDING, ACTIVE, STOPPED or EXPIRED once the agreement exists

    @property
    def key(self) -> tuple[Env, str, str]:
        return (self.env, self.msn, self.reference)

    @property
    def elements(self) -> str:
        return self.configuration.get("elements") or "Full"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckoutBackend:
    """Sessions by (env, msn, reference), the index of their expiry by time, and the payment-completed hook."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        #: Called with each session that reached a final payment state (the payment-completed callback).
        self.completed_hooks: list[Callable[[Session], None]] = []
        self.clear()

    def clear(self) -> None:
        self.sessions: dict[tuple[Env, str, str], Session] = {}
        self._expiry: list[tuple[float, tuple[Env, str, str]]] = []
        #: (env, msn, agreementId) -> the key of the subscription session that made the agreement.
        self._agreements: dict[tuple[Env, str, str], tuple[Env, str, str]] = {}

    # -- snapshots ----------------------------------------------------------------------------------
    def dump(self) -> dict[str, list[dict]]:
        """The sessions, JSON-able (a snapshot, a --state compaction)."""
        return {"sessions": [dict(asdict(session), env=str(session.env)) for session in self.sessions.values()]}

    def load(self, data: object) -> None:
        """Replaces the sessions with a dump's; checks all of it first (ValueError, nothing changed)."""
        if not isinstance(data, dict) or not isinstance(data.get("sessions"), list):
            raise ValueError("the checkout state must be {\"sessions\": [...]}")
        known = {f.name for f in fields(Session)}
        loaded = {}
        for record in data["sessions"]:
            if not isinstance(record, dict) or set(record) - known:
                raise ValueError("a checkout session has fields the sandbox does not know")
            try:
                session = Session(**dict(record, env=Env(record.get("env"))))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"a checkout session cannot be read: {exc}") from exc
            loaded[session.key] = session
        self.sessions = loaded
        self._agreements = {(s.env, s.msn, s.agreement_id): key for key, s in loaded.items() if s.agreement_id}
        self._expiry = [(session.expires_at, key) for key, session in loaded.items() if session.state == CREATED]
        heapq.heapify(self._expiry)

    def now(self) -> float:
        return self.runtime.clock.time()

    def service(self, name: str):
        return services.service(self.runtime.services, name)

    # -- the clock ----------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Sessions nobody paid whose time ran out become SessionExpired. O(expired · log n): a heap by time."""
        now, count = self.now(), 0
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            session = self.sessions.get(key)
            if session is not None and session.state == CREATED and session.expires_at <= now:
                session.state = EXPIRED
                count += 1
        return count

    # -- tokens for the hosted page -----------------------------------------------------------------
    def _mac(self, raw: bytes) -> bytes:
        return hmac.new(self.runtime.landing_key, b"checkout|" + raw, hashlib.sha256).digest()[:16]

    def token(self, session: Session) -> str:
        """The hosted page's token: the session's key and id, signed with the runtime's landing key."""
        raw = "|".join((str(session.env), session.msn, session.reference, session.session_id)).encode()
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def by_token(self, token: object) -> Session:
        try:
            if not isinstance(token, str):
                raise ValueError("no token")
            raw_b64, mac_b64 = token.split(".", 1)
            raw, mac = _unb64(raw_b64), _unb64(mac_b64)
            if not hmac.compare_digest(mac, self._mac(raw)):
                raise ValueError("bad signature")
            env, msn, reference, session_id = raw.decode("utf-8").split("|")
            key = (Env(env), msn, reference)
        except (ValueError, TypeError, UnicodeDecodeError, binascii.Error) as exc:
            raise Problem(400, "Bad Request", "The token is not a checkout token of this sandbox.",
                          details=[Detail("token", "Invalid token")], rule="checkout-token-invalid") from exc
        self.sweep()
        session = self.sessions.get(key)
        if session is None or session.session_id != session_id:
            raise Problem(404, "Not Found", "The session behind this token no longer exists (was the sandbox reset?).",
                          rule="checkout-session-gone")
        return session

    # -- the merchant's calls -----------------------------------------------------------------------
    def create(self, env: Env, msn: str, body: object, origin: str) -> dict:
        """POST /checkout/v3/session: validate (spec, then the reference), 409 on a duplicate, store."""
        schema = check_create(body)
        assert isinstance(body, dict)
        subscription = body.get("subscription") if schema == "InitiateSubscriptionSessionRequest" else None
        transaction = body.get("transaction") or {}
        reference = body.get("reference") or transaction.get("reference")
        if not reference:
            raise problem(400, "A reference is required (top level, or the deprecated transaction.reference).",
                          "ValidationError", "reference")
        check_reference(reference)
        unit = self.runtime.world.sales_units[msn]
        amount = transaction["amount"] if transaction else subscription["amount"]  # type: ignore[index]
        if amount["currency"] != unit.currency:
            raise problem(400, f"The currency {amount['currency']} is not the sales unit's ({unit.currency}).",
                          "ValidationError", "transaction.amount.currency", rule="checkout-currency-wrong")
        self.sweep()
        key = (env, msn, reference)
        if key in self.sessions:
            raise problem(409, f"Duplicate reference: a session with reference {reference} already exists for sales "
                          f"unit {msn}.", "DuplicateReference", "reference", rule="checkout-duplicate-reference")
        logistics = body.get("logistics") or {}
        now = self.now()
        session = Session(env=env, msn=msn, reference=reference, session_id=self.runtime.ids.hex(11),
                          value=amount["value"], currency=amount["currency"],
                          description=transaction.get("paymentDescription") or subscription["productName"],  # type: ignore[index]
                          merchant_info=dict(body["merchantInfo"]), subscription=subscription,
                          one_time=bool(transaction),
                          created_at=now, expires_at=now + SESSION_LIFETIME_SECONDS,
                          fixed_options=list(logistics.get("fixedOptions") or []),
                          dynamic_callback=logistics.get("dynamicOptionsCallback"),
                          prefill=dict(body.get("prefillCustomer") or {}),
                          configuration=dict(body.get("configuration") or {}),
                          order_summary=transaction.get("orderSummary"))
        self.sessions[key] = session
        heapq.heappush(self._expiry, (session.expires_at, key))
        token = self.token(session)
        return {"token": token, "checkoutFrontendUrl": f"{origin}{TOKEN_PAGE}?token={token}",
                "pollingUrl": f"{origin}/checkout/v3/session/{reference}"}

    def find(self, env: Env, msn: str, reference: str) -> Session:
        self.sweep()
        session = self.sessions.get((env, msn, reference))
        if session is None:
            raise problem(404, f"No session with reference {reference} exists for this sales unit.",
                          "SessionNotFound", rule="checkout-session-unknown")
        return session

    def update(self, env: Env, msn: str, reference: str, body: object) -> None:
        """PATCH: the transaction (amount, description, order summary) and the logistics options, while the user
        has not paid yet (UNCERTAIN: the spec says nothing about which states allow it)."""
        body = check_update(body)
        session = self.find(env, msn, reference)
        if session.state != CREATED:
            raise problem(400, f"The session is {session.state}: only a session in SessionCreated can be updated.",
                          "SessionNotUpdatable", rule="checkout-session-not-updatable")
        transaction = body.get("transaction")
        if transaction:
            amount = transaction["amount"]
            if amount["currency"] != session.currency:
                raise problem(400, f"The currency {amount['currency']} is not the session's ({session.currency}).",
                              "ValidationError", "transaction.amount.currency")
            session.value, session.description = amount["value"], transaction["paymentDescription"]
            if transaction.get("orderSummary") is not None:
                session.order_summary = transaction["orderSummary"]
        if body.get("logisticOptions") is not None:
            session.fixed_options = list(body["logisticOptions"])

    def expire(self, env: Env, msn: str, reference: str) -> None:
        """POST .../expire: a session not yet paid ends now (its payment, when there is one, expires too)."""
        session = self.find(env, msn, reference)
        if session.state == EXPIRED:
            return
        if session.state in FINAL:
            raise problem(400, f"The session is {session.state} and can no longer expire.", "SessionNotExpirable",
                          rule="checkout-session-final")
        initiated = session.state == INITIATED
        session.state = EXPIRED
        if initiated:  # its payment expires too; its event ends the payment state (and sends the callback)
            self.service(services.EPAYMENT_EXPIRE)(env, msn, reference)

    # -- the user's side (the hosted page) ----------------------------------------------------------
    def options(self, session: Session, address: dict | None = None) -> list[dict]:
        """The logistics options in the order the page shows them (priority, lower first): what the merchant's
        dynamic-logistics callback offered for this address, else the fixed options."""
        offered = session.offered
        chosen = offered["options"] if offered and address is not None and offered["address"] == address \
            else session.fixed_options
        return sorted(chosen, key=lambda option: option.get("priority", 0))

    @staticmethod
    def callback_address(address: dict) -> dict:
        """The address as the dynamic-logistics callback sends it (MerchantLogisticsCallbackRequestBody)."""
        return {"streetAddress": address.get("streetAddress", ""), "postalCode": address.get("postalCode", ""),
                "region": address.get("city", ""), "country": address.get("country", "")}

    def offer(self, session: Session, address: dict, options: list[dict]) -> str | None:
        """Keeps what the merchant's callback offered for this address, server-side (the user cannot change a
        cost); None, or why the options are unusable (the spec's logistics option schemas; the page then falls
        back to the fixed options)."""
        problems = check_options(options)
        if problems:
            session.offered = None
            return "The merchant's logistics callback answered options the spec does not allow: " + problems
        session.offered = {"address": dict(address), "options": options}
        return None

    def pay(self, session: Session, phone: str | None, contact: dict, address: dict | None,
            option_id: str | None, origin: str) -> None:
        """The user pays: the ePayment payment is made under the session's reference (PaymentInitiated), then
        approved as that user; its AUTHORIZED event makes the session PaymentSuccessful."""
        self.sweep()
        if session.state != CREATED:
            raise Problem(409, "Conflict", f"The session is {session.state}; it can no longer be paid.",
                          rule="checkout-session-not-payable")
        if session.subscription is not None:
            self._subscribe(session, phone, contact, origin)
            return
        option = None
        options = self.options(session, address)
        if options:
            option = next((o for o in options if o.get("id") == option_id), None)
            if option is None:
                raise Problem(400, "Bad Request", "Choose one of the session's shipping options.",
                              details=[Detail("shippingOption", "Unknown option")], rule="checkout-option-unknown")
        shipping_cost = option["amount"]["value"] if option else 0
        value = session.value + shipping_cost
        body = {"reference": session.reference, "amount": {"currency": session.currency, "value": value},
                "paymentMethod": {"type": "WALLET"}, "userFlow": "WEB_REDIRECT",
                "returnUrl": session.merchant_info["returnUrl"], "paymentDescription": session.description}
        if phone:
            body["customer"] = {"phoneNumber": phone}
        self.service(services.EPAYMENT_CREATE)(session.env, session.msn, body, f"checkout-{session.session_id}",
                                               origin)
        session.state, session.payment_state, session.paid_value = INITIATED, "CREATED", value
        session.billing = {**contact, **(address or {})}
        if address is not None:
            session.shipping = {**contact, **address}
            if option is not None:
                session.shipping.update(shippingMethodId=option["id"], amount=dict(option["amount"]))
        self.service(services.EPAYMENT_APPROVE)(session.env, session.msn, session.reference, phone)

    def _subscribe(self, session: Session, phone: str | None, contact: dict, origin: str) -> None:
        """A subscription session: a Recurring agreement is drafted (its initial charge, RESERVE_CAPTURE, when the
        session has a transaction) and approved as the user; the agreement's events move the session on."""
        sub = session.subscription
        assert sub is not None
        body: dict = {"pricing": {"type": "LEGACY", "amount": sub["amount"]["value"],
                                  "currency": sub["amount"]["currency"]},
                      "interval": {"unit": sub["interval"]["unit"], "count": sub["interval"]["count"]},
                      "merchantRedirectUrl": session.merchant_info["returnUrl"],
                      "merchantAgreementUrl": sub["merchantAgreementUrl"], "productName": sub["productName"],
                      "externalId": session.reference}
        if sub.get("productDescription"):
            body["productDescription"] = sub["productDescription"]
        if phone:
            body["phoneNumber"] = phone
        if session.one_time:
            body["initialCharge"] = {"amount": session.value, "description": session.description,
                                     "transactionType": "RESERVE_CAPTURE"}
        _, reply = self.service(services.RECURRING_DRAFT)(session.env, session.msn, body,
                                                          f"checkout-{session.session_id}", origin)
        session.agreement_id, session.subscription_state = reply["agreementId"], "PENDING"
        self._agreements[(session.env, session.msn, session.agreement_id)] = session.key
        session.state, session.billing = INITIATED, dict(contact)
        self.service(services.RECURRING_APPROVE)(session.env, session.msn, session.agreement_id, phone)

    def cancel(self, session: Session) -> None:
        """The user cancels: an unpaid session ends (PaymentTerminated); a payment in CREATED is rejected."""
        self.sweep()
        if session.state == INITIATED and session.agreement_id is not None:
            self.service(services.RECURRING_REJECT)(session.env, session.msn, session.agreement_id)
        elif session.state == INITIATED:
            self.service(services.EPAYMENT_REJECT)(session.env, session.msn, session.reference)
        if session.state in (CREATED, INITIATED):
            session.state = TERMINATED
            session.payment_state = "TERMINATED" if session.payment_state else None
            self._completed(session)

    # -- following the payment ----------------------------------------------------------------------
    def on_event(self, kind: str, payload: dict) -> None:
        """runtime.listeners: the session whose reference the ePayment payment has follows its state."""
        if kind.startswith("recurring.agreement-"):
            self._follow_agreement(kind, payload)
            return
        if not kind.startswith("epayment."):
            return
        try:
            key = (Env(payload["env"]), payload["msn"], payload["reference"])
        except (KeyError, ValueError):
            return
        session = self.sessions.get(key)
        if session is None or session.payment_state is None:
            return  # a payment the merchant made itself, not through a session
        if kind == "epayment.authorized" and session.payment_state == "CREATED":
            session.payment_state, session.state = "AUTHORIZED", SUCCESSFUL
            self._completed(session)
        elif kind in ENDING_EVENTS and session.payment_state == "CREATED":
            session.payment_state = "TERMINATED"
            if session.state != EXPIRED:
                session.state = TERMINATED
            self._completed(session)

    def _follow_agreement(self, kind: str, payload: dict) -> None:
        """A subscription session follows its agreement: activated is PaymentSuccessful, rejected or expired
        PaymentTerminated; stopped later only changes subscriptionDetails.state."""
        try:
            env, msn, agreement_id = Env(payload["env"]), payload["msn"], payload["reference"]
        except (KeyError, ValueError):
            return
        key = self._agreements.get((env, msn, agreement_id))
        session = self.sessions.get(key) if key is not None else None
        if session is None:
            return
        name = kind.removeprefix("recurring.agreement-")
        state = {"activated": "ACTIVE", "stopped": "STOPPED", "rejected": "STOPPED", "expired": "EXPIRED"}.get(name)
        if state is None:
            return
        was_pending = session.subscription_state == "PENDING"
        session.subscription_state = state
        if was_pending and session.state == INITIATED:
            session.state = SUCCESSFUL if state == "ACTIVE" else TERMINATED
            self._completed(session)

    def _completed(self, session: Session) -> None:
        for hook in self.completed_hooks:
            try:
                hook(session)
            except Exception:  # a broken hook must not undo what the payment did
                log.exception("a checkout completion hook failed")

    # -- views --------------------------------------------------------------------------------------
    def view(self, session: Session) -> dict:
        """SessionResponse: the payment, user and shipping details once the payment was initiated."""
        body: dict = {"sessionId": session.session_id, "merchantSerialNumber": session.msn,
                      "reference": session.reference, "sessionState": session.state}
        if session.agreement_id is not None:
            body["subscriptionDetails"] = {"state": session.subscription_state, "agreementId": session.agreement_id}
            if session.billing and all(session.billing.get(f) for f in ("firstName", "lastName", "email",
                                                                         "phoneNumber")):
                body["billingDetails"] = session.billing
        if session.payment_state is None:
            return body
        body["paymentMethod"] = "Wallet"
        details: dict = {"type": "Wallet", "state": session.payment_state,
                         "amount": {"currency": session.currency, "value": session.paid_value or session.value}}
        payment = self.service(services.EPAYMENT_VIEW)(session.env, session.msn, session.reference)
        if payment is not None and isinstance(payment.get("aggregate"), dict):
            details["aggregate"] = payment["aggregate"]
        body["paymentDetails"] = details
        if session.shipping is not None:
            body["shippingDetails"] = session.shipping
        if session.billing is not None and all(session.billing.get(f) for f in
                                               ("firstName", "lastName", "email", "phoneNumber")):
            body["billingDetails"] = session.billing
        return body
