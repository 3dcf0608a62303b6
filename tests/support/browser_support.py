"""A real headless Chromium for page tests: Debian's /usr/bin/chromium, driven by Playwright.

Never `playwright install`: the browser comes from the system (apt-get install chromium)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 10_000

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")


@contextlib.asynccontextmanager
async def chromium():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def new_page(browser, width: int = 1280, height: int = 800):
    """A page in a fresh context (its own storage), with the JavaScript errors it raises collected."""
    page = await browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return page, errors


async def log_entries(sandbox) -> list[dict]:
    """The request log of both ports (one log), newest first."""
    reply = await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")
    assert reply.status == 200, reply.text
    return reply.json["entries"]


async def wait_for_entry(sandbox, matches, timeout: float = 8.0) -> dict:
    """The newest log entry `matches` accepts, waiting for the browser to make it (a favicon comes late)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = [e for e in await log_entries(sandbox) if matches(e)]
        if found:
            return found[0]
        if loop.time() > deadline:
            raise AssertionError("no such request reached the sandbox")
        await asyncio.sleep(0.1)


async def prefilled_order(sandbox, name: str, idempotency_key: str) -> str:
    """A partner prefills a product order for a new Norwegian merchant (the Management API's flow): its id."""
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    packages = await sandbox.request("GET", "/management/v1/partners/price-packages", "production", keyset=partner)
    assert packages.status == 200, packages.text
    body = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "912345688"},
            "pricePackageId": next(p["pricePackageId"] for p in packages.json if p["market"] == "NO"),
            "productType": "PAYMENT_INTEGRATION", "salesUnitName": name,
            "settlementBankAccount": {"scheme": "BBAN:NO", "id": "86011117947"}, "productUseCase": "Website",
            "annualTurnover": 1000000, "hasRecurring": False,
            "website": {"url": "https://sykler.example.no", "termsUrl": "https://sykler.example.no/terms"}}
    reply = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                  json_body=body, headers={"Idempotency-Key": idempotency_key})
    assert reply.status == 201, reply.text
    return reply.json["prefilledOrderId"]
