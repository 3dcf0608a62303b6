"""The official SDK through the sandbox's proxy, with no host rewrite at all: `@vippsmobilepay/sdk` calls its
hard-coded https://apitest.vipps.no and https://api.vipps.no, undici's EnvHttpProxyAgent (env-proxy.mjs, the
global dispatcher) sends that through HTTPS_PROXY, and NODE_EXTRA_CA_CERTS makes Node trust the sandbox's CA.

Needs `node` and `npm ci --prefix tests/sdk` (the SDK and undici); skipped with a clear message otherwise.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_official_sdk import NODE, SDK_DIR, amount_of, merchant_test_keys, ok  # noqa: E402

from sandbox.core.settings import Settings  # noqa: E402
from sandbox.testing import SandboxClient  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from tls_support import ca_file, client_env, log_entries, proxy_url  # noqa: E402

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20 runs the official SDK)"),
    pytest.mark.skipif(not (SDK_DIR / "node_modules" / "undici").is_dir(),
                       reason="undici is not installed: run `npm ci --prefix tests/sdk`"),
]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(port=0, prod_port=0, proxy_port=0, ca_dir=tmp_path / "ca")


async def run_through_proxy(sandbox: SandboxClient, scenario: str, keyset: dict, msn: str, currency: str,
                            prefix: str) -> dict[str, dict]:
    """driver.mjs with only the proxy, the CA and the keys in its environment: no SANDBOX_*_URL, no rewrite."""
    env = client_env(HTTPS_PROXY=proxy_url(sandbox), NODE_EXTRA_CA_CERTS=str(ca_file(sandbox)),
                     VIPPS_CLIENT_ID=keyset["client_id"], VIPPS_CLIENT_SECRET=keyset["client_secret"],
                     VIPPS_SUBSCRIPTION_KEY=keyset["subscription_key_primary"], VIPPS_MSN=msn,
                     VIPPS_TEST_MODE="true" if keyset["environment"] == "test" else "false", VIPPS_CURRENCY=currency)
    proc = await asyncio.create_subprocess_exec(
        NODE, "--import", "./env-proxy.mjs", "driver.mjs", scenario, prefix, cwd=SDK_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert lines, f"driver printed nothing (exit {proc.returncode}): {err.decode()}"
    return {line["step"]: line for line in lines}


async def test_the_sdk_makes_the_epayment_flow_through_the_proxy(sandbox: SandboxClient) -> None:
    keyset, msn, currency = merchant_test_keys(sandbox)
    steps = await run_through_proxy(sandbox, "flow", keyset, msn, currency, "sdk-proxy")
    assert ok(steps, "token")["token_type"] == "Bearer"
    created = ok(steps, "create")
    assert created["redirectUrl"].startswith("https://apitest.vipps.no/_sandbox/landing?token=")
    ok(steps, "forceApprove")
    assert amount_of(ok(steps, "capture")["aggregate"], "capturedAmount") == 6000
    assert amount_of(ok(steps, "refund")["aggregate"], "refundedAmount") == 2500
    assert [e["name"] for e in ok(steps, "history.final")] == \
        ["CREATED", "AUTHORIZED", "CAPTURED", "REFUNDED", "CANCELLED"]
    proxied = [e for e in await log_entries(sandbox, 100) if e["path"].startswith(("/epayment/", "/accesstoken/"))]
    assert len(proxied) >= 10 and all(e["proxied"] and e["host"] == "apitest.vipps.no" and e["scheme"] == "https"
                                      for e in proxied), proxied[:2]
    reply = await sandbox.request("GET", "/epayment/v1/payments/sdk-proxy-main", "test", keyset=keyset)
    assert reply.status == 200 and amount_of(reply.json["aggregate"], "capturedAmount") == 6000


async def test_the_sdk_reaches_production_through_the_proxy(sandbox: SandboxClient) -> None:
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    currency = sandbox.runtime.world.sales_units[msn].currency
    steps = await run_through_proxy(sandbox, "production", keyset, msn, currency, "sdk-proxy-prod")
    assert ok(steps, "token")["expires_in"] == "86400", "a production token: api.vipps.no chose the environment"
    assert ok(steps, "create")["redirectUrl"].startswith("https://api.vipps.no/_sandbox/landing?token=")
    entry = next(e for e in await log_entries(sandbox) if e["path"] == "/epayment/v1/payments")
    assert (entry["host"], entry["environment"], entry["proxied"]) == ("api.vipps.no", "production", True)
