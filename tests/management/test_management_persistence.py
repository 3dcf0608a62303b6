"""--state DIR: a completed product order, its new sales unit and its keys come back the same after SIGKILL."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp

from sandbox.testing import spawn

ROOT = Path(__file__).resolve().parents[2]


async def start(state: Path, session: aiohttp.ClientSession):
    """The server in its own process (it picks its own free ports, so no other process can take them)."""
    return await spawn(["--state", str(state), "--id-seed", "11"], cwd=str(ROOT))


async def partner_headers(session: aiohttp.ClientSession, prod_url: str) -> dict:
    async with session.get(prod_url + "/_sandbox/keys?type=partner&env=production") as resp:
        keys = next(k for k in await resp.json() if k["description"].startswith("Partner keys")
                    and "not approved" not in k["description"])
    async with session.post(prod_url + "/accesstoken/get", headers={
            "client_id": keys["client_id"], "client_secret": keys["client_secret"],
            "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]}) as resp:
        token = (await resp.json())["access_token"]
    return {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]}


async def test_completed_order_survives_sigkill(tmp_path):
    order = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"},
             "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Kill Test"}
    async with aiohttp.ClientSession() as session:
        proc, test_url, prod_url = await start(tmp_path, session)
        try:
            headers = await partner_headers(session, prod_url)
            async with session.post(prod_url + "/management/v1/product-orders", json=order,
                                    headers={**headers, "Idempotency-Key": "kill-1"}) as resp:
                assert resp.status == 201
                order_id = (await resp.json())["prefilledOrderId"]
            for action in ("view", "submit", "complete"):
                async with session.post(f"{test_url}/_sandbox/product-orders/{order_id}/{action}") as resp:
                    assert resp.status == 200
            async with session.get(f"{prod_url}/management/v2/product-orders/{order_id}/details",
                                   headers=headers) as resp:
                before = await resp.json()
            msn = before["salesUnit"]["msn"]
            async with session.get(f"{prod_url}/_sandbox/keys?type=merchant&msn={msn}") as resp:
                keys_before = sorted((k["environment"], k["client_id"], k["client_secret"]) for k in await resp.json())
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        proc, test_url, prod_url = await start(tmp_path, session)
        try:
            headers = await partner_headers(session, prod_url)
            async with session.get(f"{prod_url}/management/v2/product-orders/{order_id}/details",
                                   headers=headers) as resp:
                assert resp.status == 200 and await resp.json() == before
            async with session.get(f"{prod_url}/_sandbox/keys?type=merchant&msn={msn}") as resp:
                keys_after = sorted((k["environment"], k["client_id"], k["client_secret"]) for k in await resp.json())
            assert keys_after == keys_before and len(keys_after) == 2
            async with session.get(f"{prod_url}/management/v1/sales-units/{msn}", headers=headers) as resp:
                assert resp.status == 200 and (await resp.json())["name"] == "Kill Test"
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
