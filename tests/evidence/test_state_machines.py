"""Stateful testing of the main flows: Hypothesis state machines against a real sandbox over loopback HTTP.

The bundled specs (ePayment 1.8.1, Recurring 3.1.2, Checkout) declare no OpenAPI `links`, so Schemathesis' stateful
phase has nothing to chain; these hand-written RuleBasedStateMachines do it instead. Each keeps a model of what
the sandbox must hold (written from the API documentation) and, after every step, checks the invariants of
tests/support/stateful_support.py on the sandbox's own answers: aggregates never exceed the authorized amount, every
state change is in the event log or history, ledgers balance, refusals are 4xx in the API's own format, never a 5xx.

Bounded and derandomized for CI; VIPPS_SANDBOX_STATEFUL_EXAMPLES (and VIPPS_SANDBOX_STATEFUL_STEPS) for longer runs:
    VIPPS_SANDBOX_STATEFUL_EXAMPLES=200 VIPPS_SANDBOX_STATEFUL_STEPS=60 pytest tests/evidence/test_state_machines.py
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from fuzz_support import ThreadedSandbox
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from stateful_support import (
    DAY,
    Live,
    agreement_problems,
    charge_problems,
    ledger_problems,
    payment_problems,
    session_problems,
)

from sandbox.gateway.policy import Api

EXAMPLES = int(os.environ.get("VIPPS_SANDBOX_STATEFUL_EXAMPLES", "12"))
STEPS = int(os.environ.get("VIPPS_SANDBOX_STATEFUL_STEPS", "30"))
SETTINGS = settings(max_examples=EXAMPLES, stateful_step_count=STEPS, derandomize=True, deadline=None,
                    database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def live():
    sandbox = ThreadedSandbox().start()
    try:
        machine = Live(sandbox)
        now = machine.clock({"freeze": True})  # time moves only when a rule moves it: the models know when
        noon = (now // DAY) * DAY + DAY / 2
        machine.clock({"advanceSeconds": noon - now if noon > now else noon + DAY - now})
        yield machine  # from noon UTC: the same runs whatever the time of day CI starts them
    finally:
        sandbox.stop()


def ok(problems: list[str]) -> None:
    assert not problems, problems


def pick(data, items: dict, fits=lambda item: True):
    """A key of `items` (in the order made): three times in four one whose item `fits` the rule, when there is
    one, so that deep flows (create, approve, capture, refund) happen within a few steps; None when empty."""
    keys = list(items)
    if not keys:
        return None
    fitting = [key for key in keys if fits(items[key])]
    if fitting and data.draw(st.integers(0, 3), label="fitting") > 0:
        return data.draw(st.sampled_from(fitting), label="pick")
    return data.draw(st.sampled_from(keys), label="pick")


# =============================================================================================
# ePayment: create, approve/reject/expire as the user, capture, refund, cancel, the clock
# =============================================================================================

MINIMUM = 100  # NOK, in øre
MAGIC = {151, 182, 183}  # test-environment amounts the user's approval always refuses
MAGIC_REFUNDS = {123, 124}  # test-environment refund amounts that are refused
CAPTURE_DAYS = CANCEL_DAYS = 180  # Norway
REFUND_DAYS = 365  # from the reservation
RETENTION = 30 * DAY  # idempotency records


@dataclass
class Payment:
    env: str
    reference: str
    value: int
    created: float
    state: str = "CREATED"
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    cancelled: int = 0
    authorized_at: float | None = None
    events: list[tuple[str, int]] = field(default_factory=list)


class EPaymentMachine(RuleBasedStateMachine):
    live: Live

    @initialize(env=st.sampled_from(["production", "test"]))
    def start(self, env: str) -> None:
        self.run = next(self.live.ids)
        self.now = self.live.clock({"advanceSeconds": 0})
        self.model: dict[str, Payment] = {}
        self.touched: set[str] = set()
        self.captures: dict[str, tuple[str, int]] = {}  # production capture pspReference -> (reference, value)
        self.replayable: tuple | None = None
        self.shop = self.live.msn("premium-shop-1")
        # Each run starts with one reserved payment, so captures and refunds come within a few steps.
        self.create(None, env, 10000)
        self.approve(None, False, list(self.model)[-1])

    # -- calls ---------------------------------------------------------------------------------
    def headers(self, env: str, key: str | None = None) -> dict:
        headers = self.live.headers("partner" if env == "production" else "merchant", env, self.shop)
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def api(self, method: str, p: Payment, tail: str = "", body: object = None, key: str | None = None):
        return self.live.call(Api.EPAYMENT, method, p.env, f"/epayment/v1/payments/{p.reference}{tail}",
                              headers=self.headers(p.env, key), body=body)

    def key(self) -> str:
        return f"st-{self.run:04d}-{next(self.live.ids):06d}"

    def refused(self, reply) -> None:
        assert 400 <= reply.status_code < 500, reply.text

    def expire_due(self) -> None:
        """The model's clock: CREATED payments expire 10 minutes after creation."""
        for p in self.model.values():
            if p.state == "CREATED" and p.created + 600 <= self.now:
                p.state = "EXPIRED"
                p.events.append(("EXPIRED", p.value))
                self.touched.add(p.reference)

    # -- rules -----------------------------------------------------------------------------------
    #: What one step does, drawn with these weights. One rule draws it (not one rule each): Hypothesis' swarm
    #: testing turns whole rules off for a run, and a run without approvals or captures tests little.
    #: The first is what Hypothesis draws most (its simplest choice): a useful one.
    ACTIONS = ("capture", "create", "create", "approve", "approve", "approve", "end_as_user", "create_too_small",
               "capture", "capture", "refund", "refund", "cancel", "replay_capture", "advance", "ledger")

    @rule(data=st.data())
    def step(self, data) -> None:
        getattr(self, data.draw(st.sampled_from(self.ACTIONS), label="action"))(data)

    def create(self, data, env: str | None = None, value: int | None = None) -> None:
        env = env or data.draw(st.sampled_from(["production", "test"]), label="env")
        value = value or data.draw(st.sampled_from([MINIMUM, 151, 183, 1000, 10000]) | st.integers(MINIMUM, 200_000),
                                   label="value")
        reference = f"st-{self.run:04d}-{next(self.live.ids):06d}"
        body = {"amount": {"currency": "NOK", "value": value}, "paymentMethod": {"type": "WALLET"},
                "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r",
                "paymentDescription": "State machine"}
        reply = self.live.call(Api.EPAYMENT, "POST", env, "/epayment/v1/payments", headers=self.headers(
            env, self.key()), body=body)
        assert reply.status_code == 201, reply.text
        self.expire_due()
        self.model[reference] = Payment(env, reference, value, self.now, events=[("CREATED", value)])
        self.touched.add(reference)

    def create_too_small(self, data) -> None:
        env = data.draw(st.sampled_from(["production", "test"]), label="env")
        value = data.draw(st.integers(-5, MINIMUM - 1), label="value")
        body = {"amount": {"currency": "NOK", "value": value}, "paymentMethod": {"type": "WALLET"},
                "reference": f"st-{self.run:04d}-{next(self.live.ids):06d}", "userFlow": "WEB_REDIRECT",
                "returnUrl": "https://shop.example.com/r"}
        self.refused(self.live.call(Api.EPAYMENT, "POST", env, "/epayment/v1/payments",
                                    headers=self.headers(env, self.key()), body=body))

    def approve(self, data, force: bool | None = None, reference: str | None = None) -> None:
        """As the user: the control plane (both environments), or the test environment's force approve."""
        force = data.draw(st.booleans(), label="force") if force is None else force
        reference = reference or pick(data, self.model, lambda p: p.state == "CREATED")
        if reference is None:
            return
        p = self.model[reference]
        self.expire_due()
        if force and p.env == "test":
            reply = self.live.call(Api.EPAYMENT, "POST", "test", f"/epayment/v1/test/payments/{reference}/approve",
                                   headers=self.headers("test"), body={})
            allowed = p.state == "CREATED"
        else:
            reply = self.live.call(Api.SANDBOX, "POST", p.env, f"/_sandbox/payments/{self.shop}/{reference}/approve")
            allowed = p.state in ("CREATED", "AUTHORIZED")
        if p.env == "test" and p.value in MAGIC and p.state == "CREATED":
            allowed = False
        if not allowed:
            self.refused(reply)
        else:
            assert reply.status_code == 200, reply.text
            if p.state == "CREATED":
                p.state, p.authorized, p.authorized_at = "AUTHORIZED", p.value, self.now
                p.events.append(("AUTHORIZED", p.value))
        self.touched.add(reference)

    def end_as_user(self, data) -> None:
        action = data.draw(st.sampled_from(["reject", "expire"]), label="action")
        reference = pick(data, self.model, lambda p: p.state == "CREATED")
        if reference is None:
            return
        p = self.model[reference]
        self.expire_due()
        final = "ABORTED" if action == "reject" else "EXPIRED"
        reply = self.live.call(Api.SANDBOX, "POST", p.env, f"/_sandbox/payments/{self.shop}/{reference}/{action}")
        if p.state == "CREATED":
            assert reply.status_code == 200, reply.text
            p.state = final
            p.events.append((final, p.value))
        elif p.state == final:
            assert reply.status_code == 200, reply.text
        else:
            self.refused(reply)
        self.touched.add(reference)

    def amount(self, data, p: Payment, room: int) -> int:
        return data.draw(st.sampled_from([room, max(1, room // 2), 1, room + 1, 123, p.value + 1])
                         | st.integers(1, max(2, p.value * 2)), label="amount")

    def capture(self, data) -> None:
        reference = pick(data, self.model, lambda p: p.state == "AUTHORIZED" and p.captured + p.cancelled < p.value)
        if reference is None:
            return
        p = self.model[reference]
        self.expire_due()
        room = p.authorized - p.cancelled - p.captured
        value = self.amount(data, p, room)
        key = self.key()
        reply = self.api("POST", p, "/capture", {"modificationAmount": {"currency": "NOK", "value": value}}, key)
        allowed = (p.state == "AUTHORIZED" and not p.cancelled and self.now <= p.authorized_at + CAPTURE_DAYS * DAY
                   and 0 < value <= room)
        if not allowed:
            self.refused(reply)
        else:
            assert reply.status_code == 200, reply.text
            p.captured += value
            p.events.append(("CAPTURED", value))
            self.replayable = (reference, key, value, reply.json(), self.now)
        self.touched.add(reference)

    def replay_capture(self, data) -> None:
        """The same Idempotency-Key and body again: the first answer, and no second capture; the key with another
        amount: refused (409), and nothing captured either."""
        if self.replayable is None or self.now - self.replayable[4] >= RETENTION - DAY:
            return
        reference, key, value, first, _ = self.replayable
        p = self.model[reference]
        other = data.draw(st.booleans(), label="another amount")
        body = {"modificationAmount": {"currency": "NOK", "value": value + 1 if other else value}}
        reply = self.api("POST", p, "/capture", body, key)
        if other:
            assert reply.status_code == 409, reply.text
        else:
            assert reply.status_code == 200, reply.text
            assert reply.json() == first
        self.touched.add(reference)

    def refund(self, data) -> None:
        reference = pick(data, self.model, lambda p: p.state == "AUTHORIZED" and p.refunded < p.captured)
        if reference is None:
            return
        p = self.model[reference]
        self.expire_due()
        room = p.captured - p.refunded
        value = self.amount(data, p, room)
        reply = self.api("POST", p, "/refund", {"modificationAmount": {"currency": "NOK", "value": value}}, self.key())
        allowed = (p.state == "AUTHORIZED" and p.captured > 0 and self.now <= p.authorized_at + REFUND_DAYS * DAY
                   and 0 < value <= room and not (p.env == "test" and value in MAGIC_REFUNDS))
        if not allowed:
            self.refused(reply)
        else:
            assert reply.status_code == 200, reply.text
            p.refunded += value
            p.events.append(("REFUNDED", value))
        self.touched.add(reference)

    def cancel(self, data) -> None:
        reference = pick(data, self.model, lambda p: p.state in ("CREATED", "AUTHORIZED"))
        if reference is None:
            return
        p = self.model[reference]
        self.expire_due()
        reply = self.live.call(Api.EPAYMENT, "POST", p.env, f"/epayment/v1/payments/{reference}/cancel",
                               headers=self.headers(p.env, self.key()), body={})
        if p.state == "CREATED":
            assert reply.status_code == 200, reply.text
            p.state, p.cancelled = "TERMINATED", p.value
            p.events.append(("TERMINATED", p.value))
        elif p.state == "AUTHORIZED":
            remainder = p.authorized - p.captured - p.cancelled
            if self.now > p.authorized_at + CANCEL_DAYS * DAY or (remainder == 0 and not p.cancelled):
                self.refused(reply)
            else:
                assert reply.status_code == 200, reply.text
                if remainder:
                    p.cancelled += remainder
                    p.events.append(("CANCELLED", remainder))
        elif p.state == "TERMINATED":
            assert reply.status_code == 200, reply.text
        else:
            self.refused(reply)
        self.touched.add(reference)

    def advance(self, data) -> None:
        seconds = data.draw(st.sampled_from([13, 590, 601, 3613, DAY, 31 * DAY, 181 * DAY, 366 * DAY]), label="seconds")
        self.now = self.live.clock({"advanceSeconds": seconds})
        self.expire_due()

    def ledger(self, data) -> None:
        self.check_ledger()

    # -- invariants ------------------------------------------------------------------------------
    def check(self, p: Payment) -> None:
        got = self.api("GET", p)
        assert got.status_code == 200, got.text
        events = self.api("GET", p, "/events")
        assert events.status_code == 200, events.text
        body, log = got.json(), events.json()
        ok(payment_problems(body, log, p.events))
        assert body["state"] == p.state, (body["state"], p)
        aggregate = {k: body["aggregate"][f"{k}Amount"]["value"] for k in ("authorized", "captured", "refunded",
                                                                           "cancelled")}
        assert aggregate == {"authorized": p.authorized, "captured": p.captured, "refunded": p.refunded,
                             "cancelled": p.cancelled}, (aggregate, p)
        if p.env == "production":
            for event in log:
                if event["name"] == "CAPTURED":
                    self.captures[event["pspReference"]] = (p.reference, event["amount"]["value"])

    @invariant()
    def touched_payments_hold(self) -> None:
        for reference in sorted(getattr(self, "touched", ())):
            self.check(self.model[reference])
        if hasattr(self, "touched"):
            self.touched.clear()

    def check_ledger(self) -> None:
        production = [p for p in self.model.values() if p.env == "production"]
        for p in production:
            self.check(p)
        funds, fees = self.live.feed(self.shop, "funds"), self.live.feed(self.shop, "fees")
        ok(ledger_problems(funds, fees, {p.reference: p.captured for p in production},
                           {p.reference: p.refunded for p in production}, self.captures))

    def teardown(self) -> None:
        if hasattr(self, "model"):
            self.check_ledger()


# =============================================================================================
# Recurring: agreements (draft, approve, reject, stop) and their charges, as the clock moves
# =============================================================================================

MAX_AMOUNT = 2_000_000  # NOK, the Recurring API's maximum
LEGACY_FACTOR = 5  # a LEGACY agreement's charges in one interval total at most 5x its price
DUE_NOTICE = 30  # days before the due date a charge becomes DUE
MIN_DUE, MAX_DUE = 2, 730  # days ahead, production
REFUND_WINDOW = 365 * DAY  # after the capture
CANCELLABLE = {"PENDING", "DUE", "RESERVED", "PARTIALLY_CAPTURED"}
REFUNDABLE = {"CHARGED", "PARTIALLY_CAPTURED", "PARTIALLY_REFUNDED"}
COUNTS = {"PENDING", "DUE", "RESERVED", "CHARGED", "PARTIALLY_CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED"}


@dataclass
class Agreement:
    id: str
    price: int
    created: float
    status: str = "PENDING"
    start: float | None = None
    history: list[tuple[str, str]] = field(default_factory=lambda: [("CREATE", "MERCHANT")])
    charges: list[str] = field(default_factory=list)


@dataclass
class Charge:
    id: str
    agreement: str
    amount: int
    due: date
    direct: bool
    status: str = "PENDING"
    captured: int = 0
    refunded: int = 0
    cancelled: int = 0
    captured_at: float | None = None
    history: list[tuple[str, int]] = field(default_factory=list)
    seen: str | None = None  # the status the sandbox last showed

    @property
    def due_at(self) -> float:
        return datetime(self.due.year, self.due.month, self.due.day, tzinfo=UTC).timestamp()


def utc_day(epoch: float) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


class RecurringMachine(RuleBasedStateMachine):
    live: Live

    @initialize()
    def start(self) -> None:
        self.run = next(self.live.ids)
        self.now = self.live.clock({"advanceSeconds": 0})
        self.msn = self.live.recurring_msn()
        self.model: dict[str, Agreement] = {}
        self.charge_model: dict[str, Charge] = {}
        self.touched: set[str] = set()  # agreement ids
        self.base = "/recurring/v3/agreements"
        # Each run starts with one ACTIVE agreement, so charges come within a few steps.
        self.draft(None, 49900)
        agreement_id = list(self.model)[-1]
        assert self.control(f"/{agreement_id}/approve").status_code == 200
        a = self.model[agreement_id]
        a.status, a.start = "ACTIVE", self.now
        a.history.append(("ACTIVATE", "USER"))

    def call(self, method: str, path: str, body: object = None):
        headers = self.live.headers("partner", "production", self.msn) | {
            "Idempotency-Key": f"st-{self.run:04d}-{next(self.live.ids):06d}"}
        return self.live.call(Api.RECURRING, method, "production", self.base + path, headers=headers, body=body)

    def control(self, path: str, body: object = None):
        return self.live.call(Api.SANDBOX, "POST", "production", f"/_sandbox/recurring/{self.msn}/agreements{path}",
                              body=body)

    def refused(self, reply) -> None:
        assert 400 <= reply.status_code < 500, reply.text

    # -- the model's clock -------------------------------------------------------------------------
    def sweep(self) -> None:
        for a in self.model.values():
            if a.status == "PENDING" and a.created + 600 <= self.now:
                a.status = "EXPIRED"
                a.history.append(("EXPIRE", "USER"))
                self.touched.add(a.id)
        for c in self.charge_model.values():
            if c.status == "PENDING" and c.due_at - DUE_NOTICE * DAY <= self.now:
                c.status = "DUE"
            if c.status == "DUE" and c.due_at <= self.now:
                self.succeed(c, c.due_at)
            self.touched.add(c.agreement)

    def succeed(self, c: Charge, at: float) -> None:
        c.history.append(("RESERVE", c.amount))
        if c.direct:
            c.status, c.captured, c.captured_at = "CHARGED", c.amount, at
            c.history.append(("CAPTURE", c.amount))
        else:
            c.status = "RESERVED"

    def cancel_model(self, c: Charge) -> None:
        remainder = c.amount - c.captured - c.cancelled
        c.cancelled += remainder
        if not c.captured:
            c.status = "CANCELLED"
        c.history.append(("CANCEL", remainder))

    # -- agreements --------------------------------------------------------------------------------
    ACTIONS = ("create_charge", "draft", "as_user", "as_user", "merchant_stop", "update", "draft_refused",
               "create_charge", "create_charge", "create_charge", "force_outcome", "force_outcome", "capture",
               "capture", "capture", "refund", "refund", "cancel", "advance", "advance", "ledger")  # as EPaymentMachine

    @rule(data=st.data())
    def step(self, data) -> None:
        getattr(self, data.draw(st.sampled_from(self.ACTIONS), label="action"))(data)

    def draft(self, data, price: int | None = None) -> None:
        price = price or data.draw(st.sampled_from([100, 2500, 49900, MAX_AMOUNT]), label="price")
        reply = self.call("POST", "", {
            "pricing": {"type": "LEGACY", "amount": price, "currency": "NOK"}, "interval": {"unit": "WEEK", "count": 1},
            "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
            "productName": "State machine weekly"})
        assert reply.status_code == 201, reply.text
        self.sweep()
        agreement_id = reply.json()["agreementId"]
        self.model[agreement_id] = Agreement(agreement_id, price, self.now)
        self.touched.add(agreement_id)

    def draft_refused(self, data) -> None:
        price = data.draw(st.sampled_from([0, MAX_AMOUNT + 1]), label="price")
        self.refused(self.call("POST", "", {
            "pricing": {"type": "LEGACY", "amount": price, "currency": "NOK"}, "interval": {"unit": "WEEK", "count": 1},
            "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
            "productName": "Too dear"}))

    def as_user(self, data) -> None:
        action = data.draw(st.sampled_from(["approve", "approve", "approve", "reject", "stop"]), label="action")
        """The user approves or rejects a PENDING agreement, or stops an ACTIVE one (the control plane)."""
        agreement_id = pick(data, self.model, lambda a: a.status == ("ACTIVE" if action == "stop" else "PENDING"))
        if agreement_id is None:
            return
        a = self.model[agreement_id]
        self.sweep()
        reply = self.control(f"/{agreement_id}/{action}")
        if action == "approve" and a.status == "PENDING":
            assert reply.status_code == 200, reply.text
            a.status, a.start = "ACTIVE", self.now
            a.history.append(("ACTIVATE", "USER"))
        elif action == "approve" and a.status == "ACTIVE":
            assert reply.status_code == 200, reply.text
        elif action == "reject" and a.status == "PENDING":
            assert reply.status_code == 200, reply.text
            a.status = "STOPPED"
            a.history.append(("REJECT", "USER"))
        elif action == "reject" and a.history[-1][0] == "REJECT":
            assert reply.status_code == 200, reply.text
        elif action == "stop" and a.status == "ACTIVE":
            assert reply.status_code == 200, reply.text
            self.stop_model(a, "USER")
        elif action == "stop" and a.status == "STOPPED":
            assert reply.status_code == 200, reply.text
        else:
            self.refused(reply)
        self.touched.add(agreement_id)

    def stop_model(self, a: Agreement, actor: str) -> None:
        a.status = "STOPPED"
        a.history.append(("STOP", actor))
        cancel = {"PENDING", "DUE", "RESERVED"} if actor == "MERCHANT" else {"PENDING", "DUE"}
        for charge_id in a.charges:
            c = self.charge_model[charge_id]
            if c.status in cancel:
                self.cancel_model(c)

    def merchant_stop(self, data) -> None:
        agreement_id = pick(data, self.model, lambda a: a.status == "ACTIVE")
        if agreement_id is None:
            return
        a = self.model[agreement_id]
        self.sweep()
        reply = self.call("PATCH", f"/{agreement_id}", {"status": "STOPPED"})
        if a.status in ("PENDING", "ACTIVE"):
            assert reply.status_code == 204, reply.text
            self.stop_model(a, "MERCHANT")
        elif a.status == "STOPPED":
            assert reply.status_code == 204, reply.text
        else:
            self.refused(reply)
        self.touched.add(agreement_id)

    def update(self, data) -> None:
        agreement_id = pick(data, self.model)
        if agreement_id is None:
            return
        a = self.model[agreement_id]
        self.sweep()
        reply = self.call("PATCH", f"/{agreement_id}", {"productName": f"Renamed {next(self.live.ids)}"})
        if a.status in ("PENDING", "ACTIVE"):
            assert reply.status_code == 204, reply.text
            a.history.append(("UPDATE", "MERCHANT"))
        else:
            self.refused(reply)  # a stopped or expired agreement changes no more
        self.touched.add(agreement_id)

    # -- charges -----------------------------------------------------------------------------------
    def window_total(self, a: Agreement, due: date) -> int:
        origin = utc_day(a.start or a.created)
        index = max(0, (due - origin).days // 7)
        start = origin + timedelta(days=7 * index)
        return sum(c.amount for c in (self.charge_model[i] for i in a.charges)
                   if c.status in COUNTS and start <= c.due < start + timedelta(days=7))

    def create_charge(self, data) -> None:
        direct = data.draw(st.booleans(), label="direct")
        days = data.draw(st.sampled_from([MIN_DUE, 3, 8, DUE_NOTICE - 1, DUE_NOTICE + 5, 400, MAX_DUE, 1, MAX_DUE + 1]),
                         label="days")
        agreement_id = pick(data, self.model, lambda a: a.status == "ACTIVE")
        if agreement_id is None:
            return
        a = self.model[agreement_id]
        self.sweep()
        price = a.price
        cap = min(LEGACY_FACTOR * price, MAX_AMOUNT)
        amount = data.draw(st.sampled_from([price, 1, max(1, price // 2), price, cap, cap + 1, MAX_AMOUNT + 1])
                           | st.integers(1, price), label="amount")
        due = utc_day(self.now) + timedelta(days=days)
        reply = self.call("POST", f"/{agreement_id}/charges", {
            "amount": amount, "description": "Week", "due": due.isoformat(), "retryDays": 0,
            "transactionType": "DIRECT_CAPTURE" if direct else "RESERVE_CAPTURE"})
        allowed = (a.status == "ACTIVE" and 1 <= amount <= MAX_AMOUNT and MIN_DUE <= days <= MAX_DUE
                   and self.window_total(a, due) + amount <= LEGACY_FACTOR * price)
        if not allowed:
            self.refused(reply)
            return
        assert reply.status_code == 201, reply.text
        charge_id = reply.json()["chargeId"]
        c = Charge(charge_id, agreement_id, amount, due, direct, history=[("CREATE", amount)])
        if c.due_at - DUE_NOTICE * DAY <= self.now:
            c.status = "DUE"
        self.charge_model[charge_id] = c
        a.charges.append(charge_id)
        self.touched.add(agreement_id)

    def force_outcome(self, data) -> None:
        outcome = data.draw(st.sampled_from(["CHARGED", "RESERVED", "RESERVED", "FAILED"]), label="outcome")
        charge_id = pick(data, self.charge_model, lambda c: c.status in ("PENDING", "DUE"))
        c = self.charge_model.get(charge_id)
        if c is None:
            return
        self.sweep()
        reply = self.control(f"/{c.agreement}/charges/{charge_id}/outcome", {"outcome": outcome})
        if c.status in ("PENDING", "DUE"):
            assert reply.status_code == 200, reply.text
            if outcome == "FAILED":
                c.status = "FAILED"
                c.history.append(("FAIL", c.amount))
            else:
                c.direct = outcome == "CHARGED"
                self.succeed(c, self.now)
        else:
            self.refused(reply)
        self.touched.add(c.agreement)

    def capture(self, data) -> None:
        charge_id = pick(data, self.charge_model, lambda c: c.status in ("RESERVED", "PARTIALLY_CAPTURED"))
        c = self.charge_model.get(charge_id)
        if c is None:
            return
        self.sweep()
        room = c.amount - c.captured - c.cancelled
        amount = data.draw(st.sampled_from([room, max(1, room // 2), 1, room + 1]), label="amount")
        reply = self.call("POST", f"/{c.agreement}/charges/{charge_id}/capture", {"amount": amount})
        if c.status in ("RESERVED", "PARTIALLY_CAPTURED") and 1 <= amount <= room:
            assert reply.status_code == 204, reply.text
            c.captured += amount
            c.captured_at = self.now
            c.status = "CHARGED" if c.captured == c.amount else "PARTIALLY_CAPTURED"
            c.history.append(("CAPTURE", amount))
        else:
            self.refused(reply)
        self.touched.add(c.agreement)

    def refund(self, data) -> None:
        charge_id = pick(data, self.charge_model, lambda c: c.status in REFUNDABLE)
        c = self.charge_model.get(charge_id)
        if c is None:
            return
        self.sweep()
        room = c.captured - c.refunded
        amount = data.draw(st.sampled_from([room, max(1, room // 2), 1, room + 1]), label="amount")
        reply = self.call("POST", f"/{c.agreement}/charges/{charge_id}/refund", {"amount": amount,
                                                                                  "description": "Refund"})
        if (c.status in REFUNDABLE and c.captured and self.now - c.captured_at <= REFUND_WINDOW
                and 1 <= amount <= room):
            assert reply.status_code == 204, reply.text
            c.refunded += amount
            c.status = "REFUNDED" if c.refunded == c.captured else "PARTIALLY_REFUNDED"
            c.history.append(("REFUND", amount))
        else:
            self.refused(reply)
        self.touched.add(c.agreement)

    def cancel(self, data) -> None:
        charge_id = pick(data, self.charge_model, lambda c: c.status in CANCELLABLE)
        c = self.charge_model.get(charge_id)
        if c is None:
            return
        self.sweep()
        reply = self.call("DELETE", f"/{c.agreement}/charges/{charge_id}")
        reserved = c.amount - c.captured - c.cancelled
        if c.status == "CANCELLED" or (c.captured and c.cancelled and not reserved):
            assert reply.status_code == 204, reply.text  # nothing left to release: no change
        elif c.status in CANCELLABLE or (c.captured and reserved):
            # what a partial capture left reserved can be released, refunded or not
            assert reply.status_code == 204, reply.text
            self.cancel_model(c)
        else:
            self.refused(reply)
        self.touched.add(c.agreement)

    def advance(self, data) -> None:
        seconds = data.draw(st.sampled_from([590, 601, DAY, 3 * DAY, 8 * DAY, 35 * DAY, 366 * DAY]), label="seconds")
        self.now = self.live.clock({"advanceSeconds": seconds})
        self.sweep()

    def ledger(self, data) -> None:
        self.check_ledger()

    # -- invariants ------------------------------------------------------------------------------
    def check(self, a: Agreement) -> None:
        got = self.call("GET", f"/{a.id}")
        assert got.status_code == 200, got.text
        body = got.json()
        ok(agreement_problems(body, a.history))
        assert body["status"] == a.status, (body["status"], a)
        for charge_id in a.charges:
            c = self.charge_model[charge_id]
            reply = self.call("GET", f"/{a.id}/charges/{charge_id}")
            assert reply.status_code == 200, reply.text
            charge = reply.json()
            ok(charge_problems(charge, c.seen, c.history))
            assert charge["status"] == c.status, (charge["status"], c)
            assert charge["summary"] == {"captured": c.captured, "refunded": c.refunded, "cancelled": c.cancelled}
            c.seen = charge["status"]

    @invariant()
    def touched_agreements_hold(self) -> None:
        for agreement_id in sorted(getattr(self, "touched", ())):
            self.check(self.model[agreement_id])
        if hasattr(self, "touched"):
            self.touched.clear()

    def check_ledger(self) -> None:
        charges = list(self.charge_model.values())
        funds, fees = self.live.feed(self.msn, "funds"), self.live.feed(self.msn, "fees")
        ok(ledger_problems(funds, fees, {c.id: c.captured for c in charges}, {c.id: c.refunded for c in charges}))

    def teardown(self) -> None:
        if hasattr(self, "model"):
            for a in self.model.values():
                self.check(a)
            self.check_ledger()


# =============================================================================================
# Checkout: sessions, paid on the hosted page, their payment followed through ePayment
# =============================================================================================

SESSION_LIFETIME = 3600
FIXED_OPTIONS = [{"id": "mailbox", "brand": "POSTEN", "type": "MAILBOX", "amount": {"currency": "NOK", "value": 4900},
                  "isDefault": True, "priority": 0, "title": "In the mailbox"}]


@dataclass
class Session:
    env: str
    reference: str
    token: str
    value: int
    created: float
    shipping: bool
    state: str = "SessionCreated"
    payment: Payment | None = None


class CheckoutMachine(RuleBasedStateMachine):
    live: Live

    @initialize(env=st.sampled_from(["production", "test"]))
    def start(self, env: str) -> None:
        self.run = next(self.live.ids)
        self.now = self.live.clock({"advanceSeconds": 0})
        self.shop = self.live.msn("premium-shop-1")
        self.model: dict[str, Session] = {}
        self.touched: set[str] = set()
        self.create(None, env, 10000, False)

    def checkout(self, method: str, s: Session | None, env: str, tail: str = "", body: object = None):
        kind = "raw-partner" if env == "production" else "raw-merchant"
        path = "/checkout/v3/session" + (f"/{s.reference}" if s else "") + tail
        return self.live.call(Api.CHECKOUT, method, env, path, headers=self.live.headers(kind, env, self.shop),
                              body=body)

    def epayment(self, method: str, s: Session, tail: str = "", body: object = None):
        kind = "partner" if s.env == "production" else "merchant"
        headers = self.live.headers(kind, s.env, self.shop) | {"Idempotency-Key": f"st-{next(self.live.ids)}"}
        return self.live.call(Api.EPAYMENT, method, s.env, f"/epayment/v1/payments/{s.reference}{tail}",
                              headers=headers, body=body)

    def refused(self, reply) -> None:
        assert 400 <= reply.status_code < 500, reply.text

    def sweep(self) -> None:
        for s in self.model.values():
            if s.state == "SessionCreated" and s.created + SESSION_LIFETIME <= self.now:
                s.state = "SessionExpired"
                self.touched.add(s.reference)
            p = s.payment
            if p is not None and p.state == "CREATED" and p.created + 600 <= self.now:
                p.state = "EXPIRED"
                if s.state == "PaymentInitiated":
                    s.state = "PaymentTerminated"
                self.touched.add(s.reference)

    ACTIONS = ("pay", "create", "create", "patch", "expire", "pay", "pay", "cancel_on_page", "through_epayment",
               "through_epayment", "through_epayment", "advance")  # see EPaymentMachine.ACTIONS

    @rule(data=st.data())
    def step(self, data) -> None:
        getattr(self, data.draw(st.sampled_from(self.ACTIONS), label="action"))(data)

    def create(self, data, env: str | None = None, value: int | None = None, shipping: bool | None = None) -> None:
        env = env or data.draw(st.sampled_from(["production", "test"]), label="env")
        value = value or data.draw(st.sampled_from([100, 151, 1000, 10000]), label="value")
        shipping = data.draw(st.booleans(), label="shipping") if shipping is None else shipping
        reference = f"st-chk-{self.run}-{next(self.live.ids)}"
        body = {"type": "PAYMENT", "reference": reference,
                "merchantInfo": {"callbackUrl": "http://127.0.0.1:9/callback", "returnUrl": "https://shop.example.com/r",
                                 "callbackAuthorizationToken": "state-machine-token"},
                "transaction": {"amount": {"currency": "NOK", "value": value}, "paymentDescription": "State machine"}}
        if shipping:
            body["logistics"] = {"fixedOptions": FIXED_OPTIONS}
        reply = self.checkout("POST", None, env, body=body)
        assert reply.status_code == 200, reply.text
        token = reply.json()["token"]
        self.sweep()
        self.model[reference] = Session(env, reference, token, value, self.now, shipping)
        self.touched.add(reference)

    def patch(self, data) -> None:
        value = data.draw(st.sampled_from([100, 151, 2000]), label="value")
        reference = pick(data, self.model, lambda s: s.state == "SessionCreated")
        if reference is None:
            return
        s = self.model[reference]
        self.sweep()
        reply = self.checkout("PATCH", s, s.env, body={
            "transaction": {"amount": {"currency": "NOK", "value": value}, "paymentDescription": "Patched order"}})
        if s.state == "SessionCreated":
            assert reply.status_code < 300, reply.text
            s.value = value
        else:
            self.refused(reply)
        self.touched.add(reference)

    def expire(self, data) -> None:
        reference = pick(data, self.model)
        if reference is None:
            return
        s = self.model[reference]
        self.sweep()
        reply = self.checkout("POST", s, s.env, "/expire")
        if s.state in ("SessionCreated", "PaymentInitiated", "SessionExpired"):
            assert reply.status_code < 300, reply.text
            if s.state == "PaymentInitiated":
                s.payment.state = "EXPIRED"
            s.state = "SessionExpired"
        else:
            self.refused(reply)
        self.touched.add(reference)

    def pay(self, data) -> None:
        """The user pays on the hosted page; only a SessionCreated session can be paid (never an expired one)."""
        reference = pick(data, self.model, lambda s: s.state == "SessionCreated")
        if reference is None:
            return
        s = self.model[reference]
        self.sweep()
        fields = {"token": s.token}
        if s.shipping:
            fields["shippingOption"] = "mailbox"
        reply = self.live.call(Api.SANDBOX, "POST", s.env, "/_sandbox/checkout/session/approve", form=fields)
        if s.state != "SessionCreated":
            assert reply.status_code == 409, (reply.status_code, reply.text[:300], s)
        else:
            value = s.value + (4900 if s.shipping else 0)
            s.payment = Payment(s.env, reference, value, self.now, events=[("CREATED", value)])
            s.state = "PaymentInitiated"
            if s.env == "test" and value in MAGIC:
                assert 400 <= reply.status_code < 500, reply.text[:300]
            else:
                assert reply.status_code == 303, (reply.status_code, reply.text[:300])
                s.state = "PaymentSuccessful"
                s.payment.state, s.payment.authorized, s.payment.authorized_at = "AUTHORIZED", value, self.now
        self.touched.add(reference)

    def cancel_on_page(self, data) -> None:
        reference = pick(data, self.model)
        if reference is None:
            return
        s = self.model[reference]
        self.sweep()
        reply = self.live.call(Api.SANDBOX, "POST", s.env, "/_sandbox/checkout/session/cancel",
                               form={"token": s.token})
        assert reply.status_code in (200, 303), (reply.status_code, reply.text[:300])
        if s.state == "PaymentInitiated":
            s.payment.state = "ABORTED"
        if s.state in ("SessionCreated", "PaymentInitiated"):
            s.state = "PaymentTerminated"
        self.touched.add(reference)

    def through_epayment(self, data) -> None:
        action = data.draw(st.sampled_from(["capture", "capture", "refund", "cancel"]), label="action")
        half = data.draw(st.booleans(), label="half")
        """The merchant captures, refunds or cancels the session's payment through the ePayment API."""
        reference = pick(data, self.model, lambda s: s.payment is not None)
        if reference is None:
            return
        s = self.model[reference]
        self.sweep()
        p = s.payment
        if p is None:
            reply = self.epayment("GET", s)
            assert reply.status_code == 404, reply.text  # no payment before the user pays
            return
        room = {"capture": p.authorized - p.captured - p.cancelled, "refund": p.captured - p.refunded,
                "cancel": 0}[action]
        value = max(1, room // 2) if half else max(room, 1)
        body = {} if action == "cancel" else {"modificationAmount": {"currency": "NOK", "value": value}}
        reply = self.epayment("POST", s, f"/{action}", body)
        if p.state != "AUTHORIZED":
            if action == "cancel" and p.state in ("CREATED", "TERMINATED"):
                assert reply.status_code == 200, reply.text  # CREATED: the user's approval was refused
                p.state, p.cancelled = "TERMINATED", p.value
                if s.state == "PaymentInitiated":
                    s.state = "PaymentTerminated"
            else:
                self.refused(reply)
        elif action == "cancel":
            remainder = p.authorized - p.captured - p.cancelled
            if remainder == 0 and not p.cancelled:
                self.refused(reply)
            else:
                assert reply.status_code == 200, reply.text
                p.cancelled += remainder
        elif room <= 0 or (action == "capture" and p.cancelled) or (
                action == "refund" and s.env == "test" and value in MAGIC_REFUNDS):
            self.refused(reply)
        else:
            assert reply.status_code == 200, reply.text
            if action == "capture":
                p.captured += value
            else:
                p.refunded += value
        self.touched.add(reference)

    def advance(self, data) -> None:
        seconds = data.draw(st.sampled_from([13, 590, 601, 3590, 3613]), label="seconds")
        self.now = self.live.clock({"advanceSeconds": seconds})
        self.sweep()

    def check(self, s: Session) -> None:
        got = self.checkout("GET", s, s.env)
        assert got.status_code == 200, got.text
        session = got.json()
        payment = self.epayment("GET", s)
        assert payment.status_code in (200, 404), payment.text
        body = payment.json() if payment.status_code == 200 else None
        ok(session_problems(session, body))
        assert session["sessionState"] == s.state, (session["sessionState"], s)
        if s.payment is None:
            assert body is None
        else:
            p = s.payment
            assert body["state"] == p.state, (body["state"], p)
            aggregate = {k: body["aggregate"][f"{k}Amount"]["value"] for k in ("authorized", "captured", "refunded",
                                                                               "cancelled")}
            assert aggregate == {"authorized": p.authorized, "captured": p.captured, "refunded": p.refunded,
                                 "cancelled": p.cancelled}, (aggregate, p)
            events = self.epayment("GET", s, "/events")
            ok(payment_problems(body, events.json()))

    @invariant()
    def touched_sessions_hold(self) -> None:
        for reference in sorted(getattr(self, "touched", ())):
            self.check(self.model[reference])
        if hasattr(self, "touched"):
            self.touched.clear()

    def teardown(self) -> None:
        for s in getattr(self, "model", {}).values():
            self.check(s)


# =============================================================================================
# The tests
# =============================================================================================

#: A call each machine must have made with success, so that it is known to have reached the deep end of its flow.
REACHED = {"EPaymentMachine": [("epayment", "POST", "capture", 200), ("epayment", "POST", "refund", 200)],
           "RecurringMachine": [("recurring", "POST", "charges", 201), ("recurring", "POST", "capture", 204),
                                ("recurring", "POST", "refund", 204)],
           "CheckoutMachine": [("sandbox", "POST", "approve", 303), ("epayment", "POST", "capture", 200)]}


@pytest.mark.parametrize("machine", [EPaymentMachine, RecurringMachine, CheckoutMachine],
                         ids=["epayment", "recurring", "checkout"])
def test_state_machine(live, machine):
    machine.live = live
    before = live.stats.copy()
    run_state_machine_as_test(machine, settings=SETTINGS)
    done = live.stats - before
    print(machine.__name__, sorted(done.items()))
    assert all(done[call] for call in REACHED[machine.__name__]), sorted(done.items())


def test_the_specs_declare_no_links():
    """Why the machines are hand-written: none of the three specs links an operation's answer to the next call, so
    Schemathesis' stateful phase would have nothing to chain (if one ever does, use it for that flow)."""
    from fuzz_support import SPECS

    for spec in ("epayment-1.8.1.yaml", "recurring-3.1.2.yaml", "checkout-swagger-id.yaml"):
        import yaml

        raw = yaml.safe_load((SPECS / spec).read_text())
        links = [(path, method, status) for path, item in raw["paths"].items() for method, op in item.items()
                 if isinstance(op, dict) for status, response in (op.get("responses") or {}).items()
                 if isinstance(response, dict) and response.get("links")]
        assert links == [] and not raw.get("components", {}).get("links"), (spec, links)


# -- the invariants can fail ----------------------------------------------------------------------

def test_the_invariants_catch_a_tampered_payment(live):
    """Real answers pass; the same answers with one number changed each fail."""
    machine = EPaymentMachine()
    machine.live = live
    machine.start("production")
    machine.create(None, "production", 10000)
    reference = list(machine.model)[-1]
    machine.approve(None, False, reference)
    p = machine.model[reference]
    capture = machine.api("POST", p, "/capture", {"modificationAmount": {"currency": "NOK", "value": 4000}}, "t-1")
    assert capture.status_code == 200, capture.text
    p.captured = 4000
    p.events.append(("CAPTURED", 4000))
    payment, events = machine.api("GET", p).json(), machine.api("GET", p, "/events").json()
    assert payment_problems(payment, events, p.events) == []
    over = copy.deepcopy(payment)
    over["aggregate"]["capturedAmount"]["value"] = 10001
    assert any("captured 10001 > authorized" in w for w in payment_problems(over, events))
    drifted = copy.deepcopy(payment)
    drifted["aggregate"]["refundedAmount"]["value"] = 1
    assert any("not the sums of the events" in w for w in payment_problems(drifted, events))
    missing = [e for e in events if e["name"] != "CAPTURED"]
    assert any("is not what happened" in w for w in payment_problems(payment, missing, p.events))
    wrong_state = dict(payment, state="EXPIRED")
    assert any("last state event" in w for w in payment_problems(wrong_state, events))
    half_cancelled = copy.deepcopy(payment)
    half_cancelled["aggregate"]["cancelledAmount"]["value"] = 1000
    assert any("left 5000 reserved" in w for w in payment_problems(half_cancelled, events))

    funds, fees = live.feed(machine.shop, "funds"), live.feed(machine.shop, "fees")
    psp = next(e["pspReference"] for e in events if e["name"] == "CAPTURED")
    assert ledger_problems(funds, fees, {reference: 4000}, {reference: 0}, {psp: (reference, 4000)}) == []
    assert ledger_problems(funds, fees, {reference: 4001}, {reference: 0})  # the ledger booked 4000
    doubled = funds + [dict(next(e for e in funds if e["pspReference"] == psp))]
    assert ledger_problems(doubled, fees, {reference: 4000}, {reference: 0}, {psp: (reference, 4000)})  # chain, twice
    greedy = [dict(e, amount=-5000, balanceAfter=e["balanceBefore"] - 5000) if e["pspReference"] == psp else e
              for e in fees]
    assert any("has the fees" in w for w in ledger_problems(funds, greedy, {}, {}, {psp: (reference, 4000)}))


def test_the_invariants_catch_a_tampered_charge_and_agreement():
    history = [{"occurred": "2026-01-01T00:00:00Z", "event": "CREATE", "amount": 1000, "idempotencyKey": "k",
                "success": True},
               {"occurred": "2026-01-02T00:00:00Z", "event": "RESERVE", "amount": 1000, "idempotencyKey": "k",
                "success": True},
               {"occurred": "2026-01-02T00:00:00Z", "event": "CAPTURE", "amount": 600, "idempotencyKey": "k",
                "success": True}]
    charge = {"amount": 1000, "status": "PARTIALLY_CAPTURED", "transactionId": "5001", "history": history,
              "summary": {"captured": 600, "refunded": 0, "cancelled": 0}}
    assert charge_problems(charge, "RESERVED", [("CREATE", 1000), ("RESERVE", 1000), ("CAPTURE", 600)]) == []
    assert charge_problems(dict(charge, summary={"captured": 1100, "refunded": 0, "cancelled": 0}))
    assert charge_problems(dict(charge, summary={"captured": 600, "refunded": 700, "cancelled": 0}))
    assert any("illegal move" in w for w in charge_problems(charge, "CHARGED"))
    assert any("what the history says" in w for w in charge_problems(dict(charge, status="CHARGED")))
    assert any("is not what happened" in w for w in charge_problems(charge, None, [("CREATE", 1000)]))
    agreement = {"status": "STOPPED", "stop": "2026-01-03T00:00:00Z",
                 "history": [{"event": "CREATE", "actor": "MERCHANT"}, {"event": "ACTIVATE", "actor": "USER"},
                             {"event": "STOP", "actor": "MERCHANT"}]}
    assert agreement_problems(agreement) == []
    assert agreement_problems(dict(agreement, status="ACTIVE"))
    later = dict(agreement, history=agreement["history"] + [{"event": "UPDATE", "actor": "MERCHANT"}])
    assert any("goes on after STOP" in w for w in agreement_problems(later))


def test_the_invariants_catch_a_session_out_of_step():
    payment = {"state": "AUTHORIZED", "amount": {"currency": "NOK", "value": 1000},
               "aggregate": {f"{k}Amount": {"currency": "NOK", "value": v} for k, v in
                             (("authorized", 1000), ("captured", 0), ("refunded", 0), ("cancelled", 0))}}
    session = {"sessionState": "PaymentSuccessful",
               "paymentDetails": {"state": "AUTHORIZED", "amount": payment["amount"],
                                  "aggregate": payment["aggregate"]}}
    assert session_problems(session, payment) == []
    assert session_problems(dict(session, sessionState="SessionExpired"), payment)
    assert session_problems(session, dict(payment, state="EXPIRED"))
    assert session_problems({"sessionState": "SessionCreated"}, payment)
