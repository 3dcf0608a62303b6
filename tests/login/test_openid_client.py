"""node openid-client 6, unmodified: discovery over http:// on loopback (its documented allowInsecureRequests),
the code flow with PKCE and without a nonce (it refuses an id_token carrying any nonce claim then), userinfo
with the expected subject, and CIBA through its backchannel helpers, approved on the virtual phone.

Needs `node` and `npm ci --prefix tests/sdk` (skipped otherwise; a failure in CI, see tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from login_support import callback, login_client

from sandbox.core.claims import subject
from sandbox.core.settings import Settings

SDK_DIR = Path(__file__).resolve().parents[1] / "sdk"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
    pytest.mark.skipif(not (SDK_DIR / "node_modules" / "openid-client").is_dir(),
                       reason="openid-client is not installed: run `npm ci --prefix tests/sdk`"),
]


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, login_ciba_interval=1)


async def run(sandbox, client: dict, phone: str) -> dict[str, dict]:
    env = {**os.environ, "SANDBOX_URL": sandbox.url("test"), "CLIENT_ID": client["client_id"],
           "CLIENT_SECRET": client["client_secret"], "REDIRECT_URI": callback(49152), "PHONE": phone}
    env.pop("NODE_OPTIONS", None)
    proc = await asyncio.create_subprocess_exec(NODE, "login-openid-client.mjs", cwd=SDK_DIR, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    steps = {line["step"]: line for line in map(json.loads, filter(None, out.decode().splitlines()))}
    assert "error" not in steps and proc.returncode == 0, (steps, err.decode())
    return steps


async def test_openid_client_code_flow_without_nonce_and_ciba(sandbox):
    client = login_client(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    steps = await run(sandbox, client, user.phone_number)
    assert steps["discovery"]["issuer"] == sandbox.url("test") + "/access-management-1.0/access/"
    sub = subject(sandbox.msn_role("premium-shop-1"), user.phone_number)
    code = steps["code"]
    assert code["sub"] == sub and code["nonce"] is False and code["aud"] == [client["client_id"]]
    assert code["userinfo"]["phone_number"] == user.phone_number and code["refresh"] is False
    assert steps["ciba"] == {"step": "ciba", "sub": sub, "auth_req_id": True, "interval": 1, "name": user.name}
