"""A subscription session makes a Recurring agreement when the user subscribes on the hosted page (through the
service registry: Checkout never imports the Recurring package), and follows it: activated is PaymentSuccessful,
a merchant's stop shows in subscriptionDetails."""

from __future__ import annotations

from checkout_support import checkout_call, new_reference, page_token, post_page

from sandbox.apis.checkout.rules import spec


def recurring_unit(sandbox) -> tuple[dict, str]:
    """Merchant test keys of a Norwegian sales unit whose configuration allows Recurring ("newborn")."""
    msn = sandbox.msn_role("newborn")
    return sandbox.key("merchant", "test", owner=msn), msn


def subscription_body(reference: str, with_transaction: bool = True) -> dict:
    body = {"type": "SUBSCRIPTION", "reference": reference,
            "merchantInfo": {"callbackUrl": "https://shop.example.com/cb", "returnUrl": "https://shop.example.com/r",
                             "callbackAuthorizationToken": "cb-sub"},
            "subscription": {"productName": "Socks every month", "amount": {"currency": "NOK", "value": 9900},
                             "interval": {"unit": "MONTH", "count": 1},
                             "merchantAgreementUrl": "https://shop.example.com/my-subscription"}}
    if with_transaction:
        body["transaction"] = {"amount": {"currency": "NOK", "value": 19900}, "paymentDescription": "First box"}
    return body


async def test_subscribing_makes_an_active_agreement_that_the_session_follows(sandbox):
    keys, msn = recurring_unit(sandbox)
    reference = new_reference()
    created = await checkout_call(sandbox, "POST", "", "test", keys, msn, subscription_body(reference))
    assert created.status == 200, created.text
    phone = sandbox.runtime.world.market_users["NO"][0].phone_number
    paid = await post_page(sandbox, "test", "approve", {"token": page_token(created.json["checkoutFrontendUrl"]),
                                                         "payer": phone})
    assert paid.status == 303
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert spec().errors("SessionResponse", session) == []
    assert session["sessionState"] == "PaymentSuccessful"
    details = session["subscriptionDetails"]
    assert details["state"] == "ACTIVE"
    agreement = await sandbox.request("GET", f"/recurring/v3/agreements/{details['agreementId']}", "test",
                                      keyset=keys, msn=msn)
    assert agreement.status == 200, agreement.text
    assert agreement.json["status"] == "ACTIVE" and agreement.json["pricing"]["amount"] == 9900
    assert agreement.json["externalId"] == reference
    charges = await sandbox.request("GET", f"/recurring/v3/agreements/{details['agreementId']}/charges", "test",
                                    keyset=keys, msn=msn)
    assert [c["status"] for c in charges.json] == ["RESERVED"]  # the transaction: the initial charge
    stopped = await sandbox.request("PATCH", f"/recurring/v3/agreements/{details['agreementId']}", "test",
                                    keyset=keys, msn=msn, json_body={"status": "STOPPED"},
                                    headers={"Idempotency-Key": "stop-1"})
    assert stopped.status == 204, stopped.text
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert session["subscriptionDetails"]["state"] == "STOPPED" and session["sessionState"] == "PaymentSuccessful"


async def test_a_subscription_without_a_transaction_and_a_cancel(sandbox):
    keys, msn = recurring_unit(sandbox)
    reference = new_reference()
    created = await checkout_call(sandbox, "POST", "", "test", keys, msn, subscription_body(reference, False))
    assert created.status == 200, created.text
    token = page_token(created.json["checkoutFrontendUrl"])
    assert (await post_page(sandbox, "test", "cancel", {"token": token})).status == 303
    session = (await checkout_call(sandbox, "GET", f"/{reference}", "test", keys, msn)).json
    assert session["sessionState"] == "PaymentTerminated" and "subscriptionDetails" not in session


async def test_a_unit_without_recurring_cannot_subscribe(sandbox):
    msn = sandbox.msn_role("premium-shop-1")  # its configuration does not allow Recurring
    keys = sandbox.key("merchant", "test", owner=msn)
    created = await checkout_call(sandbox, "POST", "", "test", keys, msn, subscription_body(new_reference()))
    assert created.status == 200
    paid = await post_page(sandbox, "test", "approve", {"token": page_token(created.json["checkoutFrontendUrl"])})
    assert paid.status == 403  # the Recurring API's own refusal, through the service
