"""The permission matrix: every bearer route of sandbox/gateway/policy.py x key type (all five) x env x MSN case.

The parameters are generated from the policy table, so a new route is covered the moment it is
added. The expected outcome comes from an independent oracle written from the seed pages (the
"which keys give access to what" table), not from policy.decide(), so the two can disagree.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass

import pytest
from aiohttp import web

from sandbox.core.runtime import Runtime
from sandbox.core.settings import Settings
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.front_door import FRONT_DOOR, FrontDoor
from sandbox.gateway.policy import ROUTES, Auth

# -- the oracle: the seed pages' rules, written out independently --------------------------------
REACHES = {  # API -> key types that reach it at all
    "epayment": {"merchant", "partner"},  # acting on behalf of merchants (payments)
    # acting on behalf of merchants; merchant-level keys for donations.* events only (next-apis.md 1b)
    "webhooks": {"merchant", "partner", "merchant-level"},
    "management": {"merchant", "partner", "management"},  # managing sales units
    # reports: own ledger, accounting keys with consent, merchant-level keys "for Donations" (next-apis.md 1b)
    "report": {"merchant", "accounting", "merchant-level"},
    # Recurring v3 (reference section 1b): sales unit keys, and partner keys with the MSN "in the header of all
    # API requests"; never management or accounting keys.
    "recurring": {"merchant", "partner"},
    # Userinfo (reference section 1b): "yes, own merchant token"; partner keys "including the Userinfo endpoints"
    # of ePayment and Recurring, with the MSN; never management or accounting keys.
    "userinfo": {"merchant", "partner"},
    # QR and Order Management (reference section 1b): "yes" for sales unit keys and for partner keys; the QR spec:
    # "Partners and PSP merchants must always send the Merchant-Serial-Number header"; Order Management's quick
    # start: partner keys only work in production. Management and accounting keys: "no".
    "qr": {"merchant", "partner"},
    "ordermanagement": {"merchant", "partner"},
    # Donations (next-apis.md 1b and 6): merchant-level keys (specialized flow) and partner keys (standard flow,
    # since May 2026); sales unit keys only for legacy "Recurring donations" units, of which the fixture has none;
    # never management or accounting keys. Production only.
    "donations": {"merchant-level", "partner"},
    # Checkout v3 (reference section 1b): sales unit keys as raw client_id/client_secret/subscription key/MSN headers,
    # no access token; partner keys "use your own partner keys and send the Merchant Serial Number"; never management
    # or accounting keys. Both environments (section 5's title).
    "checkout": {"merchant", "partner"},
}
PRODUCTION_ONLY = {"management", "report", "donations"}
#: Keys that exist in production only: all but sales unit keys (next-apis.md 1a).
PRODUCTION_KEYS = {"partner", "management", "accounting", "merchant-level"}
TEST_ONLY_ROUTES = {"epayment.force_approve", "recurring.agreements.accept"}  # force approve / force accept
# Price packages and product orders belong to partners: a merchant's keys have none (Management API docs).
PARTNER_THINGS = {"management.price_packages", "management.product_orders.create", "management.product_orders.delete",
                  "management.product_orders.list", "management.product_orders.details"}
ACTING_APIS = {"epayment", "webhooks", "recurring", "userinfo", "qr", "ordermanagement", "checkout"}
#: APIs where partner keys must always send the Merchant-Serial-Number (Webhooks may register for all units).
MSN_ALWAYS = {"epayment", "recurring", "userinfo", "qr", "ordermanagement", "checkout"}
#: APIs that take the keys themselves as headers instead of an access token (Checkout v3); what the official SDK
#: adds there (an empty bearer, empty Vipps-System-* values) must not matter.
RAW_KEY_APIS = {"checkout"}
SDK_EXTRAS = {"Authorization": "Bearer ", "Vipps-System-Name": "", "Vipps-System-Plugin-Name": ""}


@dataclass(frozen=True)
class Variant:
    label: str
    key_type: str
    owner_role: str  # partner role, or the sales unit role for merchant keys
    own_msn_role: str
    approved: bool = True


VARIANTS = [
    Variant("merchant", "merchant", "premium-shop-1", "premium-shop-1"),
    Variant("partner", "partner", "premium", "premium-shop-1"),
    Variant("partner-not-approved", "partner", "pending", "pending-shop-1", approved=False),
    Variant("management", "management", "basic", "self-managed-1"),
    Variant("accounting", "accounting", "accountant", "premium-shop-1"),
    # The fifth kind: keys of a merchant (an organisation), not of a sales unit; owner_role is the merchant's role.
    Variant("merchant-level", "merchant-level", "premium-shop", "premium-shop-1"),
]
# The Recurring routes are called for a sales unit whose configuration allows Recurring (a NO unit of the approved
# partner, "newborn"), and, by merchant keys, for one that does not (premium-shop-1): the problems page's
# invalid-sale-unit, "The Sales unit is not allowed to use Recurring", a 403.
RECURRING_VARIANTS = [
    Variant("merchant", "merchant", "newborn", "newborn"),
    Variant("merchant-recurring-not-allowed", "merchant", "premium-shop-1", "premium-shop-1"),
    Variant("partner", "partner", "premium", "newborn"),
    *VARIANTS[2:],
]
KEY_TYPE_WORDS = {"merchant": "Merchant keys", "partner": "Partner keys", "management": "Management keys",
                  "accounting": "Accounting keys", "merchant-level": "Merchant-level keys"}
OTHER_MSN_ROLE = "independent-1"  # connected to no partner, consented to nobody
MSN_CASES = ["own", "other", "missing"]


def expected(route, variant: Variant, env: str, msn_case: str, recurring_allowed: bool = True) -> str:
    api = str(route.api)
    route_envs = {"test"} if route.name in TEST_ONLY_ROUTES else (
        {"production"} if api in PRODUCTION_ONLY else {"test", "production"})
    if env not in route_envs:
        return "404"
    key_env = {"production"} if variant.key_type in PRODUCTION_KEYS else {"test", "production"}
    if env not in key_env:
        return "401"
    if variant.key_type not in REACHES[api]:
        return "403"
    if variant.key_type == "merchant-level":
        # They carry no MSN, and one sent anyway plays no part (next-apis.md 1a: "an emulator should ignore
        # extra headers"); they act for their whole merchant.
        return "allow"
    if route.name in PARTNER_THINGS and variant.key_type == "merchant":
        return "403"
    if api == "report":
        return "allow"  # the MSN header plays no part; ledger visibility is checked per ledger
    if api in ACTING_APIS and variant.key_type == "partner" and not variant.approved:
        return "403"
    if msn_case == "other":
        # The Management API answers "not active or not yours" with a 404 that reveals nothing.
        return "404" if api == "management" else "403"
    # Donations: partner keys see their connected sales units; the MSN, when sent, must be one of them.
    if msn_case == "missing" and variant.key_type == "partner" and api in MSN_ALWAYS:
        return "403"
    if api == "recurring" and not recurring_allowed:
        return "403"
    return "allow"


BEARER_ROUTES = [route for route in ROUTES.values() if route.rule.auth in (Auth.BEARER, Auth.CLIENT_HEADERS)]
CASES = [(route.name, variant, env, msn_case) for route in BEARER_ROUTES
         for variant in (RECURRING_VARIANTS if str(route.api) == "recurring" else VARIANTS)
         for env in ("test", "production") for msn_case in MSN_CASES]


def fill_path(path: str, sandbox, own_msn: str) -> str:
    unit = sandbox.runtime.world.sales_units[own_msn]
    scheme, business_id = unit.merchant.split("/", 1)
    values = {"reference": "matrix-ref-0001", "msn": own_msn, "scheme": scheme, "id": business_id,
              "ledgerId": "100000001", "topic": "funds", "ledgerDate": "2026-01-04",
              "productOrderId": "00000000-0000-4000-8000-000000000000", "agreementId": "agr_matrix1",
              "chargeId": "chr-matrix1", "sub": "c06c4afe-d9e1-4c5d-939a-177d752a0944",
              "merchantQrId": "matrix-qr", "beaconId": "100000000001",
              "paymentType": "ecom", "orderId": "matrix-order", "categoryId": "00000000-0000-4000-8000-000000000001",
              "transactionId": "matrix-order"}
    return re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)


def keyset_for(sandbox, variant: Variant, env: str) -> dict:
    if variant.key_type == "merchant":
        msn = sandbox.msn_role(variant.owner_role)
        return sandbox.key("merchant", env, owner=msn)
    if variant.key_type == "merchant-level":
        merchant = next(m.key for m in sandbox.runtime.world.merchants.values() if m.role == variant.owner_role)
        return sandbox.key("merchant-level", "production", owner=merchant)
    partner = sandbox.partner_role(variant.owner_role)
    return sandbox.key(variant.key_type, "production", owner=partner)


@pytest.mark.parametrize("route_name,variant,env,msn_case", CASES,
                         ids=[f"{r}-{v.label}-{e}-{m}" for r, v, e, m in CASES])
async def test_permission(sandbox, route_name, variant, env, msn_case):
    route = ROUTES[route_name]
    registered = {r.name for r in sandbox.running.app.router.routes()}
    if route_name not in registered:
        pytest.skip(f"{route_name} is not implemented yet")
    own_msn = sandbox.msn_role(variant.own_msn_role)
    msn = {"own": own_msn, "other": sandbox.msn_role(OTHER_MSN_ROLE), "missing": None}[msn_case]
    keyset = keyset_for(sandbox, variant, env)
    if str(route.api) in RAW_KEY_APIS:
        headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"], **SDK_EXTRAS}
        if keyset.get("subscription_key_primary"):
            headers["Ocp-Apim-Subscription-Key"] = keyset["subscription_key_primary"]
        if msn is not None:
            headers["Merchant-Serial-Number"] = msn
    else:
        headers = await sandbox.auth_headers(keyset, msn, env=keyset["environment"])
    headers["Idempotency-Key"] = "matrix-idem-0001"
    path = fill_path(route.path, sandbox, own_msn)
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    reply = await sandbox.request(route.method, path, env, headers=headers, json_body=body)
    unit = sandbox.runtime.world.sales_units[own_msn]  # its configuration, as the Management API reports it
    want = expected(route, variant, env, msn_case, bool(unit.configuration.get("recurringAllowed")))
    decision = reply.headers.get("Vipps-Sandbox-Decision")
    context = f"{route.method} {path} -> {reply.status} {reply.text[:300]}"
    if want == "allow":
        assert reply.status not in (401, 403), context
        assert decision == "allow", context
    else:
        assert reply.status == int(want), context
        assert "Vipps-Sandbox-Reason" in reply.headers, context
        if want in ("403", "404") and str(route.api) != "management" or want == "403":
            assert decision == "deny", context
        if want == "403" and variant.key_type not in REACHES[str(route.api)]:
            # A refusal of the key type says which key type it refused, in plain words.
            assert KEY_TYPE_WORDS[variant.key_type] in reply.headers["Vipps-Sandbox-Reason"], context


def test_every_policy_entry_has_a_route():
    """The table and the app agree both ways (the app itself refuses routes without an entry)."""
    from sandbox.app import create_app

    app = create_app()
    registered = {r.name for r in app.router.routes() if r.name}
    assert set(ROUTES) - registered == set(), "policy entries without a route"
    assert app[RUNTIME] is not None


def fake_package(name: str, setup) -> types.ModuleType:
    """A module as the app lists it: a name under sandbox/ and a setup(app)."""
    module = types.ModuleType(name)
    module.setup = setup
    return module


def test_every_route_is_served_by_the_package_the_policy_names():
    """The policy table names the package of every route; create_app checks it route by route."""
    from sandbox import app as app_module

    served = {}
    app = web.Application()
    app[RUNTIME] = Runtime(Settings())
    app[FRONT_DOOR] = FrontDoor(app[RUNTIME])
    for module in app_module.PACKAGES:
        module.setup(app)
        for route in app.router.routes():
            if route.name and route.name not in served:
                served[route.name] = app_module.package_of(module)
    assert served == {name: entry.package for name, entry in ROUTES.items()}


def test_app_refuses_to_start_when_another_package_registers_a_route(monkeypatch):
    """The Report package registering an ePayment route is refused: each route lives in the package the table names."""
    from sandbox import app as app_module
    from sandbox.gateway.front_door import routes

    async def ok(request: web.Request) -> web.Response:
        return web.Response()

    def squatter(app: web.Application) -> None:
        routes(app).add_get("/epayment/v1/payments/{reference}", ok, name="epayment.get")

    real_epayment = next(m for m in app_module.PACKAGES if app_module.package_of(m) == "epayment")
    squatting = fake_package("sandbox.apis.report.routes", squatter)
    packages = tuple(squatting if m is real_epayment else m for m in app_module.PACKAGES)
    monkeypatch.setattr(app_module, "PACKAGES", packages)
    with pytest.raises(app_module.PolicyMissing, match="epayment.get is registered by the report package"):
        app_module.create_app()


def test_app_refuses_to_start_with_a_route_without_policy(monkeypatch):
    from aiohttp import web

    from sandbox import app as app_module
    from sandbox.gateway.front_door import routes

    async def ok(request: web.Request) -> web.Response:
        return web.Response()

    def rogue(app: web.Application) -> None:
        routes(app).add_get("/epayment/v1/rogue", ok, name="epayment.rogue")

    rogue_module = fake_package("sandbox.apis.epayment.rogue", rogue)
    monkeypatch.setattr(app_module, "PACKAGES", (*app_module.PACKAGES, rogue_module))
    with pytest.raises(app_module.PolicyMissing, match="without a policy entry.*epayment.rogue"):
        app_module.create_app()


def test_app_refuses_to_start_with_a_route_that_bypasses_the_front_door(monkeypatch):
    """A handler registered on app.router directly would skip the gateway's checks: the app refuses to start."""
    from aiohttp import web

    from sandbox import app as app_module

    async def ok(request: web.Request) -> web.Response:
        return web.Response()

    def sneaky(app: web.Application) -> None:
        app.router.add_get("/epayment/v1/sneaky", ok)

    sneaky_module = fake_package("sandbox.apis.epayment.sneaky", sneaky)
    monkeypatch.setattr(app_module, "PACKAGES", (*app_module.PACKAGES, sneaky_module))
    with pytest.raises(app_module.PolicyMissing, match="bypasses the gateway"):
        app_module.create_app()


# -- Login (reference 1b), its own oracle: OAuth client credentials, not an access token ---------------------------
# The sales unit's own client_id/client_secret (Basic here) work in their environment, whatever MSN header comes
# along; partner keys send their /accesstoken/get token plus Merchant-Serial-Number, in production only, for a
# connected sales unit, if approved to act on behalf; management and accounting keys are not Login clients. Every
# refusal is OAuth's invalid_client, a 401.
LOGIN_CLIENT_ROUTES = [route for route in ROUTES.values() if route.auth is Auth.CLIENT]
LOGIN_CASES = [(route.name, variant, env, msn_case) for route in LOGIN_CLIENT_ROUTES for variant in VARIANTS
               for env in ("test", "production") for msn_case in MSN_CASES]


def expected_login(variant: Variant, env: str, msn_case: str) -> str:
    if variant.key_type == "merchant":
        return "allow"
    if variant.key_type == "partner" and env == "production" and variant.approved and msn_case == "own":
        return "allow"
    return "401"


def test_login_has_client_routes():
    assert {route.name for route in LOGIN_CLIENT_ROUTES} == {"login.token", "login.ciba", "login.user_exists"}


@pytest.mark.parametrize("route_name,variant,env,msn_case", LOGIN_CASES,
                         ids=[f"{r}-{v.label}-{e}-{m}" for r, v, e, m in LOGIN_CASES])
async def test_login_permission(sandbox, route_name, variant, env, msn_case):
    import base64

    route = ROUTES[route_name]
    own_msn = sandbox.msn_role(variant.own_msn_role)
    msn = {"own": own_msn, "other": sandbox.msn_role(OTHER_MSN_ROLE), "missing": None}[msn_case]
    keyset = keyset_for(sandbox, variant, env)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if variant.key_type == "partner":
        headers["Authorization"] = "Bearer " + await sandbox.token(keyset)
    else:
        pair = f"{keyset['client_id']}:{keyset['client_secret']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    if msn is not None:
        headers["Merchant-Serial-Number"] = msn
    reply = await sandbox.request("POST", route.path, env, headers=headers, data="scope=openid")
    want = expected_login(variant, env, msn_case)
    context = f"POST {route.path} -> {reply.status} {reply.text[:300]}"
    if want == "allow":
        assert reply.status not in (401, 403), context
        assert reply.headers.get("Vipps-Sandbox-Decision") == "allow", context
    else:
        assert reply.status == 401 and reply.json["error"] == "invalid_client", context
        assert reply.headers.get("Vipps-Sandbox-Decision") == "deny" and "Vipps-Sandbox-Reason" in reply.headers
