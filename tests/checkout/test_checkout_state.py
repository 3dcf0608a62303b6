"""--state: an acknowledged Checkout session, and its payment made on the page, survive SIGKILL (through the
journal, and through a compaction's snapshot), with its page token still working after the restart."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import pytest
from checkout_support import page_token, raw_headers, session_body

from sandbox.testing import spawn

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("compact_bytes", [None, 1])
async def test_a_session_and_its_payment_survive_sigkill(tmp_path, compact_bytes):
    env = dict(os.environ)
    if compact_bytes is not None:  # compact after every entry: the sessions then live in the snapshot
        env["VIPPS_SANDBOX_COMPACT_BYTES"] = str(compact_bytes)
    args = ["--state", str(tmp_path / "state"), "--id-seed", "7"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        proc, url, _ = await spawn(args, env=env, cwd=str(ROOT))
        try:
            async with http.get(url + "/_sandbox/keys?type=merchant&env=test") as resp:
                keys = (await resp.json())[0]
            headers = raw_headers(keys, keys["msns"][0])
            async with http.post(url + "/checkout/v3/session", headers=headers,
                                 json=session_body("chk-state-0001")) as resp:
                assert resp.status == 200, await resp.text()
                frontend = (await resp.json())["checkoutFrontendUrl"]
            async with http.post(url + "/checkout/v3/session", headers=headers,
                                 json=session_body("chk-state-0002")) as resp:
                assert resp.status == 200
            async with http.post(url + "/_sandbox/checkout/session/approve", data={"token": page_token(frontend)},
                                 allow_redirects=False) as resp:
                assert resp.status == 303, await resp.text()
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        proc, url, _ = await spawn(args, env=env, cwd=str(ROOT))
        try:
            async with http.get(url + "/checkout/v3/session/chk-state-0001", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["sessionState"] == "PaymentSuccessful"
            async with http.get(url + "/checkout/v3/session/chk-state-0002", headers=headers) as resp:
                assert (await resp.json())["sessionState"] == "SessionCreated"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
    journal = "".join(p.read_text() for p in (tmp_path / "state").glob("*.json*"))
    assert keys["client_secret"] not in journal
