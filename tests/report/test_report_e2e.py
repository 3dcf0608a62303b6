"""Issue 5's end-to-end flow: a real ePayment payment in production, through to the ledger and payout."""

from __future__ import annotations

from epayment_support import merchant
from report_support import assert_chain, check_page_schema, freeze, ledger_id, local_date, past_midnight


async def test_payment_to_ledger_and_payout(sandbox):
    now = await freeze(sandbox)
    shop = merchant(sandbox, "premium-shop-1", env="production")
    await shop.authorized("e2e-order-0001", value=20_000)  # create, then approve as the user
    for value in (8_000, 7_000):
        reply = await shop.capture("e2e-order-0001", value)
        assert reply.status == 200, reply.text
    reply = await shop.refund("e2e-order-0001", 2_500)
    assert reply.status == 200, reply.text
    events = (await shop.events("e2e-order-0001")).json
    psp = {e["name"]: e["pspReference"] for e in events if e["name"] in ("CAPTURED", "REFUNDED")}

    # A test-environment payment on the same MSN never reaches a ledger.
    test_shop = merchant(sandbox, "premium-shop-1", env="test")
    await test_shop.authorized("e2e-test-0001", value=1_000)
    assert (await test_shop.capture("e2e-test-0001", 1_000)).status == 200

    accountant = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    lid = await ledger_id(sandbox, accountant, shop.msn)
    day = local_date(now).isoformat()
    world = sandbox.runtime.world
    packages = {p.name: p.fee_basis_points for p in world.price_packages[world.sales_units[shop.msn].partner_id]}
    bp = packages.get("Standard NO", 175)
    fees = [-((v * bp + 5_000) // 10_000) for v in (8_000, 7_000)]

    await past_midnight(sandbox, now)
    accountant = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    funds = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/dates/{day}", headers=accountant)
    assert funds.status == 200, funds.text
    check_page_schema(funds.json)
    items = funds.json["items"]
    assert funds.json["tryLater"] is False and funds.json["hasMore"] is False
    assert [(e["entryType"], e["amount"], e["reference"]) for e in items[:3]] == [
        ("capture", 8_000, "e2e-order-0001"), ("capture", 7_000, "e2e-order-0001"),
        ("refund", -2_500, "e2e-order-0001")]
    assert items[2]["pspReference"] == psp["REFUNDED"]
    assert psp["CAPTURED"] in {items[0]["pspReference"], items[1]["pspReference"]}
    assert (items[3]["entryType"], items[3]["amount"]) == ("fees-retained", sum(fees))
    payout = items[4]
    assert payout["entryType"] == "payout-scheduled" and payout is items[-1]
    assert payout["amount"] == -(8_000 + 7_000 - 2_500 + sum(fees)) and payout["balanceAfter"] == 0
    assert payout["pspReference"] == f"{lid}-1"
    assert_chain(items)

    fee_page = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/fees/dates/{day}", headers=accountant)
    fee_items = fee_page.json["items"]
    assert [(e["entryType"], e["amount"]) for e in fee_items] == [
        ("capture-fee", fees[0]), ("capture-fee", fees[1]), ("fees-retained", -sum(fees))]
    assert_chain(fee_items)
    assert fee_items[-1]["balanceAfter"] == 0

    feed = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/feed", headers=accountant)
    assert feed.json["items"] == items and feed.json["tryLater"] is False
    end = await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/feed?cursor={feed.json['cursor']}",
                                headers=accountant)
    assert end.json == {"items": [], "cursor": feed.json["cursor"], "tryLater": True}
