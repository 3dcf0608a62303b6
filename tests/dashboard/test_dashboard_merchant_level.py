"""The dashboard shows merchant-level keys as the fifth kind: on their merchant's ring in the building (masked),
and as a row of the permission matrix (the feeds over HTTP, and the page in a real headless Chromium)."""

from __future__ import annotations

import pytest
from browser_support import TIMEOUT_MS, chromium, needs_chromium

from sandbox.gateway.policy import matrix


def merchant_node(building: dict, role: str) -> dict:
    merchants = [m for p in building["partners"] for m in p["merchants"]] + building["independent"]
    return next(m for m in merchants if m["role"] == role)


async def test_the_building_hangs_merchant_level_keys_on_the_merchants_ring(sandbox):
    building = (await sandbox.request("GET", "/_sandbox/building", "test")).json
    shop = merchant_node(building, "premium-shop")
    ring = [k for k in shop["ring"] if k["type"] == "merchant-level"]
    assert len(ring) == 2  # two sets: a rotation
    units = {u["msn"] for u in shop["salesUnits"]}
    for key in ring:
        assert key["environment"] == "production" and key["subscriptionKeyPrimary"] is None
        assert key["clientSecret"].startswith("••••") and len(key["clientSecret"]) == 8
        assert set(key["doors"]) == units and "donations office" in key["opens"]
        assert not any(k["type"] == "merchant-level" for u in shop["salesUnits"] for k in u["ring"])
    independent = merchant_node(building, "independent")
    assert [k["type"] for k in independent["ring"]] == ["merchant-level"]
    text = str(building)
    for row in sandbox.keys("merchant-level"):
        assert row["client_secret"] not in text


async def test_the_matrix_has_a_row_for_the_fifth_kind(sandbox):
    rows = [r for r in (await sandbox.request("GET", "/_sandbox/matrix", "test")).json
            if r["keyType"] == "merchant-level"]
    cells = {(r["api"], r["environment"]): r for r in rows}
    assert {api for api, _ in cells} == {r["api"] for r in matrix()}
    allowed = {(api, env) for (api, env), r in cells.items() if r["allowed"]}
    assert allowed == {("Donations API", "production"), ("Report API", "production"),
                       ("Webhooks API", "production")}
    assert "donations.*" in cells[("Webhooks API", "production")]["reason"]
    assert "Merchant-level keys" in cells[("ePayment API", "production")]["reason"]
    assert "production" in cells[("Webhooks API", "test")]["reason"]


@pytest.fixture
async def browser():
    async with chromium() as launched:
        yield launched


@needs_chromium
async def test_the_page_shows_the_fifth_kind(browser, sandbox):
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(sandbox.url("test") + "/_sandbox/")
    grid = page.locator("#matrix-grid")
    await grid.wait_for()
    donations = grid.locator('td[data-key-type="merchant-level"][data-api="Donations API"][data-env="production"]')
    assert await donations.get_attribute("class") == "allow"
    refused = grid.locator('td[data-key-type="merchant-level"][data-api="ePayment API"][data-env="production"]')
    assert await refused.get_attribute("class") == "deny"
    assert "Merchant-level keys" in await refused.inner_text()
    assert "merchant-level keys" in await grid.inner_text()
    tree = page.locator("#building-tree")
    await tree.locator(".ring-merchant-level").first.wait_for()
    assert await tree.locator(".ring-merchant-level .keytype.kt-merchant-level").count() == 2  # two merchants' rings
    text = await tree.inner_text()
    assert "donations office" in text
    for row in sandbox.keys("merchant-level"):
        assert row["client_id"] in text and row["client_secret"] not in text
    assert errors == []
