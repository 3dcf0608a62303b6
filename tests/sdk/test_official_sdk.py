"""Proof with the official SDK: @vippsmobilepay/sdk 2.4.2, unmodified, drives the sandbox end to end.

The SDK hard-codes api.vipps.no and apitest.vipps.no; rewrite-hosts.mjs (loaded with `node --import`)
wraps globalThis.fetch so its requests land on the sandbox's ports. Whatever the SDK sends (an
Idempotency-Key on every call, empty Vipps-System-* headers, a JSON content type on empty bodies)
the sandbox must accept, because the real API does.

Needs `node` and `npm ci --prefix tests/sdk`; skipped with a clear message otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import aiohttp
import pytest

from sandbox.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient

SDK_DIR = Path(__file__).resolve().parent
NODE = shutil.which("node")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (Node 20 runs the official SDK)"),
    pytest.mark.skipif(not (SDK_DIR / "node_modules" / "@vippsmobilepay" / "sdk").is_dir(),
                       reason="the official SDK is not installed: run `npm ci --prefix tests/sdk`"),
]


async def run_driver(sandbox: SandboxClient, scenario: str, keyset: dict, msn: str, currency: str,
                     prefix: str, extra_env: dict | None = None) -> dict[str, dict]:
    """Runs driver.mjs in a subprocess (the in-process server keeps serving) and returns its lines by step."""
    env = {**os.environ, "SANDBOX_TEST_URL": sandbox.running.test_url, "SANDBOX_PROD_URL": sandbox.running.prod_url,
           "VIPPS_CLIENT_ID": keyset["client_id"], "VIPPS_CLIENT_SECRET": keyset["client_secret"],
           "VIPPS_SUBSCRIPTION_KEY": keyset["subscription_key_primary"], "VIPPS_MSN": msn,
           "VIPPS_TEST_MODE": "true" if keyset["environment"] == "test" else "false", "VIPPS_CURRENCY": currency,
           **(extra_env or {})}
    env.pop("NODE_OPTIONS", None)
    proc = await asyncio.create_subprocess_exec(
        NODE, "--import", "./rewrite-hosts.mjs", "driver.mjs", scenario, prefix, cwd=SDK_DIR, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
    assert lines, f"driver printed nothing (exit {proc.returncode}): {err.decode()}"
    steps = {line["step"]: line for line in lines}
    assert len(steps) == len(lines), "each step is printed once"
    return steps


def merchant_test_keys(sandbox: SandboxClient) -> tuple[dict, str, str]:
    """Test-environment merchant keys of an active sales unit, with its MSN and currency."""
    world = sandbox.runtime.world
    for row in sandbox.keys("merchant", "test"):
        msn = row["msns"][0]
        if world.is_active(msn):
            return row, msn, world.sales_units[msn].currency
    raise LookupError("no merchant test keys for an active sales unit")


def error_code(error: dict) -> str | None:
    """The ErrorCode the SDK surfaced from the problem body's extraDetails."""
    for detail in error.get("extraDetails") or []:
        if detail.get("name") == "ErrorCode":
            return detail.get("reason")
    return None


def ok(steps: dict[str, dict], name: str) -> dict:
    line = steps[name]
    assert line["ok"], f"{name} failed through the SDK: {line.get('error')}"
    return line["data"]


def failed(steps: dict[str, dict], name: str) -> dict:
    line = steps[name]
    assert not line["ok"], f"{name} should have failed, got {line.get('data')}"
    return line["error"]


def amount_of(aggregate: dict, field: str) -> int:
    return aggregate[field]["value"]


async def test_sdk_epayment_flow_in_test(sandbox: SandboxClient) -> None:
    keyset, msn, currency = merchant_test_keys(sandbox)
    events: list[tuple[str, dict]] = []
    sandbox.runtime.listeners.append(lambda kind, payload: events.append((kind, payload)))

    steps = await run_driver(sandbox, "flow", keyset, msn, currency, "sdk-proof")

    token = ok(steps, "token")
    assert token["token_type"] == "Bearer" and token["access_token"]
    ref = "sdk-proof-main"
    created = ok(steps, "create")
    assert created["reference"] == ref
    assert "/_sandbox/landing?token=" in created["redirectUrl"]

    info = ok(steps, "info")
    assert info["state"] == "CREATED"
    assert info["amount"] == {"currency": currency, "value": 10000}
    assert amount_of(info["aggregate"], "authorizedAmount") == 0
    assert [e["name"] for e in ok(steps, "history")] == ["CREATED"]

    ok(steps, "forceApprove")
    assert ok(steps, "info.authorized")["state"] == "AUTHORIZED"

    captured = ok(steps, "capture")
    assert captured["state"] == "AUTHORIZED"
    assert amount_of(captured["aggregate"], "capturedAmount") == 6000
    refunded = ok(steps, "refund")
    assert amount_of(refunded["aggregate"], "refundedAmount") == 2500
    cancelled = ok(steps, "cancel")  # POST with Content-Type: application/json and an empty body
    assert cancelled["state"] == "AUTHORIZED"
    assert amount_of(cancelled["aggregate"], "cancelledAmount") == 4000
    assert amount_of(cancelled["aggregate"], "capturedAmount") == 6000

    history = ok(steps, "history.final")
    assert [e["name"] for e in history] == ["CREATED", "AUTHORIZED", "CAPTURED", "REFUNDED", "CANCELLED"]
    assert len({e["pspReference"] for e in history}) == len(history), "each event has its own pspReference"
    for event in history:
        assert event["success"] is True
        assert event["idempotencyKey"] is None or UUID.match(event["idempotencyKey"])
    assert UUID.match(history[2]["idempotencyKey"]), "the SDK's Idempotency-Key is recorded on the capture"
    assert UUID.match(history[3]["idempotencyKey"])

    # Error paths: the SDK returns the problem body; the ErrorCode is in extraDetails.
    ok(steps, "create.errors")
    assert error_code(failed(steps, "error.captureBeforeApprove")) == "6080"
    ok(steps, "forceApprove.errors")
    assert error_code(failed(steps, "error.overCapture")) == "6090"
    unknown = failed(steps, "error.unknownReference")
    assert unknown["status"] == 404 and error_code(unknown) == "5090"

    # The sandbox's own view, over HTTP, agrees with what the SDK saw.
    reply = await sandbox.request("GET", f"/epayment/v1/payments/{ref}", "test", keyset=keyset)
    assert reply.status == 200, reply.text
    assert reply.json["state"] == "AUTHORIZED"
    assert reply.json["aggregate"] == cancelled["aggregate"]
    reply = await sandbox.request("GET", "/epayment/v1/payments/sdk-proof-errors", "test", keyset=keyset)
    assert reply.status == 200 and reply.json["state"] == "AUTHORIZED"
    assert amount_of(reply.json["aggregate"], "capturedAmount") == 0, "the refused captures changed nothing"
    main_events = [(kind, p) for kind, p in events if p["reference"] == ref]
    assert [kind for kind, _ in main_events] == ["epayment.created", "epayment.authorized", "epayment.captured",
                                                 "epayment.refunded", "epayment.cancelled"]
    assert all(p["env"] == "test" and p["msn"] == msn for _, p in main_events)
    assert [p["amount"]["value"] for _, p in main_events[2:]] == [6000, 2500, 4000]

    # The readiness report (issue 19) of this run: every ePayment endpoint is filled in with the SDK's own
    # reference, and the system-header item is not met, since the SDK sends the four headers empty by default.
    reply = await sandbox.request("GET", f"/_sandbox/readiness?msn={msn}&api=epayment&env=test&format=json", "test")
    assert reply.status == 200, reply.text
    checklist = reply.json["checklists"][0]
    for item in ("EP-E1", "EP-E2", "EP-E3", "EP-E4", "EP-E5", "EP-E6"):
        assert checklist["verdicts"][item] == "met", (item, checklist["items"])
    # "Capture (full and partial)" and "Refund (full and partial)": the SDK's own references for each half.
    for item in ("EP-E5", "EP-E6"):
        row = next(row for row in checklist["items"] if row["id"] == item)
        assert "full: sdk-proof-full" in row["evidence"] and "partial: sdk-proof-main" in row["evidence"], row
    assert ok(steps, "refund.full")["aggregate"]["refundedAmount"]["value"] == 3000
    headers = next(row for row in checklist["items"] if row["id"] == "G-H1")
    assert headers["status"] == "not met" and "Vipps-System-*" in headers["evidence"], headers


async def test_sdk_partner_keys_in_production(sandbox: SandboxClient) -> None:
    """useTestMode false: the SDK's token call with partner keys and Merchant-Serial-Number, then a create."""
    partner = sandbox.partner_role("premium")
    keyset = sandbox.key("partner", "production", owner=partner)
    msn = sandbox.msn_role("premium-shop-1")
    currency = sandbox.runtime.world.sales_units[msn].currency

    steps = await run_driver(sandbox, "production", keyset, msn, currency, "sdk-prod")

    token = ok(steps, "token")
    assert token["expires_in"] == "86400", "production tokens live 24 hours"
    created = ok(steps, "create")
    assert created["reference"] == "sdk-prod-prod"
    assert created["redirectUrl"].startswith(sandbox.running.prod_url + "/_sandbox/landing?token=")
    info = ok(steps, "info")
    assert info["state"] == "CREATED" and info["amount"] == {"currency": currency, "value": 10000}
    # The SDK refuses force approve itself outside test mode; it never reaches the API.
    assert failed(steps, "error.forceApproveInProduction") == {
        "message": "forceApprove is only available in the test environment"}

    reply = await sandbox.request("GET", "/epayment/v1/payments/sdk-prod-prod", "production", keyset=keyset, msn=msn)
    assert reply.status == 200 and reply.json["state"] == "CREATED"
    reply = await sandbox.request("GET", "/epayment/v1/payments/sdk-prod-prod", "test",
                                  keyset=merchant_test_keys(sandbox)[0])
    assert reply.status == 404, "the payment exists in production only"

    # The user approves (here through the control plane), then the partner settles through the SDK.
    reply = await sandbox.request("POST", f"/_sandbox/payments/{msn}/sdk-prod-prod/approve", "production")
    assert reply.status == 200, reply.text
    steps = await run_driver(sandbox, "settle", keyset, msn, currency, "sdk-prod")
    assert amount_of(ok(steps, "capture")["aggregate"], "capturedAmount") == 10000
    assert amount_of(ok(steps, "refund")["aggregate"], "refundedAmount") == 1000
    settled = ok(steps, "info")
    assert settled["state"] == "AUTHORIZED"
    assert amount_of(settled["aggregate"], "capturedAmount") == 10000


async def test_sdk_partner_token_with_msn_out_of_reach_is_refused(sandbox: SandboxClient) -> None:
    """The SDK always sends Merchant-Serial-Number on the token call; an MSN out of reach is a 401."""
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("independent-1")
    steps = await run_driver(sandbox, "production", keyset, msn, "NOK", "sdk-reach")
    assert list(steps) == ["token"], "the driver stops when the token call fails"
    error = failed(steps, "token")
    assert error["error"] == "unauthorized_client"
    assert f"Invalid MSN: {msn}" in error["error_description"]


async def test_sdk_webhooks_register_list_delete(sandbox: SandboxClient) -> None:
    """webhook.register, list and delete through the SDK (DELETE and GET carry a JSON content type, no body)."""
    keyset, msn, currency = merchant_test_keys(sandbox)
    inbox = f"{sandbox.running.test_url}/_sandbox/inbox/sdk-proof"  # http on loopback is accepted
    steps = await run_driver(sandbox, "webhooks", keyset, msn, currency, "sdk-hooks",
                             extra_env={"VIPPS_WEBHOOK_URL": inbox})

    ok(steps, "token")
    registered = ok(steps, "webhook.register")
    assert UUID.match(registered["id"]) and registered["secret"]
    listed = ok(steps, "webhook.list")["webhooks"]
    assert [(w["id"], w["url"]) for w in listed] == [(registered["id"], inbox)]
    assert sorted(listed[0]["events"]) == ["epayments.payment.authorized.v1", "epayments.payment.captured.v1"]
    assert ok(steps, "webhook.delete") == {}, "204: the SDK answers an empty object"
    assert ok(steps, "webhook.list.afterDelete")["webhooks"] == []

    reply = await sandbox.request("GET", "/webhooks/v1/webhooks", "test", keyset=keyset)
    assert reply.status == 200 and reply.json == {"webhooks": []}


async def test_sdk_system_headers_in_strict_mode() -> None:
    """With --strict-headers, partner keys need the Vipps-System-* headers: the SDK's systemName and friends
    pass, and its default (the headers sent empty) is refused with a clear 400."""
    running = RunningSandbox(Settings(port=0, prod_port=0, strict_headers=True))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            sandbox = SandboxClient(running, session)
            keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
            msn = sandbox.msn_role("premium-shop-1")
            currency = sandbox.runtime.world.sales_units[msn].currency
            system = {"VIPPS_SYSTEM_NAME": "acme-shop", "VIPPS_SYSTEM_VERSION": "1.2.3",
                      "VIPPS_PLUGIN_NAME": "acme-vipps", "VIPPS_PLUGIN_VERSION": "4.5.6"}
            steps = await run_driver(sandbox, "production", keyset, msn, currency, "sdk-strict", extra_env=system)
            ok(steps, "token")
            assert ok(steps, "create")["reference"] == "sdk-strict-prod"
            assert ok(steps, "info")["state"] == "CREATED"

            # The readiness report: with systemName and friends set, every request carried the four headers,
            # and the report shows the values it saw, for the partner checklist (PA-2).
            reply = await sandbox.request("GET", f"/_sandbox/readiness?msn={msn}&api=partner&env=production"
                                          "&format=json", "test")
            headers = next(row for row in reply.json["checklists"][0]["items"] if row["id"] == "PA-2")
            assert headers["status"] == "met" and "Vipps-System-Name: acme-shop" in headers["evidence"], headers

            steps = await run_driver(sandbox, "production", keyset, msn, currency, "sdk-lax")
            error = failed(steps, "token")
            assert "Vipps-System-Name" in json.dumps(error), error
    finally:
        await running.stop()


def sdk_access_token_error_fields() -> set[str]:
    """The fields of the SDK's own `AccessTokenError` type (what it promises a failed getToken gives)."""
    types = (SDK_DIR / "node_modules" / "@vippsmobilepay" / "sdk" / "esm" / "types_external.d.ts").read_text()
    block = re.search(r"export type AccessTokenError = \{(.*?)\};", types, re.S)
    assert block, "the SDK no longer declares AccessTokenError"
    return set(re.findall(r"^\s*(\w+)\??:", block.group(1), re.M))


@pytest.mark.parametrize("change,code", [("client_secret", 7000215), ("client_id", 700016)])
async def test_sdk_token_refusals_are_the_sdks_access_token_error(sandbox: SandboxClient, change, code) -> None:
    """A wrong secret or an unknown client id: the SDK hands back the body as is, and it has exactly the fields
    of the SDK's AccessTokenError type (Azure AD's body), with the AADSTS code."""
    keyset, msn, currency = merchant_test_keys(sandbox)
    steps = await run_driver(sandbox, "flow", keyset | {change: "sdk-" + change + "-that-matches-nothing"}, msn,
                             currency, "sdk-refused")
    assert list(steps) == ["token"], "the driver stops when the token call fails"
    error = failed(steps, "token")
    assert set(error) == sdk_access_token_error_fields() == {
        "error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}
    assert error["error_codes"] == [code] and error["error_description"].startswith(f"AADSTS{code}: ")
    assert "matches-nothing" not in json.dumps(error)
