"""--state DIR keeps the Donations API's changes: an agreement a donor started, one stopped with merchant-level keys
and seeded payments survive a SIGKILL and a restart (the journal replays them as the identity they were made as)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from sandbox.testing import spawn

ROOT = Path(__file__).resolve().parents[2]
EVER = "from=2020-01-01T00:00:00Z&to=2099-01-01T00:00:00Z"


def merchant_level_keys() -> dict:
    out = subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json", "--type", "merchant-level",
                          "--role", "premium-shop"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


async def bearer(session: aiohttp.ClientSession, prod_url: str, keys: dict) -> dict:
    basic = base64.b64encode(f"{keys['client_id']}:{keys['client_secret']}".encode()).decode()
    async with session.post(prod_url + "/miami/v1/token", data="grant_type=client_credentials", headers={
            "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}) as resp:
        assert resp.status == 200, await resp.text()
        return {"Authorization": "Bearer " + (await resp.json())["access_token"]}


async def test_donations_survive_a_kill_and_a_restart(tmp_path):
    keys = merchant_level_keys()
    args = ["--state", str(tmp_path / "state"), "--id-seed", "7"]
    async with aiohttp.ClientSession() as session:
        proc, _, prod = await spawn(args, cwd=str(ROOT))
        try:
            async with session.get(prod + "/_sandbox/donations/agreements") as resp:
                fixture_agreements = (await resp.json())["agreements"]
            unit = fixture_agreements[0]["msn"]
            async with session.post(prod + "/_sandbox/donations/agreements", json={
                    "msn": unit, "amount": 12300, "withdrawalDay": 9}) as resp:
                assert resp.status == 201, await resp.text()
                started = await resp.json()
            async with session.post(prod + "/_sandbox/donations/payments", json={"msn": unit, "count": 4}) as resp:
                assert resp.status == 201
            headers = await bearer(session, prod, keys)
            active = next(a for a in fixture_agreements if a["status"] == "ACTIVE")
            async with session.post(f"{prod}/donations/v1/agreements/{active['id']}/stop", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            async with session.get(f"{prod}/donations/v1/reports/payments?{EVER}", headers=headers) as resp:
                before = (await resp.json())["payments"]
            assert len(before) == 4
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        proc, _, prod = await spawn(args, cwd=str(ROOT))
        try:
            headers = await bearer(session, prod, keys)
            async with session.get(f"{prod}/donations/v1/agreements/{started['id']}", headers=headers) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["amount"] == {"currency": "NOK", "value": 12300}
            async with session.get(f"{prod}/donations/v1/agreements/{active['id']}", headers=headers) as resp:
                assert (await resp.json())["status"] == "STOPPED"
            async with session.get(f"{prod}/donations/v1/reports/payments?{EVER}", headers=headers) as resp:
                after = (await resp.json())["payments"]
            assert after == before  # the same payments, the same pspReferences and capture times
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
