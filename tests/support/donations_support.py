"""Helpers for the Donations tests: merchant-level keys by merchant role, miami tokens, the report call, the clock."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
EVER = {"from": "2020-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"}
DAY = 86400


def merchant_key(sandbox, role: str) -> str:
    return next(m.key for m in sandbox.runtime.world.merchants.values() if m.role == role)


def merchant_level(sandbox, role: str = "premium-shop", index: int = 0) -> dict:
    """One of the merchant's merchant-level key sets (premium-shop holds two: a rotation)."""
    return sandbox.keys("merchant-level", "production", owner=merchant_key(sandbox, role))[index]


def basic(keyset: dict, secret: str | None = None) -> dict:
    raw = f"{keyset['client_id']}:{keyset['client_secret'] if secret is None else secret}"
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode(), "Content-Type": FORM}


async def miami(sandbox, keyset: dict, scope: str | None = None, env: str = "production"):
    form = "grant_type=client_credentials" + (f"&scope={scope}" if scope is not None else "")
    return await sandbox.request("POST", "/miami/v1/token", env, data=form, headers=basic(keyset))


async def bearer(sandbox, keyset: dict, scope: str | None = "donations:read") -> dict:
    reply = await miami(sandbox, keyset, scope)
    assert reply.status == 200, reply.text
    return {"Authorization": "Bearer " + reply.json["access_token"]}


async def report(sandbox, headers: dict, **params):
    query = urlencode(EVER | params)
    return await sandbox.request("GET", f"/donations/v1/reports/payments?{query}", "production", headers=headers)


async def advance(sandbox, seconds: float) -> None:
    reply = await sandbox.request("POST", "/_sandbox/clock", "production", json_body={"advanceSeconds": seconds})
    assert reply.status == 200, reply.text


def agreements_of(sandbox, role: str) -> list:
    """The Donations backend's agreements for a merchant role (read-only)."""
    from sandbox.apis.donations.routes import DONATIONS

    key = merchant_key(sandbox, role)
    world = sandbox.runtime.world
    return [a for a in sandbox.running.app[DONATIONS].agreements.values() if world.sales_units[a.msn].merchant == key]


async def eventually(check, timeout: float = 5.0):
    """Polls `check` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
