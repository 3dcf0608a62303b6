"""The hosted checkout page in a real headless Chromium: the test user, contact and address details, the fixed
shipping options, Pay and Cancel; then back at the merchant's returnUrl, with the session and its ePayment payment
as the page said."""

from __future__ import annotations

from browser_support import chromium, needs_chromium, new_page
from checkout_support import FIXED_OPTIONS, checkout_call, new_reference, session_body


def merchant(sandbox, env: str = "test") -> tuple[dict, str]:
    msn = sandbox.msn_role("premium-shop-1")
    return sandbox.key("merchant", env, owner=msn), msn


@needs_chromium
async def test_pay_with_a_chosen_user_address_and_shipping(sandbox):
    keys, msn = merchant(sandbox)
    reference = new_reference()
    body = session_body(reference, logistics={"fixedOptions": FIXED_OPTIONS},
                        prefillCustomer={"email": "ada@example.com"})
    created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, body)).json
    chosen = sandbox.runtime.world.market_users["NO"][1]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.route("https://shop.example.com/**", lambda route: route.fulfill(status=200, body="shop"))
        await page.goto(created["checkoutFrontendUrl"])
        assert await page.locator("[data-sandbox-marker]").count() == 1
        assert "100.00 NOK" in await page.locator(".amount").inner_text()
        assert await page.locator("input[name=email]").input_value() == "ada@example.com"  # the merchant's prefill
        assert await page.locator("input[name=shippingOption][value=posten-mailbox]").is_checked()  # the default
        await page.locator("select[name=payer]").select_option(chosen.phone_number)
        await page.locator("input[name=streetAddress]").fill("Storgata 1")
        await page.locator("input[name=postalCode]").fill("0155")
        await page.locator("input[name=shippingOption][value=pickup-home]").check()
        await page.locator("button.approve").click()
        await page.wait_for_url("https://shop.example.com/**")
        assert errors == []
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert session["sessionState"] == "PaymentSuccessful"
    shipping = session["shippingDetails"]
    assert shipping["streetAddress"] == "Storgata 1" and shipping["postalCode"] == "0155"
    assert shipping["firstName"] == chosen.given_name  # left empty: the chosen test user's
    assert shipping["email"] == "ada@example.com" and shipping["phoneNumber"] == chosen.phone_number
    assert shipping["shippingMethodId"] == "pickup-home" and shipping["amount"]["value"] == 9900
    payment = await sandbox.request("GET", f"/epayment/v1/payments/{reference}", "test", keyset=keys, msn=msn)
    assert payment.json["state"] == "AUTHORIZED" and payment.json["amount"]["value"] == 10000 + 9900


@needs_chromium
async def test_cancel_and_payment_only(sandbox):
    keys, msn = merchant(sandbox, "production")
    reference = new_reference()
    body = session_body(reference, configuration={"elements": "PaymentOnly"})
    created = (await checkout_call(sandbox, "POST", "", "production", keys, msn, body)).json
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.route("https://shop.example.com/**", lambda route: route.fulfill(status=200, body="shop"))
        await page.goto(created["checkoutFrontendUrl"])
        assert await page.locator("input[name=email]").count() == 0  # PaymentOnly: no contact, no address
        assert await page.locator("input[name=streetAddress]").count() == 0
        await page.locator("button.reject").click()
        await page.wait_for_url("https://shop.example.com/**")
        await page.goto(created["checkoutFrontendUrl"])
        assert await page.locator("[data-state=PaymentTerminated]").count() == 1
        assert errors == []
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "production", keys, msn)).json
    assert session["sessionState"] == "PaymentTerminated"
