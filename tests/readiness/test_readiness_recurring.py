"""The Recurring checklist's automatic items (REC-3, REC-4, REC-15, G-I2), met and not met, driven over HTTP by
the independent client (tests/readiness/integration.py): draft, the user's approval through the control plane,
charges on the virtual clock, stop and refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from integration import Integration, control, item, report
from recurring_support import draft_body, recurring_unit

from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE

AGREEMENTS = "/recurring/v3/agreements"


def shop_for(sandbox) -> Integration:
    msn = recurring_unit(sandbox)
    return Integration(sandbox.url("test"), sandbox.key("merchant", "test", msn), msn)


async def active(sandbox, shop: Integration, **extra) -> tuple[str, str | None]:
    status, body = await shop.call("POST", AGREEMENTS, draft_body(**extra))
    assert status == 201, body
    agreement_id = body["agreementId"]
    status, answer = await control(sandbox.url("test"), "POST",
                                   f"/_sandbox/recurring/{shop.msn}/agreements/{agreement_id}/approve")
    assert status == 200, answer
    return agreement_id, body.get("chargeId")


def due(sandbox, days: int) -> str:
    return (datetime.fromtimestamp(sandbox.runtime.clock.time(), UTC).date() + timedelta(days=days)).isoformat()


async def test_polling_the_agreement_calmly_is_met_and_fast_is_not(sandbox):
    base = sandbox.url("test")
    async with shop_for(sandbox) as fast:
        status, body = await fast.call("POST", AGREEMENTS, draft_body())
        assert status == 201
        for _ in range(4):
            assert (await fast.call("GET", f"{AGREEMENTS}/{body['agreementId']}"))[0] == 200
    verdict = item(await report(base, fast.msn, "recurring"), "recurring", "REC-3")
    assert verdict["status"] == NOT_MET and "every 2 seconds" in verdict["evidence"]
    await control(base, "POST", "/_sandbox/reset")
    await control(base, "POST", "/_sandbox/clock", {"freeze": True})
    async with shop_for(sandbox) as calm:
        status, body = await calm.call("POST", AGREEMENTS, draft_body())
        for _ in range(3):
            await control(base, "POST", "/_sandbox/clock", {"advanceSeconds": 2.5})
            assert (await calm.call("GET", f"{AGREEMENTS}/{body['agreementId']}"))[0] == 200
    assert item(await report(base, calm.msn, "recurring"), "recurring", "REC-3")["status"] == MET


async def test_webhook_for_agreement_stopped_is_met_and_without_it_not(sandbox):
    base = sandbox.url("test")
    async with shop_for(sandbox) as shop:
        assert item(await report(base, shop.msn, "recurring"), "recurring", "REC-4")["status"] == TO_EXERCISE
        status, _ = await shop.call("POST", "/webhooks/v1/webhooks", {
            "url": f"{base}/_sandbox/inbox/rd-rec4", "events": ["recurring.charge-captured.v1"]})
        assert status == 201
        verdict = item(await report(base, shop.msn, "recurring"), "recurring", "REC-4")
        assert verdict["status"] == NOT_MET and "agreement-stopped" in verdict["evidence"]
        status, _ = await shop.call("POST", "/webhooks/v1/webhooks", {
            "url": f"{base}/_sandbox/inbox/rd-rec4", "events": ["recurring.agreement-stopped.v1"]})
        assert status == 201
    assert item(await report(base, shop.msn, "recurring"), "recurring", "REC-4")["status"] == MET


async def test_go_live_evidence_met_with_the_clock_exercise_and_not_yet_without(sandbox):
    """REC-15 is "met" or "not yet exercised": it asks that four things happened; not having done them yet is
    never a fault of the integration, only unfinished evidence."""
    base = sandbox.url("test")
    async with shop_for(sandbox) as shop:
        agreement_id, _ = await active(sandbox, shop)
        status, body = await shop.call("POST", f"{AGREEMENTS}/{agreement_id}/charges", {
            "amount": 49900, "description": "October", "due": due(sandbox, 5), "retryDays": 2,
            "transactionType": "DIRECT_CAPTURE"})
        assert status == 201, body
        charge_id = body["chargeId"]
        verdict = item(await report(base, shop.msn, "recurring"), "recurring", "REC-15")
        assert verdict["status"] == TO_EXERCISE and "charge CHARGED" in verdict["evidence"].split("missing")[1]
        assert verdict["exercise"]["body"] == {"advanceSeconds": 32 * 86400}
        # "move the clock past a due date": the charge is charged
        status, _ = await control(base, "POST", "/_sandbox/readiness/exercises",
                                  {"msn": shop.msn, "api": "recurring", "item": "REC-15"})
        assert status == 200
        await control(base, "GET", "/_sandbox/clock")  # what fell due happens now
        shop.token = None  # the token outlived the clock's jump
        status, charge = await shop.call("GET", f"{AGREEMENTS}/{agreement_id}/charges/{charge_id}")
        assert charge["status"] == "CHARGED", charge
        status, _ = await shop.call("POST", f"{AGREEMENTS}/{agreement_id}/charges/{charge_id}/refund",
                                    {"amount": 1000, "description": "sorry"})
        assert status == 204
        assert (await shop.call("PATCH", f"{AGREEMENTS}/{agreement_id}", {"status": "STOPPED"}))[0] == 204
    verdict = item(await report(base, shop.msn, "recurring"), "recurring", "REC-15")
    assert verdict["status"] == MET, verdict
    assert "exercise" not in verdict


async def test_retry_after_a_charge_capture_fault_same_key_met_new_key_not(sandbox):
    base = sandbox.url("test")
    async with shop_for(sandbox) as shop:
        agreement_id, charge_id = await active(sandbox, shop, initialCharge={
            "amount": 100, "description": "First month", "transactionType": "RESERVE_CAPTURE"})
        status, done = await control(base, "POST", "/_sandbox/readiness/exercises",
                                     {"msn": shop.msn, "api": "recurring", "item": "G-I2"})
        assert status == 200 and done["fault"]["status"] == 503
        path = f"{AGREEMENTS}/{agreement_id}/charges/{charge_id}/capture"
        assert (await shop.call("POST", path, {"amount": 50}, key="cap-rec-1"))[0] == 503
        assert (await shop.call("POST", path, {"amount": 50}, key="cap-rec-1"))[0] == 204
        assert item(await report(base, shop.msn, "recurring"), "recurring", "G-I2")["status"] == MET
        await control(base, "POST", "/_sandbox/readiness/exercises",
                      {"msn": shop.msn, "api": "recurring", "item": "G-I2"})
        assert (await shop.call("POST", path, {"amount": 50}, key="cap-rec-2"))[0] == 503
        assert (await shop.call("POST", path, {"amount": 50}, key="cap-rec-3"))[0] == 204
    verdict = item(await report(base, shop.msn, "recurring"), "recurring", "G-I2")
    assert verdict["status"] == NOT_MET and "new Idempotency-Key" in verdict["evidence"]
