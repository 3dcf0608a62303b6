"""GET /vipps-userinfo-api/userinfo/{sub}: the profile a user shared when approving a payment or an agreement that
asked for it, read with a merchant token (test) or partner keys and the MSN (production); bound to its sales unit;
"[Expired]" after 168 hours on the virtual clock; the subscription-key switch. Every success body passes the test
client's check against userinfo-2.0.3.yaml (sandbox/apis/userinfo/response_schemas.py)."""

from __future__ import annotations

from epayment_support import merchant, partner
from recurring_support import draft_body
from recurring_support import merchant as recurring_merchant
from recurring_support import partner as recurring_partner
from userinfo_support import WEEK, advance, assert_error, read, shared_payment

from sandbox.apis.userinfo import response_schemas
from sandbox.core.claims import EMPTY_ADDRESS, EXPIRED, claims
from sandbox.core.model import Env

SCOPE = "name email address phoneNumber birthDate"


async def test_a_payment_s_sub_gives_the_consented_claims_with_merchant_keys_in_test(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    sub = await shared_payment(shop, "userinfo-0001", user.phone_number, SCOPE)
    reply = await read(shop, sub)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["sub"] == sub and len(body["sid"]) == 16
    want = claims(user, SCOPE.split(), Env.TEST)
    assert {k: v for k, v in body.items() if k not in ("sub", "sid")} == want
    assert body["name"] == user.name and body["email"] == user.email and body["birthdate"] == user.birthdate
    assert body["address"]["default"] is True and len(body["other_addresses"]) == 2
    assert "nin" not in body  # not asked for: not shared
    assert (await read(shop, sub, drop=("Ocp-Apim-Subscription-Key",))).json == body  # with or without the key


async def test_partner_keys_read_it_in_production_with_the_msn_and_not_without(sandbox):
    shop = partner(sandbox)
    user = sandbox.runtime.world.users_by_role["dk-user"]
    sub = await shared_payment(shop, "userinfo-0002", user.phone_number, "name birthDate")
    reply = await read(shop, sub)
    assert reply.status == 200, reply.text
    assert reply.json["birthdate"] == user.birthdate and reply.json["family_name"] == user.family_name
    refused = await read(shop, sub, drop=("Merchant-Serial-Number",))
    assert_error(refused, 403, "partner-keys-need-msn")


async def test_a_recurring_agreement_s_sub_and_userinfo_url_resolve(sandbox):
    for caller in (recurring_merchant(sandbox), recurring_partner(sandbox)):
        user = sandbox.runtime.world.users_by_role["no-user"]
        agreement_id = await caller.active(draft_body(phoneNumber=user.phone_number, scope="name email"))
        agreement = (await caller.get(agreement_id)).json
        sub = agreement["sub"]
        assert agreement["userinfoUrl"].endswith(f"/vipps-userinfo-api/userinfo/{sub}")
        reply = await read(caller, sub)
        assert reply.status == 200, reply.text
        assert reply.json["email"] == user.email and reply.json["email_verified"] is user.email_verified
        assert "address" not in reply.json


async def test_the_same_user_has_one_sub_per_sales_unit_and_another_unit_s_keys_do_not_resolve_it(sandbox):
    user = sandbox.runtime.world.users_by_role["no-user"]
    shop, other = merchant(sandbox), merchant(sandbox, role="premium-shop-2")
    sub = await shared_payment(shop, "userinfo-0003", user.phone_number, "name")
    other_sub = await shared_payment(other, "userinfo-0004", user.phone_number, "name")
    assert sub != other_sub  # one sub per (sales unit, user)
    assert (await read(other, other_sub)).status == 200
    foreign = assert_error(await read(other, sub), 404, "userinfo-sub-of-another-sales-unit")
    assert "premium" not in foreign["detail"] and shop.msn not in foreign["detail"]  # the body says nothing more
    unknown = assert_error(await read(other, "c06c4afe-d9e1-4c5d-939a-177d752a0944"), 404, "userinfo-sub-unknown")
    assert foreign["detail"] == unknown["detail"] and foreign["title"] == unknown["title"]
    # the same sales unit in the other environment: nothing shared there
    prod = partner(sandbox)
    assert_error(await read(prod, sub), 404, "userinfo-sub-of-another-sales-unit")


async def test_after_168_hours_every_value_reads_expired(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    sub = await shared_payment(shop, "userinfo-0005", user.phone_number, SCOPE)
    fresh = (await read(shop, sub)).json
    await advance(sandbox, WEEK - 60)
    shop.forget_token()
    assert (await read(shop, sub)).json == fresh  # a minute before the week is over: still there
    await advance(sandbox, 60)
    shop.forget_token()
    reply = await read(shop, sub)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["sub"] == sub and body["sid"] == fresh["sid"]
    assert body["name"] == body["email"] == body["email_verified"] == body["birthdate"] == EXPIRED
    assert set(body["address"]) == set(fresh["address"]) and set(body["address"].values()) == {EXPIRED}
    assert len(body["other_addresses"]) == 2 and body["other_addresses"][0]["street_address"] == EXPIRED
    # a new payment asking again renews the 168 hours for what it asks
    await shared_payment(shop, "userinfo-0006", user.phone_number, "email")
    renewed = (await read(shop, sub)).json
    assert renewed["email"] == user.email and renewed["name"] == EXPIRED


async def test_a_user_with_no_address_gets_an_object_of_empty_strings(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-no-address"]
    sub = await shared_payment(shop, "userinfo-0007", user.phone_number, "address")
    body = (await read(shop, sub)).json
    assert body["address"] == EMPTY_ADDRESS and set(body["address"].values()) == {""}
    assert body["other_addresses"] == []


async def test_management_and_accounting_keys_are_refused_with_reasons(sandbox):
    shop = partner(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    sub = await shared_payment(shop, "userinfo-0008", user.phone_number, "name")
    for kind, role, rule in (("management", "basic", "management-keys-never-act-on-behalf"),
                             ("accounting", "accountant", "accounting-keys-report-only")):
        keyset = sandbox.key(kind, "production", owner=sandbox.partner_role(role))
        headers = await sandbox.auth_headers(keyset, shop.msn, "production")
        reply = await sandbox.request("GET", f"/vipps-userinfo-api/userinfo/{sub}", "production", headers=headers)
        assert_error(reply, 403, rule)
        assert reply.headers["Vipps-Sandbox-Reason"]


async def test_a_missing_or_bad_token_is_refused(sandbox):
    reply = await sandbox.request("GET", "/vipps-userinfo-api/userinfo/abc", "test")
    assert reply.status == 401 and reply.headers["Vipps-Sandbox-Rule"] == "token-missing"
    shop = merchant(sandbox)
    reply = await read(shop, "abc", headers={"Ocp-Apim-Subscription-Key": "0f14ebcab0ec4b29ae0cb90d91b4a84a"})
    assert reply.status == 401 and reply.headers["Vipps-Sandbox-Rule"] == "subscription-key-invalid"


def test_the_response_check_catches_what_the_spec_does_not_allow():
    path = "/vipps-userinfo-api/userinfo/c06c4afe-d9e1-4c5d-939a-177d752a0944"
    ok = '{"sub": "s", "phone_number": "4791234567", "nin": "1108460330", "email_verified": "[Expired]"}'
    assert response_schemas.violations("GET", path, 200, ok) == []
    assert response_schemas.violations("GET", path, 200, '{"email_verified": "yes"}')
    assert response_schemas.violations("GET", path, 200, '{"phone_number": "+47 912"}')
    assert response_schemas.violations("GET", path, 200, '{"address": {"default": 1}}')
