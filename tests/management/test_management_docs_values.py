"""Management values checked against the 2.0.9 spec's words, not the sandbox's code (reference §3, issue 14).

- PricePackage: "required: pricePackageId, name, description"; `description` "A short human-readable summary
  of the price", maxLength 6, example "2.99%"; `productType` "$ref ProductType" = PAYMENT_INTEGRATION,
  CASHIER, CHECKOUT, LOGIN, DONATIONS, the same names a product order takes; `market` DK, NO or FI.
- SalesUnit.configuration: the nine documented flags, nothing else.
"""

from __future__ import annotations

from sandbox.core.model import SalesUnit

PRODUCT_TYPES = {"PAYMENT_INTEGRATION", "CASHIER", "CHECKOUT", "LOGIN", "DONATIONS"}
FLAGS = {"paymentAllowed", "captureType", "skipLandingPageAllowed", "recurringAllowed", "partialCaptureAllowed",
         "lateCaptureAllowed", "landingPagePhoneNumberLocked", "longLivingPaymentAllowed", "creditCardPaymentAllowed"}


async def test_price_packages_have_a_2_0_9_product_type_and_a_short_description(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    reply = await sandbox.request("GET", "/management/v1/partners/price-packages", "production", keyset=partner)
    assert reply.status == 200, reply.text
    assert reply.json
    for package in reply.json:
        assert package["productType"] in PRODUCT_TYPES, package  # the old sandbox said "ePayment" (1.1.6)
        assert isinstance(package["description"], str) and 1 <= len(package["description"]) <= 6, package
        assert package["market"] in {"NO", "DK", "FI"}
    # The same name a product order for that package reports (GET /management/v2/product-orders/{id}/details).
    order = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "923609016"},
             "productType": reply.json[0]["productType"], "pricePackageId": reply.json[0]["pricePackageId"]}
    created = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                    json_body=order, headers={"Idempotency-Key": "docs-values-1"})
    assert created.status == 201, created.text
    details = await sandbox.request("GET", f"/management/v2/product-orders/{created.json['prefilledOrderId']}/details",
                                    "production", keyset=partner)
    assert details.status == 200 and details.json["productType"] == reply.json[0]["productType"]


async def test_sales_unit_configuration_holds_only_the_documented_flags(sandbox):
    world = sandbox.runtime.world
    shop = world.sales_units[sandbox.msn_role("premium-shop-1")]
    kiosk = SalesUnit(msn="7654321", name="Strand kiosk", merchant=shop.merchant, partner_id=shop.partner_id,
                      market="NO", currency="NOK", configuration={**shop.configuration, "vmNumber": "123455"},
                      created_at=shop.created_at, settlement_bank_account=shop.settlement_bank_account)
    world.add_sales_unit(kiosk)  # a Vippsnummer unit: the number is the sandbox's record, not a documented flag
    partner = sandbox.key("partner", owner=shop.partner_id)
    for msn in (shop.msn, kiosk.msn):
        reply = await sandbox.request("GET", f"/management/v1/sales-units/{msn}", "production", keyset=partner)
        assert reply.status == 200, reply.text
        assert set(reply.json["configuration"]) <= FLAGS, reply.json
