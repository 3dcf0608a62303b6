"""The Management API's rules: who sees which sales units, merchants, price packages and product orders.

No HTTP here (the moto pattern): sandbox/apis/management/routes.py parses requests and renders what this
returns. The directory lives in runtime.world (read it each time: a reset replaces it); product
orders live in sandbox/apis/management/product_orders.py, and this module scopes them to the calling partner.
"""

from __future__ import annotations

import re

from sandbox.apis.management.product_orders import NOT_FOUND_RULE, ProductOrderBook
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import KeySet, Merchant
from sandbox.core.runtime import Runtime
from sandbox.gateway.policy import MANAGEMENT_NOT_FOUND

PATH_MSN = re.compile(r"^\d{3,10}$")

#: One text for "missing", "not yours" and "deactivated": the real 404 must not reveal which.
NOT_FOUND = {
    "sales-unit": MANAGEMENT_NOT_FOUND,
    "merchant": "The merchant does not exist, is not active, or is not available to the caller.",
}


def not_found(kind: str) -> Problem:
    return Problem(404, "Not Found", NOT_FOUND[kind], rule=NOT_FOUND_RULE)


class ManagementBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.book = ProductOrderBook(runtime)

    # -- who sees what ----------------------------------------------------------------------------
    def visible(self, keyset: KeySet, msn: str) -> bool:
        """Within the keys' reach and active: O(1)."""
        world = self.runtime.world
        return world.can_reach(keyset, msn) and world.is_active(msn)

    def _unit_info(self, msn: str) -> dict:
        unit = self.runtime.world.sales_units[msn]
        return {"msn": unit.msn, "name": unit.name}

    def list_sales_units(self, keyset: KeySet) -> list[dict]:
        world = self.runtime.world
        return [self._unit_info(msn) for msn in world.reach(keyset) if world.is_active(msn)]

    def sales_unit(self, keyset: KeySet, msn: str) -> dict:
        if not PATH_MSN.match(msn):
            raise Problem(400, "Bad Request", "The MSN in the path must be 3 to 10 digits.",
                          details=[Detail("msn", "The field must match '^\\d{3,10}$'.")])
        if not self.visible(keyset, msn):
            raise not_found("sales-unit")
        unit = self.runtime.world.sales_units[msn]
        merchant = self.runtime.world.merchants[unit.merchant]
        body = {"msn": unit.msn, "name": unit.name,
                "businessIdentifier": {"scheme": merchant.scheme, "id": merchant.id},
                "configuration": dict(unit.configuration)}
        if unit.settlement_bank_account:
            body["settlementBankAccount"] = dict(unit.settlement_bank_account)
        return body

    def _merchant_msns(self, keyset: KeySet, scheme: str, business_id: str) -> tuple[Merchant, list[str]]:
        """The merchant and its sales units these keys see; 404 when they see none of them."""
        world = self.runtime.world
        merchant = world.merchants.get(f"{scheme}/{business_id}")
        if merchant is None or not merchant.active:
            raise not_found("merchant")
        msns = [msn for msn in world.merchant_msns.get(merchant.key, []) if world.can_reach(keyset, msn)]
        if not msns:
            raise not_found("merchant")
        return merchant, msns

    def merchant(self, keyset: KeySet, scheme: str, business_id: str) -> dict:
        merchant, _ = self._merchant_msns(keyset, scheme, business_id)
        body = {"businessIdentifier": {"scheme": merchant.scheme, "id": merchant.id}, "name": merchant.name,
                "status": merchant.status, "createdAt": merchant.created_at, "updatedAt": merchant.updated_at,
                "countryCode": merchant.country}
        if merchant.address:
            body["businessAddress"] = dict(merchant.address)
            body["businessPostAddress"] = dict(merchant.address)
        return body

    def merchant_sales_units(self, keyset: KeySet, scheme: str, business_id: str) -> list[dict]:
        _, msns = self._merchant_msns(keyset, scheme, business_id)
        return [self._unit_info(msn) for msn in msns]

    @staticmethod
    def partner_of(keyset: KeySet) -> str:
        """The partner behind these keys. The policy (partners_only routes) lets no merchant's keys get here."""
        return keyset.owner

    def price_packages(self, keyset: KeySet) -> list[dict]:
        partner_id = self.partner_of(keyset)
        return [{"pricePackageId": pp.id, "name": pp.name, "description": pp.description,
                 "visibleInSignupForm": pp.name.startswith("Standard"), "productType": "ePayment",
                 "market": pp.market}
                for pp in self.runtime.world.price_packages.get(partner_id, [])]

    # -- product orders, scoped to the partner that made them -----------------------------------------
    def create_order(self, keyset: KeySet, idempotency_key: str | None, body: object, page_url: str) -> dict:
        return self.book.create(self.partner_of(keyset), idempotency_key, body, page_url)

    def delete_order(self, keyset: KeySet, order_id: str) -> None:
        self.book.delete(self.partner_of(keyset), order_id)

    def list_orders(self, keyset: KeySet, include_expired: bool) -> list[dict]:
        return self.book.list_for(self.partner_of(keyset), include_expired)

    def order_details(self, keyset: KeySet, order_id: str) -> dict:
        return self.book.details_view(self.book.own(self.partner_of(keyset), order_id))
