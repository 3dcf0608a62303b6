"""Shared helpers for the Report API tests: events with the ePayment payload contract, clock moves,
and the ledger invariants checked independently of the sandbox's own code."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

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


async def past_midnight(sandbox: SandboxClient, now: datetime) -> datetime:
    """Moves the virtual clock to one second after the next UTC midnight."""
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return await advance(sandbox, (midnight - now).total_seconds() + 1)


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
    """The spec's 200 schema. The spec (2023) spells the payout entry "scheduled-for-payout"; the 2026
    docs say "payout-scheduled" and the sandbox follows the docs, so that one value is mapped back."""
    spec_name = {"payout-scheduled": "scheduled-for-payout"}
    copy = {**body, "items": [{**e, "entryType": spec_name.get(e["entryType"], e["entryType"])}
                              for e in body["items"]]}
    schema = REPORT.spec["components"]["responses"][200]["content"]["application/json"]["schema"]
    errors = list(REPORT.schema_for(schema).iter_errors(copy))
    assert not errors, [e.message for e in errors]


def check_ledgers_schema(body: dict) -> None:
    operation = REPORT.spec["paths"]["/settlement/v1/ledgers"]["get"]
    schema = operation["responses"][200]["content"]["application/json"]["schema"]
    errors = list(REPORT.schema_for(schema).iter_errors(body))
    assert not errors, [e.message for e in errors]
