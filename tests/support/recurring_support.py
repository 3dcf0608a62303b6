"""Shared helpers for the Recurring tests: bodies, one-line calls, the units to use, and problem checks."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from sandbox.core.spec import SpecSchemas
from sandbox.testing import Reply, SandboxClient

SPEC = SpecSchemas("recurring-3.1.2.yaml")
BASE = "/recurring/v3"
PROBLEMS = "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems#"
_keys = itertools.count(1)


def new_key() -> str:
    return f"rk-{next(_keys)}"


def draft_body(amount: int = 49900, currency: str = "NOK", **extra) -> dict:
    body = {"pricing": {"type": "LEGACY", "amount": amount, "currency": currency},
            "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
            "merchantAgreementUrl": "https://shop.example.com/a", "productName": "MyNews Digital"}
    body.update(extra)
    return body


def due_in(sandbox: SandboxClient, days: int) -> str:
    today = datetime.fromtimestamp(sandbox.runtime.clock.time(), UTC).date()
    return (today + timedelta(days=days)).isoformat()


def charge_body(sandbox: SandboxClient, amount: int = 49900, days: int = 5, **extra) -> dict:
    body = {"amount": amount, "description": "October", "due": due_in(sandbox, days), "retryDays": 2,
            "transactionType": "DIRECT_CAPTURE"}
    body.update(extra)
    return body


def recurring_unit(sandbox: SandboxClient, market: str = "NO") -> str:
    """A sales unit of the approved partner ("premium") whose configuration allows Recurring, in `market`."""
    world = sandbox.runtime.world
    partner = sandbox.partner_role("premium")
    return next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                if u.partner_id == partner and u.market == market and u.configuration.get("recurringAllowed")
                and world.is_active(u.msn))


def refused_unit(sandbox: SandboxClient) -> str:
    """A sales unit whose configuration has recurringAllowed false."""
    world = sandbox.runtime.world
    return next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                if not u.configuration.get("recurringAllowed") and world.is_active(u.msn))


def assert_problem(reply: Reply, status: int, identifier: str | None = None, field: str | None = None) -> dict:
    """A Recurring ErrorV3 (problem+json) with this status and problem identifier."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json"), reply.headers
    body = reply.json
    assert not SPEC.errors("ErrorV3", body), SPEC.errors("ErrorV3", body)
    assert body["status"] == status and body["contextId"] and body["type"].startswith(PROBLEMS), body
    if identifier is not None:
        assert body["type"] == PROBLEMS + identifier, body
    if field is not None:
        assert field in [d["name"] for d in body.get("extraDetails", [])], body
    return body


class Caller:
    """One caller (keys, env, MSN header) with short methods for each Recurring call."""

    def __init__(self, sandbox: SandboxClient, keyset: dict, env: str, msn: str | None, acting_for: str) -> None:
        self.sandbox, self.keyset, self.env, self.msn, self.unit = sandbox, keyset, env, msn, acting_for
        self._headers: dict | None = None

    async def headers(self, extra: dict | None = None) -> dict:
        if self._headers is None:
            self._headers = await self.sandbox.auth_headers(self.keyset, self.msn, self.env)
        return {**self._headers, **(extra or {})}

    async def call(self, method: str, path: str, body: object = None, key: str | None = None,
                   headers: dict | None = None) -> Reply:
        extra = dict(headers or {})
        if key is not None:
            extra["Idempotency-Key"] = key
        return await self.sandbox.request(method, path, self.env, json_body=body, headers=await self.headers(extra))

    async def draft(self, body: dict | None = None, key: str | None = None) -> Reply:
        return await self.call("POST", f"{BASE}/agreements", body or draft_body(), key or new_key())

    async def get(self, agreement_id: str) -> Reply:
        return await self.call("GET", f"{BASE}/agreements/{agreement_id}")

    async def update(self, agreement_id: str, body: dict, key: str | None = None) -> Reply:
        return await self.call("PATCH", f"{BASE}/agreements/{agreement_id}", body, key or new_key())

    async def charge(self, agreement_id: str, body: dict, key: str | None = None) -> Reply:
        return await self.call("POST", f"{BASE}/agreements/{agreement_id}/charges", body, key or new_key())

    async def get_charge(self, agreement_id: str, charge_id: str) -> Reply:
        return await self.call("GET", f"{BASE}/agreements/{agreement_id}/charges/{charge_id}")

    async def control(self, path: str, body: object = None) -> Reply:
        return await self.sandbox.request("POST", f"/_sandbox/recurring/{self.unit}{path}", self.env, json_body=body)

    async def active(self, body: dict | None = None) -> str:
        """Drafts an agreement and approves it as the user (control plane: both environments)."""
        reply = await self.draft(body)
        assert reply.status == 201, reply.text
        agreement_id = reply.json["agreementId"]
        reply = await self.control(f"/agreements/{agreement_id}/approve")
        assert reply.status == 200, reply.text
        return agreement_id

    async def advance(self, seconds: float) -> None:
        reply = await self.sandbox.request("POST", "/_sandbox/clock", self.env, json_body={"advanceSeconds": seconds})
        assert reply.status == 200, reply.text
        self._headers = None  # the token may have expired on the virtual clock


def merchant(sandbox: SandboxClient, env: str = "test", msn: str | None = None) -> Caller:
    msn = msn or recurring_unit(sandbox)
    return Caller(sandbox, sandbox.key("merchant", env, msn), env, msn, msn)


def partner(sandbox: SandboxClient, msn: str | None = None) -> Caller:
    msn = msn or recurring_unit(sandbox)
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    return Caller(sandbox, keyset, "production", msn, msn)
