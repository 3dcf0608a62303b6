"""Each automatically judged checklist item, met by a careful integration and not met by a sloppy one, both
driven over HTTP by an independent client (tests/readiness/integration.py), with the verdict read from
/_sandbox/readiness."""

from __future__ import annotations

from integration import Integration, control, item, report

from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE


def merchant(sandbox, **switches) -> Integration:
    keys = sandbox.key("merchant", "test")
    return Integration(sandbox.url("test"), keys, keys["owner"], **switches)


async def approve(sandbox, msn: str, reference: str) -> None:
    status, body = await control(sandbox.url("test"), "POST", f"/_sandbox/payments/{msn}/{reference}/approve")
    assert status == 200, body


async def test_nothing_done_is_never_met(sandbox):
    msn = sandbox.key("merchant", "test")["owner"]
    body = await report(sandbox.url("test"), msn)
    statuses = {row["status"] for checklist in body["checklists"] for row in checklist["items"]}
    assert MET not in statuses and NOT_MET not in statuses
    assert body["summary"][0].startswith("ePayment: 0 of ")


async def test_endpoints_are_filled_in_with_the_newest_reference(sandbox):
    async with merchant(sandbox) as shop:
        assert await shop.create("acme-order-1001") == 201
        await approve(sandbox, shop.msn, "acme-order-1001")
        assert await shop.capture("acme-order-1001", 5000) == 200
        await shop.get("acme-order-1001")
    body = await report(sandbox.url("test"), shop.msn, "epayment")
    created, captured = item(body, "epayment", "EP-E1"), item(body, "epayment", "EP-E5")
    assert created["status"] == MET
    # "Capture payment (full and partial)": a partial capture alone is half of it
    assert captured["status"] == TO_EXERCISE and "partial: acme-order-1001" in captured["evidence"]
    assert "not yet: full" in captured["evidence"] and captured["proofs"][0]["id"] == "acme-order-1001"
    async with merchant(sandbox) as shop:
        assert await shop.create("acme-order-1002") == 201
        await approve(sandbox, shop.msn, "acme-order-1002")
        assert await shop.capture("acme-order-1002", 10000) == 200
    captured = item(await report(sandbox.url("test"), shop.msn, "epayment"), "epayment", "EP-E5")
    assert captured["status"] == MET, captured
    assert "full: acme-order-1002" in captured["evidence"] and "partial: acme-order-1001" in captured["evidence"]
    assert item(body, "epayment", "EP-E6")["status"] == TO_EXERCISE  # no refund yet
    assert "todo" in item(body, "epayment", "EP-E6")


async def test_system_headers_met_and_not_met(sandbox):
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-2001") == 201
    msn = good.msn
    assert item(await report(sandbox.url("test"), msn, "epayment"), "epayment", "G-H1")["status"] == MET
    async with merchant(sandbox, system_headers=False) as sloppy:
        assert await sloppy.create("acme-order-2002") == 201
    verdict = item(await report(sandbox.url("test"), msn, "epayment"), "epayment", "G-H1")
    assert verdict["status"] == NOT_MET and "1 of 2" in verdict["evidence"]
    assert verdict["proofs"][0]["requestId"] > 0 and "todo" in verdict


async def test_idempotency_keys_met_and_not_met(sandbox):
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-3001") == 201
    assert item(await report(sandbox.url("test"), good.msn), "epayment", "G-I1")["status"] == MET
    async with merchant(sandbox, idempotency=False) as sloppy:
        await sloppy.create("acme-order-3002")  # refused: the key is required on create
    verdict = item(await report(sandbox.url("test"), good.msn), "epayment", "G-I1")
    assert verdict["status"] == NOT_MET


async def test_token_reuse_met_and_not_met(sandbox):
    async with merchant(sandbox) as good:
        for n in range(4):
            assert await good.create(f"acme-order-40{n:02d}") == 201
    assert item(await report(sandbox.url("test"), good.msn), "epayment", "G-H5")["status"] == MET
    await control(sandbox.url("test"), "POST", "/_sandbox/reset")
    async with merchant(sandbox, token_per_call=True) as sloppy:
        for n in range(4):
            assert await sloppy.create(f"acme-order-41{n:02d}") == 201
    assert item(await report(sandbox.url("test"), good.msn), "epayment", "G-H5")["status"] == NOT_MET


async def test_retry_with_the_same_key_through_the_exercise(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-5001") == 201
        await approve(sandbox, good.msn, "acme-order-5001")
        verdict = item(await report(base, good.msn), "epayment", "G-I2")
        assert verdict["status"] == TO_EXERCISE and verdict["exercise"]["path"] == "/_sandbox/faults"
        status, done = await control(base, "POST", "/_sandbox/readiness/exercises",
                                     {"msn": good.msn, "api": "epayment", "item": "G-I2"})
        assert status == 200 and done["fault"]["status"] == 503
        assert await good.capture("acme-order-5001", 1000, key="cap-5001") == 503
        assert await good.capture("acme-order-5001", 1000, key="cap-5001") == 200
    assert item(await report(base, good.msn), "epayment", "G-I2")["status"] == MET


async def test_retry_with_a_new_key_is_not_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as sloppy:
        assert await sloppy.create("acme-order-5101") == 201
        await approve(sandbox, sloppy.msn, "acme-order-5101")
        await control(base, "POST", "/_sandbox/readiness/exercises",
                      {"msn": sloppy.msn, "api": "epayment", "item": "G-I2"})
        assert await sloppy.capture("acme-order-5101", 1000, key="cap-a") == 503
        assert await sloppy.capture("acme-order-5101", 1000, key="cap-b") == 200
    verdict = item(await report(base, sloppy.msn), "epayment", "G-I2")
    assert verdict["status"] == NOT_MET and "new Idempotency-Key" in verdict["evidence"]


async def test_resending_after_a_4xx_is_not_met(sandbox):
    async with merchant(sandbox) as sloppy:
        assert await sloppy.create("acme-order-6001") == 201
        # capture before the user approved: a 4xx; resending it unchanged can never help
        assert await sloppy.capture("acme-order-6001", 1000, key="cap-6001") >= 400
        assert await sloppy.capture("acme-order-6001", 1000, key="cap-6001") >= 400
    assert item(await report(sandbox.url("test"), sloppy.msn), "epayment", "G-I4")["status"] == NOT_MET
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-6002") == 201
    await control(sandbox.url("test"), "POST", "/_sandbox/reset")
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-6003") == 201
    assert item(await report(sandbox.url("test"), good.msn), "epayment", "G-I4")["status"] == MET


async def test_polling_pace_met_and_not_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as fast:
        assert await fast.create("acme-order-7001") == 201
        for _ in range(4):
            await fast.get("acme-order-7001")
    verdict = item(await report(base, fast.msn), "epayment", "G-P1")
    assert verdict["status"] == NOT_MET and "every 2 seconds" in verdict["evidence"]
    await control(base, "POST", "/_sandbox/reset")
    await control(base, "POST", "/_sandbox/clock", {"freeze": True})
    async with merchant(sandbox) as calm:
        assert await calm.create("acme-order-7002") == 201
        for _ in range(3):
            await control(base, "POST", "/_sandbox/clock", {"advanceSeconds": 2.5})
            await calm.get("acme-order-7002")
    assert item(await report(base, calm.msn), "epayment", "G-P1")["status"] == MET


async def test_reference_quality_met_and_not_met(sandbox):
    async with merchant(sandbox) as good:
        assert await good.create("acme-order-8001") == 201
    assert item(await report(sandbox.url("test"), good.msn), "epayment", "EP-6")["status"] == MET
    async with merchant(sandbox) as sloppy:
        assert await sloppy.create("00012345") == 201
    verdict = item(await report(sandbox.url("test"), good.msn), "epayment", "EP-6")
    assert verdict["status"] == NOT_MET and "00012345" in verdict["evidence"]


async def test_webhooks_and_polling_met_and_not_met(sandbox):
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        assert await shop.create("acme-order-9001") == 201
        await shop.get("acme-order-9001")
        verdict = item(await report(base, shop.msn), "epayment", "EP-1")
        assert verdict["status"] == NOT_MET and "no webhook" in verdict["evidence"]
        status, _ = await shop.call("POST", "/webhooks/v1/webhooks", {
            "url": f"{base}/_sandbox/inbox/rd-9001", "events": ["epayments.payment.captured.v1"]})
        assert status == 201
    assert item(await report(base, shop.msn), "epayment", "EP-1")["status"] == MET
    https = item(await report(base, shop.msn, "webhooks"), "webhooks", "WH-2")
    assert https["status"] == NOT_MET  # the inbox is plain http://


async def test_failure_cases_and_states(sandbox):
    """EP-14 is "met" or "not yet exercised", never "not met": it asks that the failure cases were tried; not
    having tried one yet is unfinished evidence, not a broken rule. The exercise makes the user reject."""
    base = sandbox.url("test")
    async with merchant(sandbox) as shop:
        for reference, value in (("acme-order-9101", 151), ("acme-order-9102", 186), ("acme-order-9103", 1000)):
            assert await shop.create(reference, value) == 201
        verdict = item(await report(base, shop.msn), "epayment", "EP-14")
        assert verdict["status"] == TO_EXERCISE and "ABORTED" in verdict["evidence"]
        assert verdict["exercise"]["path"] == f"/_sandbox/payments/{shop.msn}/newest-created/reject"
        # "make the user reject": the exercise rejects the newest CREATED payment
        status, done = await control(base, "POST", "/_sandbox/readiness/exercises",
                                     {"msn": shop.msn, "api": "epayment", "item": "EP-14"})
        assert status == 200 and done["rejected"] == "acme-order-9103", done
        verdict = item(await report(base, shop.msn), "epayment", "EP-14")
        assert verdict["status"] == TO_EXERCISE and "EXPIRED" in verdict["evidence"]
        assert "ABORTED" not in verdict["evidence"].split("still to test")[1]
        status, _ = await control(base, "POST", "/_sandbox/readiness/exercises",
                                  {"msn": shop.msn, "api": "epayment", "item": "EP-2"})
        assert status == 200
        await control(base, "GET", "/_sandbox/clock")  # what fell due happens now
    assert item(await report(base, shop.msn), "epayment", "EP-14")["status"] == MET
    states = item(await report(base, shop.msn), "epayment", "EP-2")
    assert states["status"] == NOT_MET and "ABORTED" in states["evidence"]  # reached, never read back


async def test_partner_msn_met_and_not_met(sandbox):
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    assert msn in partner["msns"]
    base = sandbox.url("production")
    async with Integration(base, partner, msn, partner=True) as good:
        assert await good.create("acme-order-9201") == 201
    assert item(await report(base, msn, "partner"), "partner", "PA-4")["status"] == MET
    async with Integration(base, partner, msn, partner=True, send_msn=False) as sloppy:
        assert await sloppy.create("acme-order-9202") >= 400
    # no MSN names no sales unit: it counts against every sales unit the partner keys reach
    verdict = item(await report(base, msn, "partner"), "partner", "PA-4")
    assert verdict["status"] == NOT_MET and "without Merchant-Serial-Number" in verdict["evidence"]


async def test_bad_requests_are_problems(sandbox):
    base = sandbox.url("test")
    assert (await control(base, "GET", "/_sandbox/readiness"))[0] == 400
    assert (await control(base, "GET", "/_sandbox/readiness?msn=999999999"))[0] == 404
    assert (await control(base, "GET", f"/_sandbox/readiness?msn={sandbox.key('merchant', 'test')['owner']}"
                                       "&api=nope"))[0] == 400
    assert (await control(base, "POST", "/_sandbox/readiness/exercises", {"msn": "x"}))[0] in (400, 404)
    status, _ = await control(base, "POST", "/_sandbox/readiness/exercises",
                              {"msn": sandbox.key("merchant", "test")["owner"], "api": "epayment", "item": "EP-E1"})
    assert status == 400
    # "make the user reject" with no CREATED payment: a clear 409, not a 500
    status, body = await control(base, "POST", "/_sandbox/readiness/exercises",
                                 {"msn": sandbox.key("merchant", "test")["owner"], "api": "epayment", "item": "EP-14"})
    assert status == 409 and "no CREATED payment" in body["detail"], body


async def test_captures_only_after_authorization_met_and_not_met(sandbox):
    """G-T3: a capture asked for before the user approved is named; captures after approval are met."""
    base = sandbox.url("test")
    async with merchant(sandbox) as good:
        assert item(await report(base, good.msn), "epayment", "G-T3")["status"] == TO_EXERCISE
        assert await good.create("acme-order-6101") == 201
        await approve(sandbox, good.msn, "acme-order-6101")
        assert await good.capture("acme-order-6101", 1000) == 200
    verdict = item(await report(base, good.msn), "epayment", "G-T3")
    assert verdict["status"] == MET and "All 1 captures" in verdict["evidence"]
    async with merchant(sandbox) as hasty:
        assert await hasty.create("acme-order-6102") == 201
        assert await hasty.capture("acme-order-6102", 1000) >= 400  # before the user approved
    verdict = item(await report(base, hasty.msn), "epayment", "G-T3")
    assert verdict["status"] == NOT_MET and "acme-order-6102" in verdict["evidence"]
