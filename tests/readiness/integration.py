"""A small ePayment/Recurring integration written against the public API only (plain aiohttp, not the
sandbox's own test client), with switches for each sloppy habit the readiness report must catch."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import aiohttp

SYSTEM = {"Vipps-System-Name": "acme-webshop-engine", "Vipps-System-Version": "2.4.1",
          "Vipps-System-Plugin-Name": "acme-vipps-plugin", "Vipps-System-Plugin-Version": "1.0.7"}
_keys = itertools.count(1)


@dataclass
class Integration:
    base: str
    keys: dict
    msn: str
    system_headers: bool = True
    idempotency: bool = True
    token_per_call: bool = False
    partner: bool = False
    send_msn: bool = True
    session: aiohttp.ClientSession | None = None
    token: str | None = None
    statuses: list[int] = field(default_factory=list)

    async def __aenter__(self) -> Integration:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.session is not None
        await self.session.close()

    async def fetch_token(self) -> str:
        assert self.session is not None
        headers = {"client_id": self.keys["client_id"], "client_secret": self.keys["client_secret"],
                   "Ocp-Apim-Subscription-Key": self.keys["subscription_key_primary"]}
        async with self.session.post(self.base + "/accesstoken/get", headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return (await resp.json())["access_token"]

    async def call(self, method: str, path: str, body: dict | None = None, key: str | None = None,
                   fresh_key: bool = False) -> tuple[int, dict]:
        assert self.session is not None
        if self.token is None or self.token_per_call:
            self.token = await self.fetch_token()
        headers = {"Authorization": f"Bearer {self.token}",
                   "Ocp-Apim-Subscription-Key": self.keys["subscription_key_primary"]}
        if self.send_msn:
            headers["Merchant-Serial-Number"] = self.msn
        if self.system_headers:
            headers.update(SYSTEM)
        if method != "GET" and self.idempotency:
            headers["Idempotency-Key"] = key if key is not None and not fresh_key else f"rd-{next(_keys)}"
        async with self.session.request(method, self.base + path, json=body, headers=headers) as resp:
            self.statuses.append(resp.status)
            text = await resp.text()
            return resp.status, (await resp.json(content_type=None)) if text else {}

    async def create(self, reference: str, value: int = 10000, key: str | None = None) -> int:
        body = {"amount": {"currency": "NOK", "value": value}, "paymentMethod": {"type": "WALLET"},
                "reference": reference, "userFlow": "WEB_REDIRECT",
                "returnUrl": f"https://shop.example.com/return?order={reference}",
                "paymentDescription": f"Order {reference}"}
        status, _ = await self.call("POST", "/epayment/v1/payments", body, key=key)
        return status

    async def get(self, reference: str) -> dict:
        status, body = await self.call("GET", f"/epayment/v1/payments/{reference}")
        assert status == 200, body
        return body

    async def capture(self, reference: str, value: int, key: str | None = None) -> int:
        status, _ = await self.call("POST", f"/epayment/v1/payments/{reference}/capture",
                                    {"modificationAmount": {"currency": "NOK", "value": value}}, key=key)
        return status


async def control(base: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """The sandbox's control plane (the test acts as the user or the trainer here, not as the integration)."""
    async with aiohttp.ClientSession() as session:
        async with session.request(method, base + path, json=body) as resp:
            text = await resp.text()
            return resp.status, (await resp.json(content_type=None)) if text else {}


async def report(base: str, msn: str, api: str | None = None) -> dict:
    query = f"/_sandbox/readiness?msn={msn}&format=json" + (f"&api={api}" if api else "")
    status, body = await control(base, "GET", query)
    assert status == 200, body
    return body


def item(report_body: dict, api: str, item_id: str) -> dict:
    checklist = next(c for c in report_body["checklists"] if c["api"] == api)
    return next(row for row in checklist["items"] if row["id"] == item_id)


async def pause(seconds: float) -> None:
    await asyncio.sleep(seconds)
