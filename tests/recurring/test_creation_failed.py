"""recurring.charge-creation-failed.v1: the batch endpoint's 202 lists the charges that "passed API level
validation" (the spec); a listed charge that cannot be created afterwards (no such agreement, one that is not
ACTIVE, over the pricing's limit, an orderId already used) is never created, and the merchant hears of it through
this webhook, signed and delivered like the other Recurring events. The test client checks every delivered body
against the sandbox's Recurring event schema (sandbox/apis/webhooks/event_schemas.py)."""

from __future__ import annotations

import asyncio
import json

from recurring_support import BASE, assert_problem, charge_body, draft_body, merchant, new_key

EVENT = "recurring.charge-creation-failed.v1"


async def inbox(sandbox, name: str, count: int) -> list[dict]:
    for _ in range(300):
        got = await sandbox.request("GET", f"/_sandbox/inbox/{name}", "test")  # bodies checked by the test client
        assert got.status == 200, got.text
        if len(got.json["deliveries"]) >= count:
            return [json.loads(d["body"]) for d in got.json["deliveries"]]
        await asyncio.sleep(0.02)
    return [json.loads(d["body"]) for d in got.json["deliveries"]]


async def test_a_batch_charge_that_cannot_be_created_after_the_202_is_a_creation_failed_webhook(sandbox):
    shop = merchant(sandbox)
    url = sandbox.url("test") + "/_sandbox/inbox/creation"
    reply = await shop.call("POST", "/webhooks/v1/webhooks", {"url": url, "events": [EVENT]})
    assert reply.status == 201, reply.text
    active = await shop.active(draft_body(externalId="sub-77"))
    pending = (await shop.draft()).json["agreementId"]
    items = [dict(charge_body(sandbox), agreementId=active, orderId="cf-ok", externalId="ext-ok"),
             dict(charge_body(sandbox), agreementId="agr_nothere", orderId="cf-unknown"),
             dict(charge_body(sandbox), agreementId=pending, orderId="cf-pending"),
             dict(charge_body(sandbox, amount=5 * 49900), agreementId=active, orderId="cf-limit"),
             dict(charge_body(sandbox), agreementId=active, orderId="cf-ok", externalId="again"),
             dict(charge_body(sandbox, days=0), agreementId=active, orderId="cf-too-soon")]
    key = new_key()
    reply = await shop.call("POST", f"{BASE}/agreements/charges", items, key)
    assert reply.status == 202, reply.text
    assert reply.json["validCharges"] == ["cf-ok", "cf-unknown", "cf-pending", "cf-limit", "cf-ok"]
    assert [i["chargeBatchItemDto"]["orderId"] for i in reply.json["invalidCharges"]] == ["cf-too-soon"]
    bodies = await inbox(sandbox, "creation", 4)
    assert [b["chargeId"] for b in bodies] == ["cf-unknown", "cf-pending", "cf-limit", "cf-ok"]
    assert all(b["eventType"] == EVENT and b["msn"] == shop.msn and b["currency"] == "NOK" and
               b["chargeType"] == "RECURRING" and b["failureDescription"] for b in bodies)
    unknown, not_active, limit, duplicate = bodies
    assert unknown["agreementId"] == "agr_nothere" and unknown["agreementExternalId"] is None
    assert "No agreement" in unknown["failureDescription"]
    assert not_active["agreementId"] == pending and "PENDING" in not_active["failureDescription"]
    assert limit["amount"] == 5 * 49900 and "5 times the price" in limit["failureDescription"]
    assert limit["agreementExternalId"] == "sub-77" and duplicate["chargeExternalId"] == "again"
    assert "already exists" in duplicate["failureDescription"]
    # only the one that could be created exists, with the first request's fields
    assert (await shop.get_charge(active, "cf-ok")).json["externalId"] == "ext-ok"
    for agreement_id, charge_id in ((pending, "cf-pending"), (active, "cf-limit")):
        assert_problem(await shop.get_charge(agreement_id, charge_id), 404, "resource-not-found")
    # a replay of the batch answers the same 202 and creates (and tells) nothing again
    again = await shop.call("POST", f"{BASE}/agreements/charges", items, key)
    assert again.status == 202 and again.json == reply.json
    await asyncio.sleep(0.2)
    assert len(await inbox(sandbox, "creation", 5)) == 4


async def test_the_attempt_log_shows_creation_failed_bodies_that_match_the_schema(sandbox):
    shop = merchant(sandbox)
    url = sandbox.url("test") + "/_sandbox/inbox/creation-log"
    assert (await shop.call("POST", "/webhooks/v1/webhooks", {"url": url, "events": [EVENT]})).status == 201
    reply = await shop.call("POST", f"{BASE}/agreements/charges",
                            [dict(charge_body(sandbox), agreementId="agr_gone123", orderId="cf-log")], new_key())
    assert reply.status == 202 and reply.json["validCharges"] == ["cf-log"]
    await inbox(sandbox, "creation-log", 1)
    log = await sandbox.request("GET", "/_sandbox/webhooks/deliveries", "test")  # checked by the test client
    attempts = [a for a in log.json["attempts"] if a["event"] == EVENT]
    assert attempts and attempts[0]["outcome"] == "delivered" and attempts[0]["reference"] == "cf-log"
