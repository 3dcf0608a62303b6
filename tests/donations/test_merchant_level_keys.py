"""Merchant-level keys, the fifth kind of credential: their token, where they work, and where they are refused.

Reference: next-apis.md 1a (the token flow: /miami/v1/token, Basic, grant_type=client_credentials, optional
scope=donations:read echoed; production only) and 1b (they reach Donations, the Report API for their
merchant and Webhooks for donations.* events; nothing else).
"""

from __future__ import annotations

import json
import re

import pytest
from donations_support import basic, bearer, eventually, merchant_key, merchant_level, miami

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.gateway.policy import ROUTES, Api, Auth

REACHED = {Api.DONATIONS, Api.REPORT, Api.WEBHOOKS}
REFUSING = [route for route in ROUTES.values() if route.rule.auth is Auth.BEARER and route.api not in REACHED]
VALUES = {"reference": "ml-ref-0001", "msn": "123456", "scheme": "business:NO:ORG", "id": "123456785",
          "productOrderId": "00000000-0000-4000-8000-000000000000", "agreementId": "agr_x", "chargeId": "chr-x",
          "ledgerId": "1", "topic": "funds", "ledgerDate": "2026-01-04"}


async def test_a_token_without_scope(sandbox):
    reply = await miami(sandbox, merchant_level(sandbox))
    assert reply.status == 200, reply.text
    assert set(reply.json) == {"access_token", "token_type", "expires_in"}
    assert reply.json["token_type"] == "Bearer" and reply.json["expires_in"] == 900


async def test_a_token_with_scope_echoes_it(sandbox):
    reply = await miami(sandbox, merchant_level(sandbox), scope="donations:read")
    assert reply.status == 200, reply.text
    assert reply.json["scope"] == "donations:read"
    assert set(reply.json) == {"access_token", "token_type", "expires_in", "scope"}


async def test_both_tokens_read_donations(sandbox):
    for scope in (None, "donations:read"):
        headers = await bearer(sandbox, merchant_level(sandbox), scope)
        reply = await sandbox.request("GET", "/donations/v1/reports/payments?from=2020-01-01T00:00:00Z&to="
                                      "2099-01-01T00:00:00Z", "production", headers=headers)
        assert reply.status == 200, reply.text


async def test_another_scope_is_invalid_scope(sandbox):
    reply = await miami(sandbox, merchant_level(sandbox), scope="payments:write")
    assert reply.status == 400 and reply.json["error"] == "invalid_scope"
    assert reply.headers["Vipps-Sandbox-Rule"] == "merchant-level-scope-invalid"


async def test_both_sets_of_a_rotation_work_and_a_wrong_secret_does_not(sandbox):
    first, second = merchant_level(sandbox, index=0), merchant_level(sandbox, index=1)
    assert first["client_id"] != second["client_id"] and first["owner"] == second["owner"]
    for keyset in (first, second):
        assert (await miami(sandbox, keyset)).status == 200
    wrong = await sandbox.request("POST", "/miami/v1/token", "production", data="grant_type=client_credentials",
                                  headers=basic(first, secret="not-the-secret"))
    assert wrong.status == 401 and wrong.json["error"] == "invalid_client"


async def test_production_only(sandbox):
    reply = await miami(sandbox, merchant_level(sandbox), env="test")
    assert reply.status == 401 and reply.json["error"] == "invalid_client"
    assert reply.headers["Vipps-Sandbox-Rule"] == "keys-stay-in-their-environment"
    # a production token in the test environment is refused too
    headers = await bearer(sandbox, merchant_level(sandbox))
    reply = await sandbox.request("GET", "/webhooks/v1/webhooks", "test", headers=headers)
    assert reply.status == 401


async def test_the_standard_token_endpoint_refuses_them_naming_the_key_type(sandbox):
    keyset = merchant_level(sandbox)
    reply = await sandbox.request("POST", "/accesstoken/get", "production", headers={
        "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
        "Ocp-Apim-Subscription-Key": "0" * 32})
    assert reply.status == 400 and reply.json["error_codes"] == [700016]
    assert reply.headers["Vipps-Sandbox-Rule"] == "miami-keys-use-miami-token"
    assert "Merchant-level keys" in reply.headers["Vipps-Sandbox-Reason"]


@pytest.mark.parametrize("route_name", [route.name for route in REFUSING])
async def test_every_other_api_refuses_them_with_a_reason_naming_the_key_type(sandbox, route_name):
    route = ROUTES[route_name]
    headers = await bearer(sandbox, merchant_level(sandbox))
    # any other path parameter (a new API's) gets a plausible value: the gateway refuses before any handler runs
    path = re.sub(r"\{(\w+)\}", lambda m: VALUES.get(m.group(1), "ml-value-1"), route.path)
    env = "production" if "production" in {str(e) for e in route.allowed_envs} else "test"
    reply = await sandbox.request(route.method, path, env, headers=headers | {"Idempotency-Key": "ml-idem-1"},
                                  json_body={} if route.method in ("POST", "PUT", "PATCH") else None)
    if env == "test":  # a test-only route: production keys never work there
        assert reply.status == 401, reply.text
        return
    assert reply.status == 403, reply.text
    assert reply.headers["Vipps-Sandbox-Decision"] == "deny"
    assert reply.headers["Vipps-Sandbox-Rule"] == "merchant-level-keys-donations-only"
    assert "Merchant-level keys" in reply.headers["Vipps-Sandbox-Reason"]
    assert "Merchant-level keys" in reply.json["detail"]


async def test_sandbox_keys_lists_them_as_the_fifth_kind(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/keys", "test")
    rows = [row for row in reply.json if row["type"] == "merchant-level"]
    assert len(rows) == 3
    assert {row["owner"] for row in rows} == {merchant_key(sandbox, "premium-shop"), merchant_key(sandbox,
                                                                                                  "independent")}
    assert all(row["environment"] == "production" and row["subscription_key_primary"] is None for row in rows)


async def test_the_report_api_shows_their_own_merchants_ledgers_only(sandbox):
    headers = await bearer(sandbox, merchant_level(sandbox))
    reply = await sandbox.request("GET", "/settlement/v1/ledgers", "production", headers=headers)
    assert reply.status == 200, reply.text
    own = merchant_key(sandbox, "premium-shop")
    units = {u.msn for u in sandbox.runtime.world.sales_units.values() if u.merchant == own}
    listed = {handle.partition(":")[2] for item in reply.json["items"] for handle in item["settlesForRecipientHandles"]}
    assert listed == units
    assert {item["owner"]["id"] for item in reply.json["items"]} == {own.split("/")[1]}
    other = ledger_id_for(sandbox.msn_role("independent-1"))
    reply = await sandbox.request("GET", f"/report/v2/ledgers/{other}/funds/dates/2026-01-04", "production",
                                  headers=headers)
    assert reply.status == 404
    assert reply.headers["Vipps-Sandbox-Rule"] == "merchant-level-keys-own-merchant-only"


async def test_webhooks_for_donations_events_only(sandbox):
    headers = await bearer(sandbox, merchant_level(sandbox))
    url = f"{sandbox.running.prod_url}/_sandbox/inbox/ml"
    reply = await sandbox.request("POST", "/webhooks/v1/webhooks", "production", headers=headers,
                                  json_body={"url": url, "events": ["epayments.payment.captured.v1"]})
    assert reply.status == 403
    assert reply.headers["Vipps-Sandbox-Decision"] == "deny"
    assert reply.headers["Vipps-Sandbox-Rule"] == "merchant-level-keys-donations-webhooks-only"
    assert "Merchant-level keys" in reply.headers["Vipps-Sandbox-Reason"]
    mixed = await sandbox.request("POST", "/webhooks/v1/webhooks", "production", headers=headers, json_body={
        "url": url, "events": ["donations.agreement.started.v1", "recurring.charge-captured.v1"]})
    assert mixed.status == 403
    ok = await sandbox.request("POST", "/webhooks/v1/webhooks", "production", headers=headers,
                               json_body={"url": url, "events": ["donations.agreement.started.v1"]})
    assert ok.status == 201, ok.text
    listed = await sandbox.request("GET", "/webhooks/v1/webhooks", "production", headers=headers)
    assert [w["events"] for w in listed.json["webhooks"]] == [["donations.agreement.started.v1"]]
    # A donor starts an agreement with another sales unit of the same merchant: the merchant-wide registration
    # gets it; one of another merchant does not reach it.
    for role in ("independent-1", "premium-shop-2"):
        created = await sandbox.request("POST", "/_sandbox/donations/agreements", "production", json_body={
            "msn": sandbox.msn_role(role), "amount": 20000, "withdrawalDay": 15})
        assert created.status == 201, created.text
    [delivery] = await eventually(lambda: inbox(sandbox, "ml"))
    body = json.loads(delivery["body"])
    assert body["eventType"] == "donations.agreement.started.v1"
    assert body["agreementId"] == created.json["id"]
    assert body["recipientHandle"] == f"api:{sandbox.msn_role('premium-shop-2')}"


async def inbox(sandbox, name: str) -> list[dict]:
    reply = await sandbox.request("GET", f"/_sandbox/inbox/{name}", "production")
    return reply.json["deliveries"]
