"""Admissions (sandbox/gateway/admission.py): the exact repeat of an API GET the gateway let through skips its
synchronous checks, while the token is valid on the virtual clock, until the directory changes.

Every test drives a real sandbox over loopback HTTP. A repeat must be indistinguishable from a request checked
afresh: the same answer, the same request-log entry, the same readiness evidence; and whatever would refuse a
request checked afresh must refuse its repeat too. Where only the gateway's own table can tell whether a request
was a repeat (an admission kept, or not), the tests read `world.decisions` to be sure the repeat path really ran:
a test of repeats whose requests were never repeats would prove nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from epayment_support import create_body

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.model import Env
from sandbox.core.settings import Settings
from sandbox.gateway.admission import Admission
from sandbox.ops.snapshots import read_snapshot
from sandbox.readiness.routes import EVIDENCE, LOGIN_EVIDENCE
from sandbox.testing import Reply, SandboxClient, started

SYSTEM = {"Vipps-System-Name": "acme-shop", "Vipps-System-Version": "4.2.0",
          "Vipps-System-Plugin-Name": "acme-plugin", "Vipps-System-Plugin-Version": "1.0.3"}
PAYMENTS = "/epayment/v1/payments"
REPEATS = 4
#: The fields of a request-log entry that differ between any two requests (which one, when, how fast).
PER_REQUEST = ("id", "time", "virtualTime", "latencyMs")


# -- helpers ------------------------------------------------------------------------------------------------------

def admissions(sandbox: SandboxClient) -> list[tuple]:
    """(client_id, env, decision rule) of every admission the gateway keeps now (the values, not the keys: how
    the key is made is what these tests check)."""
    return [(kept.keyset.client_id, kept.env, kept.decision.rule)
            for kept in sandbox.runtime.world.decisions.values() if isinstance(kept, Admission)]


async def get(sandbox: SandboxClient, path: str, env: str, headers: dict, method: str = "GET") -> Reply:
    """One request with exactly these headers (no token fetched: the same token every time)."""
    return await sandbox.request(method, path, env, headers=dict(headers))


async def paying_merchant(sandbox: SandboxClient, env: str = "test", reference: str = "order-0000001",
                          system: bool = True) -> tuple[dict, dict, str, str]:
    """premium-shop-1's merchant keys with one payment made: (keys, headers, msn, the payment's path)."""
    msn = sandbox.msn_role("premium-shop-1")
    keys = sandbox.key("merchant", env, msn)
    headers = await sandbox.auth_headers(keys, msn, env)
    if system:
        headers.update(SYSTEM)
    body = create_body(reference, currency=sandbox.runtime.world.sales_units[msn].currency)
    created = await sandbox.request("POST", PAYMENTS, env, json_body=body,
                                    headers={**headers, "Idempotency-Key": f"create-{reference}"})
    assert created.status == 201, created.text
    return keys, headers, msn, f"{PAYMENTS}/{reference}"


async def log_entries(sandbox: SandboxClient, path: str) -> list[dict]:
    """The request log's entries for this path, oldest first."""
    entries = (await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")).json["entries"]
    return [entry for entry in reversed(entries) if entry["path"] == path]


def without_per_request(entry: dict) -> dict:
    return {name: value for name, value in entry.items() if name not in PER_REQUEST}


def answer(reply: Reply) -> tuple:
    """What a caller can tell about an answer: status, the sandbox's verdict headers, the body without its
    per-request trace fields."""
    body = reply.json if reply.text else None
    if isinstance(body, dict):
        body = {name: value for name, value in body.items() if name not in ("traceId", "instance", "requestId")}
    return (reply.status, reply.headers.get("Vipps-Sandbox-Decision"), reply.headers.get("Vipps-Sandbox-Rule"),
            reply.headers.get("Vipps-Sandbox-Warning"), body)


async def fresh_answer(sandbox: SandboxClient, path: str, env: str, headers: dict, n: int) -> tuple:
    """The answer to the same request checked afresh: one more header, so no admission matches it."""
    return answer(await get(sandbox, path, env, {**headers, "X-Afresh": str(n)}))


ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z?")


def normalized(value):
    """A readiness report or evidence dump without what differs between two runs of the same requests: times
    (virtual or wall), which are floats or ISO strings; counts, ids and everything else are kept."""
    if isinstance(value, dict):
        return {name: normalized(item) for name, item in value.items() if name not in ("at", "wall", "now")}
    if isinstance(value, list):
        return [normalized(item) for item in value]
    if isinstance(value, float) and value > 1e9:
        return "<time>"
    if isinstance(value, str):
        return ISO.sub("<time>", value)
    return value


async def readiness(sandbox: SandboxClient, msn: str, env: str) -> dict:
    reply = await sandbox.request("GET", f"/_sandbox/readiness?msn={msn}&env={env}&format=json", env)
    assert reply.status == 200, reply.text
    return normalized(reply.json)


def evidence(sandbox: SandboxClient) -> dict:
    """The readiness book as snapshots keep it (its `dump`): every count it holds, per sales unit and client."""
    return normalized(sandbox.running.app[EVIDENCE].dump())


def differences(repeated, afresh, where: str = "") -> list[str]:
    """Where two normalized reports or books differ, one line each (a readable failure, not a 10 kB repr)."""
    if isinstance(repeated, dict) and isinstance(afresh, dict):
        found = []
        for name in sorted(set(repeated) | set(afresh), key=str):
            found += differences(repeated.get(name), afresh.get(name), f"{where}.{name}")
        return found
    if isinstance(repeated, list) and isinstance(afresh, list) and len(repeated) == len(afresh):
        found = []
        for n, (one, other) in enumerate(zip(repeated, afresh, strict=True)):
            label = f"{one.get('msn', '')}{one.get('env', '')}{one.get('id', '')}" if isinstance(one, dict) else n
            found += differences(one, other, f"{where}[{label}]")
        return found
    return [] if repeated == afresh else [f"{where}: repeats {repeated!r}, checked afresh {afresh!r}"]


def token_expiry(headers: dict) -> int:
    token = headers["Authorization"].removeprefix("Bearer ")
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


# -- 1. repeats are served, and logged like the first -----------------------------------------------------------

async def test_repeats_answer_the_same_and_each_is_logged_like_the_first(sandbox):
    keys, headers, msn, path = await paying_merchant(sandbox)
    replies = [await get(sandbox, path, "test", headers) for _ in range(REPEATS)]
    assert [reply.status for reply in replies] == [200] * REPEATS, replies[0].text
    assert all(reply.json == replies[0].json for reply in replies), [reply.text for reply in replies]
    assert replies[0].json["reference"] == "order-0000001"
    assert [answer(reply) for reply in replies] == [answer(replies[0])] * REPEATS
    assert replies[0].headers["Vipps-Sandbox-Decision"] == "allow"
    assert admissions(sandbox) == [(keys["client_id"], Env.TEST, "merchant-keys-own-sales-unit")], \
        "the repeats were not served from an admission"
    afresh = await get(sandbox, path, "test", {**headers, "X-Afresh": "1"})
    assert answer(afresh) == answer(replies[0])

    entries = await log_entries(sandbox, path)
    assert len(entries) == REPEATS + 1, entries  # one per request, the repeats included
    first = entries[0]
    assert first["method"] == "GET" and first["status"] == 200 and first["route"] == "epayment.get"
    assert first["caller"] == {"keyType": "merchant", "owner": msn, "clientId": keys["client_id"],
                               "environment": "test", "verified": True}
    assert first["decision"] == {"allowed": True, "rule": "merchant-keys-own-sales-unit",
                                 "reason": f"Merchant keys act for their own sales unit {msn}."}
    assert first["msn"] == first["actingFor"] == msn
    token = headers["Authorization"].removeprefix("Bearer ")
    assert first["credentials"] == {"subscriptionKey": "…" + keys["subscription_key_primary"][-4:],
                                    "token": "…" + token[-4:]}
    assert first["warnings"] == [] and first["error"] is None
    for entry in entries[1:REPEATS]:  # each repeat: exactly the first's entry, but for which and when
        assert without_per_request(entry) == without_per_request(first)
    assert len({entry["id"] for entry in entries}) == len(entries)
    # And the request checked afresh (one header more) is logged the same way too.
    assert without_per_request(entries[-1]) == without_per_request(first)


async def test_a_partner_repeat_keeps_its_warning_and_its_sales_unit(sandbox):
    """Partner keys without the Vipps-System-* headers get a warning (not strict mode): on every repeat too,
    in the answer and in the log, with the sales unit they act for."""
    _, _, msn, path = await paying_merchant(sandbox, "production")
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    headers = await sandbox.auth_headers(partner, msn, "production")
    replies = [await get(sandbox, path, "production", headers) for _ in range(REPEATS)]
    assert [reply.status for reply in replies] == [200] * REPEATS, replies[0].text
    warning = replies[0].headers["Vipps-Sandbox-Warning"]
    assert "Vipps-System-Name" in warning
    assert [answer(reply) for reply in replies] == [answer(replies[0])] * REPEATS
    assert (partner["client_id"], Env.PRODUCTION, "partner-keys-connected-sales-unit") in admissions(sandbox)
    entries = await log_entries(sandbox, path)
    partner_entries = [entry for entry in entries if (entry["caller"] or {}).get("clientId") == partner["client_id"]]
    assert len(partner_entries) == REPEATS
    first = partner_entries[0]
    assert first["caller"]["keyType"] == "partner" and first["caller"]["verified"] is True
    assert first["msn"] == first["actingFor"] == msn and first["decision"]["allowed"] is True
    assert first["warnings"] == [warning]
    for entry in partner_entries[1:]:
        assert without_per_request(entry) == without_per_request(first)


# -- 2. the readiness evidence counts every repeat ----------------------------------------------------------------

async def _evidence_of(scenario, vary: bool) -> tuple[dict, dict]:
    """A fresh sandbox, the scenario with identical requests (repeats) or each one different (checked afresh):
    the readiness report of the sales unit it names and the whole readiness book."""
    async with started(Settings(port=0, prod_port=0)) as sandbox:
        # A frozen clock: the polls' pace (gaps between virtual times) is the same in both runs, whatever the load.
        assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status == 200
        msn, env = await scenario(sandbox, (lambda n: {"X-Poll": str(n)}) if vary else (lambda n: {}))
        if not vary:
            assert admissions(sandbox), "the identical requests were not served from an admission"
        return await readiness(sandbox, msn, env), evidence(sandbox)


async def _polls_a_payment(sandbox: SandboxClient, extra) -> tuple[str, str]:
    _, headers, msn, path = await paying_merchant(sandbox)
    for n in range(5):
        reply = await get(sandbox, path, "test", {**headers, **extra(n)})
        assert reply.status == 200, reply.text
    return msn, "test"


async def _reads_events_and_a_missing_payment(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """Repeats of a 200 and of a 404 the handler answers (let through by the gateway, refused by the backend)."""
    _, headers, msn, path = await paying_merchant(sandbox)
    for n in range(3):
        assert (await get(sandbox, path + "/events", "test", {**headers, **extra(n)})).status == 200
        assert (await get(sandbox, f"{PAYMENTS}/order-9999999", "test", {**headers, **extra(n)})).status == 404
    return msn, "test"


async def _partner_polls_for_a_merchant(sandbox: SandboxClient, extra) -> tuple[str, str]:
    _, _, msn, path = await paying_merchant(sandbox, "production")
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    headers = {**await sandbox.auth_headers(partner, msn, "production"), **SYSTEM}
    for n in range(4):
        assert (await get(sandbox, path, "production", {**headers, **extra(n)})).status == 200
    return msn, "production"


async def _partner_lists_sales_units_without_msn(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """Partner keys without Merchant-Serial-Number on a route that allows that: each such request counts
    against every sales unit the keys reach (G-H3)."""
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    headers = {**await sandbox.auth_headers(partner, None, "production"), **SYSTEM}
    for n in range(4):
        reply = await get(sandbox, "/management/v1/sales-units", "production", {**headers, **extra(n)})
        assert reply.status == 200, reply.text
    return sandbox.msn_role("premium-shop-1"), "production"


async def _heads_a_payment(sandbox: SandboxClient, extra) -> tuple[str, str]:
    _, headers, msn, path = await paying_merchant(sandbox)
    for n in range(4):
        reply = await get(sandbox, path, "test", {**headers, **extra(n)}, method="HEAD")
        assert reply.status == 200 and reply.text == ""
    return msn, "test"


@pytest.mark.parametrize("scenario", [_polls_a_payment, _reads_events_and_a_missing_payment,
                                      _partner_polls_for_a_merchant, _partner_lists_sales_units_without_msn,
                                      _heads_a_payment], ids=lambda f: f.__name__.strip("_"))
async def test_the_readiness_evidence_of_repeats_is_that_of_requests_checked_afresh(scenario):
    repeated_report, repeated_book = await _evidence_of(scenario, vary=False)
    afresh_report, afresh_book = await _evidence_of(scenario, vary=True)
    assert not differences(repeated_report, afresh_report), differences(repeated_report, afresh_report)
    assert not differences(repeated_book, afresh_book), differences(repeated_book, afresh_book)


async def test_the_get_payment_item_counts_every_repeat(sandbox):
    _, headers, msn, path = await paying_merchant(sandbox)
    for _ in range(6):
        assert (await get(sandbox, path, "test", headers)).status == 200
    report = await readiness(sandbox, msn, "test")
    items = {item["id"]: item for checklist in report["checklists"] for item in checklist["items"]}
    assert "6 of 6 successful" in items["EP-E2"]["evidence"], items["EP-E2"]
    assert "All 7 API requests carried the four headers" in items["G-H1"]["evidence"], items["G-H1"]
    assert "1 token requests for 7 API requests" in items["G-H5"]["evidence"], items["G-H5"]


# -- 3. what ends an admission ------------------------------------------------------------------------------------

async def _admitted(sandbox: SandboxClient, path: str, env: str, headers: dict) -> None:
    for _ in range(2):
        reply = await get(sandbox, path, env, headers)
        assert reply.status == 200, reply.text
    assert admissions(sandbox), "the request was not kept as an admission"


async def test_a_regenerated_client_secret_refuses_the_next_repeat(sandbox):
    keys, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    assert (await sandbox.request("POST", f"/_sandbox/keys/{keys['client_id']}/regenerate", "test")).status == 200
    repeat = await get(sandbox, path, "test", headers)
    assert repeat.status == 401, repeat.text
    assert repeat.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    assert answer(repeat) == await fresh_answer(sandbox, path, "test", headers, 1)
    assert (await get(sandbox, path, "test", headers)).status == 401  # and stays refused
    assert admissions(sandbox) == []


@pytest.mark.parametrize("which", ["primary", "secondary"])
async def test_a_regenerated_subscription_key_refuses_the_next_repeat(sandbox, which):
    keys, headers, _, path = await paying_merchant(sandbox)
    if which == "secondary":  # the request uses the secondary key: regenerating it must refuse the repeat
        headers["Ocp-Apim-Subscription-Key"] = keys["subscription_key_secondary"]
    await _admitted(sandbox, path, "test", headers)
    regenerated = await sandbox.request("POST", f"/_sandbox/keys/{keys['client_id']}/regenerate-subscription-key",
                                        "test", json_body={"which": which})
    assert regenerated.status == 200, regenerated.text
    repeat = await get(sandbox, path, "test", headers)
    assert repeat.status == 401, repeat.text
    assert repeat.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    assert answer(repeat) == await fresh_answer(sandbox, path, "test", headers, 1)
    # The new key works, with the same token.
    new = {**headers, "Ocp-Apim-Subscription-Key": regenerated.json["subscription_key"]}
    assert (await get(sandbox, path, "test", new)).status == 200


async def test_a_regenerated_subscription_key_of_other_keys_leaves_the_repeat_served(sandbox):
    """The directory changed, the admissions are gone, but the request is still allowed: it is checked afresh."""
    keys, headers, msn, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    other = sandbox.key("merchant", "test", sandbox.msn_role("independent-1"))
    assert other["client_id"] != keys["client_id"]
    assert (await sandbox.request("POST", f"/_sandbox/keys/{other['client_id']}/regenerate-subscription-key",
                                  "test", json_body={"which": "primary"})).status == 200
    assert admissions(sandbox) == []
    assert (await get(sandbox, path, "test", headers)).status == 200
    assert len(admissions(sandbox)) == 1


async def test_the_virtual_clock_past_the_token_expiry_refuses_the_next_repeat(sandbox):
    assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status == 200
    _, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    left = token_expiry(headers) - sandbox.runtime.clock.time()
    assert left > 60
    # A second before expiry: still the token's lifetime, the repeat is served.
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": left - 1})
    assert (await get(sandbox, path, "test", headers)).status == 200
    # At expiry: the token-expired 401, as for a request checked afresh.
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 1})
    repeat = await get(sandbox, path, "test", headers)
    assert repeat.status == 401, repeat.text
    assert repeat.headers["Vipps-Sandbox-Rule"] == "token-expired"
    assert "expired" in repeat.json["message"]
    assert answer(repeat) == await fresh_answer(sandbox, path, "test", headers, 1)
    assert (await get(sandbox, path, "test", headers)).status == 401


async def test_a_revoked_consent_changes_the_repeats_answer(sandbox):
    """Accounting keys read a consented merchant's ledger; the consent revoked, the repeat gets the revoked
    consent's (opaque) 404 and the sandbox's deny, exactly as a request checked afresh."""
    keys = sandbox.key("accounting", owner=sandbox.partner_role("accountant"))
    world = sandbox.runtime.world
    msn = sandbox.msn_role("premium-dk-1")
    merchant = world.merchants[world.sales_units[msn].merchant]
    path = f"/report/v2/ledgers/{ledger_id_for(msn)}/funds/feed"
    headers = await sandbox.auth_headers(keys)
    await _admitted(sandbox, path, "production", headers)
    revoked = await sandbox.request("DELETE", f"/_sandbox/consents/{keys['owner']}/{merchant.id}")
    assert revoked.status == 204, revoked.text
    repeat = await get(sandbox, path, "production", headers)
    assert repeat.status == 404, repeat.text
    assert repeat.headers["Vipps-Sandbox-Decision"] == "deny"
    assert repeat.headers["Vipps-Sandbox-Rule"] == "report-consent-revoked"
    assert answer(repeat) == await fresh_answer(sandbox, path, "production", headers, 1)
    entries = await log_entries(sandbox, path)
    assert entries[-2]["decision"]["allowed"] is False and entries[-2]["decision"]["rule"] == "report-consent-revoked"
    assert without_per_request(entries[-2]) == without_per_request(entries[-1])
    # Granted again: the repeat reads the ledger again.
    body = {"accountingPartnerId": keys["owner"], "merchantId": merchant.id}
    assert (await sandbox.request("POST", "/_sandbox/consents", json_body=body)).status == 201
    assert (await get(sandbox, path, "production", headers)).status == 200


async def test_another_merchant_serial_number_is_checked_afresh(sandbox):
    _, headers, msn, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    other = sandbox.msn_role("independent-1")
    changed = await get(sandbox, path, "test", {**headers, "Merchant-Serial-Number": other})
    assert changed.status == 403, changed.text
    assert changed.headers["Vipps-Sandbox-Rule"] == "merchant-keys-own-sales-unit-only"
    malformed = await get(sandbox, path, "test", {**headers, "Merchant-Serial-Number": "12"})
    assert malformed.status == 400 and malformed.headers["Vipps-Sandbox-Rule"] == "msn-malformed"
    assert (await get(sandbox, path, "test", headers)).status == 200  # the admitted request still is
    entries = await log_entries(sandbox, path)
    assert [(entry["msn"], entry["decision"]["allowed"]) for entry in entries[-3:]] \
        == [(other, False), ("12", False), (msn, True)]


async def test_another_subscription_key_is_checked_afresh(sandbox):
    _, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    foreign = sandbox.key("merchant", "test", sandbox.msn_role("independent-1"))["subscription_key_primary"]
    changed = await get(sandbox, path, "test", {**headers, "Ocp-Apim-Subscription-Key": foreign})
    assert changed.status == 401 and changed.headers["Vipps-Sandbox-Rule"] == "subscription-key-mismatch"
    missing = {name: value for name, value in headers.items() if name != "Ocp-Apim-Subscription-Key"}
    refused = await get(sandbox, path, "test", missing)
    assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "subscription-key-missing"


async def test_a_system_header_longer_than_allowed_is_checked_afresh(sandbox):
    _, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    long = await get(sandbox, path, "test", {**headers, "Vipps-System-Name": "x" * 31})
    assert long.status == 400 and long.headers["Vipps-Sandbox-Rule"] == "system-header-too-long"


async def test_strict_mode_a_partner_repeat_without_a_system_header_is_refused():
    async with started(Settings(port=0, prod_port=0, strict_headers=True)) as sandbox:
        _, _, msn, path = await paying_merchant(sandbox, "production")
        partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
        issued = await sandbox.request("POST", "/accesstoken/get", "production", headers={
            "client_id": partner["client_id"], "client_secret": partner["client_secret"],
            "Ocp-Apim-Subscription-Key": partner["subscription_key_primary"], **SYSTEM})
        assert issued.status == 200, issued.text
        headers = {"Authorization": f"Bearer {issued.json['access_token']}", "Merchant-Serial-Number": msn,
                   "Ocp-Apim-Subscription-Key": partner["subscription_key_primary"], **SYSTEM}
        await _admitted(sandbox, path, "production", headers)
        without = {name: value for name, value in headers.items() if name != "Vipps-System-Name"}
        for _ in range(2):
            refused = await get(sandbox, path, "production", without)
            assert refused.status == 400, refused.text
            assert refused.headers["Vipps-Sandbox-Rule"] == "system-headers-required"
        empty = await get(sandbox, path, "production", {**headers, "Vipps-System-Name": ""})
        assert empty.status == 400 and empty.headers["Vipps-Sandbox-Rule"] == "system-headers-required"
        assert (await get(sandbox, path, "production", headers)).status == 200


async def test_a_reset_leaves_no_admission_behind(sandbox):
    """The directory back to the fixture: the repeat is answered as a request checked afresh (no payment)."""
    _, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    assert admissions(sandbox) == []
    repeat = await get(sandbox, path, "test", headers)
    assert repeat.status in (401, 404), repeat.text
    assert answer(repeat) == await fresh_answer(sandbox, path, "test", headers, 1)


async def test_a_restored_snapshot_refuses_a_token_of_a_secret_it_does_not_know(tmp_path):
    """A snapshot from before a secret was regenerated, restored: the new secret's token is refused, repeat or not."""
    async with started(Settings(port=0, prod_port=0, snapshot_dir=tmp_path)) as sandbox:
        keys, _, msn, path = await paying_merchant(sandbox)
        saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "before"})
        assert saved.status == 200, saved.text
        regenerated = await sandbox.request("POST", f"/_sandbox/keys/{keys['client_id']}/regenerate", "test")
        headers = {**await sandbox.auth_headers({**keys, "client_secret": regenerated.json["client_secret"]}, msn,
                                                "test"), **SYSTEM}
        await _admitted(sandbox, path, "test", headers)
        assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "before"})).status == 200
        repeat = await get(sandbox, path, "test", headers)
        assert repeat.status == 401 and repeat.headers["Vipps-Sandbox-Rule"] == "keys-regenerated", repeat.text
        assert answer(repeat) == await fresh_answer(sandbox, path, "test", headers, 1)


async def test_an_injected_fault_still_fires_on_a_repeat(sandbox):
    _, headers, msn, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", headers)
    rule = await sandbox.request("POST", "/_sandbox/faults", "test",
                                 json_body={"method": "GET", "path": f"{PAYMENTS}/*", "status": 503, "count": 2})
    assert rule.status == 201, rule.text
    for _ in range(2):
        failed = await get(sandbox, path, "test", headers)
        assert failed.status == 503 and failed.headers["Vipps-Sandbox-Rule"] == "fault-injected", failed.text
    assert (await get(sandbox, path, "test", headers)).status == 200
    entries = await log_entries(sandbox, path)
    assert [entry["fault"] for entry in entries[-3:]] == [rule.json["id"], rule.json["id"], None]
    assert [entry["decision"]["allowed"] for entry in entries[-3:]] == [True] * 3
    report = await readiness(sandbox, msn, "test")
    items = {item["id"]: item for checklist in report["checklists"] for item in checklist["items"]}
    assert "3 of 5 successful" in items["EP-E2"]["evidence"], items["EP-E2"]


async def test_the_rate_limit_counts_every_repeat():
    """GET payment: 120 a minute per subscription key and reference; the 121st identical GET is the 429."""
    async with started(Settings(port=0, prod_port=0, rate_limits=True)) as sandbox:
        assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status == 200
        _, headers, _, path = await paying_merchant(sandbox)
        statuses = [(await get(sandbox, path, "test", headers)).status for _ in range(121)]
        assert statuses == [200] * 120 + [429]
        assert admissions(sandbox)
        limited = await get(sandbox, path, "test", headers)
        assert limited.status == 429 and limited.headers["Vipps-Sandbox-Rule"] == "rate-limited", limited.text
        assert answer(limited) == await fresh_answer(sandbox, path, "test", headers, 1)


# -- 4. a refusal is never kept -------------------------------------------------------------------------------

async def test_a_refusal_is_checked_again_every_time(sandbox):
    _, headers, msn, path = await paying_merchant(sandbox)
    wrong = {**headers, "Merchant-Serial-Number": sandbox.msn_role("independent-1")}
    for _ in range(3):
        refused = await get(sandbox, path, "test", wrong)
        assert refused.status == 403, refused.text
        assert refused.headers["Vipps-Sandbox-Decision"] == "deny"
        assert refused.headers["Vipps-Sandbox-Rule"] == "merchant-keys-own-sales-unit-only"
    assert admissions(sandbox) == []
    entries = await log_entries(sandbox, path)
    assert [entry["decision"]["allowed"] for entry in entries] == [False] * 3
    assert len({json.dumps(without_per_request(entry), sort_keys=True) for entry in entries}) == 1
    # Valid credentials, the right MSN: served, and kept.
    assert (await get(sandbox, path, "test", headers)).status == 200
    assert (await get(sandbox, path, "test", headers)).status == 200
    assert len(admissions(sandbox)) == 1
    # And the refused request is still refused, with an admission for its neighbour in the table.
    assert (await get(sandbox, path, "test", wrong)).status == 403


async def test_a_refused_token_is_refused_on_every_repeat_and_a_good_one_then_works(sandbox):
    keys, headers, _, path = await paying_merchant(sandbox)
    forged = {**headers, "Authorization": headers["Authorization"][:-4] + "AAAA"}
    for _ in range(3):
        refused = await get(sandbox, path, "test", forged)
        assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "token-invalid", refused.text
    assert admissions(sandbox) == []
    assert (await get(sandbox, path, "test", headers)).status == 200
    assert (await get(sandbox, path, "test", forged)).status == 401


async def test_a_request_refused_by_the_backend_is_kept_but_still_answered_by_the_backend(sandbox):
    """A GET the gateway lets through and the handler answers 404 (no such payment): its repeat is the gateway's
    admission, yet the handler runs every time, so the payment made afterwards is found by the same repeat."""
    keys, headers, _, _ = await paying_merchant(sandbox)
    path = f"{PAYMENTS}/order-7777777"
    assert (await get(sandbox, path, "test", headers)).status == 404
    assert (await get(sandbox, path, "test", headers)).status == 404
    body = create_body("order-7777777", currency=sandbox.runtime.world.sales_units[keys["owner"]].currency)
    created = await sandbox.request("POST", PAYMENTS, "test", json_body=body,
                                    headers={**headers, "Idempotency-Key": "late"})
    assert created.status == 201, created.text
    found = await get(sandbox, path, "test", headers)
    assert found.status == 200 and found.json["reference"] == "order-7777777"


# -- 5. one environment's admission is not the other's ----------------------------------------------------------

async def test_the_same_headers_on_the_production_port_are_checked_there(sandbox):
    _, headers, _, path = await paying_merchant(sandbox)
    # A Host header that names no Vipps host, the same on both ports: the port picks the environment, and the
    # raw headers of both requests are byte for byte the same.
    same = {**headers, "Host": "127.0.0.1"}
    await _admitted(sandbox, path, "test", same)
    for _ in range(2):
        there = await get(sandbox, path, "production", same)
        assert there.status == 401, there.text
        assert there.headers["Vipps-Sandbox-Rule"] == "keys-stay-in-their-environment"
    assert (await get(sandbox, path, "test", same)).status == 200
    entries = await log_entries(sandbox, path)
    assert [(entry["environment"], entry["status"]) for entry in entries[-3:]] \
        == [("production", 401), ("production", 401), ("test", 200)]
    assert [env for _, env, _ in admissions(sandbox)] == [Env.TEST]


async def test_the_host_header_picks_the_environment_of_an_admission(sandbox):
    """The same port, the Host header naming the other Vipps host: another environment, checked afresh (this
    one differs in its raw headers too; the test above is the one with byte-identical headers)."""
    _, headers, _, path = await paying_merchant(sandbox)
    await _admitted(sandbox, path, "test", {**headers, "Host": "apitest.vipps.no"})
    there = await get(sandbox, path, "test", {**headers, "Host": "api.vipps.no"})
    assert there.status == 401 and there.headers["Vipps-Sandbox-Rule"] == "keys-stay-in-their-environment"


# -- 6. HEAD and GET ----------------------------------------------------------------------------------------------

async def test_head_and_get_do_not_share_an_admission(sandbox):
    _, headers, _, path = await paying_merchant(sandbox)
    heads = [await get(sandbox, path, "test", headers, method="HEAD") for _ in range(2)]
    assert [(reply.status, reply.text) for reply in heads] == [(200, ""), (200, "")]
    assert len(admissions(sandbox)) == 1
    gets = [await get(sandbox, path, "test", headers) for _ in range(2)]
    assert [reply.status for reply in gets] == [200, 200]
    assert gets[0].json["reference"] == gets[1].json["reference"] == "order-0000001"
    assert len(admissions(sandbox)) == 2  # the GET was not served from the HEAD's admission
    entries = await log_entries(sandbox, path)
    assert [entry["method"] for entry in entries] == ["HEAD", "HEAD", "GET", "GET"]
    assert without_per_request(entries[0]) | {"method": "GET"} == without_per_request(entries[2])


# -- 7. runs of repeats (sandbox/readiness/repeats.py): folded later, the books as if observed one by one -------

async def _books_of(scenario, vary: bool, settings: Settings | None = None) -> tuple:
    """`_evidence_of`, with the Login book too: (report, evidence book, Login book) after the scenario; the
    scenario may return (msn, env, what it read in the middle)."""
    async with started(settings or Settings(port=0, prod_port=0)) as sandbox:
        assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status == 200
        done = await scenario(sandbox, (lambda n: {"X-Poll": str(n)}) if vary else (lambda n: {}))
        msn, env, middle = (*done, None)[:3]
        if not vary:
            assert sandbox.runtime.world.decisions, "the identical requests were not served from an admission"
        logins = normalized(sandbox.running.app[LOGIN_EVIDENCE].dump())
        return await readiness(sandbox, msn, env), evidence(sandbox), logins, middle


async def _same_books(scenario, settings: Settings | None = None) -> tuple:
    repeated = await _books_of(scenario, False, settings)
    afresh = await _books_of(scenario, True, settings)
    for name, one, other in zip(("report", "evidence", "login", "middle"), repeated, afresh, strict=True):
        found = differences(one, other, name)
        assert not found, found
    return repeated


async def _payment(sandbox: SandboxClient, role: str, reference: str, env: str = "test",
                   headers: dict | None = None) -> tuple[dict, str, str]:
    """A merchant of `role` with a payment made: (headers with the system headers, msn, the payment's path)."""
    msn = sandbox.msn_role(role)
    headers = headers or {**await sandbox.auth_headers(sandbox.key("merchant", env, msn), msn, env), **SYSTEM}
    body = create_body(reference, currency=sandbox.runtime.world.sales_units[msn].currency)
    created = await sandbox.request("POST", PAYMENTS, env, json_body=body,
                                    headers={**headers, "Idempotency-Key": f"create-{reference}"})
    assert created.status == 201, created.text
    return headers, msn, f"{PAYMENTS}/{reference}"


async def _two_merchants_alternate(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """premium-shop-1 polls two of its payments and independent-1 one of its own, in turn: runs of one request,
    one admission shared by two paths, and two admissions interleaved."""
    headers, msn, first = await _payment(sandbox, "premium-shop-1", "order-0000001")
    _, _, second = await _payment(sandbox, "premium-shop-1", "order-0000002", headers=headers)
    other_headers, _, other = await _payment(sandbox, "independent-1", "order-0000003")
    for n in range(20):
        for path, sent in ((first, headers), (other, other_headers), (second, headers)):
            reply = await get(sandbox, path, "test", {**sent, **extra(n)})
            assert reply.status == 200, reply.text
    return msn, "test"


async def _merchant_and_partner_alternate(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """The merchant and a partner acting for it poll two payments of the sales unit in turn (production)."""
    merchant, msn, first = await _payment(sandbox, "premium-shop-1", "order-0000011", "production")
    _, _, second = await _payment(sandbox, "premium-shop-1", "order-0000012", "production", merchant)
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    acting = {**await sandbox.auth_headers(partner, msn, "production"), **SYSTEM}
    for n in range(20):
        for path, sent in ((first, merchant), (second, acting)):
            assert (await get(sandbox, path, "production", {**sent, **extra(n)})).status == 200
    return msn, "production"


@pytest.mark.parametrize("scenario", [_two_merchants_alternate, _merchant_and_partner_alternate],
                         ids=lambda f: f.__name__.strip("_"))
async def test_interleaved_repeats_leave_the_books_of_requests_checked_afresh(scenario):
    await _same_books(scenario)


async def _long_run(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """150 polls of one payment: runs of 64, 64 and 21 (the first request is no repeat)."""
    headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
    for n in range(150):
        assert (await get(sandbox, path, "test", {**headers, **extra(n)})).status == 200
    return msn, "test"


async def _many_runs(sandbox: SandboxClient, extra) -> tuple[str, str]:
    """70 payments, each polled twice in a row with the same headers (one admission for all 70 paths): about 70
    runs, more than the queue holds."""
    headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
    paths = [path] + [(await _payment(sandbox, "premium-shop-1", f"order-{n:07d}", headers=headers))[2]
                      for n in range(2, 71)]
    for n, path in enumerate(paths):
        for again in range(2):
            assert (await get(sandbox, path, "test", {**headers, **extra(2 * n + again)})).status == 200
    return msn, "test"


@pytest.mark.parametrize("scenario", [_long_run, _many_runs], ids=lambda f: f.__name__.strip("_"))
async def test_runs_longer_than_a_run_and_more_than_the_queue_holds(scenario):
    _, book, _, _ = await _same_books(scenario)
    unit = next(unit for unit in book["units"] if unit["env"] == "test")
    polled = [polls for _, _, _, _, polls, _, _ in unit["objects"] if polls]
    if scenario is _long_run:
        assert unit["routes"]["epayment.get"]["total"] == 150
        assert [len(polls) for polls in polled] == [64]  # the newest 64 poll times
    else:
        assert unit["routes"]["epayment.get"]["total"] == 140
        assert [len(polls) for polls in polled] == [2] * 70


async def test_concurrent_connections_polling_one_payment_count_every_request():
    """Four keep-alive connections poll one payment 50 times each, at once: what the runs make of the interleaving
    differs from run to run, so the counts are compared (and the 64 poll times kept)."""

    async def polled(vary: bool) -> dict:
        async with started(Settings(port=0, prod_port=0)) as sandbox:
            assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status \
                == 200
            headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
            keys = sandbox.key("merchant", "test", msn)
            url = sandbox.url("test") + path

            async def connection(worker: int) -> list[int]:
                statuses = []
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
                    for n in range(50):
                        sent = {**headers, "X-Poll": f"{worker}-{n}"} if vary else headers
                        async with session.get(url, headers=sent) as resp:
                            statuses.append(resp.status)
                            await resp.read()
                return statuses

            statuses = await asyncio.gather(*(connection(worker) for worker in range(4)))
            assert statuses == [[200] * 50] * 4
            if not vary:
                assert admissions(sandbox)
            book = sandbox.running.app[EVIDENCE]
            book.settle()
            unit = book.units[("test", msn)]
            stat = unit.routes["epayment.get"]
            report = await readiness(sandbox, msn, "test")
            items = {item["id"]: item["evidence"] for checklist in report["checklists"]
                     for item in checklist["items"]}
            return {"total": stat.total, "ok": stat.ok, "statuses": dict(stat.statuses), "api": unit.api_calls,
                    "systemOk": unit.system_ok, "systemBad": unit.system_bad, "keyTypes": dict(unit.key_types),
                    "clientCalls": book.client_calls[("test", keys["client_id"])],
                    "polls": len(unit.objects["order-0000001"].polls),
                    "clients": sorted(book.clients[("test", msn)]),
                    "items": {name: items[name] for name in ("EP-E2", "G-H1", "G-H5")}}

    repeated, afresh = await polled(False), await polled(True)
    assert repeated == afresh
    assert repeated["total"] == repeated["ok"] == 200 and repeated["statuses"] == {200: 200}
    assert repeated["api"] == repeated["clientCalls"] == 201 and repeated["polls"] == 64
    assert "200 of 200 successful" in repeated["items"]["EP-E2"], repeated["items"]


async def _events_amid_the_polls(sandbox: SandboxClient, extra) -> tuple[str, str, dict]:
    """Polls queued when the user approves (an event from the control plane) and when the merchant captures (an
    event during the capture's own request), then polls after each; the evidence read in the middle too."""
    headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
    for n in range(10):
        assert (await get(sandbox, path, "test", {**headers, **extra(n)})).status == 200
    approved = await sandbox.request("POST", f"/_sandbox/payments/{msn}/order-0000001/approve", "test")
    assert approved.status in (200, 204), approved.text
    assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3})).status == 200
    for n in range(10, 20):
        assert (await get(sandbox, path, "test", {**headers, **extra(n)})).status == 200
    middle = await readiness(sandbox, msn, "test")
    for n in range(20, 30):
        assert (await get(sandbox, path, "test", {**headers, **extra(n)})).status == 200
    currency = sandbox.runtime.world.sales_units[msn].currency
    captured = await sandbox.request("POST", f"{path}/capture", "test",
                                     json_body={"modificationAmount": {"value": 10000, "currency": currency}},
                                     headers={**headers, "Idempotency-Key": "capture-1"})
    assert captured.status == 200, captured.text
    for n in range(30, 40):
        assert (await get(sandbox, path, "test", {**headers, **extra(n)})).status == 200
    return msn, "test", middle


async def test_a_domain_event_amid_a_run_leaves_the_books_of_requests_checked_afresh():
    report, book, _, middle = await _same_books(_events_amid_the_polls)
    unit = next(unit for unit in book["units"] if unit["msn"] == report["msn"] and unit["env"] == "test")
    assert unit["routes"]["epayment.get"]["total"] == 40
    [tracked] = [row for row in unit["objects"] if row[0] == "order-0000001"]
    assert {"created", "authorized", "captured"} <= set(tracked[3]) and len(tracked[4]) == 40
    items = {item["id"]: item for checklist in middle["checklists"] for item in checklist["items"]}
    assert "20 of 20 successful" in items["EP-E2"]["evidence"], items["EP-E2"]


DISCOVERY = "/access-management-1.0/access/.well-known/openid-configuration"


async def _logs_in(sandbox: SandboxClient, doc: dict) -> None:
    """The browser's /oauth2/auth for premium-shop-1's client from this address (its discovery peak is read then)."""
    keys = sandbox.key("merchant", "test", owner=sandbox.msn_role("premium-shop-1"))
    query = {"response_type": "code", "client_id": keys["client_id"], "scope": "openid name",
             "state": "st-0123456789", "redirect_uri": "http://127.0.0.1:53682/callback"}
    async with sandbox.session.get(doc["authorization_endpoint"] + "?" + urlencode(query),
                                   allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()


async def _fetches_discovery_and_jwks(sandbox: SandboxClient, extra) -> tuple[str, str, dict]:
    """Discovery and JWKS, 100 times each in two runs of 30 and 70 fetches, a login after each part; the report
    read after the first 30 (and its login) already counts them."""
    doc = (await sandbox.request("GET", DISCOVERY, "test")).json
    jwks = urlsplit(doc["jwks_uri"]).path
    for n in range(1, 31):
        assert (await get(sandbox, DISCOVERY, "test", extra(n))).status == 200
    for n in range(30):
        assert (await get(sandbox, jwks, "test", extra(n))).status == 200
    await _logs_in(sandbox, doc)
    msn = sandbox.msn_role("premium-shop-1")
    middle = await readiness(sandbox, msn, "test")
    for n in range(31, 101):
        assert (await get(sandbox, DISCOVERY, "test", extra(n))).status == 200
    for n in range(30, 100):
        assert (await get(sandbox, jwks, "test", extra(n))).status == 200
    await _logs_in(sandbox, doc)
    return msn, "test", middle


async def test_login_discovery_and_jwks_repeats_leave_the_login_book_of_fetches_checked_afresh():
    report, _, logins, middle = await _same_books(_fetches_discovery_and_jwks)
    [(_, _, login)] = [row for row in logins if row[0] == "test"]
    assert login["discoveryPeak"] == 32  # the most fetches kept per address (login_evidence.MAX_FETCHES)

    def login_items(body: dict) -> dict:
        return {item["id"]: item for checklist in body["checklists"] for item in checklist["items"]
                if item["id"].startswith("L-")}

    early = login_items(middle)
    assert "31 times" in early["L-11"]["evidence"], early["L-11"]  # the first fetch and the 30 after it
    assert early["L-E1"]["status"] == early["L-E2"]["status"] == "met", (early["L-E1"], early["L-E2"])
    assert "32 times" in login_items(report)["L-11"]["evidence"]


async def test_a_snapshot_taken_right_after_repeats_holds_them(tmp_path):
    async with started(Settings(port=0, prod_port=0, snapshot_dir=tmp_path)) as sandbox:
        headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
        for _ in range(20):
            assert (await get(sandbox, path, "test", headers)).status == 200
        assert admissions(sandbox)
        saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "polled"})
        assert saved.status == 200, saved.text
        kept = read_snapshot(tmp_path / "polled.json")["readiness"]
        [unit] = [unit for unit in kept["units"] if unit["msn"] == msn and unit["env"] == "test"]
        assert unit["routes"]["epayment.get"]["total"] == 20 and unit["apiCalls"] == 21
        [tracked] = [row for row in unit["objects"] if row[0] == "order-0000001"]
        assert len(tracked[4]) == 20
        before = evidence(sandbox)
        # Queued repeats when the reset comes: they belong to the book it empties, and the restore brings them back.
        for _ in range(5):
            assert (await get(sandbox, path, "test", headers)).status == 200
        assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
        assert not [unit for unit in evidence(sandbox)["units"] if unit["msn"] == msn], evidence(sandbox)
        restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "polled"})
        assert restored.status == 200, restored.text
        assert not differences(evidence(sandbox), before), differences(evidence(sandbox), before)


async def test_discovery_repeats_from_two_addresses_are_counted_per_address():
    """The same discovery request (the same admission) from 127.0.0.1 and 127.0.0.2 in turn, twice each: a run is
    one address's, so each address's fetches and newest proof are its own, as for requests checked afresh."""

    async def fetched(vary: bool) -> dict:
        async with started(Settings(port=0, prod_port=0)) as sandbox:
            assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status \
                == 200
            url = sandbox.url("test") + DISCOVERY
            other = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0)))
            async with other:
                n = 0
                for rounds in range(10):
                    for session in (sandbox.session, other):
                        for _ in range(1 + rounds % 3):
                            n += 1
                            async with session.get(url, headers={"X-Poll": str(n)} if vary else {}) as resp:
                                assert resp.status == 200
                                await resp.read()
            logins = sandbox.running.app[LOGIN_EVIDENCE]
            sandbox.running.app[EVIDENCE].settle()
            return {peer: (logins.discovery.peak("test", peer),
                           [(route, proof.request_id) for route, proof in logins.anonymous_proofs("test", peer)])
                    for peer in ("127.0.0.1", "127.0.0.2")}

    repeated, afresh = await fetched(False), await fetched(True)
    assert repeated == afresh
    assert repeated["127.0.0.1"][0] == repeated["127.0.0.2"][0] == 19, repeated  # 1+2+3+1+2+3+1+2+3+1


async def test_the_queue_stays_bounded_while_an_integration_polls():
    """However long the polling, no more than 64 runs of 64 requests wait to be folded in (sandbox/readiness/
    repeats.py): the queue is the book's settle's owner (read here, as world.decisions is above)."""
    async with started(Settings(port=0, prod_port=0)) as sandbox:
        headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
        paths = [path] + [(await _payment(sandbox, "premium-shop-1", f"order-{n:07d}", headers=headers))[2]
                          for n in range(2, 4)]
        queue = sandbox.running.app[EVIDENCE].settle.__self__
        longest = most = 0
        for n in range(300):
            assert (await get(sandbox, paths[0] if n < 150 else paths[1 + n % 2], "test", headers)).status == 200
            most = max(most, len(queue.runs))
            longest = max([longest] + [run[4] for run in queue.runs])
        assert 0 < longest <= 64 and 0 < most <= 64, (longest, most)
        report = await readiness(sandbox, msn, "test")
        items = {item["id"]: item for checklist in report["checklists"] for item in checklist["items"]}
        assert "300 of 300 successful" in items["EP-E2"]["evidence"], items["EP-E2"]
        assert queue.runs == []


async def test_repeats_queued_when_the_sandbox_stops_are_in_its_state_directory(tmp_path):
    """With --state the book is written when the app stops: the runs still queued then are folded in first."""
    async with started(Settings(port=0, prod_port=0, state=tmp_path / "state")) as sandbox:
        headers, msn, path = await _payment(sandbox, "premium-shop-1", "order-0000001")
        for _ in range(20):
            assert (await get(sandbox, path, "test", headers)).status == 200
        assert admissions(sandbox)
    async with started(Settings(port=0, prod_port=0, state=tmp_path / "state")) as sandbox:
        report = await readiness(sandbox, msn, "test")
        items = {item["id"]: item for checklist in report["checklists"] for item in checklist["items"]}
        assert "20 of 20 successful" in items["EP-E2"]["evidence"], items["EP-E2"]
