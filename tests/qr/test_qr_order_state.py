"""QR and Order Management under --state DIR: the journal replays every acknowledged change after a restart to the
same codes and ids, and never holds a customer token (scans and exchanges are not journaled)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from qr_support import OM, QR, call, eventually, inbox, merchant, register_check_in

from sandbox.core.settings import Settings
from sandbox.testing import started

RECEIPT = {"orderLines": [{"name": "Tea", "id": "t", "totalAmount": 3000, "totalAmountExcludingTax": 2400,
                           "totalTaxAmount": 600, "taxRate": 2500}], "bottomLine": {"currency": "NOK"}}


async def scanned(sandbox, content: str) -> tuple[int, str | None]:
    parts = urlsplit(content)
    async with sandbox.session.get(sandbox.url("test") + parts.path, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location")


async def test_a_restart_with_state_replays_codes_orders_and_categories(tmp_path):
    settings = Settings(port=0, prod_port=0, state=tmp_path / "state")
    async with started(settings) as sandbox:
        keys, msn = merchant(sandbox)
        poster = (await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                             body={"id": "poster", "redirectUrl": "https://example.com/a"},
                             headers={"Accept": "text/targetUrl"})).json["url"]
        await call(sandbox, "PUT", QR + "/merchant-redirect/poster", keys, msn,
                   body={"redirectUrl": "https://example.com/b"}, headers={"Accept": "image/png"})
        gone = (await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                           body={"id": "gone", "redirectUrl": "https://example.com/g"},
                           headers={"Accept": "text/targetUrl"})).json["url"]
        await call(sandbox, "DELETE", QR + "/merchant-redirect/gone", keys, msn)
        await call(sandbox, "PUT", QR + "/merchant-callback/till", keys, msn, body={"locationDescription": "Till"})
        till = (await call(sandbox, "GET", QR + "/merchant-callback/till", keys, msn)).json["qrContent"]
        await register_check_in(sandbox, keys, msn, "state")
        await sandbox.request("POST", "/_sandbox/qr/scan", "test", json_body={"phoneNumber": "4791234567",
                                                                             "qrContent": till})
        [delivery] = await eventually(lambda: inbox(sandbox, "state"))
        token = json.loads(delivery["body"])["customerToken"]
        assert (await call(sandbox, "POST", QR + "/exchange/customer", keys, msn, body={
            "customer": {"customerToken": token}, "requestedData": ["MSISDN"]})).status == 200
        assert (await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/tea-1", keys, msn, body=RECEIPT)).status == 201
        category = (await call(sandbox, "POST", f"{OM}/v3/categories", keys, msn, body={
            "orderId": "tea-1", "paymentType": "ECOM", "type": "RECEIPT", "url": "https://example.com/r"})).json
    journal = (tmp_path / "state" / "journal.jsonl").read_text()
    assert token not in journal and "/_sandbox/qr/scan" not in journal and "/qr/v1/exchange" not in journal

    async with started(settings) as sandbox:
        keys, msn = merchant(sandbox)
        assert await scanned(sandbox, poster) == (302, "https://example.com/b")
        assert (await scanned(sandbox, gone))[0] == 404
        again = (await call(sandbox, "GET", QR + "/merchant-callback/till", keys, msn)).json
        # the same code (its token), on whatever port the restarted sandbox listens
        assert urlsplit(again["qrContent"]).path == urlsplit(till).path and again["locationDescription"] == "Till"
        order = await call(sandbox, "GET", f"{OM}/v2/ecom/tea-1", keys, msn)
        assert order.json["receipt"] == RECEIPT and order.json["category"]["category"] == "RECEIPT"
        assert (await call(sandbox, "POST", f"{OM}/v2/ecom/receipts/tea-1", keys, msn, body=RECEIPT)).status == 409
        got = await call(sandbox, "GET", f"{OM}/v3/categories/{category['categoryId']}", keys, msn)
        assert got.status == 200
        # customer tokens die with the process: the merchant's token from before the restart is unknown now
        stale = await call(sandbox, "POST", QR + "/exchange/customer", keys, msn, body={
            "customer": {"customerToken": token}, "requestedData": ["MSISDN"]})
        assert stale.status == 400
