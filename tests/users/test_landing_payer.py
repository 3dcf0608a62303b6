"""The ePayment landing page with test users: the tester picks the user who pays (or types a phone number), the
payment records it, and `profile.sub` is stable per (sales unit, user); PUSH_MESSAGE payments to a test user's
phone are that user's; Express prefills the chosen test user's details. Magic amounts still refuse."""

from __future__ import annotations

import html
import re
import uuid
from urllib.parse import parse_qs, urlsplit

from browser_support import chromium, needs_chromium, new_page
from epayment_support import create_body, merchant

from sandbox.apis.epayment.rules import MAGIC_AMOUNTS

SCOPE = "name email phoneNumber"
FIXED = [{"type": "HOME_DELIVERY", "brand": "POSTEN", "isDefault": True,
          "options": [{"id": "home", "name": "Home", "amount": {"currency": "NOK", "value": 9900}, "isDefault": True}]}]


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def expected_sub(msn: str, phone: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{msn}/{phone}"))



async def landing(sandbox, url: str) -> str:
    async with sandbox.session.get(url) as resp:
        assert resp.status == 200
        return await resp.text()


async def approve(sandbox, token: str, **fields) -> tuple[int, str]:
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/approve",
                                    data={"token": token, **fields}, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def test_the_landing_page_offers_the_market_s_test_users_and_records_who_paid(sandbox):
    shop = merchant(sandbox)  # a Norwegian sales unit
    world = sandbox.runtime.world
    norwegians = world.market_users["NO"]
    created = await shop.create(create_body("payer-0001", profile={"scope": SCOPE}))
    page = await landing(sandbox, created.json["redirectUrl"])
    options = re.findall(r'<option value="(\d+)"', page)
    assert options == [u.phone_number for u in norwegians]
    assert html.escape(norwegians[0].name) in page and 'name="phoneNumber"' in page
    assert world.users_by_role["dk-user"].phone_number not in page  # another market's users are not offered
    chosen = world.users_by_role["no-several-addresses"]
    status, _ = await approve(sandbox, token_of(created.json["redirectUrl"]), payer=chosen.phone_number)
    assert status == 303
    got = (await shop.get("payer-0001")).json
    assert got["state"] == "AUTHORIZED" and got["profile"]["sub"] == expected_sub(shop.msn, chosen.phone_number)
    # the same user paying again at the same sales unit has the same sub; another user has another
    again = await shop.create(create_body("payer-0002", profile={"scope": SCOPE}))
    await approve(sandbox, token_of(again.json["redirectUrl"]), payer=chosen.phone_number)
    assert (await shop.get("payer-0002")).json["profile"]["sub"] == got["profile"]["sub"]
    other = await shop.create(create_body("payer-0003", profile={"scope": SCOPE}))
    typed = "4790000001"  # a typed number wins over the select, test user or not
    await approve(sandbox, token_of(other.json["redirectUrl"]), payer=chosen.phone_number, phoneNumber=typed)
    assert (await shop.get("payer-0003")).json["profile"]["sub"] == expected_sub(shop.msn, typed)


async def test_a_malformed_typed_number_is_a_clear_error_and_changes_nothing(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("payer-0004"))
    status, body = await approve(sandbox, token_of(created.json["redirectUrl"]), phoneNumber="+47 912")
    assert status == 400 and "MSISDN" in body
    assert (await shop.get("payer-0004")).json["state"] == "CREATED"


async def test_magic_amounts_still_refuse_whoever_pays(sandbox):
    shop = merchant(sandbox)
    amount = next(iter(MAGIC_AMOUNTS))
    created = await shop.create(create_body("payer-0005", amount))
    page = await landing(sandbox, created.json["redirectUrl"])
    assert "cannot be approved" in page and re.search(r"<button[^>]*disabled[^>]*>Approve", page)
    user = sandbox.runtime.world.users_by_role["no-user"]
    status, _ = await approve(sandbox, token_of(created.json["redirectUrl"]), payer=user.phone_number)
    assert status == 400
    assert (await shop.get("payer-0005")).json["state"] == "CREATED"


async def test_a_push_message_to_a_test_user_s_phone_is_that_user_s(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    await shop.create(create_body("payer-0006", flow="PUSH_MESSAGE", customer={"phoneNumber": user.phone_number},
                                  profile={"scope": SCOPE}))
    reply = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/payer-0006/approve", "test")
    assert reply.status == 200
    assert (await shop.get("payer-0006")).json["profile"]["sub"] == expected_sub(shop.msn, user.phone_number)


async def test_express_prefills_a_test_user_and_the_tester_can_pick_another(sandbox):
    shop = merchant(sandbox)
    world = sandbox.runtime.world
    created = await shop.create(create_body("payer-0007", 25000, shipping={"fixedOptions": FIXED},
                                            profile={"scope": "name address email phoneNumber"}))
    url = created.json["redirectUrl"]
    page = await landing(sandbox, url)
    prefilled = re.search(r'name="mobileNumber" value="(\d+)"', page).group(1)
    assert world.user(prefilled) is not None and world.user(prefilled).addresses  # a test user with an address
    chosen = world.users_by_role["no-several-addresses"]
    page = await landing(sandbox, f"{url}&pick=1&payer={chosen.phone_number}&firstName=Someone")
    assert f'name="mobileNumber" value="{chosen.phone_number}"' in page
    assert f'name="firstName" value="{html.escape(chosen.given_name)}"' in page  # the picked user's, not typed
    line1, _, unit = chosen.addresses[0]["street_address"].partition("\n")
    assert f'name="addressLine1" value="{html.escape(line1)}"' in page and html.escape(unit) in page
    status, _ = await approve(sandbox, token_of(url), **{
        "firstName": chosen.given_name, "lastName": chosen.family_name, "email": chosen.email,
        "mobileNumber": chosen.phone_number, "addressLine1": line1, "addressLine2": unit,
        "postCode": chosen.addresses[0]["postal_code"], "city": chosen.addresses[0]["region"]})
    assert status == 303
    got = (await shop.get("payer-0007")).json
    assert got["userDetails"]["mobileNumber"] == chosen.phone_number
    assert got["userDetails"]["firstName"] == chosen.given_name
    assert got["profile"]["sub"] == expected_sub(shop.msn, chosen.phone_number)


async def test_who_paid_survives_a_snapshot_and_restore(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("payer-0008", profile={"scope": SCOPE}))
    typed = "4790000002"
    status, _ = await approve(sandbox, token_of(created.json["redirectUrl"]), phoneNumber=typed)
    assert status == 303
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "payer"})).status == 200
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status in (200, 204)
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "payer"})).status == 200
    got = (await shop.get("payer-0008")).json
    assert got["state"] == "AUTHORIZED" and got["profile"]["sub"] == expected_sub(shop.msn, typed)
    assert sandbox.runtime.world.users_by_role["no-user"]  # the users came back with the world


@needs_chromium
async def test_a_tester_picks_the_payer_in_chromium(sandbox):
    shop = merchant(sandbox)
    chosen = sandbox.runtime.world.users_by_role["no-email-unverified"]
    created = await shop.create(create_body("payer-0009", profile={"scope": SCOPE}))
    async with chromium() as browser:
        page, errors = await new_page(browser)
        # the returnUrl's shop does not exist: the browser is answered for it, so the redirect completes
        await page.route("https://shop.example.com/**", lambda route: route.fulfill(status=200, body="shop"))
        await page.goto(created.json["redirectUrl"])
        await page.locator("select[name=payer]").select_option(chosen.phone_number)
        await page.locator("button.approve").click()
        await page.wait_for_url("https://shop.example.com/**")
        assert errors == []
    got = (await shop.get("payer-0009")).json
    assert got["state"] == "AUTHORIZED" and got["profile"]["sub"] == expected_sub(shop.msn, chosen.phone_number)


async def test_the_control_plane_approves_as_a_chosen_user(sandbox):
    shop = merchant(sandbox)
    world = sandbox.runtime.world
    chosen = world.users_by_role["no-several-addresses"]
    await shop.create(create_body("payer-0010", profile={"scope": SCOPE}))
    path = f"/_sandbox/payments/{shop.msn}/payer-0010/approve"
    bad = await sandbox.request("POST", path, "test", json_body={"phoneNumber": 4790000001})
    assert bad.status == 400 and bad.headers["Content-Type"].startswith("application/problem+json")
    bad = await sandbox.request("POST", path, "test", json_body={"phoneNumber": "+47 123"})
    assert bad.status == 400 and "MSISDN" in bad.json["detail"]
    reply = await sandbox.request("POST", path, "test", json_body={"phoneNumber": chosen.phone_number})
    assert reply.status == 200, reply.text
    assert reply.json["profile"]["sub"] == expected_sub(shop.msn, chosen.phone_number)
    # Express: the chosen user's details; a user without an address cannot take delivery
    await shop.create(create_body("payer-0011", 25000, shipping={"fixedOptions": FIXED},
                                  profile={"scope": "name address email phoneNumber"}))
    path = f"/_sandbox/payments/{shop.msn}/payer-0011/approve"
    nowhere = world.users_by_role["no-no-address"]
    refused = await sandbox.request("POST", path, "test", json_body={"phoneNumber": nowhere.phone_number})
    assert refused.status == 409 and "no address" in refused.json["detail"]
    reply = await sandbox.request("POST", path, "test", json_body={"phoneNumber": chosen.phone_number})
    assert reply.status == 200, reply.text
    got = (await shop.get("payer-0011")).json
    assert got["userDetails"]["mobileNumber"] == chosen.phone_number
    assert got["userDetails"]["lastName"] == chosen.family_name
    assert got["shippingDetails"]["address"]["postCode"] == chosen.addresses[0]["postal_code"]
