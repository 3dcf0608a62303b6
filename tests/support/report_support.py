"""Shared helpers for the Report API tests: events with the ePayment payload contract, clock moves,
and the ledger invariants checked independently of the sandbox's own code."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sandbox.apis.report import response_schemas as report_responses
from sandbox.core.spec import SpecSchemas
from sandbox.testing import SandboxClient

REPORT = SpecSchemas("report.yaml")
_psp = itertools.count(7_000_000_000)


def event(msn: str, reference: str, value: int, *, currency: str = "NOK", env: str = "production",
          when: float, phone: str | None = "4712345678", description: str | None = "Socks",
          name: str = "CAPTURED", success: bool = True) -> dict:
    """One payload exactly as the briefing's domain-event contract describes it."""
    return {"env": env, "msn": msn, "reference": reference, "pspReference": str(next(_psp)), "name": name,
            "amount": {"currency": currency, "value": value}, "timestamp": when, "idempotencyKey": None,
            "success": success, "paymentDescription": description, "phoneNumber": phone}


def capture(sandbox: SandboxClient, msn: str, reference: str, value: int, **kw) -> dict:
    payload = event(msn, reference, value, when=sandbox.runtime.clock.time(), name="CAPTURED", **kw)
    sandbox.runtime.publish("epayment.captured", payload)
    return payload


def refund(sandbox: SandboxClient, msn: str, reference: str, value: int, **kw) -> dict:
    payload = event(msn, reference, value, when=sandbox.runtime.clock.time(), name="REFUNDED", **kw)
    sandbox.runtime.publish("epayment.refunded", payload)
    return payload


async def freeze(sandbox: SandboxClient) -> datetime:
    reply = await sandbox.request("POST", "/_sandbox/clock", "production", json_body={"freeze": True})
    assert reply.status == 200, reply.text
    return datetime.strptime(reply.json["now"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


async def advance(sandbox: SandboxClient, seconds: float) -> datetime:
    reply = await sandbox.request("POST", "/_sandbox/clock", "production", json_body={"advanceSeconds": seconds})
    assert reply.status == 200, reply.text
    return datetime.strptime(reply.json["now"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


#: Written from the Report guide ("a ledger date lasts from midnight to midnight in the timezone of the
#: merchant"), not from the sandbox's code: the merchant's zone by its sales unit's market.
ZONES = {"NO": ZoneInfo("Europe/Oslo"), "DK": ZoneInfo("Europe/Copenhagen"), "FI": ZoneInfo("Europe/Helsinki")}


def local_date(moment: datetime, market: str = "NO") -> date:
    """The ledger date of an instant for a sales unit of this market (midnight cutoff)."""
    return moment.astimezone(ZONES[market]).date()


def local_midnight(day: date, market: str = "NO") -> datetime:
    """The instant a ledger date begins, in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=ZONES[market]).astimezone(UTC)


async def past_midnight(sandbox: SandboxClient, now: datetime, market: str = "NO") -> datetime:
    """Moves the virtual clock to one second after the next midnight in the market's time zone."""
    midnight = local_midnight(local_date(now, market) + timedelta(days=1), market)
    return await advance(sandbox, (midnight - now).total_seconds() + 1)


async def advance_to(sandbox: SandboxClient, moment: datetime) -> datetime:
    """Moves the (frozen) virtual clock forward to this instant, or at most a few microseconds after it (the
    clock is a float of epoch seconds: without the margin, rounding could land just before a midnight)."""
    now = await advance(sandbox, 0)
    assert moment >= now, (moment, now)
    return await advance(sandbox, (moment - now).total_seconds() + 2e-6)


async def ledger_id(sandbox: SandboxClient, headers: dict, msn: str) -> str:
    reply = await sandbox.request("GET", f"/settlement/v1/ledgers?settlesForRecipientHandles=api:{msn}",
                                  headers=headers)
    assert reply.status == 200, reply.text
    assert len(reply.json["items"]) == 1, reply.text
    return reply.json["items"][0]["ledgerId"]


def assert_chain(entries: list[dict]) -> None:
    """balanceBefore/After chain exactly, and the entries sum to the balance change."""
    for entry in entries:
        assert entry["balanceAfter"] == entry["balanceBefore"] + entry["amount"], entry
    for before, after in itertools.pairwise(entries):
        assert after["balanceBefore"] == before["balanceAfter"], (before, after)
    if entries:
        assert sum(e["amount"] for e in entries) == entries[-1]["balanceAfter"] - entries[0]["balanceBefore"]


def check_page_schema(body: dict) -> None:
    """The spec's 200 schema, patched where the sandbox follows the newer docs (the 2026 entry types such as
    "payout-scheduled", the 2023 spec's "scheduled-for-payout"; a null recipientHandle): see
    sandbox/apis/report/response_schemas.py. The test client checks every reply that way too."""
    errors = list(report_responses.page_validator().iter_errors(body))
    assert not errors, [e.message for e in errors]


def check_ledgers_schema(body: dict) -> None:
    errors = report_responses.ledgers_violations(body)
    assert not errors, errors
