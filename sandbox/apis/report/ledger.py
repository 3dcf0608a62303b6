"""Ledgers built from what happened in the sandbox's production environment (the Report API's data).

Why this shape: entries are never changed, only appended, so each topic (funds, fees) of a ledger is
one append-only list plus a per-date index of [start, end) positions. Because a ledger date closes
before the next date gets its first entry, each date's entries are contiguous in the list, and a
page is a slice: O(page), whatever the ledger's size. Dates close lazily: whenever a ledger is read
or gets a new entry, a date whose end the virtual clock has passed is closed first.

A ledger date runs from midnight to midnight in the merchant's time zone (the 2023 Report guide:
"Normally, a ledger date lasts from midnight to midnight in the timezone of the merchant, but it can be
configured to other cutoffs such as 04:00 to 04:00"): the zone comes from the sales unit's market
(LedgerCalendar), the cutoff from Settings.ledger_cutoff. Entry `time`s stay in UTC, as the spec says.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING

from sandbox.core.clock import iso_utc
from sandbox.core.events import MONEY_CAPTURED, MONEY_REFUNDED
from sandbox.core.model import SalesUnit
from sandbox.core.world import World

if TYPE_CHECKING:  # zoneinfo (and the sysconfig it reads its search path from) on the first ledger: calendar_for
    from zoneinfo import ZoneInfo

log = logging.getLogger("sandbox.ledger")

TOPICS = ("funds", "fees")
#: The fee rate when a sales unit's partner has no price package for its market (or it has no partner).
DEFAULT_FEE_BASIS_POINTS = 175  # 1.75 %
#: The price package that applies to a partner's sales units in a market: the one named "Standard <market>".
STANDARD_PACKAGE_PREFIX = "Standard"


def ledger_id_for(msn: str) -> str:
    """A stable, opaque 9-digit ledger id derived from the MSN (the real ids are not the MSN either)."""
    digest = int(hashlib.sha256(f"vipps-sandbox-ledger:{msn}".encode()).hexdigest(), 16)
    return str(100_000_000 + digest % 900_000_000)


def recipient_handle(unit: SalesUnit) -> str:
    """ePayment sales units settle as "api:<MSN>"; a Vippsnummer/MyShop unit as "<country>:<number>"."""
    vm_number = unit.configuration.get("vmNumber") if isinstance(unit.configuration, dict) else None
    return f"{unit.market}:{vm_number}" if vm_number else f"api:{unit.msn}"


def is_vm_handle(handle: str) -> bool:
    return not handle.startswith("api:")


def fee_basis_points(world: World, unit: SalesUnit) -> int:
    """The capture fee rate: the partner's "Standard" price package for the market, else the first one
    for the market (by name), else DEFAULT_FEE_BASIS_POINTS."""
    packages = [p for p in world.price_packages.get(unit.partner_id or "", []) if p.market == unit.market]
    if not packages:
        return DEFAULT_FEE_BASIS_POINTS
    standard = [p for p in packages if p.name.startswith(STANDARD_PACKAGE_PREFIX)]
    return min(standard or packages, key=lambda p: p.name).fee_basis_points


def fee_for(amount: int, basis_points: int) -> int:
    """The fee in minor units, rounded half up (a positive number)."""
    return (amount * basis_points + 5_000) // 10_000


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    return "xxxx " + phone[-4:]


#: The merchant's time zone, by the sales unit's market. UNCERTAIN: a market not listed (none in the
#: fixtures) falls back to Europe/Oslo, Vipps MobilePay's home.
MARKET_TIME_ZONES = {"NO": "Europe/Oslo", "DK": "Europe/Copenhagen", "FI": "Europe/Helsinki"}
DEFAULT_TIME_ZONE = "Europe/Oslo"
CUTOFF = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


def parse_cutoff(text: str) -> time:
    """"HH:MM" (24-hour, local time) -> a time; ValueError for anything else."""
    match = CUTOFF.match(text or "")
    if not match:
        raise ValueError(f"a ledger cutoff must be HH:MM (00:00 to 23:59), not {text!r}")
    return time(int(match.group(1)), int(match.group(2)))


@cache
def calendar_for(market: str, cutoff: str = "00:00") -> LedgerCalendar:
    from zoneinfo import ZoneInfo

    return LedgerCalendar(ZoneInfo(MARKET_TIME_ZONES.get(market, DEFAULT_TIME_ZONE)), parse_cutoff(cutoff))


@dataclass(frozen=True)
class LedgerCalendar:
    """Ledger dates in one time zone with one cutoff: date D runs from D at the cutoff (local time) up to,
    not including, D+1 at the cutoff. On a DST change day a date is 23 or 25 hours long."""

    zone: ZoneInfo
    cutoff: time

    def start(self, day: date) -> float:
        """Epoch seconds at which this ledger date begins (the previous date's end)."""
        # fold=0: a cutoff inside a DST gap or overlap resolves as zoneinfo does (the earlier offset).
        return datetime.combine(day, self.cutoff, tzinfo=self.zone).timestamp()

    def end(self, day: date) -> float:
        """Epoch seconds of the cutoff that ends this ledger date."""
        return self.start(day + timedelta(days=1))

    def date_of(self, epoch: float) -> date:
        """The ledger date an instant belongs to."""
        local = datetime.fromtimestamp(epoch, self.zone)
        day = (local - timedelta(hours=self.cutoff.hour, minutes=self.cutoff.minute)).date()
        # Settle the edge cases (a cutoff in a DST gap) by the boundaries themselves, so that
        # start(date_of(t)) <= t < end(date_of(t)) always holds.
        if epoch >= self.end(day):
            day += timedelta(days=1)
        elif epoch < self.start(day):
            day -= timedelta(days=1)
        return day


@dataclass
class TopicLog:
    """One topic of one ledger: append-only entries, their GDPR extras, and the per-date index."""

    entries: list[dict] = field(default_factory=list)
    gdpr: list[dict | None] = field(default_factory=list)
    dates: dict[str, list[int]] = field(default_factory=dict)  # ledgerDate -> [start, end)
    balance: int = 0

    def append(self, *, psp: str, time: float, day: date, entry_type: str, reference: str, currency: str,
               amount: int, handle: str | None, gdpr: dict | None = None) -> dict:
        day_text = day.isoformat()
        entry = {"pspReference": psp, "time": iso_utc(time), "ledgerDate": day_text, "entryType": entry_type,
                 "reference": reference, "currency": currency, "amount": amount, "balanceBefore": self.balance,
                 "balanceAfter": self.balance + amount, "recipientHandle": handle}
        self.balance += amount
        span = self.dates.get(day_text)
        if span is None:
            span = self.dates[day_text] = [len(self.entries), len(self.entries)]
        self.entries.append(entry)
        self.gdpr.append(gdpr)
        span[1] += 1
        return entry

    def span(self, day: str) -> tuple[int, int]:
        start_end = self.dates.get(day)
        return (start_end[0], start_end[1]) if start_end else (0, 0)

    def dump(self) -> dict:
        return {"entries": self.entries, "gdpr": self.gdpr}

    @classmethod
    def load(cls, data: dict) -> TopicLog:
        """Rebuilds the index and balance from the entries, checking that they still chain."""
        entries, gdpr = list(data["entries"]), list(data["gdpr"])
        if len(entries) != len(gdpr):
            raise ValueError("entries and gdpr differ in length")
        log = cls()
        for entry, extra in zip(entries, gdpr, strict=True):
            if entry["balanceBefore"] != log.balance or entry["balanceAfter"] != log.balance + entry["amount"]:
                raise ValueError(f"entry {entry['pspReference']} breaks the balance chain")
            log.balance = entry["balanceAfter"]
            span = log.dates.setdefault(entry["ledgerDate"], [len(log.entries), len(log.entries)])
            if span[1] != len(log.entries):
                raise ValueError(f"the entries of {entry['ledgerDate']} are not contiguous")
            log.entries.append(dict(entry))
            log.gdpr.append(extra)
            span[1] += 1
        return log


class Ledger:
    """One sales unit's ledger: funds and fees, the open date, and the payouts so far."""

    def __init__(self, unit: SalesUnit, basis_points: int, calendar: LedgerCalendar | None = None) -> None:
        self.ledger_id = ledger_id_for(unit.msn)
        self.calendar = calendar or calendar_for(unit.market)
        self.msn = unit.msn
        self.currency = unit.currency
        self.handle = recipient_handle(unit)
        self.basis_points = basis_points
        self.topics = {topic: TopicLog() for topic in TOPICS}
        self.open_date: date | None = None  # the one date with entries that is not closed yet
        self.last_closed: date | None = None
        self.open_fees = 0  # the capture fees of the open date (a negative sum)
        self.payouts = 0

    def dump(self) -> dict:
        return {"msn": self.msn, "currency": self.currency, "handle": self.handle, "basisPoints": self.basis_points,
                "openDate": self.open_date.isoformat() if self.open_date else None,
                "lastClosed": self.last_closed.isoformat() if self.last_closed else None,
                "openFees": self.open_fees, "payouts": self.payouts,
                "topics": {topic: log.dump() for topic, log in self.topics.items()}}

    @classmethod
    def load(cls, data: dict, unit: SalesUnit, calendar: LedgerCalendar | None = None) -> Ledger:
        ledger = cls(unit, int(data["basisPoints"]), calendar)
        ledger.currency, ledger.handle = str(data["currency"]), str(data["handle"])
        ledger.open_date = date.fromisoformat(data["openDate"]) if data["openDate"] else None
        ledger.last_closed = date.fromisoformat(data["lastClosed"]) if data["lastClosed"] else None
        ledger.open_fees, ledger.payouts = int(data["openFees"]), int(data["payouts"])
        ledger.topics = {topic: TopicLog.load(data["topics"][topic]) for topic in TOPICS}
        return ledger

    @property
    def funds(self) -> TopicLog:
        return self.topics["funds"]

    @property
    def fees(self) -> TopicLog:
        return self.topics["fees"]

    # -- closing -------------------------------------------------------------------------------
    def settle(self, now: float) -> None:
        """Closes the open date if the clock has passed its end."""
        if self.open_date is not None and now >= self.calendar.end(self.open_date):
            self._close(self.open_date)

    def _close(self, day: date) -> None:
        """Fees retained (funds negative, fees positive), then the payout as the date's last entry.

        Both carry the time the date ends (the next local midnight, or the cutoff), as the 2023 guide's
        tables do ("2022-10-02T00:00:00.000000+0200" for ledger date 2022-10-01), written in UTC. Their
        `recipientHandle` is null and the fees' `reference` empty, as those tables show them; the payout's
        `reference` is the bank statement text."""
        closing_time = self.calendar.end(day)
        if self.open_fees:
            psp = f"{self.ledger_id}-fees-{day.strftime('%Y%m%d')}"
            self.funds.append(psp=psp, time=closing_time, day=day, entry_type="fees-retained", reference="",
                              currency=self.currency, amount=self.open_fees, handle=None)
            self.fees.append(psp=psp, time=closing_time, day=day, entry_type="fees-retained", reference="",
                             currency=self.currency, amount=-self.open_fees, handle=None)
        if self.funds.balance > 0:
            self.payouts += 1
            psp = f"{self.ledger_id}-{self.payouts}"
            self.funds.append(psp=psp, time=closing_time, day=day, entry_type="payout-scheduled",
                              reference=f"Vipps utbet. {self.payouts} Vippsnr {self.handle.partition(':')[2]}",
                              currency=self.currency, amount=-self.funds.balance, handle=None)
        self.open_fees = 0
        self.last_closed = day
        self.open_date = None

    def _entry_date(self, timestamp: float) -> date:
        """The ledger date for an entry at this time; never a date that is already closed."""
        self.settle(timestamp)
        day = self.calendar.date_of(timestamp)
        if self.last_closed is not None and day <= self.last_closed:
            day = self.last_closed + timedelta(days=1)
        if self.open_date is not None and day > self.open_date:
            self._close(self.open_date)
        self.open_date = day
        return day

    # -- entries from payments --------------------------------------------------------------------
    def capture(self, psp: str, reference: str, amount: int, timestamp: float, gdpr: dict | None) -> None:
        day = self._entry_date(timestamp)
        self.funds.append(psp=psp, time=timestamp, day=day, entry_type="capture", reference=reference,
                          currency=self.currency, amount=amount, handle=self.handle, gdpr=gdpr)
        fee = fee_for(amount, self.basis_points)
        if fee:
            self.fees.append(psp=psp, time=timestamp, day=day, entry_type="capture-fee", reference=reference,
                             currency=self.currency, amount=-fee, handle=self.handle, gdpr=gdpr)
            self.open_fees -= fee

    def refund(self, psp: str, reference: str, amount: int, timestamp: float, gdpr: dict | None) -> None:
        day = self._entry_date(timestamp)
        self.funds.append(psp=psp, time=timestamp, day=day, entry_type="refund", reference=reference,
                          currency=self.currency, amount=-amount, handle=self.handle, gdpr=gdpr)


CAPTURES = frozenset({"epayment.captured", MONEY_CAPTURED})
REFUNDS = frozenset({"epayment.refunded", MONEY_REFUNDED})


class LedgerBook:
    """All ledgers of the production environment, fed by the ePayment API's domain events and the API-neutral
    money events (sandbox/core/events.py)."""

    def __init__(self, world: Callable[[], World], cutoff: str = "00:00") -> None:
        self._world = world
        self.cutoff = parse_cutoff(cutoff).strftime("%H:%M")
        self.ledgers: dict[str, Ledger] = {}  # by MSN, built lazily
        self._ids: dict[str, str] = {}  # ledgerId -> MSN
        self._ids_source: tuple[int, int] = (0, -1)

    def clear(self) -> None:
        self.ledgers.clear()
        self._ids.clear()
        self._ids_source = (0, -1)

    def dump(self) -> dict:
        """For snapshots: every ledger with its entries (JSON-able)."""
        return {"ledgers": [ledger.dump() for ledger in self.ledgers.values()]}

    def load(self, data: object) -> None:
        """Replaces every ledger with a snapshot's; raises ValueError (changing nothing) if it is not valid."""
        if not isinstance(data, dict) or not isinstance(data.get("ledgers"), list):
            raise ValueError('the ledgers state must be {"ledgers": [...]}')
        world = self._world()
        ledgers: dict[str, Ledger] = {}
        for row in data["ledgers"]:
            try:
                unit = world.sales_units[row["msn"]]
                ledgers[unit.msn] = Ledger.load(row, unit, self.calendar(unit))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ValueError(f"a ledger in the snapshot is not valid: {exc!r}") from exc
        self.ledgers = ledgers

    def ledger(self, msn: str) -> Ledger | None:
        """The sales unit's ledger (created on first use), or None for an unknown MSN."""
        ledger = self.ledgers.get(msn)
        if ledger is None:
            world = self._world()
            unit = world.sales_units.get(msn)
            if unit is None:
                return None
            ledger = self.ledgers[msn] = Ledger(unit, fee_basis_points(world, unit), self.calendar(unit))
        return ledger

    def calendar(self, unit: SalesUnit) -> LedgerCalendar:
        """How this sales unit's ledger dates run: its market's time zone, the sandbox's cutoff."""
        return calendar_for(unit.market, self.cutoff)

    def msn_of(self, ledger_id: str) -> str | None:
        """Which sales unit a ledger id belongs to (the index follows the directory as it grows)."""
        world = self._world()
        source = (id(world), len(world.sales_units))
        if source != self._ids_source:
            self._ids = {ledger_id_for(msn): msn for msn in world.sales_units}
            self._ids_source = source
        return self._ids.get(ledger_id)

    def on_event(self, kind: str, payload: dict) -> None:
        """The runtime listener: production captures and refunds become ledger entries. Never raises.

        ePayment's own events, and the API-neutral money events of sandbox/core/events.py that any other API
        (Recurring) publishes: a new API's money lands here without a change to this package."""
        if kind not in CAPTURES and kind not in REFUNDS:
            return
        try:
            self._record(kind, payload)
        except Exception:  # a listener must not break the payment that published the event
            log.exception("ledger could not record %s", kind)

    def _record(self, kind: str, payload: dict) -> None:
        if payload.get("env") != "production" or payload.get("success") is False:
            return
        ledger = self.ledger(str(payload.get("msn")))
        value = int((payload.get("amount") or {}).get("value") or 0)
        if ledger is None or value <= 0:
            return
        gdpr = {"message": payload.get("paymentDescription"), "name": None,
                "maskedPhoneNo": mask_phone(payload.get("phoneNumber"))}
        args = (str(payload.get("pspReference") or ""), str(payload.get("reference") or ""), value,
                float(payload["timestamp"]), gdpr)
        if kind in CAPTURES:
            ledger.capture(*args)
        else:
            ledger.refund(*args)
