"""The login page and the virtual phone in a real headless Chromium: the browser is sent from /oauth2/auth to the
sandbox's login page, sees the requested scopes, picks a test user, consents and lands on the merchant's callback
(another origin: the page's CSP lets the form redirect there and nowhere else); Cancel comes back with
access_denied; a CIBA request shows on the user's phone with its binding message, and Approve there lets the
merchant's polling get tokens."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp import web
from browser_support import chromium, needs_chromium, new_page
from login_support import PREFIX, basic, login_client, token

from sandbox.core.claims import SCOPE_TEXT
from sandbox.core.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, login_ciba_interval=1)


async def callback_server():
    """The merchant's site on its own loopback port: it records what the browser brings back."""
    seen: list[dict] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.Response(text="merchant callback", content_type="text/html")

    app = web.Application()
    app.router.add_get("/callback", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"http://127.0.0.1:{port}/callback", seen


def auth_url(sandbox, client: dict, redirect_uri: str) -> str:
    return sandbox.url("test") + PREFIX + "oauth2/auth?" + urlencode({
        "response_type": "code", "client_id": client["client_id"], "scope": "openid name email birthDate",
        "state": "browser-state-1", "redirect_uri": redirect_uri})


@needs_chromium
async def test_the_login_page_consents_and_cancels_in_chromium(sandbox):
    client = login_client(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    runner, redirect_uri, seen = await callback_server()
    try:
        async with chromium() as browser:
            page, errors = await new_page(browser)
            await page.goto(auth_url(sandbox, client, redirect_uri))
            assert "/_sandbox/login?login=" in page.url
            scopes = await page.locator(".scopes li").all_inner_texts()
            assert scopes == [SCOPE_TEXT["name"], SCOPE_TEXT["email"], SCOPE_TEXT["birthDate"]]
            assert await page.locator("[data-sandbox-marker]").count() == 1
            await page.select_option("select[name=user]", user.phone_number)
            await page.click("button.approve")
            await page.wait_for_url(redirect_uri + "?*")
            assert seen[-1]["state"] == "browser-state-1" and seen[-1]["code"]
            reply = await token(sandbox, client, {"grant_type": "authorization_code", "code": seen[-1]["code"],
                                                  "redirect_uri": redirect_uri})
            assert reply.status == 200, reply.text
            info = await sandbox.request("GET", "/vipps-userinfo-api/userinfo", "test",
                                         headers={"Authorization": "Bearer " + reply.json["access_token"]})
            assert info.json["name"] == user.name and info.json["birthdate"] == user.birthdate

            await page.goto(auth_url(sandbox, client, redirect_uri))  # a typed under-15 number is refused
            await page.fill("input[name=phoneNumber]", sandbox.runtime.world.users_by_role["no-under-15"].phone_number)
            await page.click("button.approve")
            assert "under 15" in await page.locator("[data-refusal]").inner_text()
            await page.click("button.reject")
            await page.wait_for_url(redirect_uri + "?*")
            assert seen[-1]["error"] == "access_denied" and seen[-1]["state"] == "browser-state-1"
            assert errors == []
    finally:
        await runner.cleanup()


@needs_chromium
async def test_an_unregistered_redirect_uri_stays_on_the_error_page_in_chromium(sandbox):
    async with chromium() as browser:
        page, _ = await new_page(browser)
        response = await page.goto(auth_url(sandbox, login_client(sandbox), "https://evil.example/callback"))
        assert response is not None and response.status == 400
        assert urlsplit(page.url).netloc == urlsplit(sandbox.url("test")).netloc
        assert "preregistered" in await page.locator("[data-error]").inner_text()


@needs_chromium
async def test_ciba_on_the_phone_in_chromium(sandbox):
    client = login_client(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    form = urlencode({"login_hint": f"urn:msisdn:{user.phone_number}", "scope": "openid name",
                      "binding_message": "ABC-123"})
    headers = {"Authorization": basic(client), "Content-Type": "application/x-www-form-urlencoded"}
    started = await sandbox.request("POST", "/vipps-login-ciba/api/backchannel/authentication", "test", data=form,
                                    headers=headers)
    assert started.status == 200, started.text
    auth_req_id = started.json["auth_req_id"]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        card = page.locator(f"[data-kind=ciba][data-auth-req-id='{auth_req_id}']")
        assert "ABC-123" in await card.inner_text() and SCOPE_TEXT["name"] in await card.inner_text()
        await card.locator("button.approve").click()
        await page.wait_for_load_state()
        assert await page.locator("[data-kind=ciba]").count() == 0
        assert errors == []
    await asyncio.sleep(1)  # the interval (1 s here): polled sooner, it would be slow_down
    poll = urlencode({"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id})
    reply = await sandbox.request("POST", PREFIX + "oauth2/token", "test", data=poll, headers=headers)
    assert reply.status == 200, reply.text
