"""The Report API's opaque 404s, explained by the sandbox (issue 12, point 2).

A ledger the caller may not read gets the same 404 "No such ledgerId" as one that does not exist: the real
API's privacy rule, kept byte for byte. The sandbox's own layer says which it was: Vipps-Sandbox-Decision:
deny, a rule, a reason naming the merchant, the accounting partner and the missing (or revoked) consent,
and the same in the request log. The ledger list, which simply leaves such ledgers out, explains them in
a Vipps-Sandbox-Warning.
"""

from __future__ import annotations

import pytest
from opaque_support import assert_absent, assert_explained, assert_same_for_the_caller, caller_view, last_entry
from report_support import freeze

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.clock import iso_utc

TAILS = ["funds/feed", "fees/dates/2026-01-05"]


def absent_ledger_id(sandbox) -> str:
    taken = {ledger_id_for(msn) for msn in sandbox.runtime.world.sales_units}
    return next(str(n) for n in range(123456789, 999999999) if str(n) not in taken)


def merchant_of(sandbox, role: str):
    world = sandbox.runtime.world
    return world.merchants[world.sales_units[sandbox.msn_role(role)].merchant]


def accountant(sandbox) -> dict:
    return sandbox.key("accounting", owner=sandbox.partner_role("accountant"))


async def read(sandbox, keyset: dict, lid: str, tail: str):
    return await sandbox.request("GET", f"/report/v2/ledgers/{lid}/{tail}", keyset=keyset)


@pytest.mark.parametrize("tail", TAILS)
async def test_a_ledger_that_does_not_exist_is_a_not_found(sandbox, tail):
    lid = absent_ledger_id(sandbox)
    reply = await read(sandbox, accountant(sandbox), lid, tail)
    assert reply.json["detail"] == "No such ledgerId"
    await assert_absent(sandbox, reply, "report-no-such-ledger", lid)


@pytest.mark.parametrize("tail", TAILS)
async def test_a_merchant_that_never_consented(sandbox, tail):
    """dual-shop's merchant consented to the "dual" partner, not to the accountant."""
    keys = accountant(sandbox)
    msn = sandbox.msn_role("dual-shop-1")
    merchant = merchant_of(sandbox, "dual-shop-1")
    absent = await read(sandbox, keys, absent_ledger_id(sandbox), tail)
    reply = await read(sandbox, keys, ledger_id_for(msn), tail)
    assert_same_for_the_caller(reply, absent)
    reason = await assert_explained(sandbox, reply, "report-no-consent", ledger_id_for(msn), msn, merchant.id,
                                    keys["owner"], "not consented")
    assert "revoked" not in reason


@pytest.mark.parametrize("tail", TAILS)
async def test_a_consent_revoked_mid_run(sandbox, tail):
    await freeze(sandbox)
    keys = accountant(sandbox)
    msn = sandbox.msn_role("premium-dk-1")
    merchant = merchant_of(sandbox, "premium-dk-1")
    lid = ledger_id_for(msn)
    assert (await read(sandbox, keys, lid, tail)).status == 200  # consented in the fixture
    revoked = await sandbox.request("DELETE", f"/_sandbox/consents/{keys['owner']}/{merchant.id}")
    assert revoked.status == 204, revoked.text
    when = sandbox.runtime.clock.time()
    absent = await read(sandbox, keys, absent_ledger_id(sandbox), tail)
    reply = await read(sandbox, keys, lid, tail)
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "report-consent-revoked", lid, msn, merchant.id, keys["owner"],
                           "revoked", iso_utc(when)[:16])
    # Granted again, the ledger opens again; revoked again, it is the revocation that is explained.
    body = {"accountingPartnerId": keys["owner"], "merchantId": merchant.id}
    assert (await sandbox.request("POST", "/_sandbox/consents", json_body=body)).status == 201
    assert (await read(sandbox, keys, lid, tail)).status == 200


async def test_a_reset_forgets_the_revocation(sandbox):
    keys = accountant(sandbox)
    dual = merchant_of(sandbox, "dual-shop-1")
    # Grant and revoke a merchant that had no consent in the fixture, then reset: it never consented.
    body = {"accountingPartnerId": keys["owner"], "merchantId": dual.id}
    assert (await sandbox.request("POST", "/_sandbox/consents", json_body=body)).status == 201
    assert (await sandbox.request("DELETE", f"/_sandbox/consents/{keys['owner']}/{dual.id}")).status == 204
    reply = await read(sandbox, keys, ledger_id_for(sandbox.msn_role("dual-shop-1")), "funds/feed")
    await assert_explained(sandbox, reply, "report-consent-revoked", "revoked")
    assert (await sandbox.request("POST", "/_sandbox/reset")).status == 200
    keys = accountant(sandbox)
    reply = await read(sandbox, keys, ledger_id_for(sandbox.msn_role("dual-shop-1")), "funds/feed")
    await assert_explained(sandbox, reply, "report-no-consent", "not consented")


@pytest.mark.parametrize("tail", TAILS)
async def test_merchant_keys_and_another_sales_units_ledger(sandbox, tail):
    mine, other = sandbox.msn_role("premium-shop-1"), sandbox.msn_role("independent-1")
    keys = sandbox.key("merchant", msn=mine)
    absent = await read(sandbox, keys, absent_ledger_id(sandbox), tail)
    reply = await read(sandbox, keys, ledger_id_for(other), tail)
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "merchant-keys-own-ledger-only", ledger_id_for(other), other, mine)
    # And the merchant's 404 is byte for byte the accountant's.
    assert_same_for_the_caller(reply, await read(sandbox, accountant(sandbox), absent_ledger_id(sandbox), tail))


async def test_the_ledger_list_explains_what_it_leaves_out(sandbox):
    keys = accountant(sandbox)
    hidden = sandbox.msn_role("dual-shop-1")
    merchant = merchant_of(sandbox, "dual-shop-1")
    nobody = "api:100"  # no sales unit settles as this
    empty = await sandbox.request("GET", f"/settlement/v1/ledgers?settlesForRecipientHandles={nobody}", keyset=keys)
    reply = await sandbox.request("GET", f"/settlement/v1/ledgers?settlesForRecipientHandles=api:{hidden}",
                                  keyset=keys)
    assert reply.status == 200 and reply.json == {"items": [], "cursor": ""}
    assert caller_view(reply) == caller_view(empty)
    assert reply.headers["Vipps-Sandbox-Decision"] == "allow"
    warning = reply.headers["Vipps-Sandbox-Warning"]
    for fact in (f"api:{hidden}", merchant.id, keys["owner"], "not consented"):
        assert fact in warning, (fact, warning)
    entry = await last_entry(sandbox)
    assert entry["decision"]["allowed"] is True and entry["warnings"] == [warning]
    assert "api:100" in empty.headers["Vipps-Sandbox-Warning"]


async def test_the_ledger_list_explains_a_revoked_consent(sandbox):
    keys = accountant(sandbox)
    merchant = merchant_of(sandbox, "premium-dk-1")
    assert (await sandbox.request("DELETE", f"/_sandbox/consents/{keys['owner']}/{merchant.id}")).status == 204
    reply = await sandbox.request("GET", "/settlement/v1/ledgers", keyset=keys)
    assert reply.status == 200
    assert ledger_id_for(sandbox.msn_role("premium-dk-1")) not in {i["ledgerId"] for i in reply.json["items"]}
    warning = reply.headers["Vipps-Sandbox-Warning"]
    assert merchant.id in warning and "revoked" in warning and keys["owner"] in warning, warning
    assert (await last_entry(sandbox))["warnings"] == [warning]
