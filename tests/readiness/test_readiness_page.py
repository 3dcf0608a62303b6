"""The report's page in real Chromium: the summary line per checklist, a row per item, and an exercise that
one click sets up (a fault on the next capture), coming back to the report."""

from __future__ import annotations

from browser_support import chromium, needs_chromium, new_page
from integration import Integration, control


@needs_chromium
async def test_the_page_shows_the_summary_and_runs_an_exercise(sandbox):
    keys = sandbox.key("merchant", "test")
    msn = keys["owner"]
    base = sandbox.url("test")
    async with Integration(base, keys, msn) as shop:
        assert await shop.create("acme-order-page-1") == 201
    async with chromium() as browser:
        page, errors = await new_page(browser)
        response = await page.goto(f"{base}/_sandbox/readiness?msn={msn}&api=epayment")
        assert response is not None and response.status == 200
        assert "text/html" in response.headers["content-type"]
        summary = await page.locator("li.summary[data-api=epayment]").inner_text()
        assert summary.startswith("ePayment: ") and "to confirm yourself" in summary
        assert await page.locator("tr[data-item=EP-E1]").get_attribute("data-status") == "met"
        assert await page.locator("tr[data-item=EP-9]").get_attribute("data-status") == "to confirm yourself"
        assert await page.locator("[data-sandbox-marker]").count() == 1
        await page.locator("tr[data-item=G-I2] button.exercise").click()
        await page.wait_for_url(f"**/_sandbox/readiness?msn={msn}&api=epayment&format=html")
        assert await page.locator("tr[data-item=G-I2]").count() == 1
        assert errors == []
    status, rules = await control(base, "GET", "/_sandbox/faults")
    assert status == 200 and any(rule["path"] == "/epayment/v1/payments/*/capture" and rule["msn"] == msn
                                 and rule["status"] == 503 for rule in rules)


@needs_chromium
async def test_the_dashboard_links_to_the_list_of_sales_units_and_on_to_a_report(sandbox):
    """A browser that opens the readiness page without a sales unit picks one from the list (reached from the
    dashboard); an API client without one still gets the 400 that names the missing parameter."""
    msn = sandbox.msn_role("premium-shop-1")
    base = sandbox.url("test")
    status, body = await control(base, "GET", "/_sandbox/readiness")
    assert status == 400 and "msn" in body["detail"]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(f"{base}/_sandbox/")
        await page.locator("[data-readiness-link]").click()
        await page.wait_for_url("**/_sandbox/readiness")
        assert await page.locator("table[data-units] tr").count() == len(sandbox.runtime.world.sales_units) + 1
        await page.locator(f"a[href*='msn={msn}']").click()
        await page.wait_for_url(f"**/_sandbox/readiness?msn={msn}&format=html")
        assert (await page.locator("li.summary[data-api=epayment]").inner_text()).startswith("ePayment: ")
        assert errors == []
