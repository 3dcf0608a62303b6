"""The Order Management API over real HTTP: every operation of order-management.yaml, the once-only receipt, unknown
orders, images, the v3 categories, and a receipt sent with an ePayment create read back here.

Every success body is checked against the spec by the test client (sandbox/apis/ordermanagement/response_schemas.py).
"""

from __future__ import annotations

import base64
import json
import struct
import zlib

import pytest
from qr_support import OM, call, merchant, partner

from sandbox.core.settings import Settings
from sandbox.testing import started

RECEIPT = {
    "orderLines": [
        {"name": "socks", "id": "line_item_1", "totalAmount": 1000, "totalAmountExcludingTax": 800,
         "totalTaxAmount": 200, "taxRate": 2500,
         "unitInfo": {"unitPrice": 400, "quantity": "2.5", "quantityUnit": "KG"},
         "discount": 0, "productUrl": "https://example.com/store/socks", "isReturn": False, "isShipping": False},
        {"name": "Home Delivery", "id": "delivery", "totalAmount": 1000, "totalAmountExcludingTax": 800,
         "totalTaxAmount": 200, "taxPercentage": 25, "isShipping": True},
    ],
    "bottomLine": {"currency": "NOK", "posId": "pos_122", "receiptNumber": "0527013501"},
}
CATEGORY = {"category": "RECEIPT", "orderDetailsUrl": "https://example.com/orders/1"}


def png_of_height(height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00\xff" for _ in range(height))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return base64.b64encode(data).decode()


async def test_receipt_once_category_replaced_and_order_read(sandbox):
    keys, msn = merchant(sandbox)
    path = f"{OM}/v2/ecom"
    posted = await call(sandbox, "POST", f"{path}/receipts/order-1", keys, msn, body=RECEIPT)
    assert posted.status == 201, posted.text
    assert isinstance(posted.json, str)
    again = await call(sandbox, "POST", f"{path}/receipts/order-1", keys, msn, body=RECEIPT)
    assert again.status == 409
    assert {"title", "detail", "instance"} <= set(again.json)
    put = await call(sandbox, "PUT", f"{path}/categories/order-1", keys, msn, body=CATEGORY)
    assert put.status == 200, put.text
    replaced = await call(sandbox, "PUT", f"{path}/categories/order-1", keys, msn,
                          body={"category": "DELIVERY", "orderDetailsUrl": "https://example.com/track/1"})
    assert replaced.status == 200
    order = await call(sandbox, "GET", f"{path}/order-1", keys, msn)
    assert order.json["category"] == {"category": "DELIVERY", "orderDetailsUrl": "https://example.com/track/1"}
    assert order.json["receipt"] == RECEIPT
    upper = await call(sandbox, "GET", f"{OM}/v2/ECOM/order-1", keys, msn)  # the spec's enum spelling
    assert upper.json == order.json
    recurring = await call(sandbox, "GET", f"{OM}/v2/recurring/order-1", keys, msn)
    assert recurring.status == 404  # another payment type, another order
    bad_type = await call(sandbox, "GET", f"{OM}/v2/epayment/order-1", keys, msn)
    assert bad_type.status == 400 and bad_type.json["invalidParams"][0]["name"] == "paymentType"


async def test_writes_to_an_unknown_order_succeed(sandbox):
    keys, msn = merchant(sandbox)
    reply = await call(sandbox, "PUT", f"{OM}/v2/recurring/categories/never-paid-42", keys, msn, body=CATEGORY)
    assert reply.status == 200
    missing = await call(sandbox, "GET", f"{OM}/v2/recurring/nothing-here", keys, msn)
    assert missing.status == 404


async def test_receipt_validation(sandbox):
    keys, msn = merchant(sandbox)
    no_tax = json.loads(json.dumps(RECEIPT))
    del no_tax["orderLines"][0]["taxRate"]
    reply = await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/o-2", keys, msn, body=no_tax)
    assert reply.status == 400 and reply.json["invalidParams"][0]["name"] == "orderLines.0.taxRate"
    empty = await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/o-2", keys, msn, body={"orderLines": [],
                                                                                    "bottomLine": {"currency": "NOK"}})
    assert empty.status == 400
    bad_id = await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/o%20x", keys, msn, body=RECEIPT)
    assert bad_id.status == 400 and bad_id.json["invalidParams"][0]["name"] == "orderId"


async def test_images_once_and_categories_naming_them(sandbox):
    keys, msn = merchant(sandbox)
    image = {"imageId": "socks-orange-123", "src": png_of_height(200), "type": "base64"}
    added = await call(sandbox, "POST", f"{OM}/v1/images", keys, msn, body=image)
    assert added.status == 200 and added.json == {"imageId": "socks-orange-123"}
    again = await call(sandbox, "POST", f"{OM}/v1/images", keys, msn, body=image)
    assert again.status == 409
    small = await call(sandbox, "POST", f"{OM}/v1/images", keys, msn,
                       body={"imageId": "tiny", "src": png_of_height(100), "type": "base64"})
    assert small.status == 400 and small.json["invalidParams"][0]["name"] == "src"
    text = await call(sandbox, "POST", f"{OM}/v1/images", keys, msn,
                      body={"imageId": "t", "src": base64.b64encode(b"hello").decode(), "type": "base64"})
    assert text.status == 400
    with_image = await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/o-3", keys, msn,
                            body={**CATEGORY, "imageId": "socks-orange-123"})
    assert with_image.status == 200
    unknown = await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/o-3", keys, msn,
                         body={**CATEGORY, "imageId": "never-uploaded"})
    assert unknown.status == 404


async def test_v3_categories(sandbox):
    keys, msn = merchant(sandbox)
    body = {"orderId": "PaymentReference123", "paymentType": "ECOM", "type": "TICKET", "url": "https://example.com/t"}
    added = await call(sandbox, "POST", f"{OM}/v3/categories", keys, msn, body=body)
    assert added.status == 201, added.text
    category_id = added.json["categoryId"]
    got = await call(sandbox, "GET", f"{OM}/v3/categories/{category_id}", keys, msn)
    assert got.json == {"categoryId": category_id, **body}
    query = await call(sandbox, "GET", f"{OM}/v3/categories?orderId=PaymentReference123", keys, msn)
    assert query.json == {"categories": [got.json]}
    order = await call(sandbox, "GET", f"{OM}/v2/ecom/PaymentReference123", keys, msn)
    assert order.json["category"] == {"category": "TICKET", "orderDetailsUrl": "https://example.com/t"}
    other_keys, other_msn = merchant(sandbox, role="independent-1")
    foreign = await call(sandbox, "GET", f"{OM}/v3/categories/{category_id}", other_keys, other_msn)
    assert foreign.status == 404
    deleted = await call(sandbox, "DELETE", f"{OM}/v3/categories/{category_id}", keys, msn)
    assert deleted.status == 200
    gone = await call(sandbox, "GET", f"{OM}/v3/categories/{category_id}", keys, msn)
    assert gone.status == 404
    not_uuid = await call(sandbox, "GET", f"{OM}/v3/categories/abc", keys, msn)
    assert not_uuid.status == 404  # no category has it


async def test_v1_deprecated_operations(sandbox):
    keys, msn = merchant(sandbox)
    put = await call(sandbox, "PUT", f"{OM}/v1/orders/tx-1", keys, msn, body=CATEGORY)
    assert put.status == 200
    got = await call(sandbox, "GET", f"{OM}/v1/orders/tx-1", keys, msn)
    assert got.json == CATEGORY
    posted = await call(sandbox, "POST", f"{OM}/v1/receipts/tx-1", keys, msn, body=RECEIPT)
    assert posted.status == 200
    receipt = await call(sandbox, "GET", f"{OM}/v1/receipts/tx-1", keys, msn)
    assert receipt.json == RECEIPT
    v2 = await call(sandbox, "GET", f"{OM}/v2/ecom/tx-1", keys, msn)  # the same ecom order
    assert v2.json == {"category": CATEGORY, "receipt": RECEIPT}
    none = await call(sandbox, "GET", f"{OM}/v1/receipts/tx-2", keys, msn)
    assert none.status == 404


async def test_msn_header_required_and_partner_keys(sandbox):
    keys, msn = merchant(sandbox)
    without = await call(sandbox, "GET", f"{OM}/v2/ecom/o-1", keys, None)
    assert without.status == 400 and without.json["invalidParams"][0]["name"] == "Merchant-Serial-Number"
    partner_keys = partner(sandbox)
    prod = await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/p-1", partner_keys, msn, env="production",
                      body=CATEGORY)
    assert prod.status == 200
    no_msn = await call(sandbox, "GET", f"{OM}/v2/ecom/p-1", partner_keys, None, env="production")
    assert no_msn.status == 403 and no_msn.headers["Vipps-Sandbox-Rule"] == "partner-keys-need-msn"
    mine = await call(sandbox, "GET", f"{OM}/v2/ecom/p-1", *merchant(sandbox, "production"), env="production")
    assert mine.json["category"] == CATEGORY


async def test_receipt_from_the_epayment_create_is_readable_here(sandbox):
    keys, msn = merchant(sandbox)
    headers = {"Idempotency-Key": "om-receipt-1"}
    body = {"amount": {"currency": "NOK", "value": 3000}, "paymentMethod": {"type": "WALLET"},
            "reference": "om-epay-1", "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back",
            "receipt": RECEIPT}
    created = await call(sandbox, "POST", "/epayment/v1/payments", keys, msn, body=body, headers=headers)
    assert created.status == 201, created.text
    order = await call(sandbox, "GET", f"{OM}/v2/ecom/om-epay-1", keys, msn)
    assert order.status == 200 and order.json["receipt"] == RECEIPT
    second = await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/om-epay-1", keys, msn, body=RECEIPT)
    assert second.status == 409
    await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/om-epay-1", keys, msn, body=CATEGORY)
    async with sandbox.session.get(created.json["redirectUrl"]) as landing:
        page = await landing.text()
    assert "data-receipt" in page and "socks" in page
    assert 'href="https://example.com/orders/1"' in page


async def test_snapshot_round_trip(sandbox):
    keys, msn = merchant(sandbox)
    await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/snap-1", keys, msn, body=RECEIPT)
    await call(sandbox, "POST", f"{OM}/v1/images", keys, msn,
               body={"imageId": "img-1", "src": png_of_height(170), "type": "base64"})
    added = await call(sandbox, "POST", f"{OM}/v3/categories", keys, msn,
                       body={"orderId": "snap-1", "paymentType": "ECOM", "type": "RECEIPT", "url": "https://e.x/r",
                             "imageId": "img-1"})
    state = json.loads(json.dumps(sandbox.runtime.dump_state()))
    sandbox.runtime.reset()
    assert (await call(sandbox, "GET", f"{OM}/v2/ecom/snap-1", keys, msn)).status == 404
    sandbox.runtime.load_state(state)
    order = await call(sandbox, "GET", f"{OM}/v2/ecom/snap-1", keys, msn)
    assert order.json["receipt"] == RECEIPT
    got = await call(sandbox, "GET", f"{OM}/v3/categories/{added.json['categoryId']}", keys, msn)
    assert got.json["imageId"] == "img-1"


@pytest.mark.parametrize("enabled", [True, False])
async def test_the_test_environment_is_a_setting(enabled):
    async with started(Settings(port=0, prod_port=0, order_management_test=enabled)) as sandbox:
        keys, msn = merchant(sandbox)
        reply = await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/s-1", keys, msn, body=CATEGORY)
        assert reply.status == (200 if enabled else 404), reply.text
        prod = await call(sandbox, "PUT", f"{OM}/v2/ecom/categories/s-1", *merchant(sandbox, "production"),
                          env="production", body=CATEGORY)
        assert prod.status == 200
