"""The request log over real HTTP: every request, the decision and its reason, secrets redacted, bounded."""

from __future__ import annotations

import base64
import json

import aiohttp

from sandbox.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient

WEBHOOKS = "/webhooks/v1/webhooks"


async def log_entries(sandbox: SandboxClient, query: str = "") -> list[dict]:
    reply = await sandbox.request("GET", "/_sandbox/requests" + query, "test")
    assert reply.status == 200, reply.text
    return reply.json["entries"]


async def test_denial_is_logged_with_the_reason_the_header_gives(sandbox):
    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    reply = await sandbox.request("POST", "/epayment/v1/payments", "production", keyset=management, json_body={})
    assert reply.status == 403
    header_reason = reply.headers["Vipps-Sandbox-Reason"]
    entry = (await log_entries(sandbox, "?decision=deny"))[0]
    assert entry["method"] == "POST" and entry["path"] == "/epayment/v1/payments"
    assert entry["environment"] == "production" and entry["status"] == 403
    assert entry["caller"] == {"keyType": "management", "owner": management["owner"],
                               "clientId": management["client_id"], "environment": "production", "verified": True}
    assert entry["decision"] == {"allowed": False, "rule": "management-keys-never-act-on-behalf",
                                 "reason": header_reason}
    assert reply.headers["Vipps-Sandbox-Rule"] == entry["decision"]["rule"]
    assert isinstance(entry["latencyMs"], float) and entry["latencyMs"] >= 0
    assert entry["time"].endswith("Z") and entry["virtualTime"].endswith("Z")


async def test_a_bad_token_is_a_denial_taken_from_the_error_rule(sandbox):
    merchant = sandbox.key("merchant", "test")
    reply = await sandbox.request("GET", WEBHOOKS, "test", headers={
        "Authorization": "Bearer not-a-token", "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"]})
    assert reply.status == 401
    entry = (await log_entries(sandbox))[0]
    assert entry["decision"] == {"allowed": False, "rule": reply.headers["Vipps-Sandbox-Rule"],
                                 "reason": reply.headers["Vipps-Sandbox-Reason"]}
    assert entry["decision"]["rule"] == "token-invalid"
    # Whose subscription key it was is shown, marked as not verified.
    assert entry["caller"]["clientId"] == merchant["client_id"] and entry["caller"]["verified"] is False


async def test_allowed_calls_and_token_endpoints_show_the_caller_and_the_rule(sandbox):
    merchant = sandbox.key("merchant", "test")
    reply = await sandbox.request("GET", WEBHOOKS, "test", keyset=merchant)
    assert reply.status == 200, reply.text
    call, token = (await log_entries(sandbox, "?limit=2"))
    assert call["decision"] == {"allowed": True, "rule": "merchant-keys-own-sales-unit",
                                "reason": f"Merchant keys act for their own sales unit {merchant['owner']}."}
    assert call["actingFor"] == merchant["owner"] and call["status"] == 200 and call["route"] == "webhooks.list"
    assert token["path"] == "/accesstoken/get" and token["status"] == 200
    assert token["caller"]["keyType"] == "merchant" and token["caller"]["clientId"] == merchant["client_id"]
    assert token["decision"]["allowed"] is True and token["decision"]["rule"] == "token-endpoint-allowed"

    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers={
        "client_id": merchant["client_id"], "client_secret": "wrong-secret-of-some-length",
        "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"]})
    assert reply.status == 401
    refused = (await log_entries(sandbox))[0]
    assert refused["decision"] == {"allowed": False, "rule": "client-secret-wrong",
                                   "reason": reply.headers["Vipps-Sandbox-Reason"]}


async def test_unknown_paths_are_logged_too(sandbox):
    reply = await sandbox.request("GET", "/no/such/api", "production")
    assert reply.status == 404
    entry = (await log_entries(sandbox))[0]
    assert entry["path"] == "/no/such/api" and entry["status"] == 404 and entry["environment"] == "production"
    assert entry["decision"]["allowed"] is False and entry["decision"]["rule"] == "unknown-path"


async def test_secrets_never_appear_in_the_log(sandbox):
    merchant = sandbox.key("merchant", "test")
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    secrets = [merchant["client_secret"], merchant["subscription_key_primary"], merchant["subscription_key_secondary"],
               partner["client_secret"], partner["subscription_key_primary"], management["client_secret"]]
    tokens = [await sandbox.token(merchant), await sandbox.token(partner), await sandbox.token(management)]
    reply = await sandbox.request("GET", WEBHOOKS, "test", headers={
        "Authorization": f"Bearer {tokens[0]}", "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"]})
    assert reply.status == 200
    await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=management)
    await sandbox.request("GET", WEBHOOKS, "production", keyset=partner, msn=sandbox.msn_role("premium-shop-1"))
    # Refused attempts carry the secrets too: a token from the wrong endpoint, a body with a secret in it.
    basic = base64.b64encode(f"{management['client_id']}:{management['client_secret']}".encode()).decode()
    await sandbox.request("POST", "/accesstoken/get", "production", headers={
        "Authorization": f"Basic {basic}", "client_id": management["client_id"],
        "client_secret": management["client_secret"]})
    await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant,
                          json_body={"client_secret": merchant["client_secret"], "note": tokens[0]})
    regenerated = await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    secrets.append(regenerated.json["client_secret"])
    rotated = await sandbox.request("POST", f"/_sandbox/keys/{partner['client_id']}/regenerate-subscription-key",
                                    "test", json_body={"which": "secondary"})
    secrets.append(rotated.json["subscription_key"])

    reply = await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")
    text = reply.text
    assert len(reply.json["entries"]) >= 10
    for secret in secrets + tokens:
        assert secret not in text and json.dumps(secret)[1:-1] not in text
    # At most the last four characters, so people can tell which key was used.
    readable = json.dumps(reply.json, ensure_ascii=False)
    assert "…" + tokens[0][-4:] in readable
    assert "…" + merchant["subscription_key_primary"][-4:] in readable
    shown = [value for entry in reply.json["entries"] for value in entry["credentials"].values()]
    assert shown and all(len(value) <= 5 for value in shown)


async def test_the_log_is_a_bounded_ring():
    running = RunningSandbox(Settings(port=0, prod_port=0, request_log_size=5))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            sandbox = SandboxClient(running, session)
            for _ in range(12):
                await sandbox.request("GET", "/_sandbox/health", "test")
            reply = await sandbox.request("GET", "/_sandbox/requests", "test")
            body = reply.json
            assert body["size"] == 5 and body["capacity"] == 5
            assert [e["id"] for e in body["entries"]] == [12, 11, 10, 9, 8]  # reading the log is not logged
    finally:
        await running.stop()


async def test_filters(sandbox):
    merchant = sandbox.key("merchant", "test")
    other = sandbox.key("merchant", "test", msn=sandbox.msn_role("premium-shop-2"))
    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    await sandbox.request("GET", WEBHOOKS, "test", keyset=merchant)
    await sandbox.request("GET", WEBHOOKS, "test", keyset=merchant, msn=other["owner"])  # someone else's MSN
    await sandbox.request("GET", "/epayment/v1/payments/x", "production", keyset=management)

    by_type = await log_entries(sandbox, "?keyType=management")
    assert by_type and all(e["caller"]["keyType"] == "management" for e in by_type)
    denied = await log_entries(sandbox, "?decision=deny")
    assert {e["decision"]["rule"] for e in denied} == {"merchant-keys-own-sales-unit-only",
                                                       "management-keys-never-act-on-behalf"}
    allowed = await log_entries(sandbox, "?decision=allow")
    assert allowed and all(e["decision"]["allowed"] for e in allowed)
    by_msn = await log_entries(sandbox, f"?msn={other['owner']}")
    assert [e["decision"]["rule"] for e in by_msn] == ["merchant-keys-own-sales-unit-only"]
    assert len(await log_entries(sandbox, "?limit=2")) == 2
    newest = (await log_entries(sandbox, "?limit=1"))[0]["id"]
    assert await log_entries(sandbox, f"?since={newest}") == []

    for query in ("?decision=maybe", "?keyType=janitor", "?limit=0", "?limit=x"):
        reply = await sandbox.request("GET", "/_sandbox/requests" + query, "test")
        assert reply.status == 400, query
        assert reply.headers["Content-Type"].startswith("application/problem+json")

    assert (await sandbox.request("DELETE", "/_sandbox/requests", "test")).status == 204
    assert [e["method"] for e in await log_entries(sandbox)] == ["DELETE"]


async def test_polling_the_control_plane_never_pushes_api_calls_out():
    running = RunningSandbox(Settings(port=0, prod_port=0, request_log_size=5))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            sandbox = SandboxClient(running, session)
            management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
            await sandbox.request("POST", "/epayment/v1/payments", "production", keyset=management, json_body={})
            for _ in range(20):  # a dashboard polling its feeds
                await sandbox.request("GET", "/_sandbox/clock", "test")
            entries = (await sandbox.request("GET", "/_sandbox/requests?limit=100", "test")).json["entries"]
            assert [e["path"] for e in entries] == ["/_sandbox/clock"] * 5 + ["/epayment/v1/payments",
                                                                             "/miami/v1/token"]
            assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
            denied = (await sandbox.request("GET", "/_sandbox/requests?decision=deny", "test")).json["entries"]
            assert [e["path"] for e in denied] == ["/epayment/v1/payments"]
    finally:
        await running.stop()
