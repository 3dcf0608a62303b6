"""Proof with the official SDK (@vippsmobilepay/sdk 2.4.2, unmodified): its two Checkout v3 calls
(sdk-requests.md #12 and #13) pass through the fetch redirect, in test with merchant keys and in production with
partner keys plus the MSN. The SDK sends the keys as raw headers, an empty `Authorization: Bearer` and empty
Vipps-System-* headers; the sandbox must take all of it as the real API does."""

from __future__ import annotations

import pytest
from test_official_sdk import NODE, SDK_DIR, failed, merchant_test_keys, ok, run_driver

from sandbox.testing import SandboxClient

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20 runs the official SDK)"),
    pytest.mark.skipif(not (SDK_DIR / "node_modules" / "@vippsmobilepay" / "sdk").is_dir(),
                       reason="the official SDK is not installed: run `npm ci --prefix tests/sdk`"),
]


def check(steps: dict[str, dict], msn: str) -> None:
    created = ok(steps, "checkout.create")
    assert set(created) >= {"token", "checkoutFrontendUrl", "pollingUrl"}
    reference = steps["checkout.reference"]["data"]
    info = ok(steps, "checkout.info")
    assert info["reference"] == reference and info["sessionState"] == "SessionCreated"
    assert info["merchantSerialNumber"] == msn
    duplicate = failed(steps, "checkout.error.duplicate")
    assert duplicate.get("errorCode") == "DuplicateReference", duplicate
    unknown = failed(steps, "checkout.error.unknown")
    assert unknown.get("errorCode") == "SessionNotFound", unknown


async def test_sdk_checkout_in_test_with_merchant_keys(sandbox: SandboxClient) -> None:
    keyset, msn, currency = merchant_test_keys(sandbox)
    steps = await run_driver(sandbox, "checkout", keyset, msn, currency, "sdk-chk-test")
    check(steps, msn)


async def test_sdk_checkout_in_production_with_partner_keys(sandbox: SandboxClient) -> None:
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    currency = sandbox.runtime.world.sales_units[msn].currency
    steps = await run_driver(sandbox, "checkout", keyset, msn, currency, "sdk-chk-prod")
    check(steps, msn)
