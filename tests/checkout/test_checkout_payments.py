"""A paid session is an ePayment payment under the same reference: captured, cancelled and refunded through the
ePayment API, and the session follows it. The payment-completed callback reaches the merchant with its token,
retried on non-2xx at most 3 times on the virtual clock."""

from __future__ import annotations

import asyncio

from checkout_support import (
    FIXED_OPTIONS,
    Receiver,
    checkout_call,
    new_reference,
    page_token,
    post_page,
    session_body,
)

from sandbox.apis.checkout.rules import spec
from sandbox.apis.epayment.rules import MAGIC_AMOUNTS


def merchant(sandbox, env: str = "test") -> tuple[dict, str]:
    msn = sandbox.msn_role("premium-shop-1")
    return sandbox.key("merchant", env, owner=msn), msn


async def create(sandbox, env: str, keys: dict, msn: str, **body) -> tuple[str, str]:
    reference = new_reference()
    reply = await checkout_call(sandbox, "POST", "", env, keys, msn, session_body(reference, **body))
    assert reply.status == 200, reply.text
    return reference, page_token(reply.json["checkoutFrontendUrl"])


async def session_of(sandbox, env, keys, msn, reference) -> dict:
    reply = await checkout_call(sandbox, "GET", f"/{reference}", env, keys, msn)
    assert reply.status == 200, reply.text
    return reply.json


async def wait_for(predicate, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_capture_and_refund_go_through_epayment(sandbox):
    keys, msn = merchant(sandbox)
    phone = sandbox.runtime.world.market_users["NO"][0].phone_number
    reference, token = await create(sandbox, "test", keys, msn, logistics={"fixedOptions": FIXED_OPTIONS})
    epay = f"/epayment/v1/payments/{reference}"
    before = await sandbox.request("GET", epay, "test", keyset=keys, msn=msn)
    assert before.status == 404  # no payment until the user pays (SessionCreated)
    paid = await post_page(sandbox, "test", "approve", {"token": token, "payer": phone,
                                                         "shippingOption": "posten-mailbox"})
    assert paid.status == 303
    payment = await sandbox.request("GET", epay, "test", keyset=keys, msn=msn)
    assert payment.json["state"] == "AUTHORIZED"
    assert payment.json["amount"]["value"] == 10000 + 4900
    session = await session_of(sandbox, "test", keys, msn, reference)
    assert session["sessionState"] == "PaymentSuccessful"
    assert session["paymentDetails"]["state"] == "AUTHORIZED"
    assert session["shippingDetails"]["phoneNumber"] == phone
    assert session["billingDetails"]["firstName"]
    capture = await sandbox.request("POST", f"{epay}/capture", "test", keyset=keys, msn=msn,
                                    headers={"Idempotency-Key": "cap-1"},
                                    json_body={"modificationAmount": {"currency": "NOK", "value": 14900}})
    assert capture.status == 200, capture.text
    refund = await sandbox.request("POST", f"{epay}/refund", "test", keyset=keys, msn=msn,
                                   headers={"Idempotency-Key": "ref-1"},
                                   json_body={"modificationAmount": {"currency": "NOK", "value": 4900}})
    assert refund.status == 200, refund.text
    aggregate = (await session_of(sandbox, "test", keys, msn, reference))["paymentDetails"]["aggregate"]
    assert aggregate["capturedAmount"]["value"] == 14900 and aggregate["refundedAmount"]["value"] == 4900


async def test_cancel_on_the_page_terminates_the_session(sandbox):
    keys, msn = merchant(sandbox, "production")
    reference, token = await create(sandbox, "production", keys, msn)
    response = await post_page(sandbox, "production", "cancel", {"token": token})
    assert response.status == 303
    assert (await session_of(sandbox, "production", keys, msn, reference))["sessionState"] == "PaymentTerminated"
    again = await post_page(sandbox, "production", "approve", {"token": token})
    assert again.status == 409  # a finished session cannot be paid


async def test_an_unpaid_payment_that_expires_terminates_the_session(sandbox):
    """A test-environment magic amount makes the approval fail: the payment stays CREATED (PaymentInitiated) and
    then expires in ePayment; the session follows."""
    keys, msn = merchant(sandbox)
    magic = next(iter(MAGIC_AMOUNTS))  # a test-environment amount the approval always refuses
    reference, token = await create(sandbox, "test", keys, msn, value=magic)
    failed = await post_page(sandbox, "test", "approve", {"token": token})
    assert failed.status >= 400
    session = await session_of(sandbox, "test", keys, msn, reference)
    assert session["sessionState"] == "PaymentInitiated" and session["paymentDetails"]["state"] == "CREATED"
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 601})
    session = await session_of(sandbox, "test", keys, msn, reference)
    assert session["sessionState"] == "PaymentTerminated" and session["paymentDetails"]["state"] == "TERMINATED"


async def test_the_callback_carries_the_token_and_is_retried(sandbox):
    keys, msn = merchant(sandbox)
    async with Receiver([500, 502, 200]) as receiver:
        reference, token = await create(sandbox, "test", keys, msn, callback=receiver.url)
        await post_page(sandbox, "test", "approve", {"token": token})
        await wait_for(lambda: len(receiver.received) == 1)
        first = receiver.received[0]
        assert first["headers"]["Authorization"] == "cb-secret-token-0001"
        assert first["body"]["reference"] == reference and first["body"]["sessionState"] == "PaymentSuccessful"
        assert spec().errors("SessionResponse", first["body"]) == []
        await asyncio.sleep(0.2)
        assert len(receiver.received) == 1  # the retry waits for the virtual clock
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 5})
        await wait_for(lambda: len(receiver.received) == 2)
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 10})
        await wait_for(lambda: len(receiver.received) == 3)
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 60})
        await asyncio.sleep(0.2)
        assert len(receiver.received) == 3
        attempts = (await sandbox.request("GET", f"/_sandbox/checkout/callbacks?reference={reference}", "test")).json
        assert [a["outcome"] for a in attempts] == ["failed", "failed", "delivered"]
        assert "cb-secret-token-0001" not in str(attempts)


async def test_three_failures_and_the_callback_gives_up(sandbox):
    keys, msn = merchant(sandbox)
    async with Receiver([500]) as receiver:
        reference, token = await create(sandbox, "test", keys, msn, callback=receiver.url)
        await post_page(sandbox, "test", "cancel", {"token": token})
        await wait_for(lambda: len(receiver.received) == 1)
        for _ in range(4):
            await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 30})
            await asyncio.sleep(0.15)
        assert len(receiver.received) == 3
        assert receiver.received[0]["body"]["sessionState"] == "PaymentTerminated"
        attempts = (await sandbox.request("GET", "/_sandbox/checkout/callbacks", "test")).json
        assert attempts[-1]["outcome"] == "failed (gave up)"


async def test_callbacks_only_where_the_outgoing_url_rules_allow(sandbox):
    keys, msn = merchant(sandbox)
    control_plane = f"{sandbox.running.test_url}/_sandbox/reset"
    reference, token = await create(sandbox, "test", keys, msn, callback=control_plane)
    await post_page(sandbox, "test", "approve", {"token": token})
    for _ in range(50):
        attempts = (await sandbox.request("GET", "/_sandbox/checkout/callbacks", "test")).json
        if attempts:
            break
        await asyncio.sleep(0.02)
    assert attempts[0]["outcome"] == "refused"
    assert (await session_of(sandbox, "test", keys, msn, reference))["sessionState"] == "PaymentSuccessful"
