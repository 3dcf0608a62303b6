"""ePayment webhook bodies, field by field, from the documentation's examples (not from the code).

Sources: the Webhooks skill of Vipps' agent toolkit ("Read the payload": the AUTHORIZED example below,
"idempotencyKey is not always present, for example on CANCELLED", "With profile sharing ... sub ride along on
epayments.payment.authorized.v1"); the ePayment event-log example (vipps-epayment-api, operations/get-event-log.md:
AUTHORIZED with the create request's key, CANCELLED without any); the spec's WebhookEvent (`sub`: "If
profile.scope was requested in createPayment, this value will be populated once state is AUTHORIZED"); the
request-authentication guide for the headers. Every body these tests receive is also checked against the
spec's WebhookEvent by the test client itself (sandbox/apis/webhooks/event_schemas.py).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from epayment_support import create_body, merchant

from sandbox.apis.webhooks.event_schemas import body_violations, header_violations, violations

PATH = "/webhooks/v1/webhooks"
EVENTS = [f"epayments.payment.{k}.v1" for k in
          ("created", "aborted", "expired", "cancelled", "captured", "refunded", "authorized", "terminated")]

#: The documentation's AUTHORIZED webhook, verbatim.
DOC_AUTHORIZED = {
    "msn": "123456",
    "reference": "acme-shop-123-order123abc",
    "pspReference": "dd8e0a8e-2b26-40ed-98f1-1d5832fc129f",
    "name": "AUTHORIZED",
    "amount": {"currency": "NOK", "value": 49900},
    "timestamp": "2026-01-19T16:26:32.099Z",
    "idempotencyKey": "7c8b81e7-b08b-46e4-9729-191cb801c132",
    "success": True,
}
#: The documentation's event log: CANCELLED has these fields and no idempotencyKey (a webhook adds msn).
DOC_CANCELLED_FIELDS = {"reference", "pspReference", "name", "amount", "timestamp", "success"}


async def hook(sandbox, shop, inbox: str) -> None:
    url = f"{sandbox.running.test_url}/_sandbox/inbox/{inbox}"
    reply = await sandbox.request("POST", PATH, "test", keyset=shop.keyset, json_body={"url": url, "events": EVENTS})
    assert reply.status == 201, reply.text


async def received(sandbox, inbox: str, names: list[str], timeout: float = 5.0) -> dict[str, dict]:
    """The bodies of the inbox once each of `names` has arrived, by event name."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        reply = await sandbox.request("GET", f"/_sandbox/inbox/{inbox}", "test")  # the client checks each body
        bodies = [json.loads(d["body"]) for d in reply.json["deliveries"]]
        if all(any(b["name"] == n for b in bodies) for n in names):
            return {b["name"]: b for b in bodies}
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"expected {names}, got {[b['name'] for b in bodies]}")
        await asyncio.sleep(0.02)


async def user(sandbox, shop, reference: str, action: str) -> None:
    reply = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/{reference}/{action}", "test")
    assert reply.status == 200, reply.text


# -- the documentation's examples -----------------------------------------------------------------------------


async def test_the_authorized_event_has_exactly_the_documented_fields(sandbox):
    shop = merchant(sandbox)
    await hook(sandbox, shop, "doc")
    assert (await shop.create(create_body("acme-shop-123-order123abc", 49900),
                              key="7c8b81e7-b08b-46e4-9729-191cb801c132")).status == 201
    await user(sandbox, shop, "acme-shop-123-order123abc", "approve")
    got = (await received(sandbox, "doc", ["AUTHORIZED"]))["AUTHORIZED"]

    assert list(got) == list(DOC_AUTHORIZED)  # the same fields, in the documented order
    assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in DOC_AUTHORIZED.items()}
    assert got["idempotencyKey"] == DOC_AUTHORIZED["idempotencyKey"]  # the create request's key
    assert (got["reference"], got["amount"], got["success"]) == \
        (DOC_AUTHORIZED["reference"], DOC_AUTHORIZED["amount"], True)
    assert got["msn"] == shop.msn
    # "pspReference here is the event's, which differs from the one in API responses."
    payment = (await shop.get("acme-shop-123-order123abc")).json
    assert got["pspReference"] != payment["pspReference"]
    events = (await shop.events("acme-shop-123-order123abc")).json
    assert got["pspReference"] == next(e["pspReference"] for e in events if e["name"] == "AUTHORIZED")
    assert body_violations("epayments.payment.authorized.v1", json.dumps(DOC_AUTHORIZED)) == []


async def test_cancelled_has_no_idempotency_key_and_modifications_carry_their_own(sandbox):
    shop = merchant(sandbox)
    await hook(sandbox, shop, "mods")
    await shop.authorized("order-mods-0001", 1000)
    assert (await shop.capture("order-mods-0001", 250, key="capture-key-1")).status == 200
    assert (await shop.refund("order-mods-0001", 100, key="refund-key-1")).status == 200
    # Cancel takes no Idempotency-Key in the spec; one sent anyway does not show up on the event.
    cancelled = await shop.call("POST", "/epayment/v1/payments/order-mods-0001/cancel", {}, key="cancel-key-1")
    assert cancelled.status == 200, cancelled.text
    bodies = await received(sandbox, "mods", ["CREATED", "AUTHORIZED", "CAPTURED", "REFUNDED", "CANCELLED"])

    assert set(bodies["CANCELLED"]) == DOC_CANCELLED_FIELDS | {"msn"}
    assert bodies["CANCELLED"]["amount"] == {"currency": "NOK", "value": 750}
    assert bodies["CAPTURED"]["idempotencyKey"] == "capture-key-1"
    assert bodies["CAPTURED"]["amount"] == {"currency": "NOK", "value": 250}
    assert bodies["REFUNDED"]["idempotencyKey"] == "refund-key-1"
    assert bodies["AUTHORIZED"]["idempotencyKey"] == bodies["CREATED"]["idempotencyKey"]
    assert "null" not in json.dumps(bodies)  # a missing key is left out, never null
    psps = [b["pspReference"] for b in bodies.values()]
    assert len(set(psps)) == len(psps)  # each event its own pspReference


async def test_events_no_merchant_request_caused_carry_no_key(sandbox):
    shop = merchant(sandbox)
    await hook(sandbox, shop, "user")
    for reference in ("order-user-0001", "order-user-0002", "order-user-0003"):
        assert (await shop.create(create_body(reference))).status == 201
    await user(sandbox, shop, "order-user-0001", "reject")
    await user(sandbox, shop, "order-user-0002", "expire")
    assert (await shop.cancel("order-user-0003")).status == 200  # before the user acted: TERMINATED
    bodies = await received(sandbox, "user", ["ABORTED", "EXPIRED", "TERMINATED"])
    for name in ("ABORTED", "EXPIRED", "TERMINATED"):
        assert set(bodies[name]) == DOC_CANCELLED_FIELDS | {"msn"}, name


async def test_the_authorized_key_can_be_turned_off(sandbox):
    sandbox.runtime.settings.webhook_authorized_key = False
    shop = merchant(sandbox)
    await hook(sandbox, shop, "nokey")
    await shop.authorized("order-nokey-001")
    bodies = await received(sandbox, "nokey", ["CREATED", "AUTHORIZED"])
    assert "idempotencyKey" not in bodies["AUTHORIZED"]
    assert bodies["CREATED"]["idempotencyKey"]


# -- profile sharing: sub -------------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["name phoneNumber", None])
async def test_sub_rides_on_authorized_when_a_profile_scope_was_asked_for(sandbox, scope):
    shop = merchant(sandbox)
    await hook(sandbox, shop, "sub")
    extra = {"profile": {"scope": scope}} if scope else {}
    assert (await shop.create(create_body("order-sub-0001", **extra))).status == 201
    await user(sandbox, shop, "order-sub-0001", "approve")
    assert (await shop.capture("order-sub-0001", 10000)).status == 200
    bodies = await received(sandbox, "sub", ["CREATED", "AUTHORIZED", "CAPTURED"])
    payment = (await shop.get("order-sub-0001")).json
    if scope:
        assert payment["profile"]["sub"]
        assert bodies["AUTHORIZED"]["sub"] == payment["profile"]["sub"]
    else:
        assert "sub" not in payment["profile"]
        assert "sub" not in bodies["AUTHORIZED"]
    assert "sub" not in bodies["CREATED"] and "sub" not in bodies["CAPTURED"]


# -- the headers of a delivery, as the request-authentication guide names them ---------------------------------


async def test_a_delivery_carries_the_documented_headers(sandbox):
    shop = merchant(sandbox)
    await hook(sandbox, shop, "headers")
    assert (await shop.create(create_body("order-head-0001"))).status == 201
    await received(sandbox, "headers", ["CREATED"])
    [delivery] = (await sandbox.request("GET", "/_sandbox/inbox/headers", "test")).json["deliveries"]
    names = set(delivery["headers"])
    assert {"x-ms-date", "x-ms-content-sha256", "Authorization", "Host", "Content-Type"} <= names
    assert delivery["headers"]["Content-Type"] == "application/json"
    assert header_violations({k.lower(): v for k, v in delivery["headers"].items()}, delivery["body"]) == []


# -- the check itself can fail ---------------------------------------------------------------------------------


GOOD = {"msn": "123456", "reference": "order-check-001", "pspReference": "42", "name": "CAPTURED",
        "amount": {"currency": "NOK", "value": 100}, "timestamp": "2026-01-19T16:26:32.099Z", "success": True}


@pytest.mark.parametrize("change, why", [
    ({"pspReference": None}, "pspReference"),
    ({"idempotencyKey": 7}, "idempotencyKey"),
    ({"timestamp": "19.01.2026 16:26"}, "timestamp"),
    ({"msn": "12"}, "msn"),
    ({"profile": {"sub": "x"}}, "not a field"),  # the skill's `profile.sub`: the spec's field is top-level `sub`
    ({"paymentDescription": "Socks"}, "not a field"),
    ({"name": "AUTHORIZED"}, "on a epayments.payment.captured.v1 event"),
])
def test_a_body_the_spec_does_not_allow_is_caught(change, why):
    body = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    found = body_violations("epayments.payment.captured.v1", json.dumps(body))
    assert any(why in f for f in found), found


def test_a_good_body_passes_and_an_unknown_event_type_does_not():
    assert body_violations("epayments.payment.captured.v1", json.dumps(GOOD)) == []
    assert body_violations("epayments.payment.captured.v1", json.dumps({**GOOD, "idempotencyKey": None})) == []
    assert body_violations("recurring.charge-captured.v1", json.dumps(GOOD))


def test_deliveries_with_wrong_headers_are_caught_and_others_posts_are_not_checked():
    body = json.dumps(GOOD)
    delivery = {"headers": {"Content-Type": "text/plain", "x-ms-date": "2026-01-19T16:26:32Z",
                            "x-ms-content-sha256": "nope", "Authorization": "Bearer x", "Host": "h",
                            "Vipps-Sandbox-Delivery": "m"}, "body": body}
    found = violations("GET", "/_sandbox/inbox/x", 200, json.dumps({"deliveries": [delivery]}))
    for what in ("Content-Type", "x-ms-date", "x-ms-content-sha256", "Authorization"):
        assert any(what in f for f in found), (what, found)
    by_hand = {"headers": {"Content-Type": "text/plain"}, "body": "{}"}  # not a sandbox's delivery
    assert violations("GET", "/_sandbox/inbox/x", 200, json.dumps({"deliveries": [by_hand]})) == []
    attempt = {"event": "epayments.payment.captured.v1", "body": json.dumps({**GOOD, "extra": 1})}
    assert violations("GET", "/_sandbox/webhooks/deliveries", 200, json.dumps({"attempts": [attempt]}))
