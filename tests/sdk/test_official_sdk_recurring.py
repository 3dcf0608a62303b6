"""Proof with the official SDK: @vippsmobilepay/sdk 2.4.2, unmodified, drives all 13 Recurring v3 calls.

Merchant keys in test (forceAccept included); partner keys with Merchant-Serial-Number in production, where the
user approves on the sandbox's confirmation page (the SDK refuses forceAccept itself outside test mode). Every
request goes through the fetch rewrite of rewrite-hosts.mjs, as in test_official_sdk.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_official_sdk import NODE, SDK_DIR, ok, run_driver  # noqa: E402

from sandbox.testing import SandboxClient  # noqa: E402

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20 runs the official SDK)"),
    pytest.mark.skipif(not (SDK_DIR / "node_modules" / "@vippsmobilepay" / "sdk").is_dir(),
                       reason="the official SDK is not installed: run `npm ci --prefix tests/sdk`"),
]
ALL_CALLS = {"agreement.create", "agreement.list", "agreement.info", "agreement.update", "agreement.forceAccept",
             "charge.create", "charge.createMultiple", "charge.info", "charge.infoById", "charge.list",
             "charge.cancel", "charge.capture", "charge.refund"}


def recurring_unit(sandbox: SandboxClient) -> str:
    world = sandbox.runtime.world
    partner = sandbox.partner_role("premium")
    return next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                if u.partner_id == partner and u.market == "NO" and u.configuration.get("recurringAllowed")
                and world.is_active(u.msn))


def check_settled(steps: dict[str, dict]) -> None:
    listed = ok(steps, "agreement.list")
    assert listed and all(a["status"] == "ACTIVE" for a in listed)
    assert ok(steps, "agreement.info")["status"] == "ACTIVE"
    charge_id = ok(steps, "charge.create")["chargeId"]
    batch = ok(steps, "charge.createMultiple")
    assert len(batch["validCharges"]) == 1 and batch["invalidCharges"] == []
    assert ok(steps, "charge.info")["id"] == charge_id
    assert ok(steps, "charge.infoById")["id"] == charge_id
    assert {c["id"] for c in ok(steps, "charge.list")} >= {charge_id}
    for name in ("charge.capture", "charge.refund", "charge.cancel", "agreement.update"):
        ok(steps, name)
    final = ok(steps, "charge.info.final")
    assert final["status"] == "PARTIALLY_REFUNDED" and final["summary"]["refunded"] == 10000
    assert ok(steps, "agreement.info.final")["status"] == "STOPPED"


async def test_sdk_recurring_all_13_calls_with_merchant_keys_in_test(sandbox: SandboxClient) -> None:
    msn = recurring_unit(sandbox)
    keyset = sandbox.key("merchant", "test", msn)
    steps = await run_driver(sandbox, "recurring", keyset, msn, "NOK", "sdk-rec")
    assert ALL_CALLS <= set(steps)
    drafted = ok(steps, "agreement.create")
    assert drafted["agreementId"].startswith("agr_") and drafted["chargeId"]
    assert "/_sandbox/recurring/confirm?token=" in drafted["vippsConfirmationUrl"]
    ok(steps, "agreement.forceAccept")
    check_settled(steps)


async def test_sdk_recurring_with_partner_keys_in_production(sandbox: SandboxClient) -> None:
    msn = recurring_unit(sandbox)
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    # The partner drafts through the API (the SDK's create is proven above; here the agreement comes first, so the
    # user can approve it on the confirmation page before the SDK goes on).
    body = {"pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
            "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://example.com/redirect",
            "merchantAgreementUrl": "https://example.com/agreement", "productName": "SDK proof",
            "initialCharge": {"amount": 49900, "description": "First month", "transactionType": "RESERVE_CAPTURE"}}
    reply = await sandbox.request("POST", "/recurring/v3/agreements", "production", keyset=keyset, msn=msn,
                                  json_body=body, headers={"Idempotency-Key": "sdk-prod-draft"})
    assert reply.status == 201, reply.text
    drafted = reply.json
    token = drafted["vippsConfirmationUrl"].split("token=", 1)[1]
    async with sandbox.session.post(sandbox.running.prod_url + "/_sandbox/recurring/confirm/approve",
                                    data={"token": token}, allow_redirects=False) as answer:
        assert answer.status == 303
    steps = await run_driver(sandbox, "recurring", keyset, msn, "NOK", "sdk-rec-prod",
                             {"VIPPS_AGREEMENT_ID": drafted["agreementId"], "VIPPS_CHARGE_ID": drafted["chargeId"]})
    check_settled(steps)


async def test_sdk_recurring_draft_with_partner_keys_and_force_accept_refused_in_production(
        sandbox: SandboxClient) -> None:
    msn = recurring_unit(sandbox)
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    steps = await run_driver(sandbox, "recurring", keyset, msn, "NOK", "sdk-rec-prod2")
    drafted = ok(steps, "agreement.create")
    assert drafted["vippsConfirmationUrl"].startswith(sandbox.running.prod_url)
    assert not steps["agreement.forceAccept"]["ok"]  # the SDK's own refusal outside test mode (or the 404)
