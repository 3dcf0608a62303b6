"""The Donations backend: monthly donation agreements, their payments, and who may see them. No HTTP here.

Agreements come from the fixture (table `donation_agreements`) and the control plane. Each ACTIVE agreement's
next withdrawal sits in ONE heap ordered by time; `sweep` (a clock hook) pops only what fell due, charges it and
pushes the next month, so moving the clock a year costs O(k log n) for the k payments due, never a scan.
A payment is kept in its sales unit's list, sorted by capture time (bisect), and published as the
API-neutral `money.captured` event (sandbox/core/events.py), which the Report API books in the ledger.

Who sees what (reference section 6): merchant-level keys every sales unit of their own merchant; partner keys
the connected sales units (the one the optional Merchant-Serial-Number names). An agreement the caller may not
see gets the 404 of one that does not exist; a recipientHandles value the caller may not see makes the whole
report call 403.
"""

from __future__ import annotations

import bisect
import calendar
import heapq
import logging
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from heapq import merge

from sandbox.apis.donations.rules import (
    AMOUNT_MAX,
    AMOUNT_MIN,
    INTERVAL,
    PAGE_MAX,
    SEED_MAX,
    WITHDRAWAL_DAYS,
    WITHDRAWAL_HOUR,
    bad_request,
    iso_offset,
    iso_seconds,
    optional_text,
    parse_fixture_time,
    parse_flag,
    parse_handles,
    parse_time,
    whole_number,
)
from sandbox.core.errors import OpaqueDenial, Problem, clip
from sandbox.core.events import MONEY_CAPTURED, money_event
from sandbox.core.model import KeySet, KeyType, SalesUnit
from sandbox.core.runtime import Runtime

log = logging.getLogger("sandbox.donations")

NOT_FOUND = "The agreement does not exist, or is not available to the caller."
HANDLE_FORBIDDEN = "One or more recipientHandles are not valid or not accessible to the caller."
EVENTS = ("started", "stopped", "withdrawal-day-changed", "amount-changed")


@dataclass
class DonationAgreement:
    id: str
    msn: str
    phone_number: str
    started_at: float
    withdrawal_day: int
    amount: int
    currency: str
    status: str  # ACTIVE or STOPPED (UNCERTAIN: the documentation's example shows no status)
    external_reference: str | None = None
    stopped_at: float | None = None
    next_due: float | None = None  # when its heap entry is due (None: none)


@dataclass
class DonationPayment:
    psp_reference: str
    msn: str
    captured_at: int  # whole seconds, as capturedAt is written
    amount: int
    currency: str
    phone_number: str | None
    agreement_id: str | None
    external_reference: str | None
    seq: int  # the order of payments captured in the same second

    @property
    def order(self) -> tuple[int, int]:
        return (self.captured_at, self.seq)


def handle_of(unit: SalesUnit) -> str:
    """A sales unit's recipient handle, as its ledger writes it ("api:<MSN>", or "<country>:<number>")."""
    vm_number = unit.configuration.get("vmNumber") if isinstance(unit.configuration, dict) else None
    return f"{unit.market}:{vm_number}" if vm_number else f"api:{unit.msn}"


def withdrawal_at(year: int, month: int, day: int) -> float:
    day = min(day, calendar.monthrange(year, month)[1])
    return datetime(year, month, day, WITHDRAWAL_HOUR, tzinfo=UTC).timestamp()


def next_withdrawal(day: int, after: float) -> float:
    """The first withdrawal moment (the day of a month, WITHDRAWAL_HOUR UTC) strictly after `after`."""
    moment = datetime.fromtimestamp(after, UTC)
    year, month = moment.year, moment.month
    while True:
        when = withdrawal_at(year, month, day)
        if when > after:
            return when
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


class DonationsBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.clear()

    # -- state ------------------------------------------------------------------------------------------
    def clear(self) -> None:
        """The reset hook: the fixture's agreements, no payments, each active agreement due on its next day."""
        self.agreements: dict[str, DonationAgreement] = {}
        self.payments: dict[str, list[DonationPayment]] = {}  # by MSN, sorted by (captured_at, seq)
        self._heap: list[tuple[float, int, str]] = []
        self._seq = 0
        self._payment_seq = 0
        for record in self.runtime.fixture_tables.get("donation_agreements", []) or []:
            agreement = DonationAgreement(
                id=record["id"], msn=record["msn"], phone_number=record["phone_number"],
                started_at=parse_fixture_time(record["started_at"]), withdrawal_day=int(record["withdrawal_day"]),
                amount=int(record["amount"]), currency=record["currency"], status=record["status"],
                external_reference=record.get("external_reference"))
            self.agreements[agreement.id] = agreement
            self._schedule(agreement, self.now())

    def now(self) -> float:
        return self.runtime.clock.time()

    def _schedule(self, agreement: DonationAgreement, after: float) -> None:
        if agreement.status != "ACTIVE":
            agreement.next_due = None
            return
        when = next_withdrawal(agreement.withdrawal_day, max(after, agreement.started_at))
        agreement.next_due = when
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, agreement.id))

    def sweep(self) -> int:
        """The clock hook: every withdrawal whose time has come, in time order; O(1) when nothing is due."""
        heap, now, done = self._heap, self.now(), 0
        while heap and heap[0][0] <= now:
            when, _, agreement_id = heapq.heappop(heap)
            agreement = self.agreements.get(agreement_id)
            if agreement is None or agreement.next_due != when or agreement.status != "ACTIVE":
                continue  # a stale entry: stopped, or the withdrawal day moved
            try:
                self._pay(agreement.msn, agreement.amount, int(when), agreement.phone_number, agreement.id,
                          agreement.external_reference)
                done += 1
            except Exception:  # one broken record must not stop the clock for every other
                log.exception("donations: the withdrawal of %s failed", agreement_id)
            self._schedule(agreement, when)
        return done

    def _pay(self, msn: str, amount: int, at: int, phone: str | None, agreement_id: str | None,
             external_reference: str | None) -> DonationPayment:
        unit = self.runtime.world.sales_units[msn]
        self._payment_seq += 1
        payment = DonationPayment(psp_reference=str(10_000_000_000 + self._payment_seq), msn=msn, captured_at=at,
                                  amount=amount, currency=unit.currency, phone_number=phone,
                                  agreement_id=agreement_id, external_reference=external_reference,
                                  seq=self._payment_seq)
        bisect.insort(self.payments.setdefault(msn, []), payment, key=lambda p: p.order)
        try:
            self.runtime.publish(MONEY_CAPTURED, money_event(
                env="production", msn=msn, psp_reference=payment.psp_reference,
                reference=agreement_id or external_reference or payment.psp_reference, value=amount,
                currency=unit.currency, timestamp=float(at), source="donations",
                description="Donation" + (f" ({external_reference})" if external_reference else ""), phone=phone))
        except Exception:  # a broken listener must not undo a payment that was made
            log.exception("a listener failed on a donation payment")
        return payment

    def _event(self, agreement: DonationAgreement, name: str, at: float) -> None:
        """donations.agreement.<name>: a notification (UNCERTAIN body: the events are named, their body is not)."""
        unit = self.runtime.world.sales_units.get(agreement.msn)
        body = {"agreementId": agreement.id, "recipientHandle": handle_of(unit) if unit else None,
                "eventType": f"donations.agreement.{name}.v1", "occurred": iso_seconds(at), "msn": agreement.msn}
        try:
            self.runtime.publish(f"donations.agreement.{name}", {
                "env": "production", "msn": agreement.msn, "reference": agreement.id, "webhook": body})
        except Exception:
            log.exception("a listener failed on donations.agreement.%s", name)

    # -- who sees what -------------------------------------------------------------------------------
    def visible_msns(self, keyset: KeySet, msn: str | None) -> list[str]:
        """The sales units this call may see: the MSN the gateway let through (partner keys), else every sales unit
        the keys reach (merchant-level keys: their merchant's; partner keys: the connected ones)."""
        if msn is not None and keyset.type is not KeyType.MERCHANT_LEVEL:
            return [msn]
        return [m for m in self.runtime.world.reach(keyset) if m in self.runtime.world.sales_units]

    def _hidden_reason(self, keyset: KeySet, unit: SalesUnit, msn: str | None) -> str:
        world = self.runtime.world
        if keyset.type is KeyType.MERCHANT_LEVEL:
            return (f"Sales unit {unit.msn} belongs to merchant {unit.merchant}, not to merchant {keyset.owner}, "
                    "whose merchant-level keys these are: they see their own merchant's sales units only.")
        if msn is not None and msn != unit.msn:
            return (f"Sales unit {unit.msn} is not the one the Merchant-Serial-Number header names ({msn}): the "
                    "header narrows partner keys to that sales unit.")
        partner = world.partners.get(unit.partner_id or "")
        connected = f"partner {partner.name} ({partner.id})" if partner else "no partner"
        return (f"Sales unit {unit.msn} is not connected to partner {keyset.owner}: it is connected to "
                f"{connected}. Partner keys see donations of their connected sales units only.")

    # -- GET /donations/v1/reports/payments ------------------------------------------------------------
    def report(self, keyset: KeySet, msn: str | None, query: dict[str, list[str]]) -> dict:
        self.sweep()  # what fell due on the clock happens first (time also passes on its own)
        def one(name: str) -> str | None:
            values = query.get(name) or []
            return values[0] if values else None

        # The older names are deprecated since May 2025, and still taken (UNCERTAIN whether they still work).
        from_text = one("from") if one("from") is not None else one("fromDateTimeUtc")
        to_text = one("to") if one("to") is not None else one("toDateTimeUtc")
        start = parse_time("from", from_text)
        end = parse_time("to", to_text)
        assert start is not None and end is not None
        if end < start:
            raise bad_request("to", "to must not be before from.")
        gdpr = parse_flag("includeGDPRSensitiveData", one("includeGDPRSensitiveData"))
        handles = parse_handles(query.get("recipientHandles") or [])
        visible = self.visible_msns(keyset, msn)
        if handles is not None:
            visible = self._handle_units(keyset, msn, handles, set(visible))
        lists = []
        for unit_msn in visible:
            payments = self.payments.get(unit_msn)
            if not payments:
                continue
            low = bisect.bisect_left(payments, start, key=lambda p: p.captured_at)
            high = bisect.bisect_right(payments, end, key=lambda p: p.captured_at)
            if low < high:
                lists.append(payments[low:min(high, low + PAGE_MAX)])
        page = []
        for payment in merge(*lists, key=lambda p: p.order):
            page.append(self._payment_view(payment, gdpr))
            if len(page) == PAGE_MAX:
                break
        return {"from": iso_seconds(start), "to": iso_seconds(end), "payments": page}

    def _handle_units(self, keyset: KeySet, msn: str | None, handles: list[str], visible: set[str]) -> list[str]:
        """The sales units the handles name; any handle that names none the caller sees: 403 for the whole call."""
        world = self.runtime.world
        found = []
        for handle in handles:
            units = [u for u in (world.sales_units.get(handle.partition(":")[2]),) if u is not None]
            units = [u for u in units if handle_of(u) == handle]
            if not units:
                raise OpaqueDenial(403, "Forbidden", HANDLE_FORBIDDEN, rule="donations-recipient-handle-unknown",
                                   reason=f"No sales unit has the recipient handle {handle}. Every handle must be "
                                   "valid and accessible, or the whole call is refused.")
            unit = units[0]
            if unit.msn not in visible:
                raise OpaqueDenial(403, "Forbidden", HANDLE_FORBIDDEN, rule="donations-recipient-handle-forbidden",
                                   reason=self._hidden_reason(keyset, unit, msn) + " Every handle must be valid "
                                   "and accessible, or the whole call is refused (it never drops the ones the "
                                   "caller cannot see).")
            found.append(unit.msn)
        return list(dict.fromkeys(found))

    def _payment_view(self, payment: DonationPayment, gdpr: bool) -> dict:
        unit = self.runtime.world.sales_units.get(payment.msn)
        view: dict = {"externalReference": payment.external_reference}
        if payment.agreement_id is not None:
            view["agreementId"] = payment.agreement_id
        if gdpr:  # UNCERTAIN: the payer only with includeGDPRSensitiveData=true
            user = self.runtime.world.user(payment.phone_number)
            view["payer"] = {"name": user.name if user else None, "phoneNumber": payment.phone_number}
        view.update({"capturedAt": iso_seconds(payment.captured_at), "pspReference": payment.psp_reference,
                     "transactionReference": payment.psp_reference,
                     "recipientHandle": handle_of(unit) if unit else f"api:{payment.msn}",
                     "amount": str(payment.amount), "currency": payment.currency})
        return view

    # -- agreements ------------------------------------------------------------------------------------
    def agreement(self, keyset: KeySet, msn: str | None, agreement_id: str) -> DonationAgreement:
        """The agreement if this call may see it; else the 404 of one that does not exist."""
        self.sweep()  # what fell due on the clock happens first (time also passes on its own)
        agreement = self.agreements.get(agreement_id)
        if agreement is None:
            raise Problem(404, "Not Found", NOT_FOUND, rule="donations-agreement-unknown",
                          reason=f"No donation agreement has the id {clip(agreement_id, 60)}.")
        if agreement.msn not in self.visible_msns(keyset, msn):
            unit = self.runtime.world.sales_units[agreement.msn]
            raise OpaqueDenial(404, "Not Found", NOT_FOUND, rule="donations-agreement-not-visible",
                               reason=f"Agreement {agreement.id} is a gift to sales unit {agreement.msn}. "
                               + self._hidden_reason(keyset, unit, msn)
                               + " The caller gets the 404 of an agreement that does not exist.")
        return agreement

    def stop(self, keyset: KeySet, msn: str | None, agreement_id: str) -> DonationAgreement:
        """Stops it; an agreement already stopped answers the same (idempotent), and sends no second event."""
        agreement = self.agreement(keyset, msn, agreement_id)
        self._stop(agreement)
        return agreement

    def _stop(self, agreement: DonationAgreement) -> None:
        if agreement.status == "STOPPED":
            return
        now = self.now()
        agreement.status, agreement.stopped_at, agreement.next_due = "STOPPED", now, None
        self._event(agreement, "stopped", now)

    def agreement_view(self, agreement: DonationAgreement) -> dict:
        unit = self.runtime.world.sales_units.get(agreement.msn)
        user = self.runtime.world.user(agreement.phone_number)
        payer: dict = {"firstName": None, "lastName": None, "phoneNumber": agreement.phone_number}
        if user is not None:
            payer.update(firstName=user.given_name, lastName=user.family_name)
            if user.addresses:
                first = user.addresses[0]
                payer["address"] = {"country": first.get("country"), "region": first.get("region"),
                                    "postalCode": first.get("postal_code"),
                                    "addressLine1": str(first.get("street_address", "")).split("\n")[0]}
            payer.update(email=user.email, emailVerified=user.email_verified)
        return {"id": agreement.id, "recipientHandle": handle_of(unit) if unit else f"api:{agreement.msn}",
                "startedAt": iso_offset(agreement.started_at),
                "schedule": {"interval": INTERVAL, "withdrawalDay": agreement.withdrawal_day},
                "amount": {"currency": agreement.currency, "value": agreement.amount},
                "payer": payer, "status": agreement.status}

    # -- the control plane (a donor in the app; seeded payments for CI) -----------------------------
    def _production_unit(self, body: dict) -> SalesUnit:
        msn = body.get("msn")
        unit = self.runtime.world.sales_units.get(msn) if isinstance(msn, str) else None
        if unit is None:
            raise bad_request("msn", "msn must be the MSN of a sales unit of the fixture (as a string).")
        return unit

    def _donor(self, body: dict, unit: SalesUnit) -> str:
        phone = body.get("phoneNumber")
        world = self.runtime.world
        if phone is None:
            users = world.market_users.get(unit.market) or list(world.users.values())
            if not users:
                raise bad_request("phoneNumber", "phoneNumber is required: the fixture has no test users.")
            return users[0].phone_number
        if not isinstance(phone, str) or world.user(phone) is None:
            raise bad_request("phoneNumber", "phoneNumber must be a test user's (GET /_sandbox/users).")
        return phone

    def create_agreement(self, body: object) -> DonationAgreement:
        self.sweep()  # what fell due on the clock happens first (time also passes on its own)
        if not isinstance(body, dict):
            raise bad_request("body", "The body must be a JSON object with msn, amount and withdrawalDay.")
        unit = self._production_unit(body)
        agreement = DonationAgreement(
            id=self.runtime.ids.uuid4(), msn=unit.msn, phone_number=self._donor(body, unit), started_at=self.now(),
            withdrawal_day=whole_number(body, "withdrawalDay", WITHDRAWAL_DAYS.start, WITHDRAWAL_DAYS.stop - 1),
            amount=whole_number(body, "amount", AMOUNT_MIN, AMOUNT_MAX), currency=unit.currency, status="ACTIVE",
            external_reference=optional_text(body, "externalReference"))
        self.agreements[agreement.id] = agreement
        self._schedule(agreement, agreement.started_at)
        self._event(agreement, "started", agreement.started_at)
        return agreement

    def change(self, agreement_id: str, body: object) -> DonationAgreement:
        """What the donor changes in the app: the amount, the withdrawal day, or stopping it."""
        agreement = self.agreements.get(agreement_id)
        if agreement is None:
            raise Problem(404, "Not Found", f"No donation agreement has the id {clip(agreement_id, 60)}.",
                          rule="donations-agreement-unknown")
        if not isinstance(body, dict) or not set(body) & {"amount", "withdrawalDay", "stop"}:
            raise bad_request("body", "Send amount, withdrawalDay or stop: true.")
        amount = whole_number(body, "amount", AMOUNT_MIN, AMOUNT_MAX) if "amount" in body else None
        day = whole_number(body, "withdrawalDay", WITHDRAWAL_DAYS.start, WITHDRAWAL_DAYS.stop - 1) \
            if "withdrawalDay" in body else None
        stop = body.get("stop", False)
        if not isinstance(stop, bool):
            raise bad_request("stop", "stop must be true or false.")
        if agreement.status != "ACTIVE" and (amount is not None or day is not None):
            raise Problem(409, "Conflict", "The agreement is stopped: nothing about it can change.",
                          rule="donations-agreement-stopped")
        now = self.now()
        if amount is not None and amount != agreement.amount:
            agreement.amount = amount
            self._event(agreement, "amount-changed", now)
        if day is not None and day != agreement.withdrawal_day:
            agreement.withdrawal_day = day
            self._schedule(agreement, now)  # the old heap entry is stale now: next_due moved
            self._event(agreement, "withdrawal-day-changed", now)
        if stop:
            self._stop(agreement)
        return agreement

    def seed_payments(self, body: object) -> dict:
        """One-off donations (no agreement), captured now or spread back in time, `everySeconds` apart."""
        self.sweep()  # what fell due on the clock happens first (time also passes on its own)
        if not isinstance(body, dict):
            raise bad_request("body", "The body must be a JSON object with msn (and count, amount, everySeconds).")
        unit = self._production_unit(body)
        count = whole_number(body, "count", 1, SEED_MAX, default=1)
        amount = whole_number(body, "amount", AMOUNT_MIN, AMOUNT_MAX, default=10000)
        every = whole_number(body, "everySeconds", 0, 86400, default=60)
        reference = optional_text(body, "externalReference")
        phone = self._donor(body, unit)
        now = int(self.now())
        made = [self._pay(unit.msn, amount, now - (count - 1 - n) * every, phone, None, reference)
                for n in range(count)]
        return {"created": len(made), "firstCapturedAt": iso_seconds(made[0].captured_at),
                "lastCapturedAt": iso_seconds(made[-1].captured_at), "recipientHandle": handle_of(unit)}

    def listing(self) -> list[dict]:
        self.sweep()
        return [dict(self.agreement_view(a), msn=a.msn,
                     nextWithdrawalAt=iso_seconds(a.next_due) if a.next_due else None,
                     payments=len([p for p in self.payments.get(a.msn, ()) if p.agreement_id == a.id]))
                for a in self.agreements.values()]

    # -- snapshots (runtime.state_providers["donations"]) --------------------------------------------
    def dump(self) -> dict:
        return {"agreements": [asdict(a) for a in self.agreements.values()],
                "payments": [asdict(p) for ps in self.payments.values() for p in ps],
                "paymentSeq": self._payment_seq}

    def load(self, data: object) -> None:
        """Replaces the state with a dump; raises ValueError (changing nothing) for one that is not valid."""
        try:
            assert isinstance(data, dict)
            agreement_fields = {f.name for f in fields(DonationAgreement)}
            payment_fields = {f.name for f in fields(DonationPayment)}
            agreements = []
            for row in data["agreements"]:
                assert isinstance(row, dict) and set(row) == agreement_fields
                agreement = DonationAgreement(**row)
                assert agreement.status in ("ACTIVE", "STOPPED") and isinstance(agreement.withdrawal_day, int)
                agreements.append(agreement)
            payments = []
            for row in data["payments"]:
                assert isinstance(row, dict) and set(row) == payment_fields
                payment = DonationPayment(**row)
                assert isinstance(payment.captured_at, int) and isinstance(payment.seq, int)
                payments.append(payment)
            seq = int(data["paymentSeq"])
        except (AssertionError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the donations state is not valid: {exc!r}") from exc
        self.agreements = {a.id: a for a in agreements}
        self.payments = {}
        for payment in sorted(payments, key=lambda p: p.order):
            self.payments.setdefault(payment.msn, []).append(payment)
        self._payment_seq = seq
        self._heap, self._seq = [], 0
        for agreement in agreements:  # the index by time is rebuilt with the very times it had
            if agreement.status == "ACTIVE" and agreement.next_due is not None:
                self._seq += 1
                heapq.heappush(self._heap, (agreement.next_due, self._seq, agreement.id))

    def counts(self) -> dict[str, int]:
        return {"agreements": len(self.agreements), "payments": sum(map(len, self.payments.values())),
                "timers": len(self._heap)}
