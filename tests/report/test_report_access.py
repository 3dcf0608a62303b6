"""Who sees which ledger: the permission matrix for every Report route, and consent granted then revoked."""

from __future__ import annotations

import pytest
from opaque_support import caller_view
from report_support import check_ledgers_schema, freeze, ledger_id, local_date

from sandbox.gateway.policy import REPORT_ROUTES


def expected_status(key_type: str, key_env: str, env: str) -> int:
    """The oracle, written from the docs and not from sandbox.gateway.policy: the Report API exists only in
    production (gateway 404 in test); keys never cross environments (401); partner and management keys
    are refused (403); merchant keys (own ledger) and accounting keys (consented ledger) get 200."""
    if env == "test":
        return 404
    if key_env != env:
        return 401
    if key_type in ("partner", "management"):
        return 403
    return 200


def concrete(path: str, lid: str, day: str) -> str:
    return path.replace("{ledgerId}", lid).replace("{topic}", "funds").replace("{ledgerDate}", day)


async def test_permission_matrix(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    keysets = [
        sandbox.key("merchant", "production", msn=msn), sandbox.key("merchant", "test", msn=msn),
        sandbox.key("partner", owner=sandbox.partner_role("premium")),
        sandbox.key("management", owner=sandbox.partner_role("basic")),
        sandbox.key("accounting", owner=sandbox.partner_role("accountant")),
    ]
    lid = await ledger_id(sandbox, await sandbox.auth_headers(keysets[0]), msn)
    assert {r.name for r in REPORT_ROUTES} == {"report.ledgers", "report.dates", "report.feed"}
    seen = 0
    for route in REPORT_ROUTES:
        path = concrete(route.path, lid, local_date(now).isoformat())
        for keyset in keysets:
            for env in ("test", "production"):
                reply = await sandbox.request(route.method, path, env, keyset=keyset)
                want = expected_status(keyset["type"], keyset["environment"], env)
                label = f"{route.name} {keyset['type']}/{keyset['environment']} on {env}: {reply.text}"
                assert reply.status == want, label
                if want == 404:
                    assert "production" in reply.json["result"]["message"], label
                elif want == 403:
                    assert reply.headers["Content-Type"].startswith("application/problem+json"), label
                    assert "accounting keys" in reply.json["detail"] and "consent" in reply.json["detail"], label
                elif want == 401:
                    assert reply.json["code"] == "Unauthorized", label
                else:
                    assert "items" in reply.json, label
                seen += 1
    assert seen == 3 * 5 * 2


def without_trace(body: dict) -> dict:
    return {k: v for k, v in body.items() if k not in ("traceId", "instance")}


async def test_other_ledgers_are_indistinguishable_from_unknown_ones(sandbox):
    mine, other = sandbox.msn_role("premium-shop-1"), sandbox.msn_role("independent-1")
    other_lid = await ledger_id(sandbox, await sandbox.auth_headers(sandbox.key("merchant", msn=other)), other)
    accountant = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    merchant = await sandbox.auth_headers(sandbox.key("merchant", msn=mine))
    bodies, views = [], {}
    for headers in (accountant, merchant):
        for lid in (other_lid, "123456789"):
            for tail in ("funds/feed", "fees/dates/2026-01-05"):
                reply = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/{tail}", headers=headers)
                assert reply.status == 404, reply.text
                assert reply.headers["Content-Type"].startswith("application/problem+json")
                bodies.append(without_trace(reply.json))
                views.setdefault(tail, set()).add(caller_view(reply))  # byte for byte, but traceId and instance
    assert all(body == bodies[0] for body in bodies)
    assert bodies[0]["detail"] == "No such ledgerId" and bodies[0]["status"] == 404
    assert all(len(seen) == 1 for seen in views.values()), views
    # Only the sandbox's own headers tell them apart: tests/report/test_opaque_denials_explained.py.


def consented_msns(sandbox, partner_role: str) -> set[str]:
    """From the fixture's roles: the accountant's merchants are premium-shop and premium-dk."""
    world = sandbox.runtime.world
    merchants = {world.sales_units[sandbox.msn_role(r)].merchant for r in ("premium-shop-1", "premium-dk-1")}
    return {u.msn for u in world.sales_units.values() if u.merchant in merchants}


async def test_accounting_ledger_list_filter_and_cursor(sandbox):
    accountant = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    reply = await sandbox.request("GET", "/settlement/v1/ledgers", headers=accountant)
    assert reply.status == 200, reply.text
    check_ledgers_schema(reply.json)
    everything = reply.json["items"]
    handles = {h for item in everything for h in item["settlesForRecipientHandles"]}
    assert handles == {f"api:{m}" for m in consented_msns(sandbox, "accountant")}
    # premium-shop's 6 units (3 of them the configuration units of issue 14) and premium-dk's 2 (1 of them)
    assert len(everything) == 8 and reply.json["cursor"] == ""

    paged, cursor = [], None
    for _ in range(5):
        query = "pageSize=3" + (f"&cursor={cursor}" if cursor else "")
        reply = await sandbox.request("GET", f"/settlement/v1/ledgers?{query}", headers=accountant)
        assert reply.status == 200, reply.text
        paged += reply.json["items"]
        cursor = reply.json["cursor"]
        if not cursor:
            break
    assert paged == everything

    two = sorted(handles)[:2]
    reply = await sandbox.request("GET", f"/settlement/v1/ledgers?settlesForRecipientHandles={','.join(two)}"
                                  "&pageSize=1", headers=accountant)
    first = reply.json
    assert len(first["items"]) == 1 and first["cursor"]
    reply = await sandbox.request("GET", f"/settlement/v1/ledgers?cursor={first['cursor']}", headers=accountant)
    assert reply.json["cursor"] == ""
    got = {h for item in first["items"] + reply.json["items"] for h in item["settlesForRecipientHandles"]}
    assert got == set(two)


async def test_consent_granted_then_revoked_mid_run(sandbox):
    await freeze(sandbox)
    accountant_id = sandbox.partner_role("accountant")
    msn = sandbox.msn_role("independent-1")
    world = sandbox.runtime.world
    merchant = world.merchants[world.sales_units[msn].merchant]
    lid = await ledger_id(sandbox, await sandbox.auth_headers(sandbox.key("merchant", msn=msn)), msn)
    headers = await sandbox.auth_headers(sandbox.key("accounting", owner=accountant_id))  # one token throughout
    feed = f"/report/v2/ledgers/{lid}/funds/feed"

    listed = await sandbox.request("GET", "/_sandbox/consents", headers={})
    assert listed.status == 200 and len(listed.json) == 3
    assert (await sandbox.request("GET", feed, headers=headers)).status == 404

    body = {"accountingPartnerId": accountant_id, "merchantId": merchant.id}
    reply = await sandbox.request("POST", "/_sandbox/consents", json_body=body)
    assert reply.status == 201, reply.text
    assert reply.json["accountingPartnerId"] == accountant_id and reply.json["merchantId"] == merchant.id
    assert lid in reply.json["ledgerIds"]
    assert (await sandbox.request("POST", "/_sandbox/consents", json_body=body)).status == 200  # already there
    reply = await sandbox.request("GET", feed, headers=headers)
    assert reply.status == 200, reply.text
    ledgers = (await sandbox.request("GET", "/settlement/v1/ledgers", headers=headers)).json["items"]
    assert lid in {item["ledgerId"] for item in ledgers}

    reply = await sandbox.request("DELETE", f"/_sandbox/consents/{accountant_id}/{merchant.id}")
    assert reply.status == 204, reply.text
    reply = await sandbox.request("GET", feed, headers=headers)
    assert reply.status == 404 and reply.json["detail"] == "No such ledgerId"
    ledgers = (await sandbox.request("GET", "/settlement/v1/ledgers", headers=headers)).json["items"]
    assert lid not in {item["ledgerId"] for item in ledgers}
    reply = await sandbox.request("DELETE", f"/_sandbox/consents/{accountant_id}/{merchant.id}")
    assert reply.status == 404 and reply.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(("body", "status"), [
    ({"accountingPartnerId": "partner-9999", "merchantId": "969784807"}, 404),
    ({"accountingPartnerId": "ROLE:premium", "merchantId": "969784807"}, 400),  # not an accounting partner
    ({"accountingPartnerId": "ROLE:accountant", "merchantId": "000000000"}, 404),
    ({"accountingPartnerId": "ROLE:accountant"}, 400),
    ({"accountingPartnerId": "ROLE:accountant", "merchantId": "969784807", "extra": 1}, 400),
    (["not", "an", "object"], 400),
    ("{broken", 400),
])
async def test_consent_bad_requests(sandbox, body, status):
    if isinstance(body, dict) and str(body.get("accountingPartnerId", "")).startswith("ROLE:"):
        body = {**body, "accountingPartnerId": sandbox.partner_role(body["accountingPartnerId"][5:])}
    if isinstance(body, str):
        reply = await sandbox.request("POST", "/_sandbox/consents", data=body,
                                      headers={"Content-Type": "application/json"})
    else:
        reply = await sandbox.request("POST", "/_sandbox/consents", json_body=body)
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.json["status"] == status and reply.json["detail"]
