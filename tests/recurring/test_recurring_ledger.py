"""Recurring charges in the Report API: a production charge (CHARGED at once, or RESERVED and captured later) and
its refunds land in the merchant's ledger on their merchant-local date, with the fee of the price package, as
ePayment captures do. Test-environment charges never reach a ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from recurring_support import BASE, charge_body, merchant, new_key, partner
from report_support import assert_chain, check_page_schema, freeze, ledger_id, local_date, past_midnight

from sandbox.core.clock import iso_utc

DAY = 86400


async def test_production_charges_captures_and_refunds_land_in_the_ledger_on_their_local_date(sandbox):
    now = await freeze(sandbox)
    seller = partner(sandbox)  # partner keys in production, for a connected sales unit
    msn = seller.unit
    agreement_id = await seller.active()
    charged = (await seller.charge(agreement_id, charge_body(sandbox, amount=49_900, days=3))).json["chargeId"]
    reserved = (await seller.charge(agreement_id, charge_body(sandbox, amount=30_000, days=3, description="Box",
                                                              transactionType="RESERVE_CAPTURE"))).json["chargeId"]
    # Test: the same flow never reaches a ledger.
    tester = merchant(sandbox, "test", msn)
    test_agreement = await tester.active()
    await tester.charge(test_agreement, charge_body(sandbox, amount=777, days=3))

    due = (now + timedelta(days=3)).date()
    due_midnight = datetime(due.year, due.month, due.day, tzinfo=UTC)
    await seller.advance((due_midnight - now).total_seconds() + 60)  # processed on the due date (UTC midnight)
    assert (await seller.get_charge(agreement_id, charged)).json["status"] == "CHARGED"
    assert (await seller.get_charge(agreement_id, reserved)).json["status"] == "RESERVED"
    # 23:30 UTC on the due date is already the next day in Oslo: the capture and refund belong to that ledger date.
    late = due_midnight + timedelta(hours=23, minutes=30)
    await seller.advance((late - due_midnight).total_seconds() - 60)
    path = f"{BASE}/agreements/{agreement_id}/charges"
    assert (await seller.call("POST", f"{path}/{reserved}/capture", {"amount": 20_000}, new_key())).status == 204
    assert (await seller.call("POST", f"{path}/{charged}/refund", {"amount": 5_000, "description": "Sorry"},
                              new_key())).status == 204
    first_day, second_day = local_date(due_midnight + timedelta(seconds=60)), local_date(late)
    assert second_day == first_day + timedelta(days=1)

    await past_midnight(sandbox, late)
    world = sandbox.runtime.world
    unit = world.sales_units[msn]
    packages = [p for p in world.price_packages.get(unit.partner_id, []) if p.market == unit.market]
    standard = [p for p in packages if p.name.startswith("Standard")]
    bp = min(standard or packages, key=lambda p: p.name).fee_basis_points if packages else 175
    owner = await sandbox.auth_headers(sandbox.key("merchant", "production", msn))
    lid = await ledger_id(sandbox, owner, msn)

    funds = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/dates/{first_day}", headers=owner)
    assert funds.status == 200, funds.text
    check_page_schema(funds.json)
    items = funds.json["items"]
    fee = (49_900 * bp + 5_000) // 10_000
    assert [(e["entryType"], e["amount"], e["reference"]) for e in items] == [
        ("capture", 49_900, charged), ("fees-retained", -fee, ""), ("payout-scheduled", -(49_900 - fee), items[2][
            "reference"])], items
    assert items[0]["time"] == iso_utc(due_midnight.timestamp())
    assert items[0]["pspReference"] == (await seller.get_charge(agreement_id, charged)).json["transactionId"]
    assert_chain(items)
    fees = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/fees/dates/{first_day}", headers=owner)
    assert [(e["entryType"], e["amount"], e["reference"]) for e in fees.json["items"]] == [
        ("capture-fee", -fee, charged), ("fees-retained", fee, "")]

    funds = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/dates/{second_day}", headers=owner)
    items = funds.json["items"]
    second_fee = (20_000 * bp + 5_000) // 10_000
    assert [(e["entryType"], e["amount"], e["reference"]) for e in items[:3]] == [
        ("capture", 20_000, reserved), ("refund", -5_000, charged), ("fees-retained", -second_fee, "")], items
    assert len({e["pspReference"] for e in items[:2]}) == 2
    assert_chain(items)
    # Nothing from the test environment, whatever the day.
    feed = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/feed", headers=owner)
    assert all(e["amount"] != 777 for e in feed.json["items"])
