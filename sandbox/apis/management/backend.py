"""The Management API's rules: who sees which sales units, merchants, price packages and product orders.

No HTTP here (the moto pattern): sandbox/apis/management/routes.py parses requests and renders what this
returns. The directory lives in runtime.world (read it each time: a reset replaces it); product
orders live in sandbox/apis/management/product_orders.py, and this module scopes them to the calling partner.
"""

from __future__ import annotations

import re

from sandbox.apis.management.product_orders import ProductOrderBook
from sandbox.core.errors import Detail, OpaqueDenial, Problem, clip
from sandbox.core.model import KeySet, KeyType, Merchant, PricePackage
from sandbox.core.runtime import Runtime
from sandbox.core.world import World
from sandbox.gateway.policy import (
    MANAGEMENT_NOT_FOUND,
    SALES_UNIT_UNKNOWN,
    Decision,
    out_of_reach,
    partner_named,
    sales_unit_out_of_sight,
)

PATH_MSN = re.compile(r"^\d{3,10}$")

#: One text for "missing", "not yours" and "deactivated": the real 404 must not reveal which.
NOT_FOUND = {
    "sales-unit": MANAGEMENT_NOT_FOUND,
    "merchant": "The merchant does not exist, is not active, or is not available to the caller.",
}
#: The 2.0.9 SalesUnit.configuration fields; anything else a sales unit's record holds (such as a Vippsnummer)
#: is the sandbox's own and is not reported.
CONFIGURATION_FIELDS = ("paymentAllowed", "captureType", "skipLandingPageAllowed", "recurringAllowed",
                        "partialCaptureAllowed", "lateCaptureAllowed", "landingPagePhoneNumberLocked",
                        "longLivingPaymentAllowed", "creditCardPaymentAllowed")
#: The ProductType of every price package: the fixture's packages price ePayment (online) payments.
#: UNCERTAIN: a POS package would be CASHIER, a Checkout one CHECKOUT; the fixture has none.
PRICE_PACKAGE_PRODUCT_TYPE = "PAYMENT_INTEGRATION"
#: Said after each reason a merchant's 404 hides (the sales units' are in sandbox.gateway.policy).
SAME_404 = " The caller gets the 404 of a merchant that does not exist."


def package_description(package: PricePackage) -> str:
    """The package's short summary of its price (at most 6 characters): the fixture's, else the rate."""
    if package.description and len(package.description) <= 6:
        return package.description
    return f"{package.fee_basis_points / 100:.2f}%"[:6]


def not_found(kind: str, rule: str, reason: str) -> Problem:
    """What really is not there: the 404, with the sandbox's reason (the call was allowed)."""
    return Problem(404, "Not Found", NOT_FOUND[kind], rule=rule, reason=reason)


def hidden(kind: str, rule: str, reason: str) -> OpaqueDenial:
    """What the caller may not see: the same 404, but a denial, and the true reason for the sandbox's layer."""
    return OpaqueDenial(404, "Not Found", NOT_FOUND[kind], rule=rule, reason=reason)


def sales_unit_hidden(decision: Decision) -> Problem:
    if decision.rule == SALES_UNIT_UNKNOWN:
        return not_found("sales-unit", decision.rule, decision.reason)
    return hidden("sales-unit", decision.rule, decision.reason)


def partners_of(msns: list[str], world: World) -> str:
    """The partners these sales units are connected to, in plain words."""
    partners = sorted({world.sales_units[msn].partner_id or "" for msn in msns})
    return " and ".join(partner_named(p or None, world) for p in partners) or "no partner"


def merchant_out_of_reach(keyset: KeySet, merchant: Merchant, world: World) -> OpaqueDenial:
    """Why none of a merchant's sales units is within these keys' reach, for the sandbox's headers and log."""
    rule, reason = out_of_reach(keyset, f"The sales units of merchant {merchant.name} ({merchant.key})",
                                partners_of(world.merchant_msns.get(merchant.key, []), world), world, plural=True)
    return hidden("merchant", rule, reason + SAME_404)


class ManagementBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.book = ProductOrderBook(runtime)

    # -- who sees what (sandbox.gateway.policy.sales_unit_out_of_sight for one sales unit) -------------
    def _unit_info(self, msn: str) -> dict:
        unit = self.runtime.world.sales_units[msn]
        return {"msn": unit.msn, "name": unit.name}

    def list_sales_units(self, keyset: KeySet, notes: list[str] | None = None) -> list[dict]:
        """`notes`, when given, gets the caller's own sales units the list leaves out, in plain words
        (for Vipps-Sandbox-Warning: the caller's body says nothing of them)."""
        world = self.runtime.world
        listed = []
        for msn in world.reach(keyset):
            if world.is_active(msn):
                listed.append(self._unit_info(msn))
            elif notes is not None:
                merchant = world.merchants[world.sales_units[msn].merchant]
                notes.append(f"Left out sales unit {msn}: its merchant {merchant.name} ({merchant.key}) is "
                             "deactivated.")
        return listed

    def sales_unit(self, keyset: KeySet, msn: str) -> dict:
        if not PATH_MSN.fullmatch(msn):
            raise Problem(400, "Bad Request", "The MSN in the path must be 3 to 10 digits.",
                          details=[Detail("msn", "The field must match '^\\d{3,10}$'.")])
        denial = sales_unit_out_of_sight(keyset, msn, self.runtime.world)
        if denial is not None:
            raise sales_unit_hidden(denial)
        unit = self.runtime.world.sales_units[msn]
        merchant = self.runtime.world.merchants[unit.merchant]
        body = {"msn": unit.msn, "name": unit.name,
                "businessIdentifier": {"scheme": merchant.scheme, "id": merchant.id},
                "configuration": {k: v for k, v in unit.configuration.items() if k in CONFIGURATION_FIELDS}}
        if unit.settlement_bank_account:
            body["settlementBankAccount"] = dict(unit.settlement_bank_account)
        return body

    def _merchant_msns(self, keyset: KeySet, scheme: str, business_id: str) -> tuple[Merchant, list[str]]:
        """The merchant and its sales units these keys see; 404 when they see none of them."""
        world = self.runtime.world
        merchant = world.merchants.get(f"{scheme}/{business_id}")
        if merchant is None:
            raise not_found("merchant", "merchant-unknown",
                            f"No merchant has the business id {clip(scheme)}/{clip(business_id)}.")
        msns = [msn for msn in world.merchant_msns.get(merchant.key, []) if world.can_reach(keyset, msn)]
        if not msns:
            raise merchant_out_of_reach(keyset, merchant, world)
        if not merchant.active:
            raise hidden("merchant", "merchant-deactivated",
                         f"Merchant {merchant.name} ({merchant.key}) is deactivated." + SAME_404)
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

    def merchant_sales_units(self, keyset: KeySet, scheme: str, business_id: str,
                             notes: list[str] | None = None) -> list[dict]:
        """`notes`, when given, gets the merchant's sales units the list leaves out (out of these keys' reach)."""
        merchant, msns = self._merchant_msns(keyset, scheme, business_id)
        world = self.runtime.world
        others = [msn for msn in world.merchant_msns.get(merchant.key, []) if msn not in msns]
        if others and notes is not None:
            if keyset.type is KeyType.MERCHANT:
                why = f"merchant keys see only their own sales unit {keyset.owner}"
            elif keyset.owner in world.partners:
                why = f"connected to {partners_of(others, world)}, not to {partner_named(keyset.owner, world)}"
            else:
                why = "not among the sales units these management keys manage"
            notes.append(f"Left out sales unit{'s' if len(others) > 1 else ''} {', '.join(others)} of merchant "
                         f"{merchant.name} ({merchant.key}): {why}.")
        return [self._unit_info(msn) for msn in msns]

    @staticmethod
    def partner_of(keyset: KeySet) -> str:
        """The partner behind these keys. The policy (partners_only routes) lets no merchant's keys get here."""
        return keyset.owner

    def price_packages(self, keyset: KeySet) -> list[dict]:
        """The 2.0.9 PricePackage: `description` is required (at most 6 characters, e.g. "2.99%") and
        `productType` is a ProductType, as in product orders (the fixture's packages are ePayment prices)."""
        partner_id = self.partner_of(keyset)
        return [{"pricePackageId": pp.id, "name": pp.name, "description": package_description(pp),
                 "visibleInSignupForm": pp.name.startswith("Standard"), "productType": PRICE_PACKAGE_PRODUCT_TYPE,
                 "market": pp.market}
                for pp in self.runtime.world.price_packages.get(partner_id, [])]

    # -- product orders, scoped to the partner that made them -----------------------------------------
    def create_order(self, keyset: KeySet, idempotency_key: str | None, body: object, origin: str) -> dict:
        return self.book.create(self.partner_of(keyset), idempotency_key, body, origin)

    def delete_order(self, keyset: KeySet, order_id: str) -> None:
        self.book.delete(self.partner_of(keyset), order_id)

    def list_orders(self, keyset: KeySet, include_expired: bool, origin: str) -> list[dict]:
        return self.book.list_for(self.partner_of(keyset), include_expired, origin)

    def order_details(self, keyset: KeySet, order_id: str, origin: str) -> dict:
        return self.book.details_view(self.book.own(self.partner_of(keyset), order_id), origin)
