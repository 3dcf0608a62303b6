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
