"""The Login checklist's automatic items (L-4, L-7, L-9, L-11, L-16), each met and not met by a plain aiohttp
Login integration (tests/readiness/login_integration.py), the verdict read from /_sandbox/readiness."""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlencode

import aiohttp
import pytest
from integration import control, item, report
from login_integration import PREFIX, LoginIntegration

from sandbox.core.settings import Settings
from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE
from sandbox.testing import spawn


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, login_ciba_interval=1)


def client(sandbox, **switches) -> LoginIntegration:
    keys = sandbox.key("merchant", "test", owner=sandbox.msn_role("premium-shop-1"))
    return LoginIntegration(sandbox.url("test"), keys, **switches)


def phone(sandbox) -> str:
    return sandbox.runtime.world.users_by_role["no-user"].phone_number


async def verdict(sandbox, item_id: str) -> dict:
    body = await report(sandbox.url("test"), sandbox.msn_role("premium-shop-1"), "login")
    return item(body, "login", item_id)


async def logins(shop: LoginIntegration, sandbox, n: int = 2) -> None:
    for _ in range(n):
        status, body = await shop.authorize(phone(sandbox))
        assert status == 200, body


async def test_a_careful_login_meets_every_item_and_fills_in_the_endpoints(sandbox):
    for item_id in ("L-4", "L-7", "L-9", "L-11", "L-16"):
        assert (await verdict(sandbox, item_id))["status"] == TO_EXERCISE
    async with client(sandbox) as shop:
        await logins(shop, sandbox, 3)
    for item_id in ("L-4", "L-7", "L-9", "L-11"):
        got = await verdict(sandbox, item_id)
        assert got["status"] == MET, got
    assert (await verdict(sandbox, "L-E3"))["status"] == MET  # /auth's 302 is its success
    assert (await verdict(sandbox, "L-E4"))["status"] == MET
    # discovery names no client: it counts for the sales unit whose client logs in from the same address
    assert (await verdict(sandbox, "L-E1"))["status"] == MET
    assert (await verdict(sandbox, "L-E2"))["status"] != MET  # this client never fetched the JWKS


async def test_redirect_uri_unregistered_or_plain_http_or_changed_on_token_is_not_met(sandbox):
    async with client(sandbox, redirect_uri="http://127.0.0.1:53682/callback/") as sloppy:  # not registered
        assert (await sloppy.authorize(phone(sandbox)))[0] == 400
    got = await verdict(sandbox, "L-4")
    assert got["status"] == NOT_MET and "not registered" in got["evidence"]
    await control(sandbox.url("test"), "POST", "/_sandbox/reset")
    keys = sandbox.key("merchant", "test", owner=sandbox.msn_role("premium-shop-1"))
    status, _ = await control(sandbox.url("test"), "POST", f"/_sandbox/login/clients/{keys['client_id']}",
                              {"redirectUris": ["http://shop.example.com/callback"]})
    assert status == 200
    async with client(sandbox, redirect_uri="http://shop.example.com/callback") as sloppy:  # registered, plain
        assert (await sloppy.authorize(phone(sandbox)))[0] == 200
    assert (await verdict(sandbox, "L-4"))["status"] == NOT_MET
    await control(sandbox.url("test"), "POST", "/_sandbox/reset")
    async with client(sandbox, token_redirect_uri="http://localhost:53682/callback") as sloppy:
        assert (await sloppy.authorize(phone(sandbox)))[0] == 400  # invalid_grant
    got = await verdict(sandbox, "L-4")
    assert got["status"] == NOT_MET and "/oauth2/token" in got["evidence"]


async def test_state_short_or_repeated_is_not_met(sandbox):
    async with client(sandbox, state="same-state-123") as sloppy:
        await logins(sloppy, sandbox, 2)
    got = await verdict(sandbox, "L-7")
    assert got["status"] == NOT_MET and "reused the state" in got["evidence"]
    await control(sandbox.url("test"), "POST", "/_sandbox/reset")
    async with client(sandbox, state="short") as sloppy:
        assert (await sloppy.authorize(phone(sandbox)))[0] == 302  # sent back with invalid_request
    got = await verdict(sandbox, "L-7")
    assert got["status"] == NOT_MET and "shorter than 8" in got["evidence"]


async def test_pkce_plain_is_not_met_and_no_pkce_not_yet_exercised(sandbox):
    async with client(sandbox, challenge_method=None) as without:
        await logins(without, sandbox, 1)
    assert (await verdict(sandbox, "L-9"))["status"] == TO_EXERCISE
    async with client(sandbox, challenge_method="plain") as sloppy:
        await logins(sloppy, sandbox, 1)
    got = await verdict(sandbox, "L-9")
    assert got["status"] == NOT_MET and "S256" in got["evidence"]


async def test_discovery_per_login_is_not_met(sandbox):
    async with client(sandbox, discovery_per_login=True) as sloppy:
        await logins(sloppy, sandbox, 5)
    got = await verdict(sandbox, "L-11")
    assert got["status"] == NOT_MET and "5 times" in got["evidence"], got


async def test_ciba_polls_at_the_interval_met_and_faster_not_met(sandbox):
    base = sandbox.url("test")
    async with client(sandbox) as calm:
        started = await calm.ciba_start(phone(sandbox))
        assert started["interval"] == 1
        await asyncio.sleep(1.05)
        assert (await calm.ciba_poll(started["auth_req_id"]))[1]["error"] == "authorization_pending"
        await control(base, "POST", "/_sandbox/login/ciba/approve", {"auth_req_id": started["auth_req_id"]})
        await asyncio.sleep(1.05)
        assert (await calm.ciba_poll(started["auth_req_id"]))[0] == 200
    assert (await verdict(sandbox, "L-16"))["status"] == MET
    async with client(sandbox) as fast:
        started = await fast.ciba_start(phone(sandbox))
        await fast.ciba_poll(started["auth_req_id"])
        status, body = await fast.ciba_poll(started["auth_req_id"])
        assert status == 400 and body["error"] == "slow_down"
    got = await verdict(sandbox, "L-16")
    assert got["status"] == NOT_MET and "faster than the interval" in got["evidence"]


async def test_the_login_evidence_survives_a_restart_with_state_and_keeps_no_state_value(tmp_path):
    proc, url, _ = await spawn(["--state", str(tmp_path / "state")])
    try:
        keys = (await control(url, "GET", "/_sandbox/keys?type=merchant&env=test"))[1][0]
        query = {"response_type": "code", "client_id": keys["client_id"], "scope": "openid",
                 "state": "repeated-state-4711", "redirect_uri": "http://127.0.0.1:5000/callback"}
        async with aiohttp.ClientSession() as browser:
            for _ in range(2):
                async with browser.get(url + PREFIX + "oauth2/auth?" + urlencode(query),
                                       allow_redirects=False) as resp:
                    assert resp.status == 302
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert "repeated-state-4711" not in (tmp_path / "state" / "readiness.json").read_text()
    proc, url, _ = await spawn(["--state", str(tmp_path / "state")])
    try:
        got = item(await report(url, keys["owner"], "login"), "login", "L-7")
        assert got["status"] == NOT_MET and "reused the state" in got["evidence"]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
