"""Every ePayment error the sandbox emits: validation 400s, domain codes, idempotency conflicts."""

from __future__ import annotations

import pytest
from epayment_support import BASE, assert_problem, assert_schema, create_body, merchant


async def test_validation_error_names_the_field(sandbox):
    shop = merchant(sandbox)
    body = create_body("bad")  # too short for ^[a-zA-Z0-9-]{8,64}$
    reply = await shop.create(body)
    problem = assert_problem(reply, 400, field="reference")
    assert problem["instance"] == "/v1/payments" and problem["title"] == "Bad Request"

    body = create_body("order-valid-01")
    del body["amount"]
    assert_problem(await shop.create(body), 400, field="amount")
    assert_problem(await shop.create(create_body("order-valid-01", 12.5)), 400, field="amount.value")
    assert_problem(await shop.create(create_body("order-valid-01", currency="SEK")), 400, field="amount.currency")
    assert_problem(await shop.create(create_body("order-valid-01", customer={"phoneNumber": "+47 123"})), 400,
                   field="customer.phoneNumber")
    assert_problem(await shop.create(create_body("order-valid-01", customer={"phoneNumber": "4712345678",
                                                                             "customerToken": "x"})),
                   400, field="customer")


async def test_malformed_json_and_non_object_bodies_are_400(sandbox):
    shop = merchant(sandbox)
    reply = await sandbox.request("POST", BASE, "test", data="{not json",
                                  headers=await shop.headers({"Idempotency-Key": "k", "Content-Type":
                                                              "application/json"}))
    assert_problem(reply, 400, field="body")
    assert_problem(await shop.call("POST", BASE, [1, 2], key="k2"), 400, field="body")
    assert_problem(await shop.call("POST", BASE, None, key="k3"), 400, field="body")


async def test_malformed_reference_in_path_is_400(sandbox):
    shop = merchant(sandbox)
    assert_problem(await shop.get("short"), 400, field="reference")
    assert_problem(await shop.capture("has_underscore_x", 100), 400, field="reference")


@pytest.mark.parametrize("route", ["create", "capture", "refund"])
async def test_idempotency_key_is_required(sandbox, route):
    shop = merchant(sandbox)
    await shop.authorized("order-idem-req1")
    path, body = {"create": (BASE, create_body("order-idem-req2")),
                  "capture": (f"{BASE}/order-idem-req1/capture", {"modificationAmount": {"currency": "NOK",
                                                                                           "value": 100}}),
                  "refund": (f"{BASE}/order-idem-req1/refund", {"modificationAmount": {"currency": "NOK",
                                                                                         "value": 100}})}[route]
    problem = assert_problem(await shop.call("POST", path, body), 400, field="Idempotency-Key")
    assert "Idempotency-Key" in problem["detail"]
    assert_problem(await shop.call("POST", path, body, key="x" * 51), 400, field="Idempotency-Key")


async def test_5040_currency_must_match_the_market(sandbox):
    shop = merchant(sandbox)  # a Norwegian sales unit
    assert_problem(await shop.create(create_body("order-cur-0001", 1000, "DKK")), 400, "5040")
    assert_problem(await merchant(sandbox, "premium-dk-1").create(create_body("order-cur-0002", 1000, "NOK")),
                   400, "5040")


async def test_6010_amount_below_the_minimum(sandbox):
    assert_problem(await merchant(sandbox).create(create_body("order-min-0001", 99)), 400, "6010")
    assert (await merchant(sandbox).create(create_body("order-min-0002", 100))).status == 201
    assert_problem(await merchant(sandbox, "premium-fi-1").create(create_body("order-min-0003", 0, "EUR")),
                   400, "6010")


async def test_4150_reference_exists_for_this_msn(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-dupe-001"))).status == 201
    problem = assert_problem(await shop.create(create_body("order-dupe-001")), 409, "4150")
    assert problem["instance"] == "/v1/payments"


async def test_flow_requirements(sandbox):
    shop = merchant(sandbox)
    body = create_body("order-flow-req1")
    del body["returnUrl"]
    assert_problem(await shop.create(body), 400, "4140", field="returnUrl")
    body = create_body("order-flow-req2", flow="PUSH_MESSAGE")
    del body["customer"]
    assert_problem(await shop.create(body), 400, "4140", field="customer")
    body = create_body("order-flow-req3", paymentMethod={"type": "CARD"})
    assert_problem(await shop.create(body), 400, "4160")  # no card payments in the test environment


async def test_5090_unknown_and_other_msn_references_alike(sandbox):
    one, other = merchant(sandbox, "premium-shop-1"), merchant(sandbox, "premium-shop-2")
    assert (await one.create(create_body("order-mine-0001"))).status == 201
    for reply in (await one.get("order-nobody-01"), await other.get("order-mine-0001"),
                  await other.events("order-mine-0001"), await other.capture("order-mine-0001", 100),
                  await other.refund("order-mine-0001", 100), await other.cancel("order-mine-0001"),
                  await other.force_approve("order-mine-0001")):
        assert_problem(reply, 404, "5090")
    assert (await one.get("order-mine-0001")).json["state"] == "CREATED"


async def test_capture_errors(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-cap-0001", 1000))).status == 201
    problem = assert_problem(await shop.capture("order-cap-0001", 500), 400, "6080")
    assert problem["instance"] == "/v1/payments/order-cap-0001/capture"
    await shop.force_approve("order-cap-0001")
    assert_problem(await shop.capture("order-cap-0001", 1001), 400, "6090")
    assert (await shop.capture("order-cap-0001", 400)).status == 200
    assert_problem(await shop.capture("order-cap-0001", 601), 400, "6090")
    assert_problem(await shop.capture("order-cap-0001", 100, currency="EUR"), 400, "5040")
    assert_problem(await shop.capture("order-cap-0001", 0), 400, "4040")
    assert (await shop.cancel("order-cap-0001")).status == 200
    assert_problem(await shop.capture("order-cap-0001", 100), 400, "6070")
    # a terminated payment (cancelled before authorization) cannot be captured either
    assert (await shop.create(create_body("order-cap-0002", 1000))).status == 201
    assert (await shop.cancel("order-cap-0002")).json["state"] == "TERMINATED"
    assert_problem(await shop.capture("order-cap-0002", 100), 400, "6070")
    # nor an aborted one
    assert (await shop.create(create_body("order-cap-0003", 1000))).status == 201
    await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-cap-0003/reject", "test")
    assert_problem(await shop.capture("order-cap-0003", 100), 400, "6200")


async def test_refund_errors(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-ref-0001", 1000)
    assert_problem(await shop.refund("order-ref-0001", 100), 400, "6020")
    await shop.capture("order-ref-0001", 600)
    assert_problem(await shop.refund("order-ref-0001", 601), 400, "6150")
    assert (await shop.refund("order-ref-0001", 350)).status == 200
    assert_problem(await shop.refund("order-ref-0001", 251), 400, "6150")
    assert (await shop.refund("order-ref-0001", 250)).json["aggregate"]["refundedAmount"]["value"] == 600
    assert (await shop.create(create_body("order-ref-0002"))).status == 201
    assert_problem(await shop.refund("order-ref-0002", 100), 400, "6210")  # CREATED: a wrong state, not 6020


async def test_cancel_errors(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-can-0001", 1000)
    assert_problem(await shop.cancel("order-can-0001", {"cancelTransactionOnly": True}), 400, "6060")
    await shop.capture("order-can-0001", 1000)
    assert_problem(await shop.cancel("order-can-0001"), 400, "6040")
    assert_problem(await shop.cancel("order-can-0001", {"cancelTransactionOnly": "yes"}), 400,
                   field="cancelTransactionOnly")
    assert (await shop.create(create_body("order-can-0002"))).status == 201
    await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-can-0002/expire", "test")
    assert_problem(await shop.cancel("order-can-0002"), 400, "6050")


async def test_idempotent_create_replays_and_conflicts(sandbox):
    shop = merchant(sandbox)
    body = create_body("order-idem-0001")
    first = await shop.create(body, key="create-1")
    again = await shop.create(dict(reversed(list(body.items()))), key="create-1")  # same JSON, other key order
    assert first.status == again.status == 201
    assert first.json == again.json
    assert_schema("CreatePaymentResponse", again.json)
    assert [e["name"] for e in (await shop.events("order-idem-0001")).json] == ["CREATED"]
    conflict = await shop.create(create_body("order-idem-0002"), key="create-1")
    assert_problem(conflict, 409, "4020")
    assert (await shop.get("order-idem-0002")).status == 404
    # another sales unit may use the same key for its own request
    assert (await merchant(sandbox, "premium-shop-2").create(create_body("order-idem-0002"), key="create-1")).status \
        == 201


async def test_idempotent_capture_and_refund_replay_the_first_response(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-idem-cap1", 1000)
    first = await shop.capture("order-idem-cap1", 300, key="cap-1")
    await shop.capture("order-idem-cap1", 100, key="cap-2")
    replay = await shop.capture("order-idem-cap1", 300, key="cap-1")
    assert replay.status == 200 and replay.json == first.json
    assert_schema("ModificationResponse", replay.json)
    assert (await shop.get("order-idem-cap1")).json["aggregate"]["capturedAmount"]["value"] == 400
    assert_problem(await shop.capture("order-idem-cap1", 200, key="cap-1"), 409, "4010")  # capture's own code

    refund = await shop.refund("order-idem-cap1", 50, key="ref-1")
    assert (await shop.refund("order-idem-cap1", 50, key="ref-1")).json == refund.json
    assert_problem(await shop.refund("order-idem-cap1", 60, key="ref-1"), 409, "4150")  # refund's own code
    names = [e["name"] for e in (await shop.events("order-idem-cap1")).json]
    assert names == ["CREATED", "AUTHORIZED", "CAPTURED", "CAPTURED", "REFUNDED"]


async def test_a_failed_request_does_not_take_its_idempotency_key(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-idem-fail", 1000))).status == 201
    assert_problem(await shop.capture("order-idem-fail", 300, key="cap-retry"), 400, "6080")
    await shop.force_approve("order-idem-fail")
    assert (await shop.capture("order-idem-fail", 300, key="cap-retry")).status == 200


async def test_force_approve_errors(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-fa-00001"))).status == 201
    assert_problem(await shop.force_approve("order-fa-00001", {"token": "not-the-token"}), 400, field="token")
    assert_problem(await shop.force_approve("order-fa-00001", {"customer": {"phoneNumber": "12"}}), 400,
                   field="customer.phoneNumber")
    await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-fa-00001/reject", "test")
    assert_problem(await shop.force_approve("order-fa-00001"), 400, "10020")
    # with the token from redirectUrl it works
    created = await shop.create(create_body("order-fa-00002"))
    token = created.json["redirectUrl"].split("token=", 1)[1]
    assert (await shop.force_approve("order-fa-00002", {"token": token})).status == 200
    # already approved: 6230 "Payment is already reserved", and no new event
    assert_problem(await shop.force_approve("order-fa-00002"), 400, "6230")
    assert [e["name"] for e in (await shop.events("order-fa-00002")).json] == ["CREATED", "AUTHORIZED"]


async def test_force_approve_does_not_exist_in_production(sandbox):
    shop = merchant(sandbox, env="production")
    assert (await shop.create(create_body("order-fa-prod1"))).status == 201
    reply = await shop.force_approve("order-fa-prod1")
    assert reply.status == 404
    assert reply.json["responseInfo"]["responseCode"] == 404  # the gateway's body, not a problem
    assert reply.headers["Vipps-Sandbox-Rule"] == "force-approve-test-only"
    assert (await shop.get("order-fa-prod1")).json["state"] == "CREATED"


MAGIC = [(151, "10010"), (182, "10010"), (183, "10020"), (184, "10070"), (186, "10040"), (187, "10040"),
         (197, "10030"), (201, "10010"), (202, "10030")]


@pytest.mark.parametrize(("value", "code"), MAGIC)
async def test_magic_amounts_cannot_be_approved_in_test(sandbox, value, code):
    shop = merchant(sandbox)
    assert (await shop.create(create_body(f"order-magic-{value}", value))).status == 201
    problem = assert_problem(await shop.force_approve(f"order-magic-{value}"), 400, code)
    assert f"test amount {value}" in problem["detail"]
    control = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-magic-{value}/approve", "test")
    assert control.status == 400 and f"test amount {value}" in control.json["detail"]
    assert (await shop.get(f"order-magic-{value}")).json["state"] == "CREATED"


async def test_magic_amounts_are_ordinary_in_production(sandbox):
    shop = merchant(sandbox, env="production")
    assert (await shop.create(create_body("order-magic-prod", 151))).status == 201
    reply = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-magic-prod/approve", "production")
    assert reply.status == 200 and reply.json["state"] == "AUTHORIZED"


@pytest.mark.parametrize(("value", "code"), [(123, "5100"), (124, "6220")])
async def test_magic_refund_amounts_fail_in_test(sandbox, value, code):
    shop = merchant(sandbox)
    await shop.authorized(f"order-mref-{value}", 1000)
    await shop.capture(f"order-mref-{value}", 1000)
    assert_problem(await shop.refund(f"order-mref-{value}", value), 400, code)
    assert (await shop.refund(f"order-mref-{value}", value + 10)).status == 200
