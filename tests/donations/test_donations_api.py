"""The Donations API (next-apis.md section 6): the payments report, agreements, stop, and the monthly payments the
virtual clock charges, seen by merchant-level keys and partner keys, and booked in the Report API's ledgers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from donations_support import (
    DAY,
    EVER,
    advance,
    agreements_of,
    bearer,
    eventually,
    merchant_key,
    merchant_level,
    report,
)

from sandbox.apis.donations.routes import DONATIONS
from sandbox.apis.report.ledger import ledger_id_for

PAYMENT_FIELDS = {"externalReference", "capturedAt", "pspReference", "transactionReference", "recipientHandle",
                  "amount", "currency"}


def partner_keys(sandbox) -> dict:
    return sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))


async def seed(sandbox, role: str, count: int, every: int = 1, amount: int = 10000) -> dict:
    reply = await sandbox.request("POST", "/_sandbox/donations/payments", "production", json_body={
        "msn": sandbox.msn_role(role), "count": count, "everySeconds": every, "amount": amount})
    assert reply.status == 201, reply.text
    return reply.json


def capture_epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- the payments report ----------------------------------------------------------------------------------


async def test_paging_by_timestamp_repeats_the_last_item(sandbox):
    """At most 1,000 per answer; the next call starts at the exact last capturedAt, so the last item comes again,
    and a client that dedupes on pspReference gets every payment once. An empty page ends it."""
    await seed(sandbox, "premium-shop-1", 1500, every=1)
    await seed(sandbox, "premium-shop-2", 700, every=2)
    headers = await bearer(sandbox, merchant_level(sandbox))
    seen: dict[str, dict] = {}
    start, pages, repeated = EVER["from"], [], 0
    while True:
        reply = await report(sandbox, headers, **{"from": start})
        assert reply.status == 200, reply.text
        page = reply.json["payments"]
        assert len(page) <= 1000
        # the previous page's last item comes again (first, or among the others captured in the same second)
        if pages and pages[-1][-1]["pspReference"] in {p["pspReference"] for p in page}:
            repeated += 1
        times = [capture_epoch(p["capturedAt"]) for p in page]
        assert times == sorted(times)
        pages.append(page)
        fresh = [p for p in page if p["pspReference"] not in seen]
        seen.update({p["pspReference"]: p for p in page})
        if not fresh:
            break
        start = page[-1]["capturedAt"]
    assert len(seen) == 2200
    assert len(pages[0]) == 1000 and repeated >= 2
    assert pages[-1][-1] == pages[-2][-1]  # the last call brings the last item again, and nothing new
    first = pages[0][0]
    assert set(first) == PAYMENT_FIELDS  # no payer without includeGDPRSensitiveData, no agreementId for one-offs
    assert first["amount"] == "10000" and first["currency"] == "NOK"
    assert first["recipientHandle"] in {f"api:{sandbox.msn_role(r)}" for r in ("premium-shop-1", "premium-shop-2")}


async def test_from_and_to_bound_the_answer_inclusive(sandbox):
    made = await seed(sandbox, "premium-shop-1", 10, every=60)
    headers = await bearer(sandbox, merchant_level(sandbox))
    reply = await report(sandbox, headers, **{"from": made["firstCapturedAt"], "to": made["firstCapturedAt"]})
    assert [p["capturedAt"] for p in reply.json["payments"]] == [made["firstCapturedAt"]]
    assert reply.json["from"] == reply.json["to"] == made["firstCapturedAt"]
    empty = await report(sandbox, headers, **{"from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00+01:00"})
    assert empty.status == 200 and empty.json["payments"] == []


async def test_gdpr_sensitive_data_only_when_asked(sandbox):
    await seed(sandbox, "premium-shop-1", 1)
    headers = await bearer(sandbox, merchant_level(sandbox))
    plain = (await report(sandbox, headers)).json["payments"][0]
    assert "payer" not in plain
    full = (await report(sandbox, headers, includeGDPRSensitiveData="true")).json["payments"][0]
    user = sandbox.runtime.world.user(full["payer"]["phoneNumber"])
    assert full["payer"] == {"name": user.name, "phoneNumber": user.phone_number}


async def test_partner_keys_see_connected_sales_units_and_a_foreign_handle_refuses_the_whole_call(sandbox):
    await seed(sandbox, "premium-shop-1", 3)
    await seed(sandbox, "independent-1", 2)  # connected to no partner
    keys = partner_keys(sandbox)
    headers = await sandbox.auth_headers(keys)
    reply = await report(sandbox, headers)
    assert reply.status == 200, reply.text
    assert {p["recipientHandle"] for p in reply.json["payments"]} == {f"api:{sandbox.msn_role('premium-shop-1')}"}
    own, foreign = f"api:{sandbox.msn_role('premium-shop-1')}", f"api:{sandbox.msn_role('independent-1')}"
    narrowed = await report(sandbox, headers, recipientHandles=own)
    assert narrowed.status == 200 and len(narrowed.json["payments"]) == 3
    for handles in (foreign, f"{own},{foreign}", "api:999999999"):
        refused = await report(sandbox, headers, recipientHandles=handles)
        assert refused.status == 403, (handles, refused.text)
        assert refused.headers["Vipps-Sandbox-Decision"] == "deny"
        assert refused.json["status"] == 403 and "payments" not in refused.json
    # with the Merchant-Serial-Number header, partner keys see that one sales unit only
    narrowed = await report(sandbox, headers | {"Merchant-Serial-Number": sandbox.msn_role("premium-shop-2")})
    assert narrowed.status == 200 and narrowed.json["payments"] == []
    foreign_msn = await report(sandbox, headers | {"Merchant-Serial-Number": sandbox.msn_role("independent-1")})
    assert foreign_msn.status == 403 and "partner keys" in foreign_msn.headers["Vipps-Sandbox-Reason"].lower()


async def test_merchant_level_keys_are_refused_another_merchants_handle(sandbox):
    headers = await bearer(sandbox, merchant_level(sandbox))
    refused = await report(sandbox, headers, recipientHandles=f"api:{sandbox.msn_role('independent-1')}")
    assert refused.status == 403
    assert refused.headers["Vipps-Sandbox-Rule"] == "donations-recipient-handle-forbidden"
    # the MSN header plays no part for merchant-level keys (a real client sends one anyway)
    mine = await report(sandbox, headers | {"Merchant-Serial-Number": sandbox.msn_role("independent-1")})
    assert mine.status == 200


# -- agreements ----------------------------------------------------------------------------------------------


async def test_an_agreement_as_the_reference_shows_it(sandbox):
    agreement = agreements_of(sandbox, "premium-shop")[0]
    headers = await bearer(sandbox, merchant_level(sandbox))
    reply = await sandbox.request("GET", f"/donations/v1/agreements/{agreement.id}", "production", headers=headers)
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["id"] == agreement.id and body["recipientHandle"] == f"api:{agreement.msn}"
    assert body["schedule"] == {"interval": "MONTHLY", "withdrawalDay": agreement.withdrawal_day}
    assert body["amount"] == {"currency": "NOK", "value": agreement.amount}
    user = sandbox.runtime.world.user(agreement.phone_number)
    assert body["payer"]["firstName"] == user.given_name and body["payer"]["phoneNumber"] == user.phone_number
    assert body["payer"]["email"] == user.email and body["payer"]["emailVerified"] is user.email_verified
    assert datetime.fromisoformat(body["startedAt"]).tzinfo is not None


async def test_404_for_another_merchants_agreement_and_for_none(sandbox):
    other = agreements_of(sandbox, "premium-fi")[0]  # a merchant of the same partner, with no merchant-level keys
    headers = await bearer(sandbox, merchant_level(sandbox))
    hidden = await sandbox.request("GET", f"/donations/v1/agreements/{other.id}", "production", headers=headers)
    missing = await sandbox.request("GET", "/donations/v1/agreements/00000000-0000-4000-8000-000000000000",
                                    "production", headers=headers)
    assert hidden.status == missing.status == 404
    assert hidden.json["detail"] == missing.json["detail"]  # the body does not tell them apart
    assert hidden.headers["Vipps-Sandbox-Rule"] == "donations-agreement-not-visible"
    assert hidden.headers["Vipps-Sandbox-Decision"] == "deny"
    assert missing.headers["Vipps-Sandbox-Rule"] == "donations-agreement-unknown"
    # stop is hidden the same way, and changes nothing
    stop = await sandbox.request("POST", f"/donations/v1/agreements/{other.id}/stop", "production", headers=headers)
    assert stop.status == 404 and other.status == "ACTIVE"
    # partner keys: a sales unit not connected to the partner is hidden too; the connected ones are not
    created = await sandbox.request("POST", "/_sandbox/donations/agreements", "production", json_body={
        "msn": sandbox.msn_role("independent-1"), "amount": 20000, "withdrawalDay": 12})
    assert created.status == 201, created.text
    partner = await sandbox.auth_headers(partner_keys(sandbox))
    path = f"/donations/v1/agreements/{created.json['id']}"
    hidden = await sandbox.request("GET", path, "production", headers=partner)
    assert hidden.status == 404 and "not connected" in hidden.headers["Vipps-Sandbox-Reason"]
    independent = await bearer(sandbox, merchant_level(sandbox, "independent"))
    assert (await sandbox.request("GET", path, "production", headers=independent)).status == 200
    for mine in (agreements_of(sandbox, "premium-shop")[0], other):
        seen = await sandbox.request("GET", f"/donations/v1/agreements/{mine.id}", "production", headers=partner)
        assert seen.status == 200


async def test_stop_is_idempotent_and_tells_the_webhooks_once(sandbox):
    agreement = next(a for a in agreements_of(sandbox, "premium-shop") if a.status == "ACTIVE")
    headers = await bearer(sandbox, merchant_level(sandbox))
    url = f"{sandbox.running.prod_url}/_sandbox/inbox/stops"
    reply = await sandbox.request("POST", "/webhooks/v1/webhooks", "production", headers=headers,
                                  json_body={"url": url, "events": ["donations.agreement.stopped.v1"]})
    assert reply.status == 201, reply.text
    path = f"/donations/v1/agreements/{agreement.id}/stop"
    first = await sandbox.request("POST", path, "production", headers=headers)
    again = await sandbox.request("POST", path, "production", headers=headers)
    assert first.status == again.status == 200
    assert first.json["status"] == again.json["status"] == "STOPPED"
    [delivery] = await eventually(lambda: inbox(sandbox, "stops"))
    assert json.loads(delivery["body"])["agreementId"] == agreement.id
    await advance(sandbox, 40 * DAY)
    headers = await bearer(sandbox, merchant_level(sandbox))  # the clock moved past the token's 15 minutes
    paid = (await report(sandbox, headers)).json["payments"]
    assert agreement.id not in {p.get("agreementId") for p in paid}  # a stopped agreement is never charged
    assert len(await inbox(sandbox, "stops")) == 1


async def inbox(sandbox, name: str) -> list[dict]:
    return (await sandbox.request("GET", f"/_sandbox/inbox/{name}", "production")).json["deliveries"]


# -- monthly payments on the virtual clock, in the ledgers ------------------------------------------------


async def test_monthly_payments_on_the_virtual_clock_appear_in_the_ledger(sandbox):
    """Three months on: every ACTIVE agreement of premium-shop is charged three times on its withdrawal day, the
    stopped one never; the payments are in the Donations report and in the ledger, read with merchant-level keys
    and with the accounting keys of the partner the merchant consented to."""
    active = [a for a in agreements_of(sandbox, "premium-shop") if a.status == "ACTIVE"]
    assert active and any(a.status == "STOPPED" for a in agreements_of(sandbox, "premium-shop"))
    before = sandbox.runtime.clock.time()
    await advance(sandbox, 92 * DAY)
    after = sandbox.runtime.clock.time()
    headers = await bearer(sandbox, merchant_level(sandbox))
    payments = (await report(sandbox, headers)).json["payments"]
    by_agreement: dict[str, list[dict]] = {}
    for payment in payments:
        by_agreement.setdefault(payment["agreementId"], []).append(payment)
    assert set(by_agreement) == {a.id for a in active}
    for agreement in active:
        charged = by_agreement[agreement.id]
        assert len(charged) == withdrawals(agreement.withdrawal_day, before, after), charged
        for payment in charged:
            day = datetime.fromisoformat(payment["capturedAt"]).astimezone(UTC).day
            assert day == agreement.withdrawal_day and payment["amount"] == str(agreement.amount)
    psps = {p["pspReference"] for p in payments}
    accountant = await sandbox.auth_headers(sandbox.key("accounting", "production",
                                                        owner=sandbox.partner_role("accountant")))
    for msn in {a.msn for a in active}:
        ledger = ledger_id_for(msn)
        paid_here = {p["pspReference"] for p in payments if p["recipientHandle"] == f"api:{msn}"}
        assert paid_here
        for who in (headers, accountant):
            reply = await sandbox.request("GET", f"/report/v2/ledgers/{ledger}/funds/feed", "production",
                                          headers=who)
            assert reply.status == 200, reply.text
            booked = {item["pspReference"] for item in reply.json["items"] if item["entryType"] == "capture"}
            assert booked == paid_here and booked <= psps


def withdrawals(day: int, start: float, end: float) -> int:
    """How many times the withdrawal day (days 1 to 28: every month has it) falls in (start, end]."""
    first = datetime.fromtimestamp(start, UTC)
    count, year, month = 0, first.year, first.month
    for _ in range(14):
        moment = datetime(year, month, day, 6, tzinfo=UTC).timestamp()  # at 06:00 UTC (UNCERTAIN, rules.py)
        count += start < moment <= end
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return count


async def test_moving_the_withdrawal_day_and_the_index_by_time(sandbox):
    """A changed withdrawal day leaves a stale entry in the index; it never charges twice."""
    created = await sandbox.request("POST", "/_sandbox/donations/agreements", "production", json_body={
        "msn": sandbox.msn_role("premium-shop-2"), "amount": 30000, "withdrawalDay": 3,
        "externalReference": "moving-day"})
    assert created.status == 201, created.text
    agreement_id = created.json["id"]
    changed = await sandbox.request("POST", f"/_sandbox/donations/agreements/{agreement_id}/change", "production",
                                    json_body={"withdrawalDay": 20, "amount": 35000})
    assert changed.status == 200 and changed.json["schedule"]["withdrawalDay"] == 20
    backend = sandbox.running.app[DONATIONS]
    assert backend.counts()["timers"] >= len([a for a in backend.agreements.values() if a.status == "ACTIVE"])
    before = sandbox.runtime.clock.time()
    await advance(sandbox, 62 * DAY)
    headers = await bearer(sandbox, merchant_level(sandbox))
    mine = [p for p in (await report(sandbox, headers)).json["payments"] if p.get("agreementId") == agreement_id]
    assert len(mine) == withdrawals(20, before, sandbox.runtime.clock.time()) >= 2
    assert all(p["amount"] == "35000" and p["externalReference"] == "moving-day" for p in mine)
    assert {datetime.fromisoformat(p["capturedAt"]).day for p in mine} == {20}


async def test_reset_brings_back_the_fixture_and_a_snapshot_keeps_the_payments(sandbox):
    await seed(sandbox, "premium-shop-1", 5)
    backend = sandbox.running.app[DONATIONS]
    state = backend.dump()
    assert (await sandbox.request("POST", "/_sandbox/reset", "production")).status == 200
    backend = sandbox.running.app[DONATIONS]
    assert backend.counts()["payments"] == 0
    assert {a.id for a in backend.agreements.values()} == {r["id"] for r in
                                                          sandbox.runtime.fixture_tables["donation_agreements"]}
    backend.load(state)
    assert backend.counts()["payments"] == 5
    assert merchant_key(sandbox, "premium-shop")


async def test_the_control_plane_refuses_bad_seeds(sandbox):
    for body in ({}, {"msn": "0"}, {"msn": sandbox.msn_role("premium-shop-1"), "count": 0},
                 {"msn": sandbox.msn_role("premium-shop-1"), "amount": -5},
                 {"msn": sandbox.msn_role("premium-shop-1"), "phoneNumber": "4700000000"}, [1]):
        reply = await sandbox.request("POST", "/_sandbox/donations/payments", "production", json_body=body)
        assert reply.status == 400, (body, reply.text)
    for body in ({"msn": sandbox.msn_role("premium-shop-1"), "amount": 100, "withdrawalDay": 31},
                 {"msn": sandbox.msn_role("premium-shop-1"), "withdrawalDay": 3}):
        reply = await sandbox.request("POST", "/_sandbox/donations/agreements", "production", json_body=body)
        assert reply.status == 400, (body, reply.text)
    listing = await sandbox.request("GET", "/_sandbox/donations/agreements", "production")
    assert len(listing.json["agreements"]) == 6


async def test_bad_query_values_are_400_in_the_problem_format(sandbox):
    headers = await bearer(sandbox, merchant_level(sandbox))
    for params in ({"from": "yesterday"}, {"to": "2020-13-45T00:00:00Z"}, {"from": "2030-01-01T00:00:00Z",
                                                                            "to": "2020-01-01T00:00:00Z"},
                   {"includeGDPRSensitiveData": "maybe"}, {"recipientHandles": "shop"}, {"recipientHandles": ","}):
        reply = await report(sandbox, headers, **params)
        assert reply.status == 400, (params, reply.text)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert {"type", "title", "status", "detail", "instance", "traceId"} <= set(reply.json)
    missing = await sandbox.request("GET", "/donations/v1/reports/payments", "production", headers=headers)
    assert missing.status == 400 and missing.json["extraDetails"][0]["name"] == "from"


async def test_the_test_environment_has_no_donations_api(sandbox):
    reply = await sandbox.request("GET", "/donations/v1/reports/payments", "test")
    assert reply.status == 404
    assert reply.headers["Vipps-Sandbox-Rule"] == "donations-production-only"
