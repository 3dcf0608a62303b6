"""The ePayment API's documented rate limits (--rate-limits), on the virtual clock, over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from epayment_support import BASE, create_body, merchant

from sandbox.core.settings import Settings
from sandbox.testing import spawn

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, rate_limits=True)


def assert_limited(reply, seconds_at_most: int = 60) -> None:
    assert reply.status == 429, reply.text
    assert reply.json["statusCode"] == 429 and reply.json["message"].startswith("Rate limit is exceeded.")
    assert 1 <= int(reply.headers["Retry-After"]) <= seconds_at_most
    assert reply.headers["Vipps-Sandbox-Rule"] == "rate-limited"


async def advance(sandbox, seconds: int) -> None:
    reply = await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": seconds})
    assert reply.status == 200


async def test_off_by_default(sandbox_default):
    shop = merchant(sandbox_default)
    await shop.authorized("order-unlimited")
    for _ in range(130):
        assert (await shop.get("order-unlimited")).status == 200


@pytest.fixture
async def sandbox_default():
    from sandbox.testing import started

    async with started(Settings(port=0, prod_port=0)) as client:
        yield client


async def test_get_payment_is_limited_to_120_a_minute_per_reference_and_subscription_key(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-polled")
    await shop.authorized("order-other")
    for _ in range(120):
        assert (await shop.get("order-polled")).status == 200
    assert_limited(await shop.get("order-polled"))
    assert (await shop.get("order-other")).status == 200  # per reference
    assert (await shop.events("order-polled")).status == 200  # each operation has its own window
    secondary = dict(await shop.headers(), **{"Ocp-Apim-Subscription-Key": shop.keyset["subscription_key_secondary"]})
    by_secondary = await sandbox.request("GET", f"{BASE}/order-polled", "test", headers=secondary)
    assert by_secondary.status == 200, by_secondary.text  # per subscription key
    await advance(sandbox, 61)
    assert (await shop.get("order-polled")).status == 200  # the window moved on (virtual clock)


async def test_capture_is_limited_to_5_a_minute_per_reference_and_msn(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-captured", value=10000)
    for _ in range(5):
        assert (await shop.capture("order-captured", 100)).status == 200
    limited = await shop.capture("order-captured", 100)
    assert_limited(limited)
    payment = (await shop.get("order-captured")).json
    assert payment["aggregate"]["capturedAmount"]["value"] == 500  # the refused capture changed nothing
    await advance(sandbox, 61)
    assert (await shop.capture("order-captured", 100)).status == 200


async def test_create_counts_every_try_of_one_reference(sandbox):
    """Retrying a create with the same reference counts too: 201, four 409s (4150), then 429."""
    shop = merchant(sandbox)
    statuses = [(await shop.create(create_body("order-retried"))).status for _ in range(6)]
    assert statuses[:5] == [201, 409, 409, 409, 409], statuses
    assert statuses[5] == 429
    assert (await shop.create(create_body("order-fresh"))).status == 201


async def test_reset_clears_the_windows(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("order-reset")
    for _ in range(5):
        await shop.capture("order-reset", 10)
    assert (await shop.capture("order-reset", 10)).status == 429
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    shop.forget_token()
    await shop.authorized("order-reset")
    assert (await shop.capture("order-reset", 10)).status == 200


async def test_a_journal_made_without_limits_replays_whole_with_them(tmp_path):
    """With --state, what was acknowledged comes back after a restart even if it exceeded the limits."""
    state = tmp_path / "state"
    keys = json.loads(subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json", "--type", "merchant",
                                      "--env", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout)[0]
    creds = {"client_id": keys["client_id"], "client_secret": keys["client_secret"],
             "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]}
    async with aiohttp.ClientSession() as session:
        for round_no, extra in enumerate(([], ["--rate-limits"])):
            proc, url, _ = await spawn(["--state", str(state), *extra], cwd=str(ROOT))
            try:
                async with session.post(url + "/accesstoken/get", headers=creds) as resp:
                    token = (await resp.json())["access_token"]
                headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": creds[
                    "Ocp-Apim-Subscription-Key"], "Merchant-Serial-Number": keys["owner"]}
                if round_no == 0:
                    body = create_body("order-journaled", currency="NOK")
                    async with session.post(url + BASE, json=body, headers={**headers, "Idempotency-Key": "c"}) as r:
                        assert r.status == 201, await r.text()
                    async with session.post(f"{url}/_sandbox/payments/{keys['owner']}/order-journaled/approve") as r:
                        assert r.status == 200
                    for i in range(8):
                        async with session.post(f"{url}{BASE}/order-journaled/capture", headers={
                                **headers, "Idempotency-Key": f"k{i}"},
                                json={"modificationAmount": {"currency": "NOK", "value": 100}}) as r:
                            assert r.status == 200, await r.text()
                else:
                    async with session.get(f"{url}{BASE}/order-journaled", headers=headers) as r:
                        payment = await r.json()
                    assert payment["aggregate"]["capturedAmount"]["value"] == 800, payment
            finally:
                proc.kill()
                await proc.wait()


@pytest.mark.parametrize("value,expected", [(None, False), ("1", True), ("0", False), ("false", False),
                                            ("False", False), ("no", False), ("off", False), (" ", False),
                                            ("TRUE", True), ("yes", True), ("on", True)])
def test_the_cli_flag_and_its_environment_variable(monkeypatch, value, expected):
    """The Docker image switches the limits on with VIPPS_SANDBOX_RATE_LIMITS=1 (its CMD is fixed)."""
    from sandbox.cli import build_parser

    if value is None:
        monkeypatch.delenv("VIPPS_SANDBOX_RATE_LIMITS", raising=False)
    else:
        monkeypatch.setenv("VIPPS_SANDBOX_RATE_LIMITS", value)
    assert build_parser().parse_args(["serve"]).rate_limits is expected
    assert build_parser().parse_args(["serve", "--rate-limits"]).rate_limits is True
    assert build_parser().parse_args(["serve", "--no-rate-limits"]).rate_limits is False


async def test_a_body_nested_too_deeply_is_still_a_400(sandbox):
    shop = merchant(sandbox)
    headers = await shop.headers({"Idempotency-Key": "deep", "Content-Type": "application/json"})
    reply = await sandbox.request("POST", BASE, "test", data="[" * 100_000 + "]" * 100_000, headers=headers)
    assert reply.status == 400, reply.text


async def test_only_well_formed_references_get_a_window(sandbox):
    """Malformed references are refused by the handler (400) and never kept: a megabyte-long one must not
    be stored per request."""
    shop = merchant(sandbox)
    for i in range(3):
        reply = await shop.create(create_body(f"{i:06d}" + "x" * 100_000))
        assert reply.status == 400
    assert (await shop.get("bad.reference")).status == 400
    assert sandbox.runtime.rate_limiter.windows == {}
    assert (await shop.create(create_body("order-counted"))).status == 201
    assert len(sandbox.runtime.rate_limiter.windows) == 1


async def test_restore_clears_the_windows(tmp_path):
    """A restored clock may be earlier than the calls in the windows; they must not hold for a day."""
    from sandbox.testing import started

    async with started(Settings(port=0, prod_port=0, rate_limits=True, snapshot_dir=tmp_path)) as sandbox:
        shop = merchant(sandbox)
        await shop.authorized("order-restored")
        assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "s"})).status == 200
        await advance(sandbox, 86_400)
        shop.forget_token()  # a day later: a new token
        for _ in range(5):
            assert (await shop.capture("order-restored", 10)).status == 200
        assert (await shop.capture("order-restored", 10)).status == 429
        assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "s"})).status == 200
        shop.forget_token()  # the clock is back a day: that token is not valid yet
        reply = await shop.capture("order-restored", 10)
        assert reply.status == 200, reply.text


def test_idle_windows_make_room_first():
    from sandbox.apis.epayment.rules import RATE_LIMITS as LIMITS
    from sandbox.gateway.rate_limits import MAX_WINDOWS, RateLimiter

    limiter, limit = RateLimiter(), LIMITS["epayment.capture"]
    for i in range(MAX_WINDOWS - 1):
        assert limiter.take(("idle", i), limit, 0.0) is None
    for _ in range(limit.per_minute):
        assert limiter.take(("busy",), limit, 30.0) is None
    assert limiter.take(("new",), limit, 61.0) is None  # full: the idle windows go, the busy one stays
    assert set(limiter.windows) == {("busy",), ("new",)}
    assert limiter.take(("busy",), limit, 61.0) == 29
