"""Recurring v3 errors, idempotency, key types and environments, through a real server."""

from __future__ import annotations

import asyncio
import json

from recurring_support import (
    BASE,
    Caller,
    assert_problem,
    charge_body,
    draft_body,
    merchant,
    new_key,
    partner,
    recurring_unit,
    refused_unit,
)


async def test_idempotency_key_is_required_on_every_post_patch_and_delete(sandbox):
    shop = merchant(sandbox)
    agreement_id = await shop.active()
    for method, path, body in (("POST", f"{BASE}/agreements", draft_body()),
                               ("PATCH", f"{BASE}/agreements/{agreement_id}", {"productName": "x"}),
                               ("PATCH", f"{BASE}/agreements/{agreement_id}/accept", {"phoneNumber": "4712345678"}),
                               ("POST", f"{BASE}/agreements/{agreement_id}/charges", charge_body(sandbox)),
                               ("POST", f"{BASE}/agreements/charges", []),
                               ("DELETE", f"{BASE}/agreements/{agreement_id}/charges/chr-x", None)):
        assert_problem(await shop.call(method, path, body), 400, "idempotency-key-header", "Idempotency-Key")
    assert_problem(await shop.call("POST", f"{BASE}/agreements", draft_body(), "a/b"), 400, "idempotency-key-header")
    assert_problem(await shop.call("POST", f"{BASE}/agreements", draft_body(), "k" * 41), 400,
                   "idempotency-key-header")


async def test_same_key_same_body_replays_other_body_is_409_and_a_4xx_is_cached(sandbox):
    shop = merchant(sandbox)
    first = await shop.draft(draft_body(), key="same-key")
    again = await shop.draft(draft_body(), key="same-key")
    assert first.status == again.status == 201 and first.json["agreementId"] == again.json["agreementId"]
    assert_problem(await shop.draft(draft_body(amount=100), key="same-key"), 409, "idempotency-conflict")
    agreement_id = await shop.active()
    bad = charge_body(sandbox, days=0)
    assert_problem(await shop.charge(agreement_id, bad, key="bad-key"), 400, "charge-due-too-soon")
    sandbox.runtime.settings.recurring_due_min_days = 0  # the same request would now succeed ...
    assert_problem(await shop.charge(agreement_id, bad, key="bad-key"), 400, "charge-due-too-soon")  # ... but cached
    assert (await shop.charge(agreement_id, bad, key="fresh-key")).status == 201


async def test_errors_are_rfc7807_with_the_problem_identifiers(sandbox):
    shop = merchant(sandbox)
    assert_problem(await shop.get("not-an-agreement"), 400, "invalid-agreement-id")
    assert_problem(await shop.get("agr_nothere1"), 404, "resource-not-found")
    body = draft_body()
    del body["productName"]
    assert_problem(await shop.draft(body), 400, "validation-error", "productName")
    assert_problem(await shop.draft(draft_body(pricing={"type": "LEGACY", "currency": "NOK"})), 400,
                   "validation-error", "pricing.amount")
    reply = await shop.call("POST", f"{BASE}/agreements", None, new_key(),
                            headers={"Content-Type": "application/json"})
    assert_problem(reply, 400, "validation-error")
    headers = await shop.headers({"Idempotency-Key": new_key(), "Content-Type": "application/json"})
    reply = await sandbox.request("POST", f"{BASE}/agreements", "test", data="{not json", headers=headers)
    assert_problem(reply, 400, "invalid-json")
    headers["Content-Type"] = "text/plain"
    reply = await sandbox.request("POST", f"{BASE}/agreements", "test", data="{}", headers=headers)
    assert_problem(reply, 415, "unsupported-media-type")
    pending = (await shop.draft()).json["agreementId"]
    assert_problem(await shop.charge(pending, charge_body(sandbox)), 400, "charge-creation-failed")


async def test_a_sales_unit_without_recurring_allowed_is_refused(sandbox):
    shop = merchant(sandbox, msn=refused_unit(sandbox))
    body = assert_problem(await shop.draft(), 403, "invalid-sale-unit")
    assert body["detail"] == "The sales unit is not allowed to use Recurring."
    reply = await shop.call("GET", f"{BASE}/agreements")
    assert reply.status == 403 and reply.headers["Vipps-Sandbox-Rule"] == "recurring-not-allowed"


async def test_another_units_agreement_is_a_404_that_reveals_nothing(sandbox):
    shop = merchant(sandbox)
    agreement_id = await shop.active()
    other_msn = next(m for m in sandbox.runtime.world.sales_units if m != shop.unit and
                     sandbox.runtime.world.sales_units[m].configuration.get("recurringAllowed")
                     and sandbox.runtime.world.is_active(m))
    other = merchant(sandbox, msn=other_msn)
    reply = await other.get(agreement_id)
    assert_problem(reply, 404, "resource-not-found")
    assert reply.headers["Vipps-Sandbox-Rule"] == "recurring-agreement-of-another-sales-unit"
    # The other environment shares nothing either.
    prod = merchant(sandbox, env="production")
    assert (await prod.get(agreement_id)).status == 404


async def test_partner_keys_production_only_msn_required_connected_only(sandbox):
    agent = partner(sandbox)
    agreement_id = await agent.active()
    assert (await agent.get(agreement_id)).status == 200
    no_msn = Caller(sandbox, agent.keyset, "production", None, agent.unit)
    reply = await no_msn.get(agreement_id)
    assert reply.status == 403 and reply.headers["Vipps-Sandbox-Rule"] == "partner-keys-need-msn"
    assert_problem(reply, 403, "not-authorized")
    foreign = next(u.msn for u in sandbox.runtime.world.sales_units.values() if u.partner_id is None)
    reply = await Caller(sandbox, agent.keyset, "production", foreign, foreign).get(agreement_id)
    assert reply.status == 403 and reply.headers["Vipps-Sandbox-Rule"] == "partner-keys-connected-sales-units-only"
    pending = sandbox.key("partner", "production", owner=sandbox.partner_role("pending"))
    reply = await Caller(sandbox, pending, "production", sandbox.msn_role("pending-shop-1"), "").draft()
    assert reply.status == 403 and reply.headers["Vipps-Sandbox-Rule"] == "partner-not-approved-to-act-on-behalf"


async def test_management_and_accounting_keys_are_refused_in_plain_words(sandbox):
    msn = recurring_unit(sandbox)
    for kind, owner, rule in (("management", "basic", "management-keys-never-act-on-behalf"),
                              ("accounting", "accountant", "accounting-keys-report-only")):
        keyset = sandbox.key(kind, "production", owner=sandbox.partner_role(owner))
        reply = await Caller(sandbox, keyset, "production", msn, msn).call("GET", f"{BASE}/agreements")
        assert reply.status == 403 and reply.headers["Vipps-Sandbox-Rule"] == rule, reply.text
        assert "Recurring" in reply.headers["Vipps-Sandbox-Reason"] or kind == "accounting"


async def test_merchant_keys_work_in_both_environments_and_force_accept_is_test_only(sandbox):
    for env in ("test", "production"):
        shop = merchant(sandbox, env=env)
        agreement_id = (await shop.draft()).json["agreementId"]
        reply = await shop.call("PATCH", f"{BASE}/agreements/{agreement_id}/accept", {"phoneNumber": "4712345678"},
                                new_key())
        assert reply.status == (204 if env == "test" else 404), reply.text
    shop = merchant(sandbox)
    agreement_id = (await shop.draft()).json["agreementId"]
    assert_problem(await shop.call("PATCH", f"{BASE}/agreements/{agreement_id}/accept", {"phoneNumber": "12"},
                                   new_key()), 400, "validation-error", "phoneNumber")


async def test_webhooks_deliver_recurring_events(sandbox):
    shop = merchant(sandbox)
    inbox = sandbox.url("test") + "/_sandbox/inbox/rec"
    events = ["recurring.agreement-activated.v1", "recurring.charge-captured.v1", "recurring.agreement-stopped.v1"]
    reply = await shop.call("POST", "/webhooks/v1/webhooks", {"url": inbox, "events": events})
    assert reply.status == 201, reply.text
    agreement_id = await shop.active()
    charge_id = (await shop.charge(agreement_id, charge_body(sandbox))).json["chargeId"]
    await shop.control(f"/agreements/{agreement_id}/charges/{charge_id}/outcome", {"outcome": "CHARGED"})
    await shop.update(agreement_id, {"status": "STOPPED"})
    for _ in range(200):
        got = await sandbox.request("GET", "/_sandbox/inbox/rec", "test")  # bodies checked by the test client
        if len(got.json["deliveries"]) >= 3:
            break
        await asyncio.sleep(0.02)
    bodies = [json.loads(d["body"]) for d in got.json["deliveries"]]
    assert [b["eventType"] for b in bodies] == events
    assert bodies[1]["chargeId"] == charge_id and bodies[2]["actor"] == "MERCHANT"


async def test_created_after_takes_any_int64_as_the_spec_types_it(sandbox):
    """createdAfter is an int64 of epoch milliseconds: a time before 1970 lists everything (found by schemathesis),
    and only a number outside int64 is refused."""
    shop = merchant(sandbox)
    agreement_id = await shop.active()
    reply = await shop.call("GET", f"{BASE}/agreements?status=ACTIVE&createdAfter=-77985082")
    assert reply.status == 200 and agreement_id in [a["id"] for a in reply.json], reply.text
    assert_problem(await shop.call("GET", f"{BASE}/agreements?createdAfter={2**63}"), 400, "validation-error",
                   "createdAfter")
