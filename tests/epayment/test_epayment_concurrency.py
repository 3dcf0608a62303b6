"""Many concurrent captures or refunds on one payment never pass its limits, and each success is logged."""

from __future__ import annotations

import asyncio

from epayment_support import assert_problem, merchant, partner


async def test_concurrent_captures_stop_at_the_authorized_amount(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-race-0001", 1000)
    await shop.headers()  # one token before the race
    keys = [f"race-{i}" for i in range(30)]
    replies = await asyncio.gather(*(shop.capture("order-race-0001", 70, key=key) for key in keys))
    ok = [r for r in replies if r.status == 200]
    assert len(ok) == 1000 // 70  # 14 fit, 980 captured
    for reply in replies:
        if reply.status != 200:
            assert_problem(reply, 400, "6090")
    got = (await shop.get("order-race-0001")).json
    assert got["aggregate"]["capturedAmount"]["value"] == 14 * 70
    captured = [e for e in (await shop.events("order-race-0001")).json if e["name"] == "CAPTURED"]
    assert len(captured) == len(ok)
    assert {e["idempotencyKey"] for e in captured} == {k for k, r in zip(keys, replies, strict=True)
                                                       if r.status == 200}


async def test_concurrent_refunds_stop_at_the_captured_amount(sandbox):
    janitor = partner(sandbox)
    await janitor.authorized("order-race-0002", 5000)
    await janitor.capture("order-race-0002", 3000)
    replies = await asyncio.gather(*(janitor.refund("order-race-0002", 400) for _ in range(20)))
    ok = [r for r in replies if r.status == 200]
    assert len(ok) == 7
    assert all(r.status == 400 for r in replies if r.status != 200)
    got = (await janitor.get("order-race-0002")).json
    assert got["aggregate"]["refundedAmount"]["value"] == 2800
    refunded = [e for e in (await janitor.events("order-race-0002")).json if e["name"] == "REFUNDED"]
    assert len(refunded) == 7 and sum(e["amount"]["value"] for e in refunded) == 2800


async def test_concurrent_retries_with_one_idempotency_key_capture_once(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-race-0003", 1000)
    await shop.headers()
    replies = await asyncio.gather(*(shop.capture("order-race-0003", 300, key="same-capture") for _ in range(10)))
    assert all(r.status == 200 for r in replies)
    assert len({r.text for r in replies}) == 1
    got = (await shop.get("order-race-0003")).json
    assert got["aggregate"]["capturedAmount"]["value"] == 300
