"""The virtual phone, /_sandbox/phone/{phoneNumber}: a user's pending ePayment requests with Approve and Reject,
in Chromium; the admin-token rules of the control plane (open on loopback, the token off it)."""

from __future__ import annotations

import uuid

import aiohttp
from browser_support import chromium, needs_chromium, new_page
from epayment_support import create_body, merchant

from sandbox.apis.epayment.rules import MAGIC_AMOUNTS
from sandbox.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient


def push(reference: str, phone: str, value: int = 10000) -> dict:
    return create_body(reference, value, flow="PUSH_MESSAGE", customer={"phoneNumber": phone},
                       profile={"scope": "name"}, paymentDescription=f"Order {reference}")


@needs_chromium
async def test_the_phone_shows_the_user_s_requests_and_approves_and_rejects_them(sandbox):
    shop = merchant(sandbox)
    world = sandbox.runtime.world
    user, other = world.users_by_role["no-user"], world.users_by_role["no-several-addresses"]
    for reference, phone in (("phone-0001", user.phone_number), ("phone-0002", user.phone_number),
                             ("phone-0003", other.phone_number)):
        assert (await shop.create(push(reference, phone))).status == 201
    async with chromium() as browser:
        page, errors = await new_page(browser)
        response = await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        assert response is not None and response.status == 200
        assert user.name in await page.locator(".who").inner_text()
        requests = page.locator("fieldset.request")
        assert await requests.count() == 2  # the other user's request is not on this phone
        assert await page.locator("[data-reference=phone-0003]").count() == 0
        first = page.locator("[data-reference=phone-0001]")
        assert "100.00 NOK" in await first.inner_text() and "Order phone-0001" in await first.inner_text()
        await first.locator("button.approve").click()
        await page.wait_for_url(f"**/_sandbox/phone/{user.phone_number}")
        assert await page.locator("[data-reference=phone-0001]").count() == 0
        await page.locator("[data-reference=phone-0002] button.reject").click()
        await page.locator("[data-empty]").wait_for()
        assert errors == []
    approved = (await shop.get("phone-0001")).json
    assert approved["state"] == "AUTHORIZED"
    assert approved["profile"]["sub"] == str(uuid.uuid5(uuid.NAMESPACE_URL, f"{shop.msn}/{user.phone_number}"))
    assert (await shop.get("phone-0002")).json["state"] == "ABORTED"
    assert (await shop.get("phone-0003")).json["state"] == "CREATED"


async def test_the_phone_keeps_environments_apart_and_shows_magic_amounts_refused(sandbox):
    shop, prod = merchant(sandbox), merchant(sandbox, env="production")
    user = sandbox.runtime.world.users_by_role["no-user"]
    amount = next(iter(MAGIC_AMOUNTS))
    assert (await shop.create(push("phone-0004", user.phone_number, amount))).status == 201
    assert (await prod.create(push("phone-0005", user.phone_number))).status == 201
    async with sandbox.session.get(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}") as resp:
        page = await resp.text()
    assert "phone-0004" in page and "phone-0005" not in page
    assert f'data-error-code="{MAGIC_AMOUNTS[amount][0]}"' in page and "disabled" in page
    async with sandbox.session.get(sandbox.url("production") + f"/_sandbox/phone/{user.phone_number}") as resp:
        page = await resp.text()
    assert "phone-0005" in page and "phone-0004" not in page


async def test_a_malformed_number_is_a_problem_and_a_stranger_s_phone_is_empty(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/phone/+47abc", "test")
    assert reply.status == 400 and reply.headers["Content-Type"].startswith("application/problem+json")
    async with sandbox.session.get(sandbox.url("test") + "/_sandbox/phone/4790000009") as resp:
        assert resp.status == 200
        page = await resp.text()
    assert "not a test user" in page and "data-empty" in page


async def test_off_loopback_the_phone_needs_the_admin_token():
    running = RunningSandbox(Settings(host="0.0.0.0", port=0, prod_port=0, admin_token="phone-admin-token-0123456789"))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = SandboxClient(running, session)
            refused = await client.request("GET", "/_sandbox/phone/4790000009", "test")
            assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "admin-token-required"
            allowed = await client.request("GET", "/_sandbox/phone/4790000009", "test",
                                           headers={"Authorization": "Bearer phone-admin-token-0123456789"})
            assert allowed.status == 200
    finally:
        await running.stop()
