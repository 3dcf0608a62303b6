"""An independent oracle for the Management API tests: the seed pages' rules, written again from scratch.

It reads only the fixture's records (who is connected to whom, which merchant is deactivated) and
never calls the sandbox's own policy or World.reach/can_reach, so a bug there shows up as a mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.apis.management import response_schemas as management_responses
from sandbox.core.spec import SpecSchemas
from sandbox.core.world import World

MGMT = SpecSchemas("management.yaml")

#: ProductOrderDetailsResponseV2 as the reference (§3, 2.0.9) describes it.
ORDER_V2_SCHEMA = {
    "type": "object",
    "required": ["productOrderType", "productOrderId", "productType", "status", "businessIdentifier"],
    "properties": {
        "productOrderType": {"type": "string", "enum": ["PREFILL", "TEMPLATE", "MANUAL"]},
        "productOrderId": {"type": "string", "format": "uuid"},
        "productType": {"type": "string",
                        "enum": ["PAYMENT_INTEGRATION", "CASHIER", "CHECKOUT", "LOGIN", "DONATIONS"]},
        "status": {"type": "string", "enum": ["RECEIVED", "MERCHANT_VIEWED", "ORDER_SUBMITTED", "COMPLETED",
                                              "REJECTED", "EXPIRED"]},
        "businessIdentifier": {"type": "object", "required": ["scheme", "id"],
                               "properties": {"scheme": {"type": "string"}, "id": {"type": "string"}}},
        "productOrderUrl": {"type": "string"},
        "salesUnit": {"type": "object", "required": ["msn", "name"],
                      "properties": {"msn": {"type": "string"}, "name": {"type": "string"}}},
    },
}
#: Each success response and the spec schema it must match (1.1.6 patched to 2.0.9:
#: sandbox/apis/management/response_schemas.py; the test client checks every reply that way too).
RESPONSE_SCHEMAS = {
    "management.sales_units.list": "getMsnResponse",
    "management.sales_units.get": "SalesUnit",
    "management.merchants.get": "GetMerchantResponse",
    "management.merchants.sales_units": "getMsnResponse",
    "management.price_packages": "GetPartnerPricePackagesResponse",
    "management.product_orders.create": "ProductOrderResponse",
}


def schema_errors(route: str, body: object) -> list[str]:
    """Spec schema errors of a success body; the v2 product orders also against the reference's own,
    stricter description (ORDER_V2_SCHEMA: every field the sandbox always gives)."""
    if route in RESPONSE_SCHEMAS:
        return management_responses.errors(RESPONSE_SCHEMAS[route], body)
    if route == "management.product_orders.details":
        return (management_responses.errors("ProductOrderDetailsResponseV2", body)
                + [e.message for e in MGMT.schema_for(ORDER_V2_SCHEMA).iter_errors(body)])
    if route == "management.product_orders.list":
        return (management_responses.errors("[ProductOrderDetailsResponseV2]", body)
                + [e.message for e in MGMT.schema_for({"type": "array", "items": ORDER_V2_SCHEMA}).iter_errors(body)])
    return []


@dataclass(frozen=True)
class Caller:
    """One key set in the matrix, described the way the seed pages describe key holders."""

    label: str
    key_type: str  # merchant | partner | management | accounting
    owner: str  # partner id, MSN, or merchant key (scheme/id)


def active(world: World, msn: str) -> bool:
    return world.merchants[world.sales_units[msn].merchant].status == "ACTIVE"


def doors(world: World, caller: Caller) -> set[str]:
    """The MSNs whose doors the keys open, active or not (janitor: all of the partner's apartments)."""
    if caller.key_type == "merchant":
        return {caller.owner}
    if caller.key_type == "accounting":
        return set()
    if caller.owner.startswith("partner-"):
        return {u.msn for u in world.sales_units.values() if u.partner_id == caller.owner}
    return {u.msn for u in world.sales_units.values() if u.merchant == caller.owner}


def visible(world: World, caller: Caller) -> set[str]:
    return {msn for msn in doors(world, caller) if active(world, msn)}


def is_partner(caller: Caller) -> bool:
    return caller.key_type in ("partner", "management") and caller.owner.startswith("partner-")


def expected_status(world: World, caller: Caller, env: str, header_msn: str | None, route: str,
                    order_owner: str) -> int:
    """What the seed pages and issue 4 say the sandbox must answer."""
    if env == "test":
        return 404  # the Management API exists in production only: the gateway's 404
    if caller.key_type == "accounting":
        return 403  # accounting keys reach the Report API only
    if caller.key_type == "merchant" and not active(world, caller.owner):
        return 403  # a deactivated merchant's keys open nothing
    partner_things = ("management.price_packages", "management.product_orders.create",
                      "management.product_orders.list", "management.product_orders.details",
                      "management.product_orders.delete")
    if route in partner_things and not is_partner(caller):
        return 403  # price packages and product orders belong to partners, whatever the MSN
    if header_msn is not None:
        if header_msn not in doors(world, caller) or not active(world, header_msn):
            return 404  # "not active or not yours", the same answer as for an MSN that does not exist
    if route in partner_things:
        if route in ("management.product_orders.details", "management.product_orders.delete"):
            return 200 if caller.owner == order_owner else 404
        return 201 if route == "management.product_orders.create" else 200
    return 200
