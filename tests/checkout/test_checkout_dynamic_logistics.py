"""The dynamic-logistics callback: the hosted page sends the user's address to `logistics.dynamicOptionsCallback`
and offers what the merchant answers (checked against the spec), falling back to the fixed options when the
callback fails. Driven as the page's form is posted (the Chromium tests cover the page itself)."""

from __future__ import annotations

import re

from checkout_support import FIXED_OPTIONS, Receiver, checkout_call, new_reference, page_token, session_body

DYNAMIC = [{"id": "bring-express", "brand": "BRING", "type": "HOME_DELIVERY", "isDefault": True, "priority": 0,
            "amount": {"currency": "NOK", "value": 19900}, "title": "Tomorrow, at your door"}]


def merchant(sandbox, env: str = "test") -> tuple[dict, str]:
    msn = sandbox.msn_role("premium-shop-1")
    return sandbox.key("merchant", env, owner=msn), msn


async def post(sandbox, action: str, fields: dict) -> tuple[int, str, dict]:
    async with sandbox.session.post(f"{sandbox.url('test')}/_sandbox/checkout/session/{action}", data=fields,
                                    allow_redirects=False) as response:
        return response.status, await response.text(), dict(response.headers)


ADDRESS = {"streetAddress": "Storgata 1", "postalCode": "0155", "city": "Oslo", "country": "NO"}


async def test_the_merchant_offers_options_for_the_address(sandbox):
    keys, msn = merchant(sandbox)
    async with Receiver(answer=DYNAMIC) as shop:
        reference = new_reference()
        body = session_body(reference, logistics={"dynamicOptionsCallback": shop.url, "fixedOptions": FIXED_OPTIONS})
        created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, body)).json
        token = page_token(created["checkoutFrontendUrl"])
        async with sandbox.session.get(created["checkoutFrontendUrl"]) as page:
            assert "data-dynamic-shipping" in await page.text()
        status, text, _ = await post(sandbox, "approve", {"token": token, **ADDRESS})
        assert status == 200 and 'value="bring-express"' in text and "posten-mailbox" not in text
        [call] = shop.received
        assert call["body"] == {"streetAddress": "Storgata 1", "postalCode": "0155", "region": "Oslo", "country": "NO"}
        assert call["headers"]["Authorization"] == "cb-secret-token-0001"
        # A cost the page never offered cannot be chosen: the options stay on the server.
        status, _, _ = await post(sandbox, "approve", {"token": token, **ADDRESS, "shippingOption": "posten-mailbox"})
        assert status == 400
        status, _, headers = await post(sandbox, "approve", {"token": token, **ADDRESS,
                                                             "shippingOption": "bring-express"})
        assert status == 303, headers
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert session["sessionState"] == "PaymentSuccessful"
    assert session["paymentDetails"]["amount"]["value"] == 10000 + 19900
    assert session["shippingDetails"]["shippingMethodId"] == "bring-express"


async def test_a_failing_callback_falls_back_to_the_fixed_options(sandbox):
    keys, msn = merchant(sandbox)
    async with Receiver([500]) as shop:
        body = session_body(logistics={"dynamicOptionsCallback": shop.url, "fixedOptions": FIXED_OPTIONS})
        created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, body)).json
        status, text, _ = await post(sandbox, "approve", {"token": page_token(created["checkoutFrontendUrl"]),
                                                          **ADDRESS})
    assert status == 200 and "data-logistics-fallback" in text and "HTTP 500" in text
    assert re.search(r'value="posten-mailbox" checked', text)


async def test_options_the_spec_does_not_allow_are_not_offered(sandbox):
    keys, msn = merchant(sandbox)
    async with Receiver(answer=[{"id": "x", "brand": "POSTEN"}]) as shop:  # no amount, isDefault or priority
        body = session_body(logistics={"dynamicOptionsCallback": shop.url, "fixedOptions": FIXED_OPTIONS})
        created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, body)).json
        status, text, _ = await post(sandbox, "approve", {"token": page_token(created["checkoutFrontendUrl"]),
                                                          **ADDRESS})
    assert status == 200 and "the spec does not allow" in text and 'value="x"' not in text
