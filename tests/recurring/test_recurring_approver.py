"""The Recurring confirmation page with test users: the tester picks who approves (a test user of the sales unit's
market, or a typed phone number), exactly as on ePayment's landing page (the same shared picker,
sandbox/gateway/user_picker.py); the approving user decides the agreement's `sub`, stable per (sales unit,
user). Magic amounts still make the initial charge fail. Over HTTP and in a real headless Chromium."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

from browser_support import chromium, needs_chromium, new_page
from recurring_support import draft_body, merchant, recurring_unit

from sandbox.apis.recurring.rules import MAGIC_AMOUNTS

SCOPE = "name phoneNumber"


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def expected_sub(msn: str, phone: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{msn}/{phone}"))


async def page_of(sandbox, url: str) -> str:
    async with sandbox.session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


async def approve(sandbox, token: str, **fields) -> tuple[int, str]:
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/recurring/confirm/approve",
                                    data={"token": token, **fields}, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_the_page_offers_the_market_s_test_users_and_the_approver_decides_the_sub(sandbox):
    shop = merchant(sandbox)
    world = sandbox.runtime.world
    norwegians = world.market_users["NO"]
    drafted = await shop.draft(draft_body(scope=SCOPE))
    page = await page_of(sandbox, drafted.json["vippsConfirmationUrl"])
    assert re.findall(r'<option value="(\d+)"', page) == [u.phone_number for u in norwegians]
    assert html.escape(norwegians[0].name) in page and 'name="phoneNumber"' in page and "data-approver" in page
    assert world.users_by_role["dk-user"].phone_number not in page  # another market's users are not offered
    chosen = world.users_by_role["no-several-addresses"]
    status, _ = await approve(sandbox, token_of(drafted.json["vippsConfirmationUrl"]), payer=chosen.phone_number)
    assert status == 303
    got = (await shop.get(drafted.json["agreementId"])).json
    assert got["status"] == "ACTIVE" and got["sub"] == expected_sub(shop.msn, chosen.phone_number)
    assert got["userinfoUrl"].endswith("/vipps-userinfo-api/userinfo/" + got["sub"])
    # the same user at the same sales unit has the same sub; a typed number wins over the select
    again = await shop.draft(draft_body(scope=SCOPE))
    await approve(sandbox, token_of(again.json["vippsConfirmationUrl"]), payer=chosen.phone_number)
    assert (await shop.get(again.json["agreementId"])).json["sub"] == got["sub"]
    typed = "4790000001"
    other = await shop.draft(draft_body(scope=SCOPE))
    await approve(sandbox, token_of(other.json["vippsConfirmationUrl"]), payer=chosen.phone_number, phoneNumber=typed)
    assert (await shop.get(other.json["agreementId"])).json["sub"] == expected_sub(shop.msn, typed)
    assert sandbox.runtime.world.user(typed) is None and typed != chosen.phone_number


async def test_a_danish_unit_offers_danish_users(sandbox):
    shop = merchant(sandbox, msn=recurring_unit(sandbox, "DK"))
    drafted = await shop.draft(draft_body(currency="DKK", scope=SCOPE))
    assert drafted.status == 201, drafted.text
    page = await page_of(sandbox, drafted.json["vippsConfirmationUrl"])
    danes = sandbox.runtime.world.market_users["DK"]
    assert danes and re.findall(r'<option value="(\d+)"', page) == [u.phone_number for u in danes]
    status, _ = await approve(sandbox, token_of(drafted.json["vippsConfirmationUrl"]), payer=danes[-1].phone_number)
    assert status == 303
    assert (await shop.get(drafted.json["agreementId"])).json["sub"] == expected_sub(shop.msn, danes[-1].phone_number)


async def test_the_drafted_phone_number_is_preselected_or_prefilled(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    drafted = await shop.draft(draft_body(phoneNumber=user.phone_number))
    page = await page_of(sandbox, drafted.json["vippsConfirmationUrl"])
    assert f'<option value="{user.phone_number}" data-role="no-several-addresses" selected>' in page
    assert 'name="phoneNumber" value=""' in page
    stranger = await shop.draft(draft_body(phoneNumber="4790000009"))
    page = await page_of(sandbox, stranger.json["vippsConfirmationUrl"])
    assert 'name="phoneNumber" value="4790000009"' in page
    # the draft's number only prefills ("used to simplify the following interaction"): another user may approve
    other = sandbox.runtime.world.users_by_role["no-user"]
    status, _ = await approve(sandbox, token_of(drafted.json["vippsConfirmationUrl"]), payer=other.phone_number)
    assert status == 303 and (await shop.get(drafted.json["agreementId"])).json["status"] == "ACTIVE"


async def test_a_malformed_typed_number_is_a_clear_error_and_changes_nothing(sandbox):
    shop = merchant(sandbox)
    drafted = await shop.draft(draft_body())
    status, body = await approve(sandbox, token_of(drafted.json["vippsConfirmationUrl"]), phoneNumber="+47 912")
    assert status == 400 and "MSISDN" in body
    assert (await shop.get(drafted.json["agreementId"])).json["status"] == "PENDING"


async def test_magic_amounts_still_fail_the_initial_charge_whoever_approves(sandbox):
    shop = merchant(sandbox)
    amount = next(iter(MAGIC_AMOUNTS))
    drafted = await shop.draft(draft_body(initialCharge={"amount": amount, "description": "First",
                                                         "transactionType": "DIRECT_CAPTURE"}))
    page = await page_of(sandbox, drafted.json["vippsConfirmationUrl"])
    assert "The initial charge will fail" in page and f'data-failure-reason="{MAGIC_AMOUNTS[amount][0]}"' in page
    user = sandbox.runtime.world.users_by_role["no-user"]
    status, _ = await approve(sandbox, token_of(drafted.json["vippsConfirmationUrl"]), payer=user.phone_number)
    assert status == 303
    assert (await shop.get(drafted.json["agreementId"])).json["status"] == "EXPIRED"
    charge = (await shop.get_charge(drafted.json["agreementId"], drafted.json["chargeId"])).json
    assert charge["status"] == "FAILED" and charge["failureReason"] == MAGIC_AMOUNTS[amount][0]


async def test_the_control_plane_approves_as_a_chosen_user(sandbox):
    shop = merchant(sandbox)
    chosen = sandbox.runtime.world.users_by_role["no-several-addresses"]
    agreement_id = (await shop.draft(draft_body(scope=SCOPE))).json["agreementId"]
    path = f"/agreements/{agreement_id}/approve"
    bad = await shop.control(path, {"phoneNumber": 4790000001})
    assert bad.status == 400 and bad.headers["Content-Type"].startswith("application/problem+json")
    bad = await shop.control(path, {"phoneNumber": "+47 123"})
    assert bad.status == 400 and "MSISDN" in bad.json["detail"]
    reply = await shop.control(path, {"phoneNumber": chosen.phone_number})
    assert reply.status == 200, reply.text
    assert reply.json["sub"] == expected_sub(shop.msn, chosen.phone_number)


@needs_chromium
async def test_a_tester_picks_the_approver_in_chromium(sandbox):
    shop = merchant(sandbox)
    chosen = sandbox.runtime.world.users_by_role["no-email-unverified"]
    drafted = await shop.draft(draft_body(scope=SCOPE, pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000,
                                                                "currency": "NOK"}))
    async with chromium() as browser:
        page, errors = await new_page(browser)
        # the merchantRedirectUrl's shop does not exist: the browser is answered for it, so the redirect completes
        await page.route("https://shop.example.com/**", lambda route: route.fulfill(status=200, body="shop"))
        await page.goto(drafted.json["vippsConfirmationUrl"])
        assert await page.locator("[data-sandbox-marker]").count() == 1
        await page.locator("select[name=payer]").select_option(chosen.phone_number)
        await page.locator("input[name=maxAmount]").fill("25000")
        await page.locator("button.approve").click()
        await page.wait_for_url("https://shop.example.com/**")
        assert errors == []
    got = (await shop.get(drafted.json["agreementId"])).json
    assert got["status"] == "ACTIVE" and got["sub"] == expected_sub(shop.msn, chosen.phone_number)
    assert got["pricing"]["maxAmount"] == 25000
