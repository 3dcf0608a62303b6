"""Fault injection over real HTTP: statuses in each API's format, latency, dropped connections, filters."""

from __future__ import annotations

import random
import time

import aiohttp
import pytest

WEBHOOKS = "/webhooks/v1/webhooks"


async def add_fault(sandbox, **rule) -> dict:
    reply = await sandbox.request("POST", "/_sandbox/faults", "test", json_body=rule)
    assert reply.status == 201, reply.text
    return reply.json


async def bearer(sandbox, keyset: dict, msn: str | None = None) -> dict:
    return await sandbox.auth_headers(keyset, msn)


async def test_429_uses_the_gateway_rate_limit_body_until_the_count_runs_out(sandbox):
    merchant = sandbox.key("merchant", "test")
    rule = await add_fault(sandbox, method="GET", path="/webhooks/v1/*", status=429, retryAfterSeconds=7, count=2)
    assert rule["id"] >= 1 and rule["count"] == 2 and rule["active"] is True
    headers = await bearer(sandbox, merchant)
    for _ in range(2):
        reply = await sandbox.request("GET", WEBHOOKS, "test", headers=headers)
        assert reply.status == 429
        assert reply.json == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}
        assert reply.headers["Retry-After"] == "7"
        assert reply.headers["Vipps-Sandbox-Rule"] == "fault-injected"
    assert (await sandbox.request("GET", WEBHOOKS, "test", headers=headers)).status == 200
    listed = (await sandbox.request("GET", "/_sandbox/faults", "test")).json
    assert listed == [dict(rule, count=0, hits=2, active=False)]
    entries = (await sandbox.request("GET", "/_sandbox/requests?limit=4", "test")).json["entries"]
    assert [e["fault"] for e in entries] == [None, None, rule["id"], rule["id"]]  # the list, the 200, two 429s
    assert entries[2]["decision"]["allowed"] is True and entries[2]["error"]["rule"] == "fault-injected"
    assert entries[2]["status"] == 429


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_come_in_the_routes_api_format(sandbox, status):
    merchant = sandbox.key("merchant", "test")
    await add_fault(sandbox, method="GET", path="/epayment/v1/payments/*", status=status)
    await add_fault(sandbox, method="*", path="/management/*", status=status)
    reply = await sandbox.request("GET", "/epayment/v1/payments/order-1", "test", keyset=merchant)
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    body = reply.json
    assert body["status"] == status and body["traceId"].startswith("00-") and "extraDetails" in body
    assert body["instance"] == "/v1/payments/order-1"

    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    reply = await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=management)
    assert reply.status == status and reply.json["instance"].startswith("urn:uuid:") and "traceId" not in reply.json


async def test_latency_is_added(sandbox):
    merchant = sandbox.key("merchant", "test")
    rule = await add_fault(sandbox, path=WEBHOOKS, latencyMs=300, count=1)
    headers = await bearer(sandbox, merchant)
    started = time.perf_counter()
    assert (await sandbox.request("GET", WEBHOOKS, "test", headers=headers)).status == 200
    assert time.perf_counter() - started >= 0.3
    started = time.perf_counter()
    assert (await sandbox.request("GET", WEBHOOKS, "test", headers=headers)).status == 200
    assert time.perf_counter() - started < 0.3
    entry = (await sandbox.request("GET", "/_sandbox/requests?limit=2", "test")).json["entries"][1]
    assert entry["fault"] == rule["id"] and entry["latencyMs"] >= 300


async def test_drop_closes_the_connection(sandbox):
    merchant = sandbox.key("merchant", "test")
    rule = await add_fault(sandbox, method="POST", path="/epayment/v1/payments", drop=True, count=1)
    headers = await bearer(sandbox, merchant)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with sandbox.session.post(sandbox.url("test") + "/epayment/v1/payments", json={}, headers=headers):
            pass
    reply = await sandbox.request("POST", "/epayment/v1/payments", "test", headers=headers, json_body={})
    assert reply.status == 400  # the count ran out: the real validation answers again
    entry = (await sandbox.request("GET", "/_sandbox/requests?limit=2", "test")).json["entries"][1]
    assert entry["fault"] == rule["id"] and entry["dropped"] is True and entry["status"] is None


async def test_key_type_and_msn_filters(sandbox):
    premium = sandbox.partner_role("premium")
    shop1, shop2 = sandbox.msn_role("premium-shop-1"), sandbox.msn_role("premium-shop-2")
    partner = sandbox.key("partner", "production", owner=premium)
    merchant = sandbox.key("merchant", "production", msn=shop1)
    await add_fault(sandbox, path=WEBHOOKS, keyType="partner", msn=shop1, status=503)
    assert (await sandbox.request("GET", WEBHOOKS, "production", keyset=partner, msn=shop1)).status == 503
    assert (await sandbox.request("GET", WEBHOOKS, "production", keyset=partner, msn=shop2)).status == 200
    assert (await sandbox.request("GET", WEBHOOKS, "production", keyset=merchant)).status == 200  # merchant keys


async def test_probability_is_seeded_and_deterministic(sandbox):
    merchant = sandbox.key("merchant", "test")
    await add_fault(sandbox, path=WEBHOOKS, status=500, probability=0.5, seed=7)
    headers = await bearer(sandbox, merchant)
    statuses = [(await sandbox.request("GET", WEBHOOKS, "test", headers=headers)).status for _ in range(20)]
    draws = random.Random(7)
    assert statuses == [500 if draws.random() < 0.5 else 200 for _ in range(20)]
    assert 200 in statuses and 500 in statuses


async def test_faults_never_touch_the_control_plane_and_token_endpoints_get_gateway_bodies(sandbox):
    await add_fault(sandbox, path="*", status=500)
    assert (await sandbox.request("GET", "/_sandbox/health", "test")).status == 200
    assert (await sandbox.request("GET", "/_sandbox/faults", "test")).status == 200
    merchant = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers={
        "client_id": merchant["client_id"], "client_secret": merchant["client_secret"],
        "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"]})
    assert reply.status == 500 and reply.json["statusCode"] == 500
    reply = await sandbox.request("POST", "/_sandbox/faults", "test", json_body={"path": "/_sandbox/*", "status": 500})
    assert reply.status == 400


async def test_rules_are_listed_deleted_and_validated(sandbox):
    first = await add_fault(sandbox, path="/a", status=500)
    second = await add_fault(sandbox, path="/b", drop=True, probability=0.25)
    assert [r["id"] for r in (await sandbox.request("GET", "/_sandbox/faults", "test")).json] == [first["id"],
                                                                                                 second["id"]]
    assert second["drop"] is True and second["probability"] == 0.25 and second["method"] == "*"
    assert (await sandbox.request("DELETE", f"/_sandbox/faults/{first['id']}", "test")).status == 204
    assert (await sandbox.request("DELETE", f"/_sandbox/faults/{first['id']}", "test")).status == 404
    assert (await sandbox.request("DELETE", "/_sandbox/faults/abc", "test")).status == 404
    assert [r["id"] for r in (await sandbox.request("GET", "/_sandbox/faults", "test")).json] == [second["id"]]
    assert (await sandbox.request("DELETE", "/_sandbox/faults", "test")).status == 204
    assert (await sandbox.request("GET", "/_sandbox/faults", "test")).json == []

    bad = [{}, {"path": "/a"}, {"path": "/a", "status": 500, "drop": True}, {"path": "/a", "status": 200},
           {"path": "a", "status": 500}, {"path": "/a", "status": 500, "method": "FETCH"},
           {"path": "/a", "latencyMs": -1}, {"path": "/a", "drop": False}, {"path": "/a", "status": 500, "count": 0},
           {"path": "/a", "status": 500, "probability": 1.5}, {"path": "/a", "status": 500, "keyType": "janitor"},
           {"path": "/a", "status": 500, "msn": "12"}, {"path": "/a", "status": 500, "colour": "red"},
           {"path": "/a", "status": "500"}, [1]]
    for body in bad:
        reply = await sandbox.request("POST", "/_sandbox/faults", "test", json_body=body)
        assert reply.status == 400, body
        assert reply.headers["Content-Type"].startswith("application/problem+json")
