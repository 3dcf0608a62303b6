"""The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Set DASHBOARD_SCREENSHOT=docs/dashboard.png to save the screenshot the README shows.
"""

from __future__ import annotations

import os

import pytest
from browser_support import TIMEOUT_MS, chromium, needs_chromium, prefilled_order

pytestmark = needs_chromium


@pytest.fixture
async def browser():
    async with chromium() as launched:
        yield launched


async def create_payment(sandbox, reference: str, role: str = "premium-shop-1", value: int = 24900) -> dict:
    """A WEB_REDIRECT payment made with partner keys in production; returns to the sandbox itself (offline)."""
    body = {"amount": {"currency": "NOK", "value": value}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "paymentDescription": "Dashboard test",
            "returnUrl": sandbox.url("production") + "/_sandbox/health"}
    reply = await sandbox.request("POST", "/epayment/v1/payments", "production",
                                  keyset=sandbox.key("partner", owner=sandbox.partner_role("premium")),
                                  msn=sandbox.msn_role(role), json_body=body,
                                  headers={"Idempotency-Key": f"idem-{reference}"})
    assert reply.status == 201, reply.text
    return reply.json


async def open_dashboard(browser, sandbox):
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = await page.goto(sandbox.url("test") + "/_sandbox/")
    assert response is not None and response.status == 200
    return page, errors


async def test_dashboard_shows_the_matrix_generated_from_the_policy(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    grid = page.locator("#matrix-grid")
    await grid.wait_for()
    cell = grid.locator('td[data-key-type="management"][data-api="ePayment API"][data-env="production"]')
    assert await cell.get_attribute("class") == "deny"
    assert "cannot act on behalf" in await cell.inner_text()
    allowed = grid.locator('td[data-key-type="merchant"][data-api="ePayment API"][data-env="test"]')
    assert await allowed.get_attribute("class") == "allow"
    # Changing the policy's table changes the page: the rows come from policy.matrix(), one cell each.
    from sandbox.gateway.policy import matrix

    assert await grid.locator("td.allow, td.deny").count() == len(matrix())
    assert errors == []


async def test_building_shows_client_ids_but_only_masked_secrets(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    floor = page.locator(f'.floor[data-partner="{partner["owner"]}"]')
    await floor.wait_for()
    text = await page.locator("#building-tree").inner_text()
    assert partner["client_id"] in text
    assert "every connected door" in text and "ledger room" in text and "mailroom" in text
    for row in sandbox.keys():
        assert row["client_secret"] not in text
        for sub in (row["subscription_key_primary"], row["subscription_key_secondary"]):
            assert not sub or sub not in text
    assert "••••" + partner["client_secret"][-4:] in text
    assert await floor.locator(f'.door[data-msn="{sandbox.msn_role("premium-shop-1")}"]').count() == 1
    assert errors == []


async def test_a_denied_request_appears_live_with_its_reason(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    await page.locator("#log-status").filter(has_text="entries").wait_for()
    management = sandbox.key("management", owner=sandbox.partner_role("basic"))
    reply = await sandbox.request("POST", "/epayment/v1/payments", "production", keyset=management,
                                  msn=sandbox.msn_role("self-managed-1"),
                                  json_body={"reference": "never-made"}, headers={"Idempotency-Key": "k-1"})
    assert reply.status == 403
    row = page.locator('#log-table tr.denied[data-path="/epayment/v1/payments"]')
    await row.wait_for()  # the page polls every second: no reload
    text = await row.inner_text()
    assert "management keys" in text
    assert "Management keys cannot act on behalf of merchants" in text
    assert "management-keys-never-act-on-behalf" in text
    assert errors == []


async def test_approving_on_the_landing_page_changes_the_state_on_the_dashboard(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    payment = await create_payment(sandbox, "dash-landing-1")
    row = page.locator('#payments-table tr[data-reference="dash-landing-1"]')
    await row.wait_for()
    assert await row.get_attribute("data-state") == "CREATED"

    landing = await browser.new_page()
    landing.set_default_timeout(TIMEOUT_MS)
    await landing.goto(payment["redirectUrl"])
    await landing.locator("button.approve").click()
    await landing.wait_for_url("**/_sandbox/health")  # back to the returnUrl
    await landing.close()

    await page.locator('#payments-table tr[data-reference="dash-landing-1"][data-state="AUTHORIZED"]').wait_for()
    assert await row.locator("td.state").inner_text() == "AUTHORIZED"
    assert errors == []


async def test_dashboard_buttons_act_on_payments_orders_and_the_clock(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    await create_payment(sandbox, "dash-button-1")
    await create_payment(sandbox, "dash-button-2", value=9900)
    row = page.locator('#payments-table tr[data-reference="dash-button-1"]')
    await row.locator('button[data-action="approve"]').click()
    await page.locator('#payments-table tr[data-reference="dash-button-1"][data-state="AUTHORIZED"]').wait_for()
    other = page.locator('#payments-table tr[data-reference="dash-button-2"]')
    await other.locator('button[data-action="expire"]').click()
    await page.locator('#payments-table tr[data-reference="dash-button-2"][data-state="EXPIRED"]').wait_for()
    state = await sandbox.request("GET", "/epayment/v1/payments/dash-button-1", "production",
                                  keyset=sandbox.key("partner", owner=sandbox.partner_role("premium")),
                                  msn=sandbox.msn_role("premium-shop-1"))
    assert state.json["state"] == "AUTHORIZED"

    before = sandbox.runtime.clock.time()
    await page.select_option("#clock-step", "86400")
    await page.locator("#clock-advance").click()
    await page.locator("#action-result").filter(has_text="clock advanced").wait_for()
    assert sandbox.runtime.clock.time() - before >= 86400

    await product_order(sandbox)
    order_row = page.locator('#orders-table tr[data-status="ORDER_SUBMITTED"]')
    await order_row.wait_for()
    await order_row.locator('button[data-action="complete"]').click()
    await page.locator('#orders-table tr[data-status="COMPLETED"]').wait_for()
    assert errors == []

    target = os.environ.get("DASHBOARD_SCREENSHOT")
    if target:
        management = sandbox.key("management", owner=sandbox.partner_role("basic"))
        await sandbox.request("GET", "/epayment/v1/payments/dash-button-1", "production", keyset=management,
                              msn=sandbox.msn_role("self-managed-1"))
        await page.locator("#log-table tr.denied").first.wait_for()
        await page.set_viewport_size({"width": 1280, "height": 800})  # a laptop or a classroom projector
        await page.screenshot(path=target, full_page=True)


async def product_order(sandbox) -> str:
    """A partner prefills a product order for a new merchant, who submits it (the Management API's flow)."""
    order_id = await prefilled_order(sandbox, "Dashboard Sykler", "dash-order-1")
    submitted = await sandbox.request("POST", f"/_sandbox/product-orders/{order_id}/submit", "production")
    assert submitted.status == 200, submitted.text
    return order_id


async def test_off_loopback_the_page_asks_for_the_admin_token(browser):
    """With an admin token the page itself loads, and its feeds work once the token is entered."""
    from sandbox.core.settings import Settings
    from sandbox.server import RunningSandbox

    running = RunningSandbox(Settings(port=0, prod_port=0, admin_token="dashboard-admin-token"))
    await running.start()
    try:
        page = await browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        prompts: list[str] = []

        async def answer(dialog) -> None:
            prompts.append(dialog.message)
            await dialog.accept("dashboard-admin-token")

        page.on("dialog", answer)
        response = await page.goto(running.test_url + "/_sandbox/")
        assert response is not None and response.status == 200
        await page.locator("#matrix-grid").wait_for()
        assert prompts and "admin token" in prompts[0]
        await page.locator("#log-status").filter(has_text="entries").wait_for()
    finally:
        await running.stop()


async def test_the_payments_table_shows_the_newest_page_and_older_ones_on_request(browser, sandbox):
    """The feed is paged (finding 15): the page shows the newest 100 payments, and 100 more per click."""
    from snapshot_support import add_copies, edit_state, payment_records

    await create_payment(sandbox, "dash-page-seed")
    await edit_state(sandbox, lambda data: add_copies(data, payment_records(data)[0], 149, "dash-page"))
    page, errors = await open_dashboard(browser, sandbox)
    rows = page.locator("#payments-table tbody tr[data-reference]")
    await page.locator('#payments-table tr[data-reference="dash-page-00148"]').wait_for()
    assert await rows.count() == 100
    assert await page.locator("#payments-count").inner_text() == "(newest 100 of 150)"
    more = page.locator("#payments-more")
    await more.click()
    await page.locator('#payments-table tr[data-reference="dash-page-seed"]').wait_for()
    assert await rows.count() == 150
    assert await page.locator("#payments-count").inner_text() == "(150)"
    assert await more.is_hidden()
    assert errors == []


async def test_people_lists_every_test_user_with_a_link_to_their_phone(browser, sandbox):
    page, errors = await open_dashboard(browser, sandbox)
    rows = page.locator("#people-rows tr[data-phone]")
    await rows.first.wait_for()
    users = (await sandbox.request("GET", "/_sandbox/users", "test")).json
    assert await rows.count() == len(users) > 3
    first = users[0]
    row = page.locator(f'#people-rows tr[data-phone="{first["phone_number"]}"]')
    assert first["name"] in await row.inner_text() and first["market"] in await row.inner_text()
    assert first["nin"] not in await page.locator("#people-table").inner_text()  # the phone, not the identity
    link = row.locator("a")
    assert await link.get_attribute("href") == f"/_sandbox/phone/{first['phone_number']}"
    async with page.expect_popup() as opened:
        await link.click()
    phone = await opened.value
    await phone.wait_for_load_state()
    assert phone.url == sandbox.url("test") + f"/_sandbox/phone/{first['phone_number']}"
    assert first["given_name"] in await phone.content()
    assert errors == []
