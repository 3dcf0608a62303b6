"""The Checkout checklist (checklists.md §4): CO-1 (the payment-completed callbacks answered with a 2xx) met and
not met, and its endpoint items filled in, with sessions created by a plain aiohttp client (the keys themselves as
headers, as Checkout takes them) and paid on the hosted page."""

from __future__ import annotations

import asyncio

import aiohttp
from checkout_support import Receiver, new_reference, page_token, post_page, raw_headers, session_body
from integration import item, report

from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE


async def paid_session(sandbox, receiver_url: str) -> str:
    msn = sandbox.msn_role("premium-shop-1")
    keys = sandbox.key("merchant", "test", owner=msn)
    reference = new_reference()
    async with aiohttp.ClientSession() as session, session.post(
            sandbox.url("test") + "/checkout/v3/session", json=session_body(reference, callback=receiver_url),
            headers=raw_headers(keys, msn)) as resp:
        assert resp.status == 200, await resp.text()
        token = page_token((await resp.json())["checkoutFrontendUrl"])
    await post_page(sandbox, "test", "approve", {"token": token})
    return reference


async def callbacks_verdict(sandbox, received, count: int) -> dict:
    for _ in range(250):
        if len(received) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)  # the attempt is logged once the answer is in
    return item(await report(sandbox.url("test"), sandbox.msn_role("premium-shop-1"), "checkout"), "checkout", "CO-1")


async def test_callbacks_answered_with_a_2xx_are_met(sandbox):
    assert item(await report(sandbox.url("test"), sandbox.msn_role("premium-shop-1"), "checkout"), "checkout",
                "CO-1")["status"] == TO_EXERCISE
    async with Receiver([200]) as receiver:
        reference = await paid_session(sandbox, receiver.url)
        verdict = await callbacks_verdict(sandbox, receiver.received, 1)
    assert verdict["status"] == MET, verdict
    body = await report(sandbox.url("test"), sandbox.msn_role("premium-shop-1"), "checkout")
    created = item(body, "checkout", "CO-E1")
    assert created["status"] == MET and body["checklists"][0]["verdicts"]["CO-7"] == "to confirm yourself"
    assert reference  # the session the callback was for


async def test_a_callback_answered_with_a_500_is_not_met(sandbox):
    async with Receiver([500]) as receiver:
        await paid_session(sandbox, receiver.url)
        verdict = await callbacks_verdict(sandbox, receiver.received, 1)
    assert verdict["status"] == NOT_MET and "status 500" in verdict["evidence"], verdict
