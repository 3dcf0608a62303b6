"""The Management API's opaque 404s, explained by the sandbox (issue 12, point 2).

A sales unit, merchant or product order the caller may not see gets the same 404 as one that does not exist
(the real API's "does not exist, is not active, or is not available to the caller"), byte for byte. The
sandbox's own layer says which it was: Vipps-Sandbox-Decision: deny, a rule, a reason naming the MSN, the
merchant and the partners involved, and the same in the request log.
"""

from __future__ import annotations

import uuid

import pytest
from opaque_support import assert_absent, assert_explained, assert_same_for_the_caller, last_entry

ORDERS_V1 = "/management/v1/product-orders"
ORDER_BODY = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "852880953"},
              "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Opaque test"}


def absent_msn(sandbox) -> str:
    return next(str(n) for n in range(100000, 1000000) if str(n) not in sandbox.runtime.world.sales_units)


def partner(sandbox, role: str = "premium") -> dict:
    key_type = "management" if role == "basic" else "partner"
    return sandbox.key(key_type, owner=sandbox.partner_role(role))


def merchant_path(sandbox, role: str) -> tuple[str, str]:
    world = sandbox.runtime.world
    merchant = world.merchants[world.sales_units[sandbox.msn_role(role)].merchant]
    return f"{merchant.scheme}/{merchant.id}", merchant.id


async def get(sandbox, keys: dict, path: str, msn: str | None = None):
    return await sandbox.request("GET", path, "production", keyset=keys, msn=msn)


async def test_a_sales_unit_that_does_not_exist_is_a_not_found(sandbox):
    msn = absent_msn(sandbox)
    reply = await get(sandbox, partner(sandbox), f"/management/v1/sales-units/{msn}")
    await assert_absent(sandbox, reply, "sales-unit-unknown", msn)


@pytest.mark.parametrize(("role", "rule", "facts"), [
    # Another partner's sales unit: named, with the partner it is connected to.
    ("dual-shop-1", "partner-keys-connected-sales-units-only", ["not connected", "partner-1001", "partner-1004"]),
    # A sales unit connected to no partner at all.
    ("independent-1", "partner-keys-connected-sales-units-only", ["not connected", "partner-1001", "no partner"]),
    # The caller's own sales unit, whose merchant is deactivated.
    ("deactivated-1", "sales-unit-not-active", ["deactivated", "MERCHANT"]),
])
async def test_a_hidden_sales_unit_in_the_path(sandbox, role, rule, facts):
    keys = partner(sandbox)
    msn = sandbox.msn_role(role)
    _, business_id = merchant_path(sandbox, role)
    facts = [business_id if f == "MERCHANT" else f for f in facts]
    absent = await get(sandbox, keys, f"/management/v1/sales-units/{absent_msn(sandbox)}")
    reply = await get(sandbox, keys, f"/management/v1/sales-units/{msn}")
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, rule, msn, *facts)


async def test_merchant_keys_and_a_sibling_sales_unit(sandbox):
    mine, sibling = sandbox.msn_role("premium-shop-1"), sandbox.msn_role("premium-shop-2")
    keys = sandbox.key("merchant", msn=mine)
    absent = await get(sandbox, keys, f"/management/v1/sales-units/{absent_msn(sandbox)}")
    reply = await get(sandbox, keys, f"/management/v1/sales-units/{sibling}")
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "merchant-keys-own-sales-unit-only", sibling, mine)


async def test_management_keys_and_another_partners_sales_unit(sandbox):
    keys = partner(sandbox, "basic")
    msn = sandbox.msn_role("premium-shop-1")
    absent = await get(sandbox, keys, f"/management/v1/sales-units/{absent_msn(sandbox)}")
    reply = await get(sandbox, keys, f"/management/v1/sales-units/{msn}")
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "management-keys-own-sales-units-only", msn, keys["owner"],
                           "partner-1001")


@pytest.mark.parametrize(("role", "rule", "facts"), [
    ("dual-shop-1", "partner-keys-connected-sales-units-only", ["not connected", "partner-1001"]),
    ("deactivated-1", "sales-unit-not-active", ["deactivated"]),
    (None, "sales-unit-unknown", ["No sales unit"]),
])
async def test_a_hidden_sales_unit_in_the_msn_header(sandbox, role, rule, facts):
    """The gateway's own 404 for the Merchant-Serial-Number header: the same body as the path's, explained."""
    keys = partner(sandbox)
    msn = sandbox.msn_role(role) if role else absent_msn(sandbox)
    absent = await get(sandbox, keys, f"/management/v1/sales-units/{absent_msn(sandbox)}")
    reply = await get(sandbox, keys, "/management/v1/sales-units", msn=msn)
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, rule, msn, *facts)


async def test_a_merchant_that_does_not_exist_is_a_not_found(sandbox):
    for suffix in ("", "/sales-units"):
        reply = await get(sandbox, partner(sandbox), f"/management/v1/merchants/business:NO:ORG/000000000{suffix}")
        await assert_absent(sandbox, reply, "merchant-unknown", "000000000")


@pytest.mark.parametrize("suffix", ["", "/sales-units"])
@pytest.mark.parametrize(("role", "rule", "facts"), [
    ("dual-shop-1", "partner-keys-connected-sales-units-only", ["partner-1001", "not connected"]),
    ("independent-1", "partner-keys-connected-sales-units-only", ["partner-1001", "not connected"]),
    ("deactivated-1", "merchant-deactivated", ["deactivated"]),
])
async def test_a_hidden_merchant(sandbox, suffix, role, rule, facts):
    keys = partner(sandbox)
    path, business_id = merchant_path(sandbox, role)
    absent = await get(sandbox, keys, f"/management/v1/merchants/business:NO:ORG/000000000{suffix}")
    reply = await get(sandbox, keys, f"/management/v1/merchants/{path}{suffix}")
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, rule, business_id, *facts)


async def test_merchant_keys_and_another_merchant(sandbox):
    mine = sandbox.msn_role("premium-shop-1")
    keys = sandbox.key("merchant", msn=mine)
    path, business_id = merchant_path(sandbox, "dual-shop-1")
    absent = await get(sandbox, keys, "/management/v1/merchants/business:NO:ORG/000000000")
    reply = await get(sandbox, keys, f"/management/v1/merchants/{path}")
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "merchant-keys-own-sales-unit-only", business_id, mine)


async def test_another_partners_product_order(sandbox):
    premium, basic = partner(sandbox), partner(sandbox, "basic")
    created = await sandbox.request("POST", ORDERS_V1, "production", keyset=premium, json_body=ORDER_BODY,
                                    headers={"Idempotency-Key": "opaque-order-1"})
    assert created.status == 201, created.text
    order_id = created.json["prefilledOrderId"]
    unknown = str(uuid.uuid4())

    details = "/management/v2/product-orders/{}/details"
    for missing in (unknown, "not-a-uuid"):
        await assert_absent(sandbox, await get(sandbox, basic, details.format(missing)), "product-order-unknown",
                            missing)
    absent = await get(sandbox, basic, details.format(unknown))
    reply = await get(sandbox, basic, details.format(order_id))
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "product-order-of-another-partner", order_id, basic["owner"],
                           premium["owner"])

    absent = await sandbox.request("DELETE", f"{ORDERS_V1}/{unknown}", "production", keyset=basic)
    reply = await sandbox.request("DELETE", f"{ORDERS_V1}/{order_id}", "production", keyset=basic)
    assert_same_for_the_caller(reply, absent)
    await assert_explained(sandbox, reply, "product-order-of-another-partner", order_id, basic["owner"])
    assert (await get(sandbox, premium, details.format(order_id))).status == 200  # not deleted


async def test_the_sales_unit_list_explains_a_deactivated_unit_it_leaves_out(sandbox):
    deactivated = sandbox.msn_role("deactivated-1")
    _, business_id = merchant_path(sandbox, "deactivated-1")
    reply = await get(sandbox, partner(sandbox), "/management/v1/sales-units")
    assert reply.status == 200 and deactivated not in {u["msn"] for u in reply.json}
    assert reply.headers["Vipps-Sandbox-Decision"] == "allow"
    warning = reply.headers["Vipps-Sandbox-Warning"]
    assert f"Left out sales unit {deactivated}" in warning and business_id in warning and "deactivated" in warning
    entry = await last_entry(sandbox)
    assert any(f"Left out sales unit {deactivated}" in note for note in entry["warnings"]), entry["warnings"]


async def test_a_merchants_sales_unit_list_explains_the_units_it_leaves_out(sandbox):
    mine, sibling = sandbox.msn_role("premium-shop-1"), sandbox.msn_role("premium-shop-2")
    path, _ = merchant_path(sandbox, "premium-shop-1")
    reply = await get(sandbox, sandbox.key("merchant", msn=mine), f"/management/v1/merchants/{path}/sales-units")
    assert reply.status == 200 and [u["msn"] for u in reply.json] == [mine]
    warning = reply.headers["Vipps-Sandbox-Warning"]
    assert sibling in warning and "merchant keys see only their own sales unit" in warning, warning
    assert (await last_entry(sandbox))["warnings"] == [warning]
