"""The ePayment, Webhooks and partner items the first tests left with one side only: each met by a careful
integration and not met (or, where the item can only be met, not yet exercised) by a sloppy one, driven over
HTTP by the independent client in tests/readiness/integration.py."""

from __future__ import annotations

import asyncio

from aiohttp import web
from integration import Integration, control, item, report

from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE

RECEIPT = {"orderLines": [{"name": "socks", "id": "1", "totalAmount": 1000, "totalAmountExcludingTax": 800,
                           "totalTaxAmount": 200, "taxRate": 2500}], "bottomLine": {"currency": "NOK"}}


def merchant(sandbox, **switches) -> Integration:
    keys = sandbox.key("merchant", "test")
    return Integration(sandbox.url("test"), keys, keys["owner"], **switches)


async def user(sandbox, msn: str, reference: str, action: str = "approve") -> None:
    status, body = await control(sandbox.url("test"), "POST", f"/_sandbox/payments/{msn}/{reference}/{action}")
    assert status == 200, body


async def test_every_state_reached_and_read_back_is_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        # AUTHORIZED, CAPTURED, REFUNDED on one payment, read after each step
        assert await shop.create("acme-state-0001") == 201
        await user(sandbox, shop.msn, "acme-state-0001")
        await shop.get("acme-state-0001")
        assert await shop.capture("acme-state-0001", 1000) == 200
        await shop.get("acme-state-0001")
        status, _ = await shop.call("POST", "/epayment/v1/payments/acme-state-0001/refund",
                                    {"modificationAmount": {"currency": "NOK", "value": 500}})
        assert status == 200
        await shop.get("acme-state-0001")
        # CANCELLED: an authorized payment cancelled
        assert await shop.create("acme-state-0002") == 201
        await user(sandbox, shop.msn, "acme-state-0002")
        assert (await shop.call("POST", "/epayment/v1/payments/acme-state-0002/cancel", {}))[0] == 200
        await shop.get("acme-state-0002")
        # TERMINATED: a payment the user never acted on, cancelled by the merchant
        assert await shop.create("acme-state-0003") == 201
        assert (await shop.call("POST", "/epayment/v1/payments/acme-state-0003/cancel", {}))[0] == 200
        await shop.get("acme-state-0003")
        # ABORTED: the user rejects
        assert await shop.create("acme-state-0004") == 201
        await user(sandbox, shop.msn, "acme-state-0004", "reject")
        await shop.get("acme-state-0004")
        verdict = item(await report(base, shop.msn), "epayment", "EP-2")
        assert verdict["status"] == TO_EXERCISE and "EXPIRED" in verdict["evidence"]
        # EXPIRED: the exercise moves the clock past the payment's expiry
        assert await shop.create("acme-state-0005") == 201
        status, _ = await control(base, "POST", "/_sandbox/readiness/exercises",
                                  {"msn": shop.msn, "api": "epayment", "item": "EP-2"})
        assert status == 200
        shop.token = None  # the token outlived the virtual clock's jump
        await shop.get("acme-state-0005")
    verdict = item(await report(base, shop.msn), "epayment", "EP-2")
    assert verdict["status"] == MET, verdict


async def test_receipts_posted_through_order_management_or_on_create_are_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        assert await shop.create("acme-rcpt-0001") == 201
        await user(sandbox, shop.msn, "acme-rcpt-0001")
        assert await shop.capture("acme-rcpt-0001", 1000) == 200
        verdict = item(await report(base, shop.msn), "epayment", "EP-5")
        assert verdict["status"] == NOT_MET and "1 of 1" in verdict["evidence"]
        status, body = await shop.call("POST", "/order-management/v2/ecom/receipts/acme-rcpt-0001", RECEIPT)
        assert 200 <= status < 300, body
        assert item(await report(base, shop.msn), "epayment", "EP-5")["status"] == MET
        # a receipt in the create body (the order.receipt domain event) counts as well
        body = {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
                "reference": "acme-rcpt-0002", "userFlow": "WEB_REDIRECT",
                "returnUrl": "https://shop.example.com/return", "receipt": RECEIPT}
        status, answer = await shop.call("POST", "/epayment/v1/payments", body)
        assert status == 201, answer
        await user(sandbox, shop.msn, "acme-rcpt-0002")
        assert await shop.capture("acme-rcpt-0002", 1000) == 200
    verdict = item(await report(base, shop.msn), "epayment", "EP-5")
    assert verdict["status"] == MET and "All 2" in verdict["evidence"], verdict


async def test_partner_msn_under_epayment_met_and_not_met(sandbox):
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    base = sandbox.url("production")
    async with Integration(base, partner, msn, partner=True) as good:
        assert await good.create("acme-pa-0001") == 201
    assert item(await report(base, msn, "epayment"), "epayment", "G-H3")["status"] == MET
    async with Integration(base, partner, msn, partner=True, send_msn=False) as sloppy:
        assert await sloppy.create("acme-pa-0002") >= 400
    assert item(await report(base, msn, "epayment"), "epayment", "G-H3")["status"] == NOT_MET


async def test_management_api_used_met_and_not_yet_exercised(sandbox):
    """PA-5 can only be met or not yet exercised: traffic shows Management API use, never a refusal to use it."""
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    base = sandbox.url("production")
    async with Integration(base, partner, msn, partner=True) as shop:
        assert await shop.create("acme-pa-0101") == 201
        assert item(await report(base, msn, "partner"), "partner", "PA-5")["status"] == TO_EXERCISE
        status, body = await shop.call("GET", f"/management/v1/sales-units/{msn}")
        assert status == 200, body
    assert item(await report(base, msn, "partner"), "partner", "PA-5")["status"] == MET


async def test_partner_headers_met_and_not_met(sandbox):
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    base = sandbox.url("production")
    async with Integration(base, partner, msn, partner=True) as good:
        assert await good.create("acme-pa-0301") == 201
    verdict = item(await report(base, msn, "partner"), "partner", "PA-2")
    assert verdict["status"] == MET and "acme-webshop-engine" in verdict["evidence"]
    async with Integration(base, partner, msn, partner=True, system_headers=False) as sloppy:
        assert await sloppy.create("acme-pa-0302") == 201
    assert item(await report(base, msn, "partner"), "partner", "PA-2")["status"] == NOT_MET


async def test_recent_examples_met_and_a_month_later_not_met(sandbox):
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    base = sandbox.url("production")
    async with Integration(base, partner, msn, partner=True) as shop:
        assert await shop.create("acme-pa-0201") == 201
    assert item(await report(base, msn, "partner"), "partner", "PA-3")["status"] == MET
    await control(base, "POST", "/_sandbox/clock", {"advanceSeconds": 31 * 86400})
    verdict = item(await report(base, msn, "partner"), "partner", "PA-3")
    assert verdict["status"] == NOT_MET and "30 days" in verdict["evidence"]


async def register(shop: Integration, url: str, events: list[str]) -> None:
    status, body = await shop.call("POST", "/webhooks/v1/webhooks", {"url": url, "events": events})
    assert status == 201, body


async def test_registrations_once_per_unit_met_and_per_payment_not_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        await register(shop, f"{base}/_sandbox/inbox/rd-wh1", ["epayments.payment.captured.v1"])
        assert item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-1")["status"] == MET
        for n in range(6):  # one registration per payment
            await register(shop, f"{base}/_sandbox/inbox/rd-wh1-{n}", ["epayments.payment.captured.v1"])
    verdict = item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-1")
    assert verdict["status"] == NOT_MET and "7 registrations" in verdict["evidence"]


async def test_https_registration_is_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        await register(shop, "https://shop.example.com/vipps/webhooks", ["epayments.payment.captured.v1"])
        assert item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-2")["status"] == MET
        await register(shop, f"{base}/_sandbox/inbox/rd-wh2", ["epayments.payment.created.v1"])
    assert item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-2")["status"] == NOT_MET


async def attempts_settled(base: str, msn: str) -> dict:
    for _ in range(50):
        verdict = item(await report(base, msn, "webhooks"), "webhooks", "WH-3")
        if verdict["status"] != TO_EXERCISE:
            return verdict
        await asyncio.sleep(0.1)
    return verdict


async def test_deliveries_answered_2xx_met_and_500_not_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        await register(shop, f"{base}/_sandbox/inbox/rd-wh3", ["epayments.payment.created.v1"])
        assert item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-3")["status"] == TO_EXERCISE
        assert await shop.create("acme-wh3-0001") == 201
        verdict = await attempts_settled(base, shop.msn)
        assert verdict["status"] == MET, verdict
    await control(base, "POST", "/_sandbox/reset")

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    receiver = web.Application()
    receiver.router.add_post("/hooks", broken)
    runner = web.AppRunner(receiver)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with merchant(sandbox) as shop:
            await register(shop, f"http://127.0.0.1:{port}/hooks", ["epayments.payment.created.v1"])
            assert await shop.create("acme-wh3-0002") == 201
            verdict = await attempts_settled(base, shop.msn)
        assert verdict["status"] == NOT_MET and "not answered with a 2xx" in verdict["evidence"], verdict
    finally:
        await runner.cleanup()
