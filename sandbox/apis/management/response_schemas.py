"""Every successful Management API response a test client sees is checked against the spec.

The test client (sandbox/testing.py) calls `violations()` on each reply. The bundled management.yaml is
1.1.6; the live API is 2.0.9 (reference §3), which the sandbox serves. So the 1.1.6 schemas are taken
from the file and patched here to 2.0.9, one difference at a time (nothing else is restated):

- `MSN`: 4 to 10 digits (1.1.6: 5 or 6).
- `businessIdentifier`: `id` pattern `^[\\d-]{4,50}$` (1.1.6: nine digits, Norway only), `scheme` up to 30.
- `SalesUnit`: `configuration` required, with the five 2.0.9 flags (partialCaptureAllowed,
  lateCaptureAllowed, landingPagePhoneNumberLocked, longLivingPaymentAllowed, creditCardPaymentAllowed),
  and `settlementBankAccount` (2026 docs). Stricter than the spec on one point: `configuration` may hold
  no other key, so nothing of the sandbox's own (such as a Vippsnummer) leaks into it.
- `Merchant`: `status`, `createdAt`, `updatedAt` and `countryCode` required.
- `PricePackage`: `description` required (at most 6 characters), `productType` the 2.0.9 `ProductType`
  (PAYMENT_INTEGRATION, CASHIER, CHECKOUT, LOGIN, DONATIONS; 1.1.6 had ePayment, ePaymentCustomerPresent,
  checkout), `market` NO/DK/FI, `commission` a nullable string.
- `ProductOrderResponse`: both fields required.
- `ProductOrderDetailsResponseV2` (the v2 endpoints; not in 1.1.6) as 2.0.9 describes it.
"""

from __future__ import annotations

import copy
import re
from functools import cache

from sandbox.core.response_check import body_errors, checker
from sandbox.core.spec import SpecSchemas, load_spec

PRODUCT_TYPE = {"type": "string", "enum": ["PAYMENT_INTEGRATION", "CASHIER", "CHECKOUT", "LOGIN", "DONATIONS"]}
CONFIGURATION_FLAGS_2_0_9 = ("partialCaptureAllowed", "lateCaptureAllowed", "landingPagePhoneNumberLocked",
                             "longLivingPaymentAllowed", "creditCardPaymentAllowed")
ORDER_DETAILS_V2 = {
    "type": "object",
    "required": ["status", "businessIdentifier"],
    "properties": {
        "productOrderType": {"enum": ["PREFILL", "TEMPLATE", "MANUAL"]},
        "productOrderId": {"type": "string", "format": "uuid"},
        "productType": PRODUCT_TYPE,
        "status": {"type": "string", "enum": ["RECEIVED", "MERCHANT_VIEWED", "ORDER_SUBMITTED", "EXPIRED",
                                              "COMPLETED", "REJECTED"]},
        "businessIdentifier": {"$ref": "#/components/schemas/businessIdentifier"},
        "productOrderUrl": {"type": "string", "format": "uri", "nullable": True},
        "salesUnit": {"type": "object", "nullable": True, "required": ["msn", "name"],
                      "properties": {"msn": {"$ref": "#/components/schemas/MSN"}, "name": {"type": "string"}}},
    },
}

#: (method, path) -> the schema of a 2xx body ("[X]" is an array of X).
RESPONSES = [
    ("GET", re.compile(r"^/management/v1/sales-units$"), "getMsnResponse"),
    ("GET", re.compile(r"^/management/v1/sales-units/[^/]+$"), "SalesUnit"),
    ("GET", re.compile(r"^/management/v1/merchants/[^/]+/[^/]+$"), "GetMerchantResponse"),
    ("GET", re.compile(r"^/management/v1/merchants/[^/]+/[^/]+/sales-units$"), "getMsnResponse"),
    ("GET", re.compile(r"^/management/v1/partners/price-packages$"), "GetPartnerPricePackagesResponse"),
    ("POST", re.compile(r"^/management/v1/product-orders$"), "ProductOrderResponse"),
    ("GET", re.compile(r"^/management/v2/product-orders$"), "[ProductOrderDetailsResponseV2]"),
    ("GET", re.compile(r"^/management/v2/product-orders/[^/]+/details$"), "ProductOrderDetailsResponseV2"),
]


def patched_spec() -> dict:
    """management.yaml 1.1.6 with the 2.0.9 differences above."""
    spec = copy.deepcopy(load_spec("management.yaml"))
    schemas = spec["components"]["schemas"]
    schemas["MSN"].update({"pattern": r"^\d{4,10}$", "minLength": 4, "maxLength": 10})
    bid = schemas["businessIdentifier"]["properties"]
    bid["id"]["pattern"] = r"^[\d-]{4,50}$"
    bid["scheme"]["maxLength"] = 30
    unit = schemas["SalesUnit"]
    unit["required"] = [*unit["required"], "configuration"]
    config = unit["properties"]["configuration"]
    config["properties"].update({flag: {"type": "boolean"} for flag in CONFIGURATION_FLAGS_2_0_9})
    config["additionalProperties"] = False
    unit["properties"]["settlementBankAccount"] = {"$ref": "#/components/schemas/BankAccount"}
    merchant = schemas["Merchant"]
    merchant["required"] = [*merchant["required"], "status", "createdAt", "updatedAt", "countryCode"]
    package = schemas["PricePackage"]
    package["required"] = [*package["required"], "description"]
    package["properties"]["productType"] = copy.deepcopy(PRODUCT_TYPE)
    package["properties"]["market"] = {"type": "string", "enum": ["DK", "NO", "FI"]}
    package["properties"]["commission"] = {"type": "string", "nullable": True}
    schemas["ProductOrderResponse"]["required"] = ["prefilledOrderId", "prefillUrl"]
    schemas["ProductOrderDetailsResponseV2"] = copy.deepcopy(ORDER_DETAILS_V2)
    return spec


@cache
def schemas() -> SpecSchemas:
    found = SpecSchemas("management.yaml")
    found.uri = "urn:vipps-sandbox:management-2.0.9"
    found.__dict__["spec"] = patched_spec()  # the cached_property's slot: the patched spec instead of the file
    return found


def item_errors(name: str, item: object) -> list[str]:
    return [f"{name}.{field}: {why}" for field, why in schemas().errors(name, item)]


def errors(schema: str, body: object) -> list[str]:
    """The spec's complaints about a body, as "Schema.field: why" ("[X]" checks an array of X)."""
    return body_errors(schema, body, item_errors)


#: What is wrong with a Management API response; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_errors)
