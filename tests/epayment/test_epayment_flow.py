"""The ePayment happy paths over real HTTP, every success response checked against the spec's schemas."""

from __future__ import annotations

import json

from epayment_support import (
    BASE,
    assert_events_schema,
    assert_schema,
    create_body,
    merchant,
    new_key,
    partner,
)


async def test_full_flow_in_test_with_merchant_keys(sandbox):
    shop = merchant(sandbox)
    reply = await shop.create(create_body("order-flow-001", 10000))
    assert reply.status == 201
    assert_schema("CreatePaymentResponse", reply.json)
    assert reply.json["reference"] == "order-flow-001"
    assert reply.json["redirectUrl"].startswith(sandbox.url("test") + "/_sandbox/landing?token=")

    got = await shop.get("order-flow-001")
    assert got.status == 200
    assert_schema("GetPaymentResponse", got.json)
    assert got.json["state"] == "CREATED"
    assert got.json["aggregate"]["authorizedAmount"] == {"currency": "NOK", "value": 0}

    approve = await shop.force_approve("order-flow-001", {"customer": {"phoneNumber": "4712345678"}})
    assert approve.status == 200 and approve.text == ""

    capture = await shop.capture("order-flow-001", 4000)
    assert capture.status == 200
    assert_schema("ModificationResponse", capture.json)
    assert capture.headers["Content-Type"].startswith("application/json")
    assert capture.json["state"] == "AUTHORIZED"
    assert capture.json["aggregate"]["capturedAmount"]["value"] == 4000

    again = await shop.capture("order-flow-001", 6000)
    assert again.status == 200 and again.json["aggregate"]["capturedAmount"]["value"] == 10000

    refund = await shop.refund("order-flow-001", 2500)
    assert refund.status == 200
    assert_schema("ModificationResponse", refund.json)
    assert refund.json["aggregate"]["refundedAmount"]["value"] == 2500

    final = (await shop.get("order-flow-001")).json
    assert final["state"] == "AUTHORIZED"
    assert final["aggregate"] == {"authorizedAmount": {"currency": "NOK", "value": 10000},
                                  "cancelledAmount": {"currency": "NOK", "value": 0},
                                  "capturedAmount": {"currency": "NOK", "value": 10000},
                                  "refundedAmount": {"currency": "NOK", "value": 2500}}

    events = await shop.events("order-flow-001")
    assert events.status == 200
    assert_events_schema(events.json)
    assert [e["name"] for e in events.json] == ["CREATED", "AUTHORIZED", "CAPTURED", "CAPTURED", "REFUNDED"]
    assert [e["amount"]["value"] for e in events.json] == [10000, 10000, 4000, 6000, 2500]
    psps = [e["pspReference"] for e in events.json]
    assert len(set(psps)) == len(psps), "each event has its own pspReference"
    assert final["pspReference"] == psps[0] == capture.json["pspReference"], "GET gives the CREATED event's"
    # AUTHORIZED shows the create's key, as its webhook body and the documentation's examples do
    assert events.json[0]["idempotencyKey"] and events.json[1]["idempotencyKey"] == events.json[0]["idempotencyKey"]
    assert all(e["success"] is True for e in events.json)


async def test_partial_capture_then_cancel_releases_the_remainder(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-cancel-01", 10000)
    assert (await shop.capture("order-cancel-01", 3000)).status == 200
    cancel = await shop.cancel("order-cancel-01")  # JSON content type, empty body, as the SDK sends it
    assert cancel.status == 200
    assert_schema("ModificationResponse", cancel.json)
    assert cancel.json["state"] == "AUTHORIZED"
    assert cancel.json["aggregate"]["cancelledAmount"]["value"] == 7000
    assert cancel.json["aggregate"]["capturedAmount"]["value"] == 3000
    events = (await shop.events("order-cancel-01")).json
    assert events[-1]["name"] == "CANCELLED" and events[-1]["amount"]["value"] == 7000
    # cancelling again changes nothing and adds no event
    assert (await shop.cancel("order-cancel-01", {})).json["aggregate"] == cancel.json["aggregate"]
    assert len((await shop.events("order-cancel-01")).json) == len(events)
    # refunds of what was captured still work after the cancel
    assert (await shop.refund("order-cancel-01", 3000)).status == 200


async def test_cancel_before_authorization_terminates(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-term-001"))).status == 201
    cancel = await shop.cancel("order-term-001", {"cancelTransactionOnly": True})
    assert cancel.status == 200
    assert_schema("ModificationResponse", cancel.json)
    assert cancel.json["state"] == "TERMINATED"
    assert cancel.json["aggregate"]["cancelledAmount"]["value"] == 10000
    events = (await shop.events("order-term-001")).json
    assert [e["name"] for e in events] == ["CREATED", "TERMINATED"]


async def test_partner_keys_in_production_act_for_a_connected_sales_unit(sandbox):
    janitor = partner(sandbox)
    reply = await janitor.create(create_body("order-partner-1", 5000))
    assert reply.status == 201
    assert reply.json["redirectUrl"].startswith(sandbox.url("production") + "/_sandbox/landing?token=")
    await sandbox.request("POST", f"/_sandbox/payments/{janitor.msn}/order-partner-1/approve", "production")
    capture = await janitor.capture("order-partner-1", 5000)
    assert capture.status == 200 and capture.json["aggregate"]["capturedAmount"]["value"] == 5000
    # the sales unit's own production keys see the same payment
    own = merchant(sandbox, env="production")
    got = await own.get("order-partner-1")
    assert got.status == 200 and got.json["aggregate"]["capturedAmount"]["value"] == 5000
    # but the test environment is a separate system
    assert (await merchant(sandbox).get("order-partner-1")).status == 404


async def test_reference_is_unique_per_msn_not_globally(sandbox):
    one, other = merchant(sandbox, "premium-shop-1"), merchant(sandbox, "premium-shop-2")
    assert (await one.create(create_body("order-shared-1"))).status == 201
    assert (await other.create(create_body("order-shared-1"))).status == 201
    assert (await one.force_approve("order-shared-1")).status == 200
    assert (await other.get("order-shared-1")).json["state"] == "CREATED"


async def test_markets_take_their_own_currency(sandbox):
    for role, currency, value in (("premium-dk-1", "DKK", 1), ("premium-fi-1", "EUR", 1)):
        shop = merchant(sandbox, role)
        reply = await shop.create(create_body(f"order-{role}", value, currency))
        assert reply.status == 201, reply.text
        assert (await shop.get(f"order-{role}")).json["amount"] == {"currency": currency, "value": value}


async def test_push_message_returns_only_the_reference(sandbox):
    shop = merchant(sandbox)
    reply = await shop.create(create_body("order-push-001", flow="PUSH_MESSAGE"))
    assert reply.status == 201 and reply.json == {"reference": "order-push-001"}
    assert_schema("CreatePaymentResponse", reply.json)
    got = (await shop.get("order-push-001")).json
    assert_schema("GetPaymentResponse", got)
    assert "redirectUrl" not in got


async def test_metadata_and_profile_come_back_on_get(sandbox):
    shop = merchant(sandbox)
    body = create_body("order-meta-001", metadata={"orderId": "42"}, profile={"scope": "name phoneNumber"})
    assert (await shop.create(body)).status == 201
    assert (await shop.get("order-meta-001")).json["profile"] == {}
    await shop.force_approve("order-meta-001")
    got = (await shop.get("order-meta-001")).json
    assert_schema("GetPaymentResponse", got)
    assert got["metadata"] == {"orderId": "42"} and got["profile"]["sub"]


async def test_sdk_quirks_are_accepted(sandbox):
    """Idempotency-Key on GETs and force approve, empty Vipps-System-* values, chunked bodies."""
    shop = merchant(sandbox)
    quirks = {"Vipps-System-Name": "", "Vipps-System-Version": "", "Vipps-System-Plugin-Name": "",
              "Vipps-System-Plugin-Version": ""}
    headers = await shop.headers({**quirks, "Idempotency-Key": new_key(), "Content-Type": "application/json"})
    body = create_body("order-chunk-01")

    async def chunks():
        text = json.dumps(body).encode()
        for i in range(0, len(text), 17):
            yield text[i:i + 17]

    url = sandbox.url("test") + BASE
    async with sandbox.session.post(url, data=chunks(), headers=headers) as resp:
        assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.request_info.headers
        assert resp.status == 201, await resp.text()
    for _ in range(2):  # the same Idempotency-Key on a GET is ignored
        got = await shop.call("GET", f"{BASE}/order-chunk-01", key="same-key", headers=quirks)
        assert got.status == 200
    assert (await shop.call("POST", "/epayment/v1/test/payments/order-chunk-01/approve", {}, key="same-key")).status \
        == 200
    assert (await shop.get("order-chunk-01")).json["state"] == "AUTHORIZED"


async def test_domain_events_are_published_with_the_agreed_payload(sandbox):
    seen: list[tuple[str, dict]] = []
    sandbox.runtime.listeners.append(lambda kind, payload: seen.append((kind, payload)))
    shop = merchant(sandbox)
    await shop.create(create_body("order-event-01", 2000, flow="PUSH_MESSAGE"), key="create-key")
    await shop.force_approve("order-event-01")
    await shop.capture("order-event-01", 500, key="capture-key")
    await shop.refund("order-event-01", 200, key="refund-key")
    await shop.cancel("order-event-01")
    assert [k for k, _ in seen] == ["epayment.created", "epayment.authorized", "epayment.captured",
                                    "epayment.refunded", "epayment.cancelled"]
    events = (await shop.events("order-event-01")).json
    for (kind, payload), event in zip(seen, events, strict=True):
        assert set(payload) == {"env", "msn", "reference", "pspReference", "name", "amount", "timestamp",
                                "idempotencyKey", "success", "paymentDescription", "phoneNumber",
                                "createIdempotencyKey", "sub"}
        assert payload["createIdempotencyKey"] == "create-key" and payload["sub"] is None  # no profile scope
        assert payload["env"] == "test" and payload["msn"] == shop.msn and payload["reference"] == "order-event-01"
        assert payload["pspReference"] == event["pspReference"] and payload["name"] == event["name"]
        assert kind == "epayment." + event["name"].lower()
        assert payload["amount"] == event["amount"] and isinstance(payload["timestamp"], float)
        # the domain event has the key of the request that caused it; the log shows AUTHORIZED with the create's
        # key, as the AUTHORIZED webhook does (Settings.webhook_authorized_key)
        shown = payload["createIdempotencyKey"] if event["name"] == "AUTHORIZED" else payload["idempotencyKey"]
        assert event["idempotencyKey"] == shown and payload["success"] is True
        assert payload["paymentDescription"] == "Two pairs of socks" and payload["phoneNumber"] == "4712345678"
    assert [p["idempotencyKey"] for _, p in seen[:4]] == ["create-key", None, "capture-key", "refund-key"]


async def test_reset_clears_payments(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-reset-01"))).status == 201
    sandbox.runtime.reset()
    assert (await shop.get("order-reset-01")).status == 404
    assert (await shop.create(create_body("order-reset-01"))).status == 201
