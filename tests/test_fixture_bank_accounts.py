"""Each market's sales units settle to a bank account in that market (issue 12, point 7).

A Danish or Finnish sales unit has a `BBAN:DK` / `BBAN:FI` account, never `BBAN:NO`, so its ledger
pays out in its own market. The format checks below are written here from the national rules, not
imported from the sandbox:
- NO: 11 digits; the first ten weighted 5,4,3,2,7,6,5,4,3,2, the check digit is 11 minus the
  remainder mod 11 (11 -> 0, 10 is no account);
- DK: a 4-digit registration number and a 10-digit account number (zero-padded), the account's
  digits weighted 4,3,2,7,6,5,4,3,2,1 summing to a multiple of 11;
- FI: 14 digits in the electronic format, starting with a bank-group number, valid under Luhn.
Everything is read over the served API: the Management API's sales unit, the Report API's ledgers.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from sandbox.testing import SandboxClient

ROOT = Path(__file__).resolve().parents[1]
ORDERS = "/management/v1/product-orders"
FI_BANK_GROUPS = ("1", "2", "31", "33", "34", "36", "37", "38", "39", "4", "5", "6", "8")


def valid_no(number: str) -> bool:
    if len(number) != 11 or not number.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:10], [5, 4, 3, 2, 7, 6, 5, 4, 3, 2], strict=True))
    remainder = total % 11
    if remainder == 1:
        return False
    return int(number[10]) == (0 if remainder == 0 else 11 - remainder)


def valid_dk(number: str) -> bool:
    if len(number) != 14 or not number.isdigit():
        return False
    registration, account = number[:4], number[4:]
    if registration == "0000" or int(account) == 0:
        return False
    return sum(int(d) * w for d, w in zip(account, [4, 3, 2, 7, 6, 5, 4, 3, 2, 1], strict=True)) % 11 == 0


def valid_fi(number: str) -> bool:
    if len(number) != 14 or not number.isdigit() or not number.startswith(FI_BANK_GROUPS):
        return False
    total = 0
    for i, d in enumerate(number[::-1]):  # Luhn: from the right, every second digit doubled
        n = int(d) * (1 + i % 2)
        total += n // 10 + n % 10
    return total % 10 == 0


VALID = {"NO": valid_no, "DK": valid_dk, "FI": valid_fi}


def check_account(market: str, account: object) -> None:
    assert isinstance(account, dict) and set(account) == {"scheme", "id"}, account
    assert account["scheme"] == f"BBAN:{market}", (market, account)
    assert VALID[market](account["id"]), (market, account)


def test_the_independent_checks_know_good_from_bad():
    assert valid_no("86011117947") and not valid_no("86011117948")  # the specs' example
    assert valid_fi("12345600000785") and not valid_fi("12345600000786")  # the Finnish banks' example
    assert valid_dk("1234" + "0000000019") and not valid_dk("1234" + "0000000018")
    assert not valid_dk("86011117947") and not valid_fi("86011117947")


async def sales_unit(sandbox: SandboxClient, msn: str) -> dict:
    """GET /management/v1/sales-units/{msn} in production with the unit's own merchant keys."""
    reply = await sandbox.request("GET", f"/management/v1/sales-units/{msn}", "production",
                                  keyset=sandbox.key("merchant", "production", msn=msn))
    assert reply.status == 200, reply.text
    return reply.json


async def ledger(sandbox: SandboxClient, keyset: dict, msn: str) -> dict:
    reply = await sandbox.request("GET", f"/settlement/v1/ledgers?settlesForRecipientHandles=api:{msn}",
                                  "production", keyset=keyset)
    assert reply.status == 200, reply.text
    [item] = reply.json["items"]
    return item


async def test_every_active_sales_unit_reports_a_bank_account_of_its_own_market(sandbox):
    world = sandbox.runtime.world
    seen = set()
    for unit in world.sales_units.values():
        if not world.merchants[unit.merchant].active:
            continue  # a deactivated merchant's units are a 404 by design
        body = await sales_unit(sandbox, unit.msn)
        check_account(unit.market, body["settlementBankAccount"])
        seen.add(unit.market)
    assert seen == {"NO", "DK", "FI"}


async def test_danish_and_finnish_ledgers_pay_out_to_danish_and_finnish_accounts(sandbox):
    accountant = sandbox.key("accounting", owner=sandbox.partner_role("accountant"))
    for role, market, currency in (("premium-dk-1", "DK", "DKK"), ("premium-fi-1", "FI", "EUR")):
        msn = sandbox.msn_role(role)
        item = await ledger(sandbox, sandbox.key("merchant", "production", msn=msn), msn)
        assert item["currency"] == currency
        check_account(market, item["payoutBankAccount"])
        assert item["payoutBankAccount"] == (await sales_unit(sandbox, msn))["settlementBankAccount"]
    # The accounting partner the Danish merchant consented to sees the same payout account.
    msn = sandbox.msn_role("premium-dk-1")
    check_account("DK", (await ledger(sandbox, accountant, msn))["payoutBankAccount"])


async def complete_order(sandbox: SandboxClient, partner: dict, order: dict, key: str) -> str:
    created = await sandbox.request("POST", ORDERS, "production", keyset=partner, json_body=order,
                                    headers={"Idempotency-Key": key})
    assert created.status == 201, created.text
    order_id = created.json["prefilledOrderId"]
    for action in ("submit", "complete"):
        moved = await sandbox.request("POST", f"/_sandbox/product-orders/{order_id}/{action}", "test")
        assert moved.status == 200, moved.text
    details = await sandbox.request("GET", f"/management/v2/product-orders/{order_id}/details", "production",
                                    keyset=partner)
    return details.json["salesUnit"]["msn"]


def order_for(scheme: str, business_id: str, **extra) -> dict:
    return {"businessIdentifier": {"scheme": scheme, "id": business_id}, "productType": "PAYMENT_INTEGRATION",
            "salesUnitName": "Nordic Bikes", **extra}


NEW_BUSINESSES = {"DK": ("business:DK:CVR", "10150817"), "FI": ("business:FI:Y-tunnus", "0112038-9")}


async def test_units_made_by_danish_and_finnish_product_orders_settle_in_their_market(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    for market, (scheme, business_id) in NEW_BUSINESSES.items():
        msn = await complete_order(sandbox, partner, order_for(scheme, business_id), f"bank-{market}")
        check_account(market, (await sales_unit(sandbox, msn))["settlementBankAccount"])
        item = await ledger(sandbox, sandbox.key("merchant", "production", msn=msn), msn)
        check_account(market, item["payoutBankAccount"])
    # An account the order gives in the right market is the one the unit gets.
    given = {"scheme": "BBAN:DK", "id": "1234" + "0000000019"}
    scheme, business_id = NEW_BUSINESSES["DK"]
    msn = await complete_order(sandbox, partner, order_for(scheme, business_id, settlementBankAccount=given), "bank-g")
    assert (await sales_unit(sandbox, msn))["settlementBankAccount"] == given


async def test_an_order_giving_another_markets_or_a_broken_account_is_a_400_naming_the_field(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    cases = [
        ("DK", {"scheme": "BBAN:NO", "id": "86011117947"}, "settlementBankAccount.scheme"),
        ("FI", {"scheme": "BBAN:DK", "id": "1234" + "0000000019"}, "settlementBankAccount.scheme"),
        ("DK", {"scheme": "BBAN:DK", "id": "1234" + "0000000018"}, "settlementBankAccount.id"),
        ("FI", {"scheme": "BBAN:FI", "id": "12345600000786"}, "settlementBankAccount.id"),
    ]
    for n, (market, account, field) in enumerate(cases):
        scheme, business_id = NEW_BUSINESSES[market]
        reply = await sandbox.request("POST", ORDERS, "production", keyset=partner, json_body=order_for(
            scheme, business_id, settlementBankAccount=account), headers={"Idempotency-Key": f"bad-bank-{n}"})
        assert reply.status == 400, (account, reply.text)
        assert reply.headers["Content-Type"].startswith("application/problem+json")
        assert [d["key"] for d in reply.json["extraDetails"]] == [field], reply.json  # 2.0.9: {key, value}


def generate(out: Path, hash_seed: str, *args: str) -> bytes:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    result = subprocess.run([sys.executable, "-m", "sandbox", "fixture", "generate", *args, "--out", str(out)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def accounts_by_market(data: bytes) -> list[tuple[str, dict]]:
    return [(u["market"], u["settlement_bank_account"]) for u in json.loads(data)["sales_units"].values()]


def test_same_seed_gives_byte_identical_fixtures_with_each_markets_accounts(tmp_path):
    one = generate(tmp_path / "one.json", "1", "--seed", "42")
    two = generate(tmp_path / "two.json", "2", "--seed", "42")  # another hash seed: nothing hangs on hashing
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()
    assert one == (ROOT / "fixtures" / "default.json").read_bytes()  # the bundled fixture is seed 42's
    big = generate(tmp_path / "big.json", "3", "--seed", "7", "--partners", "6", "--merchants", "60")
    assert big == generate(tmp_path / "big2.json", "4", "--seed", "7", "--partners", "6", "--merchants", "60")
    for data in (one, big):
        accounts = accounts_by_market(data)
        assert {market for market, _ in accounts} == {"NO", "DK", "FI"}
        for market, account in accounts:
            check_account(market, account)
