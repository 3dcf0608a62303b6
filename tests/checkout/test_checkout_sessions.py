"""Checkout v3 sessions over real HTTP: create, get, PATCH, expire, 409 on a duplicate, the problem format, both
environments, with the keys as raw headers (and the SDK's empty Authorization and Vipps-System-* values)."""

from __future__ import annotations

import pytest
from checkout_support import (
    BASE,
    FIXED_OPTIONS,
    FRONTEND,
    checkout_call,
    new_reference,
    page_token,
    post_page,
    raw_headers,
    session_body,
)

from sandbox.apis.checkout.rules import spec

ENVS = ["test", "production"]


def merchant(sandbox, env: str) -> tuple[dict, str]:
    msn = sandbox.msn_role("premium-shop-1")
    return sandbox.key("merchant", env, owner=msn), msn


def assert_checkout_problem(reply, status: int, code: str | None = None) -> dict:
    assert reply.status == status, reply.text
    body = reply.json
    assert spec().errors("CheckoutProblemDetails", body) == [], body
    assert isinstance(body["errors"], dict)
    if code is not None:
        assert body["errorCode"] == code, body
    return body


@pytest.mark.parametrize("env", ENVS)
async def test_create_get_and_duplicate(sandbox, env):
    keys, msn = merchant(sandbox, env)
    reference = new_reference()
    reply = await checkout_call(sandbox, "POST", "", env, keys, msn, session_body(reference))
    assert reply.status == 200, reply.text
    created = reply.json
    assert FRONTEND.match(created["checkoutFrontendUrl"]), created
    assert created["pollingUrl"].endswith(f"{BASE}/{reference}")
    got = await checkout_call(sandbox, "GET", f"/{reference}", env, keys, msn)
    assert got.status == 200
    assert got.json["sessionState"] == "SessionCreated"
    assert got.json["reference"] == reference and got.json["merchantSerialNumber"] == msn
    assert "paymentDetails" not in got.json  # only once the payment was initiated
    again = await checkout_call(sandbox, "POST", "", env, keys, msn, session_body(reference))
    body = assert_checkout_problem(again, 409, "DuplicateReference")
    assert "reference" in body["errors"]


async def test_the_environments_share_nothing(sandbox):
    keys, msn = merchant(sandbox, "test")
    reference = new_reference()
    assert (await checkout_call(sandbox, "POST", "", "test", keys, msn, session_body(reference))).status == 200
    prod_keys, _ = merchant(sandbox, "production")
    assert_checkout_problem(await checkout_call(sandbox, "GET", f"/{reference}", "production", prod_keys, msn), 404,
                            "SessionNotFound")


async def test_validation_errors_name_the_fields(sandbox):
    keys, msn = merchant(sandbox, "test")
    body = session_body()
    del body["merchantInfo"]["returnUrl"]
    body["transaction"]["paymentDescription"] = "x"
    problem = assert_checkout_problem(await checkout_call(sandbox, "POST", "", "test", keys, msn, body), 400,
                                      "ValidationError")
    assert problem["title"] == "One or more validation errors occurred."
    assert any("returnUrl" in name for name in problem["errors"]), problem
    not_json = await sandbox.request("POST", BASE, "test", headers={**raw_headers(keys, msn),
                                                                     "Content-Type": "application/json"}, data="{")
    assert_checkout_problem(not_json, 400)
    bad_reference = session_body("has spaces in it")
    assert_checkout_problem(await checkout_call(sandbox, "POST", "", "test", keys, msn, bad_reference), 400,
                            "ValidationError")


async def test_a_missing_reference_or_a_subscription_is_a_clear_400(sandbox):
    keys, msn = merchant(sandbox, "test")
    body = session_body()
    del body["reference"]
    assert_checkout_problem(await checkout_call(sandbox, "POST", "", "test", keys, msn, body), 400)
    body["transaction"]["reference"] = new_reference()  # the deprecated place is still read
    assert (await checkout_call(sandbox, "POST", "", "test", keys, msn, body)).status == 200


async def test_patch_then_pay_then_no_more_patches(sandbox):
    keys, msn = merchant(sandbox, "test")
    reference = new_reference()
    created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, session_body(reference))).json
    patch = {"transaction": {"amount": {"currency": "NOK", "value": 25000}, "paymentDescription": "Three pairs"},
             "logisticOptions": FIXED_OPTIONS}
    reply = await checkout_call(sandbox, "PATCH", f"/{reference}", "test", keys, msn, patch)
    assert reply.status == 200, reply.text
    paid = await post_page(sandbox, "test", "approve", {"token": page_token(created["checkoutFrontendUrl"]),
                                                         "shippingOption": "pickup-home"})
    assert paid.status == 303 and paid.headers["Location"] == "https://shop.example.com/return"
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert session["sessionState"] == "PaymentSuccessful"
    assert session["paymentDetails"]["amount"]["value"] == 25000 + 9900
    assert session["shippingDetails"]["shippingMethodId"] == "pickup-home"
    again = await checkout_call(sandbox, "PATCH", f"/{reference}", "test", keys, msn, patch)
    assert_checkout_problem(again, 400, "SessionNotUpdatable")
    assert_checkout_problem(await checkout_call(sandbox, "PATCH", "/chk-unknown-0001", "test", keys, msn, patch), 404)


async def test_expire(sandbox):
    keys, msn = merchant(sandbox, "production")
    reference = new_reference()
    await checkout_call(sandbox, "POST", "", "production", keys, msn, session_body(reference))
    reply = await checkout_call(sandbox, "POST", f"/{reference}/expire", "production", keys, msn)
    assert reply.status == 200, reply.text
    assert (await checkout_call(sandbox, "GET", f"/{reference}", "production", keys, msn)).json["sessionState"] \
        == "SessionExpired"
    assert (await checkout_call(sandbox, "POST", f"/{reference}/expire", "production", keys, msn)).status == 200
    assert_checkout_problem(await checkout_call(sandbox, "POST", "/chk-unknown-0001/expire", "production", keys,
                                                msn), 404)


async def test_an_unpaid_session_expires_on_the_virtual_clock(sandbox):
    keys, msn = merchant(sandbox, "test")
    reference = new_reference()
    await checkout_call(sandbox, "POST", "", "test", keys, msn, session_body(reference))
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3599})
    assert (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json["sessionState"] \
        == "SessionCreated"
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 2})
    assert (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json["sessionState"] \
        == "SessionExpired"


async def test_credentials_are_the_raw_headers(sandbox):
    keys, msn = merchant(sandbox, "test")
    wrong = dict(keys, client_secret="not-the-secret-at-all")
    reply = await checkout_call(sandbox, "POST", "", "test", wrong, msn, session_body())
    assert_checkout_problem(reply, 401)
    assert reply.headers["Vipps-Sandbox-Rule"] == "client-secret-wrong"
    assert "not-the-secret" not in reply.text
    no_sub = dict(keys, subscription_key_primary=None)
    reply = await checkout_call(sandbox, "POST", "", "test", no_sub, msn, session_body())
    assert reply.status == 401 and reply.headers["Vipps-Sandbox-Rule"] == "subscription-key-missing"
    no_id = raw_headers(keys, msn)
    del no_id["client_id"]
    reply = await sandbox.request("POST", BASE, "test", headers=no_id, json_body=session_body())
    assert_checkout_problem(reply, 401)
    # A real bearer token is not what Checkout takes: without the raw client_secret it is refused.
    bearer = await sandbox.auth_headers(keys, msn, env="test")
    reply = await sandbox.request("POST", BASE, "test", headers=bearer, json_body=session_body())
    assert reply.status == 401 and reply.headers["Vipps-Sandbox-Rule"] == "credentials-missing"
    # Without the SDK's empty extras, and without the MSN (merchant keys act for their own unit), it works too.
    reply = await checkout_call(sandbox, "POST", "", "test", keys, None, session_body(), sdk_extras=False)
    assert reply.status == 200, reply.text


async def test_partner_keys_in_production_with_the_msn(sandbox):
    partner = sandbox.partner_role("premium")
    keys = sandbox.key("partner", "production", owner=partner)
    msn = sandbox.msn_role("premium-shop-1")
    reply = await checkout_call(sandbox, "POST", "", "production", keys, msn, session_body())
    assert reply.status == 200, reply.text
    assert reply.headers["Vipps-Sandbox-Decision"] == "allow"
    missing = await checkout_call(sandbox, "POST", "", "production", keys, None, session_body())
    assert missing.status == 403 and missing.headers["Vipps-Sandbox-Rule"] == "partner-keys-need-msn"
    assert_checkout_problem(missing, 403)
    in_test = await checkout_call(sandbox, "POST", "", "test", keys, msn, session_body())
    assert in_test.status == 401


@pytest.mark.parametrize("kind,rule", [("management", "management-keys-never-act-on-behalf"),
                                       ("accounting", "accounting-keys-report-only")])
async def test_management_and_accounting_keys_are_refused_with_reasons(sandbox, kind, rule):
    owner = sandbox.partner_role("basic" if kind == "management" else "accountant")
    keys = sandbox.key(kind, "production", owner=owner)
    reply = await checkout_call(sandbox, "POST", "", "production", keys, sandbox.msn_role("premium-shop-1"),
                                session_body())
    assert reply.status == 403, reply.text
    assert reply.headers["Vipps-Sandbox-Rule"] == rule
    assert "Checkout" in reply.headers["Vipps-Sandbox-Reason"] or "checkout" in reply.headers["Vipps-Sandbox-Reason"]
    assert_checkout_problem(reply, 403)


async def test_sessions_survive_a_snapshot_and_restore(sandbox):
    keys, msn = merchant(sandbox, "test")
    reference = new_reference()
    created = (await checkout_call(sandbox, "POST", "", "test", keys, msn, session_body(reference))).json
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "chk"})
    assert saved.status == 200, saved.text
    await sandbox.request("POST", "/_sandbox/reset", "test")
    assert (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).status == 404
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "chk"})
    assert restored.status == 200, restored.text
    assert (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json["sessionState"] \
        == "SessionCreated"
    paid = await post_page(sandbox, "test", "approve", {"token": page_token(created["checkoutFrontendUrl"])})
    assert paid.status == 303
