"""The QR API over real HTTP: every operation of qr.yaml, the redirect and callback codes' lives, images, scans.

Every success body is checked against qr.yaml by the test client (sandbox/apis/qr/response_schemas.py), so each
call below is also evidence about the bodies.
"""

from __future__ import annotations

import asyncio
import json
import struct
from urllib.parse import urlsplit

import aiohttp
from qr_support import (
    CHECKED_IN,
    QR,
    call,
    eventually,
    inbox,
    merchant,
    partner,
    register_check_in,
)

from sandbox.apis.qr.backend import personal_qr

PNG = {"Accept": "image/png"}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def get_raw(sandbox, url: str, **kwargs) -> aiohttp.ClientResponse:
    return await sandbox.session.get(url, allow_redirects=False, **kwargs)


async def test_one_time_qr_png_svg_and_target(sandbox):
    keys, msn = merchant(sandbox)
    landing = "https://apitest.vipps.no/dwo-api-application/v1/deeplink/vippsgateway?v=2&token=abc"
    reply = await call(sandbox, "POST", QR, keys, msn, body={"url": landing}, headers={**PNG, "Size": "300"})
    assert reply.status == 200, reply.text
    assert reply.json["expiresIn"] == 600
    async with await get_raw(sandbox, reply.json["url"]) as image:  # no auth: a plain GET
        assert image.status == 200
        assert image.content_type == "image/png"
        data = await image.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (300, 300)
    svg = await call(sandbox, "POST", QR, keys, msn, body={"url": landing}, headers={"Accept": "image/svg+xml"})
    async with await get_raw(sandbox, svg.json["url"]) as image:
        assert image.content_type == "image/svg+xml"
        assert (await image.text()).startswith("<svg")
    target = await call(sandbox, "POST", QR, keys, msn, body={"url": landing}, headers={"Accept": "text/targetUrl"})
    assert target.json["url"] == landing


async def test_one_time_qr_refusals(sandbox):
    keys, msn = merchant(sandbox)
    no_accept = await call(sandbox, "POST", QR, keys, msn, body={"url": "https://x.example/l"},
                           headers={"Accept": "application/json"})
    assert no_accept.status == 415, no_accept.text
    assert no_accept.json["invalidParams"][0]["name"] == "Accept"
    bad = await call(sandbox, "POST", QR, keys, msn, body={"url": "not a url"}, headers=PNG)
    assert bad.status == 400
    assert {"title", "detail", "instance", "invalidParams"} <= set(bad.json)
    size = await call(sandbox, "POST", QR, keys, msn, body={"url": "https://x.example/l"},
                      headers={**PNG, "Size": "99"})
    assert size.status == 400 and size.json["invalidParams"][0]["name"] == "Size"


async def test_redirect_qr_lifecycle_update_at_once_and_dead_after_delete(sandbox):
    keys, msn = merchant(sandbox)
    body = {"id": "billboard_1", "redirectUrl": "https://example.com/summer"}
    created = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn, body=body,
                         headers={"Accept": "text/targetUrl"})
    assert created.status == 200, created.text
    assert created.json["expiresIn"] == -1
    content = created.json["url"]
    async with await get_raw(sandbox, content) as scanned:
        assert scanned.status == 302 and scanned.headers["Location"] == "https://example.com/summer"
    again = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn, body=body, headers=PNG)
    assert again.status == 409, again.text

    listed = await call(sandbox, "GET", QR + "/merchant-redirect", keys, msn, headers=PNG)
    assert [q["id"] for q in listed.json] == ["billboard_1"]
    got = await call(sandbox, "GET", QR + "/merchant-redirect/billboard_1", keys, msn, headers=PNG)
    assert got.json["redirectUrl"] == "https://example.com/summer"
    async with await get_raw(sandbox, got.json["url"]) as image:
        assert image.status == 200 and image.content_type == "image/png"

    updated = await call(sandbox, "PUT", QR + "/merchant-redirect/billboard_1", keys, msn,
                         body={"redirectUrl": "https://example.com/autumn"}, headers=PNG)
    assert updated.status == 200 and updated.json["redirectUrl"] == "https://example.com/autumn"
    async with await get_raw(sandbox, content) as scanned:  # the same printed code, at once
        assert scanned.headers["Location"] == "https://example.com/autumn"

    deleted = await call(sandbox, "DELETE", QR + "/merchant-redirect/billboard_1", keys, msn)
    assert deleted.status == 200
    async with await get_raw(sandbox, content) as scanned:
        assert scanned.status == 404
    reborn = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn, body=body,
                        headers={"Accept": "text/targetUrl"})
    assert reborn.status == 200 and reborn.json["url"] != content  # the id again, but a new code
    async with await get_raw(sandbox, content) as scanned:
        assert scanned.status == 404  # the deleted poster never works again
    missing = await call(sandbox, "GET", QR + "/merchant-redirect/nope", keys, msn, headers=PNG)
    assert missing.status == 404 and "invalidParams" not in missing.json


async def test_redirect_ttl_on_the_virtual_clock(sandbox):
    keys, msn = merchant(sandbox)
    created = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                         body={"id": "flyer", "redirectUrl": "https://example.com/f", "ttl": 300},
                         headers={"Accept": "text/targetUrl"})
    assert 299 <= created.json["expiresIn"] <= 300
    short = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                       body={"id": "x", "redirectUrl": "https://example.com/f", "ttl": 299}, headers=PNG)
    assert short.status == 400 and short.json["invalidParams"][0]["name"] == "ttl"
    sandbox.runtime.clock.advance(301)
    gone = await call(sandbox, "GET", QR + "/merchant-redirect/flyer", keys, msn, headers=PNG)
    assert gone.status == 404
    async with await get_raw(sandbox, created.json["url"]) as scanned:
        assert scanned.status == 404


async def test_redirect_url_must_be_https(sandbox):
    keys, msn = merchant(sandbox)
    reply = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                       body={"id": "a", "redirectUrl": "http://example.com/"}, headers=PNG)
    assert reply.status == 400 and reply.json["invalidParams"][0]["name"] == "redirectUrl"


async def test_callback_qr_check_in_webhook_and_customer_exchange(sandbox):
    keys, msn = merchant(sandbox)
    await register_check_in(sandbox, keys, msn, "till")
    put = await call(sandbox, "PUT", QR + "/merchant-callback/kasse-1", keys, msn,
                     body={"locationDescription": "Kasse 1"})
    assert put.status == 200 and put.text == ""
    got = await call(sandbox, "GET", QR + "/merchant-callback/kasse-1", keys, msn)
    assert got.json["locationDescription"] == "Kasse 1" and got.json["merchantSerialNumber"] == msn
    assert "/qr.svg?" in got.json["qrImageUrl"]  # SVG by default
    png = await call(sandbox, "GET", QR + "/merchant-callback/kasse-1?QrImageFormat=PNG&QrImageSize=200", keys, msn)
    async with await get_raw(sandbox, png.json["qrImageUrl"]) as image:
        assert struct.unpack(">II", (await image.read())[16:24]) == (200, 200)
    await call(sandbox, "PUT", QR + "/merchant-callback/kasse-1", keys, msn, body={"locationDescription": "Kasse 2"})
    again = await call(sandbox, "GET", QR + "/merchant-callback/kasse-1", keys, msn)
    assert again.json["locationDescription"] == "Kasse 2"
    assert again.json["qrContent"] == got.json["qrContent"]  # the image is not updated on consecutive calls
    listed = await call(sandbox, "GET", QR + "/merchant-callback", keys, msn)
    assert [q["merchantQrId"] for q in listed.json] == ["kasse-1"]

    phone = next(iter(sandbox.runtime.world.users))  # a test user's MSISDN
    scan = await sandbox.request("POST", "/_sandbox/qr/scan", "test",
                                 json_body={"phoneNumber": phone, "qrContent": got.json["qrContent"]})
    assert scan.status == 200, scan.text
    assert scan.json == {"kind": "callback", "msn": msn, "merchantQrId": "kasse-1"}
    [delivery] = await eventually(lambda: inbox(sandbox, "till"))
    event = json.loads(delivery["body"])
    assert set(event) == {"customerToken", "merchantQrId", "msn", "initiatedAt"}
    assert event["merchantQrId"] == "kasse-1" and event["msn"] == msn

    exchanged = await call(sandbox, "POST", QR + "/exchange/customer", keys, msn,
                           body={"customer": {"customerToken": event["customerToken"]}, "requestedData": ["MSISDN"]})
    assert exchanged.status == 200, exchanged.text
    assert exchanged.json["msisdn"] == phone
    other_keys, other_msn = merchant(sandbox, role="independent-1")
    foreign = await call(sandbox, "POST", QR + "/exchange/customer", other_keys, other_msn,
                         body={"customer": {"customerToken": event["customerToken"]}, "requestedData": ["MSISDN"]})
    assert foreign.status == 400 and set(foreign.json) == {"title", "status", "detail", "extraDetails"}
    sandbox.runtime.clock.advance(15 * 60 + 1)
    expired = await call(sandbox, "POST", QR + "/exchange/customer", keys, msn,
                         body={"customer": {"customerToken": event["customerToken"]}, "requestedData": ["MSISDN"]})
    assert expired.status == 400

    deleted = await call(sandbox, "DELETE", QR + "/merchant-callback/kasse-1", keys, msn)
    assert deleted.status == 200
    dead = await sandbox.request("POST", "/_sandbox/qr/scan", "test",
                                 json_body={"phoneNumber": phone, "qrContent": got.json["qrContent"]})
    assert dead.status == 404
    missing = await call(sandbox, "DELETE", QR + "/merchant-callback/kasse-1", keys, msn)
    assert missing.status == 404


async def test_callback_operations_need_the_msn_header(sandbox):
    keys, msn = merchant(sandbox)
    reply = await call(sandbox, "GET", QR + "/merchant-callback", keys, None)
    assert reply.status == 400
    assert reply.json["invalidParams"][0]["name"] == "Merchant-Serial-Number"


async def test_mobilepay_beacon_migration(sandbox):
    keys, msn = merchant(sandbox)
    await register_check_in(sandbox, keys, msn, "beacon")
    put = await call(sandbox, "PUT", QR + "/merchant-callback/mobilepay/100000123456", keys, msn,
                     body={"locationDescription": "Kiosk"})
    assert put.status == 200
    got = await call(sandbox, "GET", QR + "/merchant-callback/100000123456", keys, msn)
    assert got.json["merchantQrId"] == "100000123456"
    other_keys, other_msn = merchant(sandbox, role="independent-1")
    taken = await call(sandbox, "PUT", QR + "/merchant-callback/mobilepay/100000123456", other_keys, other_msn,
                       body={"locationDescription": "Kiosk"})
    assert taken.status == 409
    await sandbox.request("POST", "/_sandbox/qr/scan", "test",
                          json_body={"phoneNumber": "4791234567", "qrContent": got.json["qrContent"]})
    [delivery] = await eventually(lambda: inbox(sandbox, "beacon"))
    assert json.loads(delivery["body"])["merchantQrId"] == "100000123456"


async def test_personal_qr_exchange(sandbox):
    keys, msn = merchant(sandbox)
    v1 = await call(sandbox, "POST", QR + "/exchange", keys, msn,
                    body={"qrCode": "https://qr.vipps.no/28/2/01/031/4712345678?v=1"})
    assert v1.json == {"msisdn": "4712345678", "version": "1.0"}
    v2 = await call(sandbox, "POST", QR + "/exchange", keys, msn,
                    body={"qrCode": personal_qr("4798765432", 1634025600), "requestedData": ["MSISDN"]})
    assert v2.json == {"msisdn": "4798765432", "timestamp": 1634025600, "version": "2.0"}
    bad = await call(sandbox, "POST", QR + "/exchange", keys, msn, body={})
    assert bad.status == 400
    assert bad.json == {"title": "Bad request", "status": 400,
                        "detail": "The request body contains one or more invalid parameters.",
                        "extraDetails": [{"name": "qrCode",
                                          "reason": "The complete data contained in the QR code is required."}]}


async def test_partner_keys_in_production_with_msn(sandbox):
    keys = partner(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    created = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn, env="production",
                         body={"id": "p1", "redirectUrl": "https://example.com/p"}, headers=PNG)
    assert created.status == 200, created.text
    without = await call(sandbox, "GET", QR + "/merchant-redirect", keys, None, env="production")
    assert without.status == 403
    assert without.headers["Vipps-Sandbox-Rule"] == "partner-keys-need-msn"
    mine = await call(sandbox, "GET", QR + "/merchant-redirect", *merchant(sandbox, "production"), env="production")
    assert [q["id"] for q in mine.json] == ["p1"]  # the partner acted for the merchant's own sales unit
    test_side = await call(sandbox, "GET", QR + "/merchant-redirect", *merchant(sandbox), headers=PNG)
    assert test_side.json == []  # environments share nothing


async def test_snapshot_round_trip_keeps_codes(sandbox):
    keys, msn = merchant(sandbox)
    created = await call(sandbox, "POST", QR + "/merchant-redirect", keys, msn,
                         body={"id": "kept", "redirectUrl": "https://example.com/k"},
                         headers={"Accept": "text/targetUrl"})
    await call(sandbox, "PUT", QR + "/merchant-callback/k1", keys, msn, body={"locationDescription": "K"})
    state = sandbox.runtime.dump_state()
    assert "customerToken" not in json.dumps(state["qr"])
    sandbox.runtime.reset()
    async with await get_raw(sandbox, created.json["url"]) as scanned:
        assert scanned.status == 404
    sandbox.runtime.load_state(state)
    async with await get_raw(sandbox, created.json["url"]) as scanned:
        assert scanned.headers["Location"] == "https://example.com/k"
    got = await call(sandbox, "GET", QR + "/merchant-callback/k1", keys, msn)
    assert got.json["locationDescription"] == "K"
    assert CHECKED_IN  # the event name is shared with the support module


async def test_image_size_and_white_border_rules(sandbox):
    import zlib

    keys, msn = merchant(sandbox)
    await call(sandbox, "PUT", QR + "/merchant-callback/img", keys, msn, body={"locationDescription": "Img"})
    url = (await call(sandbox, "GET", QR + "/merchant-callback/img?QrImageFormat=PNG", keys, msn)).json["qrImageUrl"]

    async def first_dark_row(extra: str) -> tuple[tuple[int, int], int]:
        async with await get_raw(sandbox, url + extra) as image:
            assert image.status == 200
            data = await image.read()
        size = struct.unpack(">II", data[16:24])
        raw = zlib.decompress(data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8])
        rows = [raw[y * (size[0] + 1) + 1:(y + 1) * (size[0] + 1)] for y in range(size[1])]
        return size, next(y for y, row in enumerate(rows) if 0 in row)

    size, top = await first_dark_row("")
    assert size == (1024, 1024) and 8 <= top < 8 + 40  # the default 8 px of white (and what centring leaves)
    size, top = await first_dark_row("&size=400&whiteBorder=0")
    assert size == (400, 400) and top < 12  # no border: only what centring leaves (under one module)
    size, top = await first_dark_row("&size=400&whiteBorder=100")
    assert top >= 100
    for bad in ("&size=99", "&size=2001", "&whiteBorder=101", "&whiteBorder=-1", "&size=abc"):
        async with await get_raw(sandbox, url + bad) as image:
            assert image.status == 400, bad
    async with await get_raw(sandbox, url.replace("code=", "code=0")) as image:
        assert image.status == 404


async def test_a_sales_unit_s_check_in_webhook_wins_over_its_partner_s(sandbox):
    """One registration per sales unit for user.checked-in.v1; a partner's may exist too, and the unit's wins."""
    msn = sandbox.msn_role("premium-shop-1")
    own_keys = sandbox.key("merchant", "production", msn=msn)
    await register_check_in(sandbox, partner(sandbox), None, "partner-wide", env="production")
    await register_check_in(sandbox, own_keys, msn, "own", env="production")
    await call(sandbox, "PUT", QR + "/merchant-callback/door", own_keys, msn, env="production",
               body={"locationDescription": "Door"})
    content = (await call(sandbox, "GET", QR + "/merchant-callback/door", own_keys, msn, env="production")).json[
        "qrContent"]
    scan = {"phoneNumber": "4791234567", "qrContent": content}
    assert (await sandbox.request("POST", "/_sandbox/qr/scan", "production", json_body=scan)).status == 200
    await eventually(lambda: inbox(sandbox, "own", "production"))
    await asyncio.sleep(0.3)  # time enough for a second delivery, were there one
    assert await inbox(sandbox, "partner-wide", "production") == []
    hooks = await call(sandbox, "GET", "/webhooks/v1/webhooks", own_keys, msn, env="production")
    for hook in hooks.json["webhooks"]:
        await call(sandbox, "DELETE", f"/webhooks/v1/webhooks/{hook['id']}", own_keys, msn, env="production")
    assert (await sandbox.request("POST", "/_sandbox/qr/scan", "production", json_body=scan)).status == 200
    [delivery] = await eventually(lambda: inbox(sandbox, "partner-wide", "production"))
    assert json.loads(delivery["body"])["msn"] == msn
    assert len(await inbox(sandbox, "own", "production")) == 1
