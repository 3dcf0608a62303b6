"""The dashboard's Recurring feed (GET /_sandbox/recurring/agreements) over real HTTP, and its table in Chromium:
agreements of both environments with their charges, newest first, paged like the payments feed, behind the admin
token like the other feeds."""

from __future__ import annotations

import aiohttp
from browser_support import chromium, needs_chromium, new_page
from recurring_support import charge_body, draft_body, merchant, partner
from snapshot_support import edit_state

from sandbox.core.settings import Settings
from sandbox.dashboard.feeds import PAGE_DEFAULT, PAGE_MAX
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient

FEED = "/_sandbox/recurring/agreements"
DAY = 86400


async def test_agreements_of_both_environments_with_their_charges_newest_first(sandbox):
    tester = merchant(sandbox)
    first = await tester.active()
    charge = (await tester.charge(first, charge_body(sandbox, amount=151, days=3, retryDays=0))).json["chargeId"]
    seller = partner(sandbox)
    second = (await seller.draft(draft_body(productName="<b>Pending</b> in production"))).json["agreementId"]
    await tester.advance(3 * DAY + 60)  # the magic amount fails on its due date
    reply = await sandbox.request("GET", FEED, "test")
    assert reply.status == 200, reply.text
    page = reply.json
    assert page["total"] == 2 and page["next"] is None
    newest, oldest = page["agreements"]
    assert (newest["id"], newest["environment"], newest["status"]) == (second, "production", "EXPIRED")
    assert newest["confirmationUrl"] is None and newest["charges"] == [] and newest["chargeCount"] == 0
    assert (oldest["id"], oldest["environment"], oldest["status"], oldest["msn"]) == (first, "test", "ACTIVE",
                                                                                      tester.unit)
    assert oldest["price"] == {"value": 49900, "currency": "NOK"} and oldest["interval"] == "every month"
    assert [(c["id"], c["status"], c["failureReason"]) for c in oldest["charges"]] == [
        (charge, "FAILED", "user_action_required")]
    # A pending agreement links its confirmation page (which works from either port).
    third = (await tester.draft()).json["agreementId"]
    row = (await sandbox.request("GET", FEED + "?limit=1", "production")).json["agreements"][0]
    assert row["id"] == third and row["confirmationUrl"].startswith("/_sandbox/recurring/confirm?token=")
    confirm = await sandbox.request("GET", row["confirmationUrl"], "production")
    assert confirm.status == 200 and "MyNews Digital" in confirm.text


async def test_the_feed_is_paged_like_the_payments_feed_and_refuses_bad_paging(sandbox):
    shop = merchant(sandbox)
    await shop.active()

    def copies(data: dict) -> None:
        table = data["recurring.agreements"]
        template = next(iter(table.values()))
        for n in range(PAGE_DEFAULT + 49):
            table[str(len(table) + 1)] = dict(template, id=f"agr_p{n:06d}", charges=[])

    await edit_state(sandbox, copies)
    first = (await sandbox.request("GET", FEED, "test")).json
    assert len(first["agreements"]) == PAGE_DEFAULT and first["total"] == PAGE_DEFAULT + 50
    assert first["agreements"][0]["id"] == f"agr_p{PAGE_DEFAULT + 48:06d}"
    rest = (await sandbox.request("GET", f"{FEED}?before={first['next']}", "test")).json
    assert len(rest["agreements"]) == 50 and rest["next"] is None
    assert rest["agreements"][-1]["id"] not in {a["id"] for a in first["agreements"]}
    for query in ("limit=0", f"limit={PAGE_MAX + 1}", "limit=ten", "before=-1", "before=1e3"):
        reply = await sandbox.request("GET", f"{FEED}?{query}", "test")
        assert reply.status == 400, (query, reply.text)
        assert reply.json["extraDetails"][0]["name"] in ("limit", "before")


async def test_off_loopback_the_feed_needs_the_admin_token():
    running = RunningSandbox(Settings(host="0.0.0.0", port=0, prod_port=0, admin_token="recurring-feed-token-0123"))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = SandboxClient(running, session)
            reply = await client.request("GET", FEED, "test")
            assert reply.status == 401 and reply.headers["Vipps-Sandbox-Rule"] == "admin-token-required"
            reply = await client.request("GET", FEED, "test",
                                         headers={"Authorization": "Bearer recurring-feed-token-0123"})
            assert reply.status == 200, reply.text
    finally:
        await running.stop()


@needs_chromium
async def test_the_dashboard_shows_agreements_and_their_charges(sandbox):
    shop = merchant(sandbox)
    agreement_id = await shop.active(draft_body(productName="Dashboard <script>alert(1)</script> News"))
    charged = (await shop.charge(agreement_id, charge_body(sandbox, amount=1000, days=3))).json["chargeId"]
    await shop.advance(3 * DAY + 60)
    later = (await shop.charge(agreement_id, charge_body(sandbox, amount=2000, days=40))).json["chargeId"]
    pending = (await shop.draft(draft_body(productName="Waiting for the user"))).json["agreementId"]
    async with chromium() as browser:
        page, errors = await new_page(browser, 1400, 1000)
        response = await page.goto(sandbox.url("test") + "/_sandbox/")
        assert response is not None and response.status == 200
        row = page.locator(f'#agreements-table tr[data-agreement="{agreement_id}"]')
        await row.wait_for()
        assert await row.get_attribute("data-status") == "ACTIVE"
        text = await row.inner_text()
        assert "Dashboard <script>alert(1)</script> News" in text  # shown as text, never run
        assert "499.00 NOK" in text and "every month" in text
        assert await row.locator(f'li[data-charge="{charged}"]').get_attribute("data-status") == "CHARGED"
        assert await row.locator(f'li[data-charge="{later}"]').get_attribute("data-status") == "PENDING"
        pending_row = page.locator(f'#agreements-table tr[data-agreement="{pending}"]')
        link = pending_row.get_by_role("link", name="confirmation page ↗")
        assert (await link.get_attribute("href")).startswith("/_sandbox/recurring/confirm?token=")
        assert await page.locator("#agreements-count").inner_text() == "(2)"
        assert await page.locator("#agreements-more").is_hidden()
        # The table follows what happens: the user approves on the confirmation page, the row turns ACTIVE.
        approved = await shop.control(f"/agreements/{pending}/approve")
        assert approved.status == 200, approved.text
        await page.locator(f'#agreements-table tr[data-agreement="{pending}"][data-status="ACTIVE"]').wait_for()
        assert errors == []

