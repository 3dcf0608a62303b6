"""Scanning QR codes on the virtual phone, in a real headless Chromium: a check-in at a merchant callback QR sends
user.checked-in.v1 with a customer token the exchange accepts; a redirect QR leads to the merchant's page; a receipt
sent with an ePayment payment shows on the phone with its category link."""

from __future__ import annotations

import json

from browser_support import chromium, needs_chromium, new_page
from qr_support import OM, QR, call, eventually, inbox, merchant, register_check_in

from sandbox.core.model import Env


@needs_chromium
async def test_scanning_a_callback_qr_on_the_phone_checks_the_user_in(sandbox):
    keys, msn = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    await register_check_in(sandbox, keys, msn, "kiosk")
    await call(sandbox, "PUT", QR + "/merchant-callback/kasse-1", keys, msn, body={"locationDescription": "Kasse 1"})
    content = (await call(sandbox, "GET", QR + "/merchant-callback/kasse-1", keys, msn)).json["qrContent"]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        scanner = page.locator("fieldset[data-kind=qr-scanner]")
        await scanner.locator("input[name=qrContent]").fill(content)
        await scanner.locator("button.approve").click()
        await page.wait_for_url(f"**/_sandbox/phone/{user.phone_number}")
        checkin = page.locator("fieldset[data-kind=qr-checkin][data-merchant-qr-id=kasse-1]")
        assert "Checked in at Kasse 1" in await checkin.inner_text()
        assert errors == []
    [delivery] = await eventually(lambda: inbox(sandbox, "kiosk"))
    event = json.loads(delivery["body"])
    assert event["merchantQrId"] == "kasse-1" and event["msn"] == msn
    exchanged = await call(sandbox, "POST", QR + "/exchange/customer", keys, msn,
                           body={"customer": {"customerToken": event["customerToken"]}, "requestedData": ["MSISDN"]})
    assert exchanged.json["msisdn"] == user.phone_number
    # The hook other APIs use (Login's CIBA): the runtime's registry resolves the same token to the same user.
    holder = sandbox.runtime.customer_tokens.resolve(event["customerToken"], Env.TEST, sandbox.runtime.clock.time())
    assert holder is not None and holder.phone == user.phone_number and holder.merchant_qr_id == "kasse-1"


@needs_chromium
async def test_scanning_a_redirect_qr_on_the_phone_opens_the_merchant_s_page(sandbox):
    keys, msn = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    created = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                         body={"id": "poster", "redirectUrl": "https://shop.example.com/summer"},
                         headers={"Accept": "text/targetUrl"})
    async with chromium() as browser:
        page, errors = await new_page(browser)
        # The merchant's site is not on this machine: the browser is handed a stand-in for it.
        await page.route("https://shop.example.com/**", lambda route: route.fulfill(
            status=200, content_type="text/html", body="<h1 id=shop>Summer sale</h1>"))
        for target in ("summer", "autumn"):
            await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
            scanner = page.locator("fieldset[data-kind=qr-scanner]")
            await scanner.locator("input[name=qrContent]").fill(created.json["url"])
            await scanner.locator("button.approve").click()
            await page.locator("a.open").click()
            await page.locator("#shop").wait_for()
            assert page.url == f"https://shop.example.com/{target}"
            # the merchant changes the poster's target: the same printed code leads there at once
            await call(sandbox, "PUT", QR + "/merchant-redirect/poster", keys, msn,
                       body={"redirectUrl": "https://shop.example.com/autumn"}, headers={"Accept": "image/png"})
        assert errors == []


@needs_chromium
async def test_a_receipt_sent_with_the_payment_shows_on_the_phone_with_its_category_link(sandbox):
    keys, msn = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    receipt = {"orderLines": [{"name": "Croissant", "id": "c1", "totalAmount": 4500, "totalAmountExcludingTax": 3600,
                               "totalTaxAmount": 900, "taxRate": 2500, "unitInfo": {"unitPrice": 2250,
                                                                                    "quantity": "2"}}],
               "bottomLine": {"currency": "NOK"}}
    body = {"amount": {"currency": "NOK", "value": 4500}, "paymentMethod": {"type": "WALLET"},
            "reference": "bakery-0001", "userFlow": "PUSH_MESSAGE", "customer": {"phoneNumber": user.phone_number},
            "paymentDescription": "Breakfast", "receipt": receipt}
    created = await call(sandbox, "POST", "/epayment/v1/payments", keys, msn, body=body,
                         headers={"Idempotency-Key": "bakery-0001"})
    assert created.status == 201, created.text
    await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/bakery-0001", keys, msn,
               body={"category": "RECEIPT", "orderDetailsUrl": "https://bakery.example.com/r/1"})
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        order = page.locator("fieldset[data-kind=order][data-reference=bakery-0001]")
        text = await order.inner_text()
        assert "2 x Croissant: 45.00 NOK" in text and "Total: 45.00 NOK" in text
        link = order.locator("a.open")
        assert await link.get_attribute("href") == "https://bakery.example.com/r/1"
        assert await link.inner_text() == "Receipt"
        assert errors == []
