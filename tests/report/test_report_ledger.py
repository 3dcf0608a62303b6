"""Ledger entries from domain events: funds, fees, closing a date at midnight, the payout, GDPR fields."""

from __future__ import annotations

from datetime import timedelta

from report_support import (
    advance,
    assert_chain,
    capture,
    check_ledgers_schema,
    check_page_schema,
    freeze,
    ledger_id,
    local_date,
    past_midnight,
    refund,
)

from sandbox.core.model import SalesUnit


def expected_rate(sandbox, msn: str) -> int:
    """The documented rule, from the fixture's data: the partner's "Standard <market>" package, else 175."""
    world = sandbox.runtime.world
    unit = world.sales_units[msn]
    names = {p.name: p.fee_basis_points for p in world.price_packages.get(unit.partner_id or "", [])}
    return names.get(f"Standard {unit.market}", 175)


def fee(value: int, bp: int) -> int:
    return -((value * bp + 5000) // 10000)


async def get(sandbox, path, headers):
    return await sandbox.request("GET", path, "production", headers=headers)


async def test_capture_refund_and_close(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-dk-1")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    bp = expected_rate(sandbox, msn)
    assert bp != 175  # this sales unit's partner has its own price package
    today = local_date(now, "DK").isoformat()  # a Danish unit: Copenhagen's date (was the UTC date)
    first = capture(sandbox, msn, "order-1", 10_000, currency="DKK")
    second = capture(sandbox, msn, "order-1", 5_001, currency="DKK")
    back = refund(sandbox, msn, "order-1", 3_000, currency="DKK")
    capture(sandbox, msn, "test-order", 999, env="test")  # the test environment has no settlements
    capture(sandbox, msn, "failed", 999, success=False)

    reply = await get(sandbox, f"/report/v2/ledgers/{lid}/funds/dates/{today}", headers)
    assert reply.status == 200, reply.text
    assert reply.headers["Vipps-Feed-Page-Size"] == "1000"
    body = reply.json
    check_page_schema(body)
    assert body["tryLater"] is True and body["hasMore"] is False and "cursor" not in body
    assert [(e["entryType"], e["amount"], e["pspReference"]) for e in body["items"]] == [
        ("capture", 10_000, first["pspReference"]), ("capture", 5_001, second["pspReference"]),
        ("refund", -3_000, back["pspReference"])]
    assert {e["currency"] for e in body["items"]} == {"DKK"}
    assert {e["recipientHandle"] for e in body["items"]} == {f"api:{msn}"}
    assert body["items"][0]["balanceBefore"] == 0
    assert_chain(body["items"])

    fees = (await get(sandbox, f"/report/v2/ledgers/{lid}/fees/dates/{today}", headers)).json
    assert [(e["entryType"], e["amount"]) for e in fees["items"]] == [
        ("capture-fee", fee(10_000, bp)), ("capture-fee", fee(5_001, bp))]
    assert_chain(fees["items"])
    total_fees = fee(10_000, bp) + fee(5_001, bp)

    tomorrow = local_date(await past_midnight(sandbox, now, "DK"), "DK")
    assert tomorrow == local_date(now, "DK") + timedelta(days=1)
    body = (await get(sandbox, f"/report/v2/ledgers/{lid}/funds/dates/{today}", headers)).json
    check_page_schema(body)
    assert body["tryLater"] is False
    kinds = [(e["entryType"], e["amount"]) for e in body["items"]]
    assert kinds[:3] == [("capture", 10_000), ("capture", 5_001), ("refund", -3_000)]
    assert kinds[3] == ("fees-retained", total_fees)
    payout = body["items"][-1]
    assert payout["entryType"] == "payout-scheduled"
    assert payout["amount"] == -(12_001 + total_fees) and payout["balanceAfter"] == 0
    assert payout["pspReference"] == f"{lid}-1"
    assert {e["ledgerDate"] for e in body["items"]} == {today}
    assert_chain(body["items"])

    fees = (await get(sandbox, f"/report/v2/ledgers/{lid}/fees/dates/{today}", headers)).json
    assert fees["tryLater"] is False
    assert fees["items"][-1]["entryType"] == "fees-retained" and fees["items"][-1]["amount"] == -total_fees
    assert fees["items"][-1]["balanceAfter"] == 0
    assert_chain(fees["items"])

    # The next day's payout is number 2, and the chain continues across dates in the feed.
    capture(sandbox, msn, "order-2", 2_000, currency="DKK")
    await past_midnight(sandbox, await advance(sandbox, 0), "DK")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))  # a day later: a fresh token
    day2 = (await get(sandbox, f"/report/v2/ledgers/{lid}/funds/dates/{tomorrow.isoformat()}", headers)).json
    assert day2["items"][-1]["pspReference"] == f"{lid}-2"
    feed = (await get(sandbox, f"/report/v2/ledgers/{lid}/funds/feed", headers)).json
    check_page_schema(feed)
    assert len(feed["items"]) == 5 + 3
    assert_chain(feed["items"])
    assert feed["items"][:5] == body["items"]  # entries never change


async def test_default_fee_rate_without_partner(sandbox):
    await freeze(sandbox)
    msn = sandbox.msn_role("independent-1")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    capture(sandbox, msn, "order-1", 10_000, currency="EUR")
    fees = (await get(sandbox, f"/report/v2/ledgers/{lid}/fees/feed", headers)).json
    assert [e["amount"] for e in fees["items"]] == [-175]  # the documented default, 1.75 %


async def test_dates_with_nothing_and_future_dates(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    yesterday = (local_date(now) - timedelta(days=1)).isoformat()
    future = (local_date(now) + timedelta(days=3)).isoformat()
    reply = await get(sandbox, f"/report/v2/ledgers/{lid}/funds/dates/{yesterday}", headers)
    assert reply.json == {"items": [], "hasMore": False, "tryLater": False}
    reply = await get(sandbox, f"/report/v2/ledgers/{lid}/fees/dates/{future}", headers)
    assert reply.status == 200 and reply.json == {"items": [], "hasMore": False, "tryLater": True}
    reply = await get(sandbox, f"/report/v2/ledgers/{lid}/funds/feed", headers)
    assert reply.json["items"] == [] and reply.json["tryLater"] is True and reply.json["cursor"]


async def test_ledger_list_shape_and_stable_id(sandbox):
    msn = sandbox.msn_role("premium-shop-1")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    reply = await get(sandbox, "/settlement/v1/ledgers", headers)
    assert reply.status == 200, reply.text
    check_ledgers_schema(reply.json)
    unit = sandbox.runtime.world.sales_units[msn]
    merchant = sandbox.runtime.world.merchants[unit.merchant]
    [item] = reply.json["items"]
    assert reply.json["cursor"] == ""
    assert item["currency"] == unit.currency and item["payoutBankAccount"] == unit.settlement_bank_account
    assert item["owner"] == {"scheme": merchant.scheme, "id": merchant.id}
    assert item["settlesForRecipientHandles"] == [f"api:{msn}"]
    assert item["salesUnits"] == [{"name": unit.name, "recipientHandle": f"api:{msn}"}]
    assert item["ledgerId"].isdigit() and item["ledgerId"] != msn
    await freeze(sandbox)
    capture(sandbox, msn, "order-1", 100)
    sandbox.runtime.reset()  # back to the fixture: same ledger id, no entries
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    assert (await get(sandbox, "/settlement/v1/ledgers", headers)).json["items"][0]["ledgerId"] == item["ledgerId"]
    feed = (await get(sandbox, f"/report/v2/ledgers/{item['ledgerId']}/funds/feed", headers)).json
    assert feed["items"] == []


async def test_gdpr_fields_only_for_vippsnummer_ledgers(sandbox):
    await freeze(sandbox)
    accountant = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    api_msn = sandbox.msn_role("premium-shop-1")
    world = sandbox.runtime.world
    shop = world.sales_units[api_msn]
    vm_unit = SalesUnit(msn="7654321", name="Strand kiosk", merchant=shop.merchant, partner_id=shop.partner_id,
                        market="NO", currency="NOK", configuration={"vmNumber": "123455"},
                        created_at=shop.created_at, settlement_bank_account=shop.settlement_bank_account)
    world.add_sales_unit(vm_unit)  # a Vippsnummer sales unit of a merchant that consented
    capture(sandbox, api_msn, "web-1", 1000, phone="4798765432", description="Online order")
    capture(sandbox, vm_unit.msn, "vm-1", 2000, phone="4798765432", description="Takk for maten")

    api_lid = await ledger_id(sandbox, accountant, api_msn)
    reply = await get(sandbox, "/settlement/v1/ledgers?settlesForRecipientHandles=NO:123455", accountant)
    [vm_ledger] = reply.json["items"]
    assert vm_ledger["settlesForRecipientHandles"] == ["NO:123455"]
    vm_lid = vm_ledger["ledgerId"]

    sensitive = {"message", "name", "maskedPhoneNo"}
    api_feed = (await get(sandbox, f"/report/v2/ledgers/{api_lid}/funds/feed?includeGDPRSensitiveData=true",
                          accountant)).json
    assert not sensitive & set(api_feed["items"][0])  # API payments carry nothing personal
    plain = (await get(sandbox, f"/report/v2/ledgers/{vm_lid}/funds/feed", accountant)).json
    assert not sensitive & set(plain["items"][0])
    full = (await get(sandbox, f"/report/v2/ledgers/{vm_lid}/funds/feed?includeGDPRSensitiveData=true",
                      accountant)).json
    item = full["items"][0]
    assert item["message"] == "Takk for maten" and item["maskedPhoneNo"] == "xxxx 5432" and "name" in item
    assert "4798765432" not in str(full)
    assert item["recipientHandle"] == "NO:123455"


async def test_ledgers_survive_snapshot_and_restore(sandbox, tmp_path):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    capture(sandbox, msn, "order-1", 10_000)
    refund(sandbox, msn, "order-1", 1_000)
    await past_midnight(sandbox, now)
    capture(sandbox, msn, "order-2", 4_000)
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    before = {t: (await get(sandbox, f"/report/v2/ledgers/{lid}/{t}/feed", headers)).json for t in ("funds", "fees")}
    snapshot = {"name": f"ledgers-{tmp_path.name}"}
    assert (await sandbox.request("POST", "/_sandbox/snapshot", json_body=snapshot)).status == 200
    assert (await sandbox.request("POST", "/_sandbox/reset")).status in (200, 204)
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    assert (await get(sandbox, f"/report/v2/ledgers/{lid}/funds/feed", headers)).json["items"] == []
    reply = await sandbox.request("POST", "/_sandbox/restore", json_body=snapshot)
    assert reply.status == 200 and "ledgers" in reply.json["restored"], reply.text
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    for topic in ("funds", "fees"):
        assert (await get(sandbox, f"/report/v2/ledgers/{lid}/{topic}/feed", headers)).json == before[topic]
    capture(sandbox, msn, "order-3", 500)  # the restored ledger goes on where it was
    funds = (await get(sandbox, f"/report/v2/ledgers/{lid}/funds/feed", headers)).json["items"]
    assert funds[-1]["reference"] == "order-3"
    assert_chain(funds)
