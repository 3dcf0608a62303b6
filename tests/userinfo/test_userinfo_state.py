"""The consents outlive a snapshot and restore (the "userinfo" state provider) and a SIGKILL with --state (the
journal replays the approvals, which publish profile.shared again; a compaction holds the consents themselves);
a reset forgets them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from epayment_support import merchant
from userinfo_support import read, shared_payment

from sandbox.core.model import Env
from sandbox.testing import spawn

ROOT = Path(__file__).resolve().parents[2]


async def test_a_snapshot_keeps_the_consents_and_a_reset_forgets_them(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    sub = await shared_payment(shop, "userinfo-state-1", user.phone_number, "name email")
    before = (await read(shop, sub)).json
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "userinfo-kept"})
    assert saved.status == 200 and "userinfo" in saved.json["providers"], saved.text
    assert "Bearer" not in Path(saved.json["path"]).read_text()
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    shop.forget_token()
    assert (await read(shop, sub)).status == 404
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "userinfo-kept"})
    assert restored.status == 200, restored.text
    shop.forget_token()
    assert (await read(shop, sub)).json == before


def test_a_bad_userinfo_state_changes_nothing(sandbox):
    from sandbox.apis.userinfo.routes import USERINFO

    backend = sandbox.running.app[USERINFO]
    backend.record(Env.TEST, "123456", "sub-1", "4748273334", "name", 0.0, "epayment")
    for bad in ({}, [{"env": "test"}], [{"env": "test", "msn": "1", "sub": "s", "scopes": {"name": "x"}, "first": 0}],
                [{"env": "test", "msn": "1", "sub": "s", "scopes": {}, "first": None}]):
        with pytest.raises(ValueError):
            backend.load(bad)
        assert backend.count() == 1


def merchant_keys() -> dict:
    out = subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json", "--type", "merchant", "--env", "test"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


@pytest.mark.parametrize("compact_bytes", [None, 1_000], ids=["journal-only", "compacted"])
async def test_consents_survive_sigkill_with_state(tmp_path, compact_bytes):
    env = dict(os.environ)
    if compact_bytes is not None:
        env["VIPPS_SANDBOX_COMPACT_BYTES"] = str(compact_bytes)
    keys = merchant_keys()
    phones = [user["phone_number"] for user in json.loads(subprocess.run(
        [sys.executable, "-m", "sandbox", "users", "--json"], cwd=ROOT, capture_output=True, text=True,
        check=True).stdout)]
    async with aiohttp.ClientSession() as session:
        subs = []
        for round_no in range(2):
            proc, url, _ = await spawn(["--state", str(tmp_path / "state"), "--id-seed", "7"], env=env, cwd=str(ROOT))
            try:
                async with session.post(url + "/accesstoken/get", headers={
                        "client_id": keys["client_id"], "client_secret": keys["client_secret"],
                        "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]}) as resp:
                    token = (await resp.json())["access_token"]
                headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key":
                           keys["subscription_key_primary"], "Merchant-Serial-Number": keys["owner"]}
                for sub, phone in subs:  # what the last process acknowledged, after a SIGKILL
                    async with session.get(f"{url}/vipps-userinfo-api/userinfo/{sub}", headers=headers) as resp:
                        assert resp.status == 200, await resp.text()
                        assert (await resp.json())["phone_number"] == phone
                for n in range(3):  # three users: three subs (a replay of one must not recreate another's)
                    reference = f"userinfo-kill-{round_no}-{n}"
                    phone = phones[3 * round_no + n]
                    async with session.post(url + "/epayment/v1/payments", headers=headers | {
                            "Idempotency-Key": reference}, json={
                            "amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
                            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/r",
                            "profile": {"scope": "phoneNumber name"}}) as resp:
                        assert resp.status == 201, await resp.text()
                    async with session.post(f"{url}/_sandbox/payments/{keys['owner']}/{reference}/approve",
                                            json={"phoneNumber": phone}) as resp:
                        assert resp.status == 200, await resp.text()
                    async with session.get(f"{url}/epayment/v1/payments/{reference}", headers=headers) as resp:
                        subs.append(((await resp.json())["profile"]["sub"], phone))
            finally:
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
        assert len({sub for sub, _ in subs}) == 6
