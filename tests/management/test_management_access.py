"""Management API: the permission matrix (every route x key type x environment x MSN case) and 404 secrecy."""

from __future__ import annotations

import itertools
import uuid

import pytest
from management_oracle import Caller, doors, expected_status, is_partner, schema_errors, visible
from opaque_support import caller_view

from sandbox.gateway.policy import MANAGEMENT_ROUTES

ROUTES = {r.name: r for r in MANAGEMENT_ROUTES}


def order_body(business_id: str = "852880953") -> dict:
    return {"businessIdentifier": {"scheme": "business:NO:ORG", "id": business_id},
            "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Matrix test"}


class Headers:
    """Tokens are fetched once per key set; a production token also goes to the test port (the gateway's
    environment check comes before the token check, so the answer there is the 404 whatever the token)."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.cache: dict[tuple[str, str], dict] = {}

    async def __call__(self, caller: Caller, env: str, msn: str | None) -> dict:
        key_env = "test" if (env == "test" and caller.key_type == "merchant") else "production"
        cached = self.cache.get((caller.label, key_env))
        if cached is None:
            owner_kw = {"msn": caller.owner} if caller.key_type == "merchant" else {"owner": caller.owner}
            keyset = self.sandbox.key(caller.key_type, key_env, **owner_kw)
            cached = self.cache[(caller.label, key_env)] = await self.sandbox.auth_headers(keyset)
        headers = dict(cached)
        if msn is not None:
            headers["Merchant-Serial-Number"] = msn
        return headers


def callers(sandbox) -> list[Caller]:
    world = sandbox.runtime.world
    self_managed = world.sales_units[sandbox.msn_role("self-managed-1")].merchant
    return [
        Caller("merchant premium-shop-1", "merchant", sandbox.msn_role("premium-shop-1")),
        Caller("merchant deactivated-1", "merchant", sandbox.msn_role("deactivated-1")),
        Caller("partner premium", "partner", sandbox.partner_role("premium")),
        Caller("partner pending (not approved)", "partner", sandbox.partner_role("pending")),
        Caller("management basic", "management", sandbox.partner_role("basic")),
        Caller("management self-managed merchant", "management", self_managed),
        Caller("accounting accountant", "accounting", sandbox.partner_role("accountant")),
    ]


def msn_cases(sandbox, caller: Caller) -> dict[str, str | None]:
    world = sandbox.runtime.world
    own = sorted(visible(world, caller)) or sorted(doors(world, caller)) or [sandbox.msn_role("premium-shop-1")]
    other = next(m for m in sorted(world.sales_units) if m not in doors(world, caller))
    return {"own": own[0], "other": other, "missing": None}


async def create_order(sandbox, headers: Headers, caller: Caller) -> str:
    reply = await sandbox.request("POST", "/management/v1/product-orders", "production",
                                  json_body=order_body(),
                                  headers={**await headers(caller, "production", None),
                                           "Idempotency-Key": uuid.uuid4().hex})
    assert reply.status == 201, reply.text
    return reply.json["prefilledOrderId"]


def target_path(sandbox, route: str, caller: Caller, order_id: str) -> str:
    world = sandbox.runtime.world
    msn = (sorted(visible(world, caller)) or [sandbox.msn_role("premium-shop-1")])[0]
    merchant = world.merchants[world.sales_units[msn].merchant]
    return (ROUTES[route].path.replace("{msn}", msn).replace("{scheme}", merchant.scheme)
            .replace("{id}", merchant.id).replace("{productOrderId}", order_id))


async def test_permission_matrix(sandbox):
    world = sandbox.runtime.world
    headers = Headers(sandbox)
    premium = next(c for c in callers(sandbox) if c.label == "partner premium")
    order_id = await create_order(sandbox, headers, premium)
    mismatches, checked = [], 0
    for caller, route, env in itertools.product(callers(sandbox), ROUTES, ("test", "production")):
        for case, msn in msn_cases(sandbox, caller).items():
            want = expected_status(world, caller, env, msn, route, premium.owner)
            probe_order = order_id
            if route == "management.product_orders.delete" and want == 200:
                probe_order = await create_order(sandbox, headers, premium)  # each allowed delete needs its own order
            method = ROUTES[route].method
            extra = {"Idempotency-Key": uuid.uuid4().hex} if method == "POST" else {}
            reply = await sandbox.request(method, target_path(sandbox, route, caller, probe_order), env,
                                          json_body=order_body() if method == "POST" else None,
                                          headers={**await headers(caller, env, msn), **extra})
            checked += 1
            where = f"{caller.label} {route} {env} msn={case}"
            if reply.status != want:
                mismatches.append(f"{where}: got {reply.status}, want {want}: {reply.text[:200]}")
                continue
            body = reply.json
            if want == 404 and env == "test":
                assert body["responseInfo"]["responseCode"] == 404, where
                assert "only in the production environment" in body["result"]["message"], where
            elif want == 403:
                assert reply.headers["Content-Type"].startswith("application/problem+json"), where
                assert body["status"] == 403 and body["title"] == "Forbidden", where
                if caller.key_type == "accounting":
                    assert "Report API only" in body["detail"], where
            elif want in (200, 201) and body is not None:
                errors = schema_errors(route, body)
                assert not errors, f"{where}: {errors}"
                if route == "management.sales_units.list":
                    assert {u["msn"] for u in body} == visible(world, caller), where
    assert not mismatches, "\n".join(mismatches)
    assert checked == len(callers(sandbox)) * len(ROUTES) * 2 * 3


async def bodies_without_instance(sandbox, keyset: dict, paths: list[str]) -> list[tuple]:
    """(status, body without its per-request `instance`, the content type, what the caller sees byte for byte)
    for each path. Only the sandbox's own headers tell the cases apart (test_opaque_denials_explained_mgmt.py)."""
    out = []
    for path in paths:
        reply = await sandbox.request("GET", path, "production", keyset=keyset)
        body = reply.json
        assert body["instance"].startswith("urn:uuid:")
        body.pop("instance")
        out.append((reply.status, body, reply.headers["Content-Type"], caller_view(reply)))
    return out


def absent_msn(sandbox) -> str:
    return next(str(n) for n in range(100000, 1000000) if str(n) not in sandbox.runtime.world.sales_units)


async def test_sales_unit_404_is_the_same_for_foreign_deactivated_and_missing(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    paths = [f"/management/v1/sales-units/{msn}" for msn in (
        sandbox.msn_role("dual-shop-1"),  # another partner's
        sandbox.msn_role("independent-1"),  # no partner at all
        sandbox.msn_role("deactivated-1"),  # premium's own, but the merchant is deactivated
        absent_msn(sandbox))]  # does not exist
    replies = await bodies_without_instance(sandbox, partner, paths)
    assert replies[0][0] == 404
    assert all(r == replies[0] for r in replies), replies
    own = await sandbox.request("GET", f"/management/v1/sales-units/{sandbox.msn_role('premium-shop-1')}",
                                "production", keyset=partner)
    assert own.status == 200 and not schema_errors("management.sales_units.get", own.json)


async def test_msn_header_404_is_the_same_for_foreign_deactivated_and_missing(sandbox):
    """Acting for a sales unit with the Merchant-Serial-Number header tells no more than the path does."""
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    replies = []
    for msn in (sandbox.msn_role("dual-shop-1"), sandbox.msn_role("deactivated-1"), absent_msn(sandbox)):
        reply = await sandbox.request("GET", f"/management/v1/sales-units/{msn}", "production", keyset=partner,
                                      msn=msn)
        body = reply.json
        body.pop("instance")
        replies.append((reply.status, body, caller_view(reply)))
    path_404 = (await bodies_without_instance(sandbox, partner, [f"/management/v1/sales-units/{absent_msn(sandbox)}"]))
    assert replies[0][0] == 404
    assert all(r == replies[0] for r in replies), replies
    assert replies[0][1] == path_404[0][1]  # the same body as the path's own 404


async def test_merchant_keys_see_only_their_own_sales_unit_and_merchant(sandbox):
    world = sandbox.runtime.world
    msn = sandbox.msn_role("premium-shop-1")
    sibling = sandbox.msn_role("premium-shop-2")  # same merchant, another sales unit
    merchant_keys = sandbox.key("merchant", msn=msn)
    listed = await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=merchant_keys)
    assert [u["msn"] for u in listed.json] == [msn]
    replies = await bodies_without_instance(sandbox, merchant_keys, [
        f"/management/v1/sales-units/{sibling}", f"/management/v1/sales-units/{absent_msn(sandbox)}"])
    assert replies[0][0] == 404 and replies[0] == replies[1]
    merchant = world.merchants[world.sales_units[msn].merchant]
    own = await sandbox.request("GET", f"/management/v1/merchants/{merchant.scheme}/{merchant.id}/sales-units",
                                "production", keyset=merchant_keys)
    assert own.status == 200 and [u["msn"] for u in own.json] == [msn]


async def test_merchant_404_is_the_same_for_foreign_deactivated_and_missing(sandbox):
    world = sandbox.runtime.world
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))

    def merchant_of(role: str) -> str:
        m = world.merchants[world.sales_units[sandbox.msn_role(role)].merchant]
        return f"{m.scheme}/{m.id}"

    keys = [merchant_of("dual-shop-1"), merchant_of("independent-1"), merchant_of("deactivated-1"),
            "business:NO:ORG/000000000"]
    for suffix in ("", "/sales-units"):
        replies = await bodies_without_instance(sandbox, partner, [f"/management/v1/merchants/{k}{suffix}"
                                                                   for k in keys])
        assert replies[0][0] == 404
        assert all(r == replies[0] for r in replies), replies
    own = merchant_of("premium-fi-1")
    reply = await sandbox.request("GET", f"/management/v1/merchants/{own}", "production", keyset=partner)
    assert reply.status == 200 and not schema_errors("management.merchants.get", reply.json)
    record = world.merchants[own]
    assert (reply.json["status"], reply.json["countryCode"], reply.json["createdAt"]) == (
        "ACTIVE", "FI", record.created_at)
    assert reply.json["businessAddress"]["lines"] == record.address["lines"]


async def test_partner_sees_only_connected_units_of_a_merchant(sandbox):
    """A merchant's sales-units list shows only the units connected to the calling partner."""
    world = sandbox.runtime.world
    msn = sandbox.msn_role("premium-shop-1")
    merchant = world.merchants[world.sales_units[msn].merchant]
    expected = {u.msn for u in world.sales_units.values() if u.merchant == merchant.key
                and u.partner_id == sandbox.partner_role("premium")}
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    reply = await sandbox.request("GET", f"/management/v1/merchants/{merchant.scheme}/{merchant.id}/sales-units",
                                  "production", keyset=partner)
    # premium-shop-1, premium-shop-2, newborn, and the configuration units restricted-no, login-only, direct-capture
    assert reply.status == 200 and {u["msn"] for u in reply.json} == expected and len(expected) == 6


@pytest.mark.parametrize("role", ["premium", "basic"])
async def test_price_packages_are_the_calling_partners(sandbox, role):
    partner_id = sandbox.partner_role(role)
    key_type = "partner" if role == "premium" else "management"
    reply = await sandbox.request("GET", "/management/v1/partners/price-packages", "production",
                                  keyset=sandbox.key(key_type, owner=partner_id))
    assert reply.status == 200 and not schema_errors("management.price_packages", reply.json)
    fixture = sandbox.runtime.fixture_tables["price_packages"]
    assert {p["pricePackageId"] for p in reply.json} == {p["id"] for p in fixture if p["partner_id"] == partner_id}
    assert {p["market"] for p in reply.json} == {"NO", "DK", "FI"}


async def test_malformed_path_msn_is_a_400(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    reply = await sandbox.request("GET", "/management/v1/sales-units/abc", "production", keyset=partner)
    assert reply.status == 400 and reply.json["extraDetails"][0]["key"] == "msn"


def test_oracle_can_fail():
    """The oracle is not a rubber stamp: it says no where the seed pages say no."""
    from sandbox.core.world import World

    world = World({"partners": [], "merchants": [], "sales_units": []})
    caller = Caller("m", "management", "partner-1")
    assert is_partner(caller)
    assert expected_status(world, caller, "test", None, "management.sales_units.list", "x") == 404
    assert expected_status(world, Caller("a", "accounting", "partner-1"), "production", None,
                           "management.sales_units.list", "x") == 403
