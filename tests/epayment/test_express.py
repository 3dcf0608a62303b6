"""ePayment Express, through the real servers: the create rules, the landing page in a real headless Chromium
(fixed options, and the dynamic shipping callback to a real merchant server on loopback), the amounts and
details GET returns, force approve refused, and the AUTHORIZED webhook carrying the user's details.

Sources: the spec (epayment-1.8.1.yaml: Shipping, ShippingGroup, ShippingOption, DynamicOptions,
DynamicShippingGroupsRequest, merchant-dynamic-shipping-callback, GetPaymentResponse.shippingDetails/userDetails,
forceApprove "Express checkout is not supported for this endpoint") and the Express feature page (features.md:
the scope "not fewer values, not more", fixed or dynamic "never both", "Return HTTP 400 when you cannot ship to
that address", "the customer confirms the total including shipping"). Every GET these tests read is checked
against the spec's GetPaymentResponse by the test client itself (sandbox/apis/epayment/response_schemas.py).
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from browser_support import chromium, needs_chromium, new_page
from epayment_support import assert_problem, create_body, merchant

from sandbox.apis.epayment.routes import PAYMENTS
from sandbox.core.model import Env

SCOPE = "name address email phoneNumber"
FIXED = [
    {"type": "HOME_DELIVERY", "brand": "POSTEN", "isDefault": True, "priority": 0,
     "options": [{"id": "posten-home", "name": "Servicepakke hjem", "amount": {"currency": "NOK", "value": 9900},
                  "isDefault": True, "estimatedDelivery": "1-2 days"}]},
    {"type": "PICKUP_POINT", "brand": "POSTNORD", "priority": 1,
     "options": [{"id": "pn-kiwi", "name": "Pickup at Kiwi", "amount": {"currency": "NOK", "value": 4900},
                  "meta": "Kiwi Grünerløkka"}]},
]
DYNAMIC_GROUPS = [
    {"type": "MAILBOX", "brand": "HELTHJEM", "options": [
        {"id": "hh-mailbox", "name": "Helthjem i postkassen", "amount": {"currency": "NOK", "value": 3900}},
        {"id": "hh-express", "name": "Helthjem ekspress", "amount": {"currency": "NOK", "value": 14900},
         "isDefault": True}]},
]
TOKEN = "merchant-callback-secret-42"


def prefilled_address(sandbox, msn: str, reference: str) -> dict:
    """The address the landing page prefills for this payment: its default test user's (issue 16)."""
    payments = sandbox.running.app[PAYMENTS]
    return dict(payments.express_user(payments.find(Env.TEST, msn, reference)).address)


def express_body(reference: str, value: int = 25000, shipping: dict | None = None, **extra) -> dict:
    extra.setdefault("profile", {"scope": SCOPE})
    return create_body(reference, value, shipping=shipping if shipping is not None else {"fixedOptions": FIXED},
                       **extra)


class MerchantServer:
    """The merchant's own server on loopback: the dynamic shipping callback and the returnUrl page."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.no_shipping_to = {"9999"}  # post codes it cannot ship to (answers 400)
        self.url = ""

    async def shipping(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.calls.append({"headers": dict(request.headers), "body": json.loads(raw)})
        if self.calls[-1]["body"].get("PostCode") in self.no_shipping_to:
            return web.Response(status=400)
        return web.json_response({"groups": DYNAMIC_GROUPS})

    async def back(self, request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>Shop</title><p id=back>Thank you</p>", content_type="text/html")

    async def __aenter__(self) -> MerchantServer:
        app = web.Application()
        app.router.add_post("/shipping", self.shipping)
        app.router.add_get("/return", self.back)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


def dynamic(server: MerchantServer, token: str | None = TOKEN) -> dict:
    options = {"callbackUrl": server.url + "/shipping"}
    if token:
        options["callbackAuthorizationToken"] = token
    return {"dynamicOptions": options}


# -- create ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, code, field", [
    ({"shipping": {}}, "4140", "shipping"),
    ({"shipping": {"fixedOptions": FIXED, "dynamicOptions": {"callbackUrl": "https://shop.example.com/s"}}},
     None, "shipping"),
    ({"paymentMethod": {"type": "CARD"}}, "4160", "paymentMethod.type"),
    ({"profile": {"scope": "name email"}}, "4080", "profile.scope"),
    ({"profile": {"scope": SCOPE + " birthDate"}}, "4080", "profile.scope"),
    ({"profile": None}, "4080", "profile.scope"),
    ({"shipping": {"fixedOptions": [FIXED[0], dict(FIXED[0], options=[dict(FIXED[0]["options"][0], id="other")])]}},
     None, "shipping.fixedOptions"),
    ({"shipping": {"fixedOptions": [dict(FIXED[0], options=[dict(FIXED[0]["options"][0],
                                                                  amount={"currency": "EUR", "value": 100})])]}},
     None, "shipping.fixedOptions"),
])
async def test_express_create_rules(sandbox, change, code, field):
    body = express_body("express-rule-1")
    body.update(change)
    if body.get("profile") is None:
        del body["profile"]
    reply = await merchant(sandbox).create(body)
    problem = assert_problem(reply, 400, code, field)
    if code is None:
        assert not any(d["name"] == "ErrorCode" for d in problem["extraDetails"]), reply.text


async def test_any_order_of_the_four_scope_values_is_express(sandbox):
    reply = await merchant(sandbox).create(express_body("express-scope-order", profile={
        "scope": "phoneNumber email address name"}))
    assert reply.status == 201, reply.text


async def test_a_unit_not_enabled_for_express_gets_5020(sandbox):
    shop = merchant(sandbox)
    sandbox.runtime.settings.express_disabled = (shop.msn,)  # as `serve --express-disabled MSN` sets it
    assert_problem(await shop.create(express_body("express-5020")), 400, "5020", "shipping")
    assert (await shop.create(create_body("not-express-5020"))).status == 201  # only Express is refused
    assert (await merchant(sandbox, "premium-shop-2").create(express_body("express-5020"))).status == 201


@pytest.mark.parametrize("where", ["/epayment/v1/payments", "/_sandbox/keys"])
async def test_a_callback_url_on_the_sandbox_itself_is_refused_at_create(sandbox, where):
    url = sandbox.running.test_url + where
    reply = await merchant(sandbox).create(express_body("express-self-1", shipping={
        "dynamicOptions": {"callbackUrl": url}}))
    body = assert_problem(reply, 400, "4090", "shipping.dynamicOptions.callbackUrl")
    assert "sandbox" in json.dumps(body)


async def test_force_approve_of_an_express_payment_is_10060(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(express_body("express-force-1"))).status == 201
    assert_problem(await shop.force_approve("express-force-1"), 400, "10060")
    got = (await shop.get("express-force-1")).json
    assert got["state"] == "CREATED" and "shippingDetails" not in got and "userDetails" not in got


# -- the landing page, in a real browser --------------------------------------------------------------------------
@needs_chromium
async def test_fixed_options_chosen_in_the_browser_show_in_get_with_the_shipping_cost(sandbox):
    shop = merchant(sandbox)
    async with MerchantServer() as server:
        created = await shop.create(express_body("express-fixed-1", 25000, returnUrl=server.url + "/return"))
        assert created.status == 201, created.text
        prefilled = prefilled_address(sandbox, shop.msn, "express-fixed-1")
        async with chromium() as browser:
            page, errors = await new_page(browser)
            await page.goto(created.json["redirectUrl"])
            groups = page.locator("[data-shipping] fieldset.group")
            assert await groups.count() == 2
            assert await page.locator("[data-brand=POSTEN] input[value=posten-home]").is_checked()  # the default
            kiwi = page.locator("[data-option-id=pn-kiwi]")
            assert "49.00 NOK" in await kiwi.inner_text() and "299.00 NOK" in await kiwi.inner_text()
            assert "349.00 NOK" in await page.locator("[data-total-default]").inner_text()  # 250 + 99
            assert await page.locator("input[name=firstName]").input_value()  # prefilled
            await kiwi.locator("input").check()
            await page.locator("input[name=firstName]").fill("Grete")
            await page.locator("input[name=addressLine2]").fill("Leilighet H0201")
            await page.locator("button.approve").click()
            await page.wait_for_url(server.url + "/return")
            assert errors == []
    got = (await shop.get("express-fixed-1")).json
    assert got["state"] == "AUTHORIZED"
    assert got["amount"]["value"] == got["aggregate"]["authorizedAmount"]["value"] == 25000 + 4900
    details = got["shippingDetails"]
    assert details == {"address": dict(prefilled, addressLine2="Leilighet H0201"),
                       "shippingCost": 4900, "shippingOptionId": "pn-kiwi", "shippingOptionName": "Pickup at Kiwi"}
    user = got["userDetails"]
    assert user["firstName"] == "Grete" and user["lastName"] and "@" in user["email"]
    assert user["mobileNumber"].isdigit() and user["addresses"] == [details["address"]]
    assert got["profile"]["sub"]
    events = (await shop.events("express-fixed-1")).json
    assert [(e["name"], e["amount"]["value"]) for e in events] == [("CREATED", 25000), ("AUTHORIZED", 29900)]
    assert (await shop.capture("express-fixed-1", 29900)).status == 200  # "capture the full amount incl. shipping"


@needs_chromium
async def test_dynamic_options_come_from_the_merchants_callback_and_a_400_is_cannot_ship(sandbox):
    shop = merchant(sandbox)
    async with MerchantServer() as server:
        created = await shop.create(express_body("express-dyn-1", 20000, shipping=dynamic(server),
                                                 returnUrl=server.url + "/return"))
        assert created.status == 201, created.text
        assert server.calls == []  # nothing is asked before the user opens the page
        prefilled = prefilled_address(sandbox, shop.msn, "express-dyn-1")
        asked = {"reference": "express-dyn-1", "AddressLine1": prefilled["addressLine1"], "City": prefilled["city"],
                 "PostCode": prefilled["postCode"], "Country": "NO"}
        if prefilled.get("addressLine2"):
            asked["AddressLine2"] = prefilled["addressLine2"]
        async with chromium() as browser:
            page, errors = await new_page(browser)
            await page.goto(created.json["redirectUrl"])
            call = server.calls[-1]
            assert call["headers"]["Authorization"] == TOKEN  # verbatim: no "Bearer" added
            assert call["headers"]["Content-Type"] == "application/json;charset=UTF-8"
            assert call["body"] == asked  # the prefilled test user's address
            assert await page.locator("[data-brand=HELTHJEM] label.option").count() == 2
            assert await page.locator("input[value=hh-express]").is_checked()  # the callback's default

            await page.locator("input[name=postCode]").fill("9999")
            await page.locator("button.update").click()
            await page.locator("[data-cannot-ship]").wait_for()
            assert server.calls[-1]["body"]["PostCode"] == "9999"
            assert await page.locator("button.approve").is_disabled()
            assert await page.locator("[data-shipping]").count() == 0

            await page.locator("input[name=postCode]").fill("0155")
            await page.locator("input[name=addressLine1]").fill("Storgata 1")
            await page.locator("button.update").click()
            await page.locator("[data-shipping]").wait_for()
            assert server.calls[-1]["body"]["AddressLine1"] == "Storgata 1"
            await page.locator("input[value=hh-mailbox]").check()
            await page.locator("button.approve").click()
            await page.wait_for_url(server.url + "/return")
            assert errors == []
    got = (await shop.get("express-dyn-1")).json
    assert got["amount"]["value"] == got["aggregate"]["authorizedAmount"]["value"] == 20000 + 3900
    assert got["shippingDetails"]["shippingOptionId"] == "hh-mailbox"
    assert got["shippingDetails"]["address"] == dict(prefilled, addressLine1="Storgata 1", postCode="0155")


async def test_the_approve_form_cannot_change_the_offered_options_or_the_address(sandbox):
    """The dynamic offer travels in the form, signed: a tampered offer, another option id or another address than
    the one the merchant was asked about is refused, and the payment stays CREATED."""
    shop = merchant(sandbox)
    async with MerchantServer() as server:
        created = await shop.create(express_body("express-tamper-1", shipping=dynamic(server, token=None)))
        async with sandbox.session.get(created.json["redirectUrl"]) as resp:
            page = await resp.text()
        assert "Authorization" not in server.calls[-1]["headers"]  # no token given, none sent
        token = parse_qs(urlsplit(created.json["redirectUrl"]).query)["token"][0]
        offer = page.split('name="offer" value="', 1)[1].split('"', 1)[0]
        approve = sandbox.url("test") + "/_sandbox/landing/approve"
        for form, field in (({"offer": offer[:-3] + "AAA"}, "offer"), ({}, "offer"),
                            ({"offer": offer, "shippingOptionId": "free-shipping"}, "shippingOptionId"),
                            ({"offer": offer, "postCode": "9999"}, "addressLine1")):
            async with sandbox.session.post(approve, data={"token": token, **form}, allow_redirects=False) as resp:
                assert resp.status == 400, await resp.text()
                assert field in [d["name"] for d in (await resp.json())["extraDetails"]]
        assert (await shop.get("express-tamper-1")).json["state"] == "CREATED"
        async with sandbox.session.post(approve, data={"token": token, "offer": offer}, allow_redirects=False) as resp:
            assert resp.status == 303
    assert (await shop.get("express-tamper-1")).json["shippingDetails"]["shippingOptionId"] == "hh-express"


async def test_a_callback_that_fails_is_said_on_the_page_and_approve_is_off(sandbox):
    shop = merchant(sandbox)
    async with MerchantServer() as server:
        url = server.url
    created = await shop.create(express_body("express-down-1", shipping={
        "dynamicOptions": {"callbackUrl": url + "/shipping"}}))  # the server is gone: connection refused
    async with sandbox.session.get(created.json["redirectUrl"]) as resp:
        page = await resp.text()
    assert "data-callback-error" in page and "could not be reached" in page
    assert '<button class="approve" type="submit" disabled>' in page


async def test_the_callback_times_out(sandbox):
    shop = merchant(sandbox)
    hang = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await hang.wait()
        return web.json_response({"groups": DYNAMIC_GROUPS})

    app = web.Application()
    app.router.add_post("/shipping", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        sandbox.running.app[PAYMENTS].callback_timeout = 0.3  # the real 10 s, shortened for the test
        created = await shop.create(express_body("express-slow-1", shipping={
            "dynamicOptions": {"callbackUrl": f"http://127.0.0.1:{port}/shipping"}}))
        async with sandbox.session.get(created.json["redirectUrl"]) as resp:
            page = await resp.text()
        assert "data-callback-error" in page and "no answer within 0.3 s" in page
    finally:
        hang.set()
        await runner.cleanup()


# -- without the page: the control plane, and JSON -------------------------------------------------------------------
async def test_the_control_plane_approves_express_with_the_defaults(sandbox):
    shop = merchant(sandbox)
    async with MerchantServer() as server:
        assert (await shop.create(express_body("express-cp-fixed", 10000))).status == 201
        assert (await shop.create(express_body("express-cp-dyn", 10000, shipping=dynamic(server)))).status == 201
        for reference in ("express-cp-fixed", "express-cp-dyn"):
            reply = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/{reference}/approve", "test")
            assert reply.status == 200, reply.text
        assert len(server.calls) == 1 and server.calls[0]["body"]["reference"] == "express-cp-dyn"
    fixed, dyn = (await shop.get("express-cp-fixed")).json, (await shop.get("express-cp-dyn")).json
    assert fixed["shippingDetails"]["shippingOptionId"] == "posten-home" and fixed["amount"]["value"] == 19900
    assert dyn["shippingDetails"]["shippingOptionId"] == "hh-express" and dyn["amount"]["value"] == 24900
    assert fixed["userDetails"] == (await shop.get("express-cp-fixed")).json["userDetails"]  # deterministic


async def test_a_locked_phone_number_is_the_one_the_user_has(sandbox):
    shop = merchant(sandbox)
    unit = sandbox.runtime.world.sales_units[shop.msn]
    unit.configuration["landingPagePhoneNumberLocked"] = True  # as the Management API would report it
    body = express_body("express-locked-1", flow="NATIVE_REDIRECT", customer={"phoneNumber": "4799887766"})
    created = await shop.create(body)
    assert created.status == 201, created.text
    async with sandbox.session.get(created.json["redirectUrl"]) as resp:
        page = await resp.text()
    assert 'name="mobileNumber" value="4799887766"' in page and "readonly data-locked" in page
    token = parse_qs(urlsplit(created.json["redirectUrl"]).query)["token"][0]
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/approve", allow_redirects=False,
                                    data={"token": token, "mobileNumber": "4711111111"}) as resp:
        assert resp.status == 303, await resp.text()
    assert (await shop.get("express-locked-1")).json["userDetails"]["mobileNumber"] == "4799887766"


# -- webhooks and the event log ------------------------------------------------------------------------------------
async def test_the_authorized_webhook_carries_the_users_details_and_the_event_log_agrees(sandbox):
    shop = merchant(sandbox)
    url = f"{sandbox.running.test_url}/_sandbox/inbox/express"
    events = [f"epayments.payment.{k}.v1" for k in ("created", "authorized", "captured", "cancelled")]
    reply = await sandbox.request("POST", "/webhooks/v1/webhooks", "test", keyset=shop.keyset,
                                  json_body={"url": url, "events": events})
    assert reply.status == 201, reply.text
    assert (await shop.create(express_body("express-hook-1", 10000), key="create-key-1")).status == 201
    reply = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/express-hook-1/approve", "test")
    assert reply.status == 200, reply.text
    assert (await shop.capture("express-hook-1", 5000, key="capture-key-1")).status == 200
    cancel = await shop.call("POST", "/epayment/v1/payments/express-hook-1/cancel", None, key="cancel-key-1",
                             headers={"Content-Type": "application/json"})
    assert cancel.status == 200, cancel.text
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        inbox = await sandbox.request("GET", "/_sandbox/inbox/express", "test")  # the client checks each body
        bodies = {b["name"]: b for b in (json.loads(d["body"]) for d in inbox.json["deliveries"])}
        if len(bodies) == 4 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    got = (await shop.get("express-hook-1")).json
    assert bodies["AUTHORIZED"]["userDetails"] == got["userDetails"]
    assert bodies["AUTHORIZED"]["shippingDetails"] == got["shippingDetails"]
    assert bodies["AUTHORIZED"]["amount"]["value"] == 19900
    assert "userDetails" not in bodies["CAPTURED"] and "shippingDetails" not in bodies["CREATED"]
    log = {e["name"]: e for e in (await shop.events("express-hook-1")).json}
    for name, body in bodies.items():
        assert log[name]["idempotencyKey"] == body.get("idempotencyKey"), name
    assert log["AUTHORIZED"]["idempotencyKey"] == "create-key-1"
    assert log["CANCELLED"]["idempotencyKey"] is None


async def test_the_express_page_of_a_magic_amount_offers_no_approve_and_bad_details_are_said(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(express_body("express-magic-1", 186))  # a test magic amount: approval fails
    async with sandbox.session.get(created.json["redirectUrl"]) as resp:
        page = await resp.text()
    assert 'data-error-code="10040"' in page and "data-shipping" in page
    assert page.count('<button class="approve" type="submit" disabled>') == 1
    created = await shop.create(express_body("express-baddetails-1"))
    async with sandbox.session.get(created.json["redirectUrl"] + "&email=not-an-email&postCode=") as resp:
        page = await resp.text()
    assert "data-user-invalid" in page and "email" in page and "postCode: Required." in page
    assert '<button class="approve" type="submit" disabled>' in page
