"""Management API product orders: the lifecycle, expiry, the new sales unit, and bad input."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from urllib.parse import urlsplit

import pytest
from management_oracle import MGMT, schema_errors
from opaque_support import caller_view

from sandbox.core.model import Env
from sandbox.fixture.store import default_fixture_path
from sandbox.gateway.policy import ROUTES, decide

ORDERS = "/management/v1/product-orders"
_keys = itertools.count(1)


def org_number(seed: int) -> str:
    """A Norwegian organisation number with a correct mod-11 check digit (written here, not imported)."""
    for n in itertools.count(seed):
        body = [9] + [int(d) for d in f"{n:07d}"[-7:]]
        check = 11 - sum(w * d for w, d in zip((3, 2, 7, 6, 5, 4, 3, 2), body, strict=True)) % 11
        if check != 10:
            return "".join(map(str, body)) + str(0 if check == 11 else check)
    raise AssertionError


def body(business_id: str | None = None, **extra) -> dict:
    out = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": business_id or org_number(1234567)},
           "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Fjord Sykler Nettbutikk",
           "settlementBankAccount": {"scheme": "BBAN:NO", "id": "86011117947"},
           "productUseCase": "Website", "annualTurnover": 1000000, "hasRecurring": True,
           "website": {"url": "https://fjordsykler.example.no", "termsUrl": "https://fjordsykler.example.no/terms"}}
    out.update(extra)
    return out


def partner_keys(sandbox, role: str = "premium") -> dict:
    key_type = "management" if role == "basic" else "partner"
    return sandbox.key(key_type, owner=sandbox.partner_role(role))


async def create(sandbox, keys: dict, payload: object, key: str | None = "auto"):
    headers = {} if key is None else {"Idempotency-Key": f"po-{next(_keys)}" if key == "auto" else key}
    return await sandbox.request("POST", ORDERS, "production", keyset=keys, json_body=payload, headers=headers)


async def details(sandbox, keys: dict, order_id: str):
    return await sandbox.request("GET", f"/management/v2/product-orders/{order_id}/details", "production",
                                 keyset=keys)


async def move(sandbox, order_id: str, action: str):
    return await sandbox.request("POST", f"/_sandbox/product-orders/{order_id}/{action}", "test")


def assert_problem(reply, status: int, field: str | None = None) -> dict:
    """A Management API problem: application/problem+json, extraDetails as {key, value}."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json"), reply.headers
    problem = reply.json
    assert not MGMT.errors("Problem", problem), problem
    assert problem["status"] == status and problem["instance"].startswith("urn:uuid:")
    if field is not None:
        keys = [d["key"] for d in problem.get("extraDetails", [])]
        assert field in keys, problem
    return problem


def assert_control_problem(reply, status: int) -> dict:
    """The control plane's own problem body (not the Management API's): status, title and a reason."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.json["status"] == status and reply.json["detail"]
    return reply.json


async def test_lifecycle_to_a_new_sales_unit_the_partner_can_use_at_once(sandbox):
    premium = partner_keys(sandbox)
    packages = await sandbox.request("GET", "/management/v1/partners/price-packages", "production", keyset=premium)
    package = next(p["pricePackageId"] for p in packages.json if p["market"] == "NO")
    created = await create(sandbox, premium, body(pricePackageId=package))
    assert created.status == 201, created.text
    assert not schema_errors("management.product_orders.create", created.json)
    order_id = created.json["prefilledOrderId"]
    assert created.json["prefillUrl"].endswith(f"/_sandbox/product-orders/{order_id}")

    assert created.json["prefillUrl"].startswith(sandbox.url("production"))
    page = await sandbox.request("GET", urlsplit(created.json["prefillUrl"]).path, "production")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "RECEIVED" in page.text and f"/_sandbox/product-orders/{order_id}/submit" in page.text

    seen = await details(sandbox, premium, order_id)
    assert seen.status == 200 and not schema_errors("management.product_orders.details", seen.json)
    assert (seen.json["status"], seen.json["productType"], seen.json["productOrderType"]) == (
        "RECEIVED", "PAYMENT_INTEGRATION", "PREFILL")
    assert "salesUnit" not in seen.json and seen.json["productOrderUrl"] == created.json["prefillUrl"]

    # Only the partner that made it sees it.
    dual = partner_keys(sandbox, "dual")
    assert (await details(sandbox, dual, order_id)).status == 404
    listed = await sandbox.request("GET", "/management/v2/product-orders", "production", keyset=dual)
    assert listed.status == 200 and order_id not in [o["productOrderId"] for o in listed.json]

    assert_control_problem(await move(sandbox, order_id, "complete"), 409)  # not submitted yet
    assert (await move(sandbox, order_id, "view")).json["status"] == "MERCHANT_VIEWED"
    assert (await move(sandbox, order_id, "submit")).json["status"] == "ORDER_SUBMITTED"
    deleted = await sandbox.request("DELETE", f"/management/v1/product-orders/{order_id}", "production",
                                    keyset=premium)
    assert_problem(deleted, 409)  # too late: submitted
    done = await move(sandbox, order_id, "complete")
    assert done.status == 200 and done.json["status"] == "COMPLETED"
    assert_control_problem(await move(sandbox, order_id, "reject"), 409)  # COMPLETED is terminal

    seen = await details(sandbox, premium, order_id)
    assert not schema_errors("management.product_orders.details", seen.json)
    new_msn = seen.json["salesUnit"]["msn"]
    assert seen.json["salesUnit"]["name"] == "Fjord Sykler Nettbutikk" and "productOrderUrl" not in seen.json
    fixture_msns = {u["msn"] for u in sandbox.runtime.fixture_tables["sales_units"]}
    assert new_msn.isdigit() and len(new_msn) == 6 and new_msn not in fixture_msns

    # At once, with no restart: the partner's keys list it, read it, and its merchant.
    units = await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=premium)
    assert new_msn in [u["msn"] for u in units.json]
    unit = await sandbox.request("GET", f"/management/v1/sales-units/{new_msn}", "production", keyset=premium)
    assert unit.status == 200 and not schema_errors("management.sales_units.get", unit.json)
    assert unit.json["configuration"]["recurringAllowed"] is True
    assert unit.json["businessIdentifier"] == body()["businessIdentifier"]
    merchant = await sandbox.request("GET", f"/management/v1/merchants/business:NO:ORG/{org_number(1234567)}",
                                     "production", keyset=premium)
    assert merchant.status == 200 and not schema_errors("management.merchants.get", merchant.json)
    assert (await sandbox.request("GET", f"/management/v1/sales-units/{new_msn}", "production",
                                  keyset=dual)).status == 404

    # It has merchant keys in both environments, and they work.
    for env in ("test", "production"):
        own = sandbox.key("merchant", env, msn=new_msn)
        assert own["owner"] == new_msn and len(own["subscription_key_primary"]) == 32
        uuid.UUID(own["client_id"])
        await sandbox.token(own)
    own_units = await sandbox.request("GET", "/management/v1/sales-units", "production",
                                      keyset=sandbox.key("merchant", "production", msn=new_msn))
    assert [u["msn"] for u in own_units.json] == [new_msn]

    # And the approved partner can act on its behalf: the policy says so, and a payment goes through.
    runtime = sandbox.runtime
    keyset = runtime.world.keys[premium["client_id"]]
    assert decide(ROUTES["epayment.create"], keyset, Env.PRODUCTION, new_msn, runtime.world).allowed
    payment = {"amount": {"currency": "NOK", "value": 4900}, "paymentMethod": {"type": "WALLET"},
               "reference": "new-unit-order-0001", "userFlow": "WEB_REDIRECT",
               "returnUrl": "https://fjordsykler.example.no/return", "paymentDescription": "Bike bell"}
    paid = await sandbox.request("POST", "/epayment/v1/payments", "production", keyset=premium, msn=new_msn,
                                 json_body=payment, headers={"Idempotency-Key": "new-unit-pay-1"})
    assert paid.status == 201, paid.text
    assert paid.json["reference"] == "new-unit-order-0001"


async def test_a_partner_not_approved_to_act_on_behalf_gets_the_unit_but_cannot_pay(sandbox):
    pending = partner_keys(sandbox, "pending")
    created = await create(sandbox, pending, body(org_number(7654321)))
    order_id = created.json["prefilledOrderId"]
    await move(sandbox, order_id, "submit")  # straight from RECEIVED: submitting implies opening
    assert (await move(sandbox, order_id, "complete")).json["status"] == "COMPLETED"
    new_msn = (await details(sandbox, pending, order_id)).json["salesUnit"]["msn"]
    units = await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=pending)
    assert new_msn in [u["msn"] for u in units.json]
    keyset = sandbox.runtime.world.keys[pending["client_id"]]
    decision = decide(ROUTES["epayment.create"], keyset, Env.PRODUCTION, new_msn, sandbox.runtime.world)
    assert not decision.allowed and decision.rule == "partner-not-approved-to-act-on-behalf"
    payment = {"amount": {"currency": "EUR", "value": 4900}, "paymentMethod": {"type": "WALLET"},
               "reference": "pending-unit-0001", "userFlow": "WEB_REDIRECT", "returnUrl": "https://x.example.no/r"}
    refused = await sandbox.request("POST", "/epayment/v1/payments", "production", keyset=pending, msn=new_msn,
                                    json_body=payment, headers={"Idempotency-Key": "pending-pay-1"})
    assert refused.status == 403 and refused.headers["Vipps-Sandbox-Rule"] == "partner-not-approved-to-act-on-behalf"


async def test_orders_expire_after_14_virtual_days_unless_submitted(sandbox):
    premium = partner_keys(sandbox)
    stale = (await create(sandbox, premium, body())).json["prefilledOrderId"]
    viewed = (await create(sandbox, premium, body(org_number(2345678)))).json["prefilledOrderId"]
    submitted = (await create(sandbox, premium, body(org_number(3456789)))).json["prefilledOrderId"]
    await move(sandbox, viewed, "view")
    await move(sandbox, submitted, "submit")
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 14 * 86400 - 60})
    assert (await details(sandbox, premium, stale)).json["status"] == "RECEIVED"
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 120})
    assert (await details(sandbox, premium, stale)).json["status"] == "EXPIRED"
    assert "productOrderUrl" not in (await details(sandbox, premium, stale)).json

    plain = await sandbox.request("GET", "/management/v2/product-orders", "production", keyset=premium)
    assert {o["productOrderId"]: o["status"] for o in plain.json} == {submitted: "ORDER_SUBMITTED"}
    everything = await sandbox.request("GET", "/management/v2/product-orders?includeExpired=true", "production",
                                       keyset=premium)
    assert not schema_errors("management.product_orders.list", everything.json)
    assert {o["productOrderId"]: o["status"] for o in everything.json} == {
        stale: "EXPIRED", viewed: "EXPIRED", submitted: "ORDER_SUBMITTED"}
    assert_control_problem(await move(sandbox, viewed, "submit"), 409)
    assert (await move(sandbox, submitted, "reject")).json["status"] == "REJECTED"
    bad = await sandbox.request("GET", "/management/v2/product-orders?includeExpired=yes", "production",
                                keyset=premium)
    assert_problem(bad, 400, "includeExpired")


async def test_delete_before_submission_only(sandbox):
    premium = partner_keys(sandbox)
    order_id = (await create(sandbox, premium, body())).json["prefilledOrderId"]
    other = await sandbox.request("DELETE", f"{ORDERS}/{order_id}", "production", keyset=partner_keys(sandbox, "dual"))
    assert_problem(other, 404)
    gone = await sandbox.request("DELETE", f"{ORDERS}/{order_id}", "production", keyset=premium)
    assert gone.status == 200
    assert_problem(await details(sandbox, premium, order_id), 404)
    assert_problem(await sandbox.request("DELETE", f"{ORDERS}/{order_id}", "production", keyset=premium), 404)
    assert (await move(sandbox, order_id, "view")).status == 404


async def test_product_order_404_is_the_same_for_another_partners_and_an_unknown_order(sandbox):
    order_id = (await create(sandbox, partner_keys(sandbox), body())).json["prefilledOrderId"]
    basic = partner_keys(sandbox, "basic")  # management keys of another partner
    replies = [await details(sandbox, basic, order_id), await details(sandbox, basic, str(uuid.uuid4())),
               await details(sandbox, basic, "not-a-uuid")]
    bodies = []
    for reply in replies:
        problem = assert_problem(reply, 404)
        problem.pop("instance")
        bodies.append((problem, caller_view(reply)))  # byte for byte; only the sandbox's own headers differ
    assert bodies[0] == bodies[1] == bodies[2]


async def test_a_40_character_sales_unit_name_is_accepted(sandbox):
    assert (await create(sandbox, partner_keys(sandbox), body(salesUnitName="x" * 40))).status == 201


async def test_idempotency_key_of_a_deleted_order_makes_a_new_one(sandbox):
    premium = partner_keys(sandbox)
    first = await create(sandbox, premium, body(), key="again-after-delete")
    order_id = first.json["prefilledOrderId"]
    assert (await sandbox.request("DELETE", f"{ORDERS}/{order_id}", "production", keyset=premium)).status == 200
    again = await create(sandbox, premium, body(), key="again-after-delete")
    assert again.status == 201 and again.json["prefilledOrderId"] != order_id
    assert (await details(sandbox, premium, again.json["prefilledOrderId"])).status == 200


async def test_idempotency_key_replays_and_conflicts(sandbox):
    premium = partner_keys(sandbox)
    first = await create(sandbox, premium, body(), key="same-key-1")
    again = await create(sandbox, premium, body(), key="same-key-1")
    assert first.status == again.status == 201 and first.json == again.json
    other = await create(sandbox, premium, body(salesUnitName="Another name"), key="same-key-1")
    assert_problem(other, 409, "Idempotency-Key")
    # The key belongs to the partner that used it: another partner may use the same key.
    dual = await create(sandbox, partner_keys(sandbox, "dual"), body(), key="same-key-1")
    assert dual.status == 201 and dual.json["prefilledOrderId"] != first.json["prefilledOrderId"]
    listed = await sandbox.request("GET", "/management/v2/product-orders", "production", keyset=premium)
    assert [o["productOrderId"] for o in listed.json] == [first.json["prefilledOrderId"]]


BAD_BODIES = [
    ("missing businessIdentifier", {"productType": "CASHIER"}, "businessIdentifier"),
    ("missing productType", {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"}}, "productType"),
    ("unknown productType", body(productType="VIPPS_PA_TRIKK"), "productType"),
    ("bad scheme", body() | {"businessIdentifier": {"scheme": "business:SE:ORGNR", "id": "974760673"}},
     "businessIdentifier.scheme"),
    ("bad check digit", body() | {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760674"}},
     "businessIdentifier.id"),
    ("id as a number", body() | {"businessIdentifier": {"scheme": "business:NO:ORG", "id": 974760673}},
     "businessIdentifier.id"),
    ("turnover as a string", body(annualTurnover="a lot"), "annualTurnover"),
    ("hasRecurring as a string", body(hasRecurring="yes"), "hasRecurring"),
    ("http website", body(website={"url": "http://insecure.example.no", "termsUrl": "https://x.example.no/t"}),
     "website.url"),
    ("bank account with letters", body(settlementBankAccount={"scheme": "BBAN:NO", "id": "NO9386011117947"}),
     "settlementBankAccount.id"),
    ("name too long", body(salesUnitName="x" * 41), "salesUnitName"),  # 2.0.9 allows 1..40
    ("another partner's price package", body(pricePackageId="00000000-0000-4000-8000-000000000000"),
     "pricePackageId"),
    ("an array", [body()], "body"),
    ("a string", "order please", "body"),
]


@pytest.mark.parametrize("case,payload,field", BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_product_orders_are_400_problems_naming_the_field(sandbox, case, payload, field):
    assert_problem(await create(sandbox, partner_keys(sandbox), payload), 400, field)


async def test_bad_json_and_bad_idempotency_keys(sandbox):
    premium = partner_keys(sandbox)
    headers = await sandbox.auth_headers(premium)
    broken = await sandbox.request("POST", ORDERS, "production", data=b"{not json",
                                   headers={**headers, "Idempotency-Key": "k-1", "Content-Type": "application/json"})
    assert_problem(broken, 400, "body")
    empty = await sandbox.request("POST", ORDERS, "production", headers={**headers, "Idempotency-Key": "k-2"})
    assert_problem(empty, 400, "body")
    assert_problem(await create(sandbox, premium, body(), key=None), 400, "Idempotency-Key")
    assert_problem(await create(sandbox, premium, body(), key="under_score"), 400, "Idempotency-Key")
    assert_problem(await create(sandbox, premium, body(), key="k" * 51), 400, "Idempotency-Key")


async def test_old_product_type_names_are_accepted_and_reported_with_the_new_names(sandbox):
    premium = partner_keys(sandbox)
    for old, new in (("VIPPS_PA_NETT", "PAYMENT_INTEGRATION"), ("VIPPS_I_KASSA", "CASHIER"),
                     ("VIPPS_LOGG_INN", "LOGIN"), ("DONATIONS", "DONATIONS")):
        created = await create(sandbox, premium, body(productType=old))
        assert created.status == 201, created.text
        assert (await details(sandbox, premium, created.json["prefilledOrderId"])).json["productType"] == new


async def test_dk_and_fi_businesses_can_be_ordered(sandbox):
    premium = partner_keys(sandbox)
    for scheme, business_id in (("business:DK:CVR", "72473175"), ("business:FI:Y-tunnus", "9805009-9")):
        ordered = body(settlementBankAccount=None) | {"businessIdentifier": {"scheme": scheme, "id": business_id}}
        created = await create(sandbox, premium, ordered)
        assert created.status == 201, created.text


async def test_page_buttons_move_the_order_and_come_back(sandbox):
    order_id = (await create(sandbox, partner_keys(sandbox), body())).json["prefilledOrderId"]
    url = f"/_sandbox/product-orders/{order_id}/view"
    async with sandbox.session.post(sandbox.url("test") + url, data={"x": "1"}, allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == f"/_sandbox/product-orders/{order_id}"
    page = await sandbox.request("GET", f"/_sandbox/product-orders/{order_id}", "test")
    assert "MERCHANT_VIEWED" in page.text and f"{order_id}/view" not in page.text
    assert (await sandbox.request("GET", f"/_sandbox/product-orders/{uuid.uuid4()}", "test")).status == 404


async def test_reset_forgets_orders_and_new_units_and_never_touches_the_fixture_file(sandbox):
    path = default_fixture_path()
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    premium = partner_keys(sandbox)
    order_id = (await create(sandbox, premium, body())).json["prefilledOrderId"]
    await move(sandbox, order_id, "submit")
    await move(sandbox, order_id, "complete")
    new_msn = (await details(sandbox, premium, order_id)).json["salesUnit"]["msn"]
    assert new_msn in {u["msn"] for u in sandbox.runtime.world.tables()["sales_units"]}  # in snapshots too
    sandbox.runtime.reset()
    assert new_msn not in sandbox.runtime.world.sales_units
    assert (await details(sandbox, premium, order_id)).status == 404
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


async def test_snapshot_keeps_orders_new_units_and_idempotency(sandbox, tmp_path):
    premium = partner_keys(sandbox)
    done = (await create(sandbox, premium, body(), key="snap-1")).json["prefilledOrderId"]
    await move(sandbox, done, "submit")
    await move(sandbox, done, "complete")
    new_msn = (await details(sandbox, premium, done)).json["salesUnit"]["msn"]
    waiting = (await create(sandbox, premium, body(org_number(4567890)), key="snap-2")).json
    target = f"management-{tmp_path.name}"
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": target})).status == 200

    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    assert_problem(await details(sandbox, premium, done), 404)
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": target})
    assert restored.status == 200 and "product_orders" in restored.json["restored"], restored.text

    assert (await details(sandbox, premium, done)).json["salesUnit"]["msn"] == new_msn
    assert (await details(sandbox, premium, waiting["prefilledOrderId"])).json["status"] == "RECEIVED"
    units = await sandbox.request("GET", "/management/v1/sales-units", "production", keyset=premium)
    assert new_msn in [u["msn"] for u in units.json]
    replay = await create(sandbox, premium, body(org_number(4567890)), key="snap-2")
    assert replay.status == 201 and replay.json == waiting
    assert_problem(await create(sandbox, premium, body(), key="snap-2"), 409, "Idempotency-Key")


async def test_a_broken_product_order_state_is_refused_and_changes_nothing(sandbox):
    premium = partner_keys(sandbox)
    order_id = (await create(sandbox, premium, body())).json["prefilledOrderId"]
    with pytest.raises(ValueError, match="cannot be loaded"):
        sandbox.runtime.load_state({"product_orders": {"orders": [{"id": "x", "status": "LOST"}], "idempotency": []}})
    assert (await details(sandbox, premium, order_id)).json["status"] == "RECEIVED"


async def test_an_existing_merchant_gets_another_sales_unit_and_a_deactivated_one_none(sandbox):
    premium = partner_keys(sandbox)
    world = sandbox.runtime.world
    shop = world.merchants[world.sales_units[sandbox.msn_role("premium-shop-1")].merchant]
    ordered = body() | {"businessIdentifier": {"scheme": shop.scheme, "id": shop.id}}
    order_id = (await create(sandbox, premium, ordered)).json["prefilledOrderId"]
    await move(sandbox, order_id, "submit")
    await move(sandbox, order_id, "complete")
    new_msn = (await details(sandbox, premium, order_id)).json["salesUnit"]["msn"]
    units = await sandbox.request("GET", f"/management/v1/merchants/{shop.scheme}/{shop.id}/sales-units",
                                  "production", keyset=premium)
    # the merchant's 6 units (3 of them the configuration units of issue 14) and the new one
    assert new_msn in [u["msn"] for u in units.json] and len(units.json) == 7

    gone = world.merchants[world.sales_units[sandbox.msn_role("deactivated-1")].merchant]
    ordered = body(settlementBankAccount=None) | {"businessIdentifier": {"scheme": gone.scheme, "id": gone.id}}
    order_id = (await create(sandbox, premium, ordered)).json["prefilledOrderId"]
    await move(sandbox, order_id, "submit")
    assert_control_problem(await move(sandbox, order_id, "complete"), 409)
    assert (await move(sandbox, order_id, "reject")).json["status"] == "REJECTED"
