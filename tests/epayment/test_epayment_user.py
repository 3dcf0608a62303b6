"""The simulated user: landing page, QR code, the /_sandbox/payments control plane, and expiry on the clock."""

from __future__ import annotations

import html
import io
import re
import struct
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import segno
from epayment_support import assert_schema, create_body, merchant, partner


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


@pytest.mark.parametrize("env", ["test", "production"])
async def test_landing_page_approve_redirects_to_return_url(sandbox, env):
    shop = merchant(sandbox, env=env)
    created = await shop.create(create_body("order-land-0001", 12345, paymentDescription="Wool socks, size 42"))
    url = created.json["redirectUrl"]
    assert url.startswith(sandbox.url(env) + "/_sandbox/landing?token=")
    async with sandbox.session.get(url) as resp:
        page = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
    unit = sandbox.runtime.world.sales_units[shop.msn]
    assert html.escape(unit.name) in page
    assert "123.45 NOK" in page and "Wool socks, size 42" in page
    assert re.search(r"<button[^>]*>Approve</button>", page) and re.search(r"<button[^>]*>Reject</button>", page)
    token = token_of(url)
    async with sandbox.session.post(sandbox.url(env) + "/_sandbox/landing/approve", data={"token": token},
                                    allow_redirects=False) as resp:
        assert resp.status == 303
        assert resp.headers["Location"] == "https://shop.example.com/return?order=1"
    got = (await shop.get("order-land-0001")).json
    assert got["state"] == "AUTHORIZED" and got["aggregate"]["authorizedAmount"]["value"] == 12345
    # the page now says what happened and offers no buttons
    async with sandbox.session.get(url) as resp:
        page = await resp.text()
    assert "AUTHORIZED" in page and "<button" not in page


async def test_landing_page_reject_aborts(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("order-land-0002"))
    token = token_of(created.json["redirectUrl"])
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/reject", data={"token": token}) as resp:
        assert resp.status == 200 and "ABORTED" in await resp.text()
    assert (await shop.get("order-land-0002")).json["state"] == "ABORTED"
    assert [e["name"] for e in (await shop.events("order-land-0002")).json] == ["CREATED", "ABORTED"]
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/approve", data={"token": token}) as resp:
        assert resp.status == 400 and "ABORTED" in (await resp.json())["detail"]


async def test_landing_page_shows_why_a_magic_amount_fails(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("order-land-0003", 186))
    async with sandbox.session.get(created.json["redirectUrl"]) as resp:
        page = await resp.text()
    assert "cannot be approved" in page and "expired" in page and 'data-error-code="10040"' in page
    assert re.search(r"<button[^>]*disabled[^>]*>Approve</button>", page)
    reply = await sandbox.request("POST", "/_sandbox/landing/approve", "test",
                                  json_body={"token": token_of(created.json["redirectUrl"])})
    assert reply.status == 400 and "expired" in reply.json["detail"]
    assert (await shop.get("order-land-0003")).json["state"] == "CREATED"


async def test_landing_page_refuses_bad_tokens(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("order-land-0004"))
    token = token_of(created.json["redirectUrl"])
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for query in ("", "?token=", "?token=nonsense", f"?token={forged}"):
        reply = await sandbox.request("GET", "/_sandbox/landing" + query, "test")
        assert reply.status == 400, (query, reply.text)
    sandbox.runtime.reset()  # the payment is gone: its link no longer opens
    assert (await sandbox.request("GET", f"/_sandbox/landing?token={token}", "test")).status == 404


@pytest.mark.parametrize(("fmt", "content_type", "magic"), [
    (None, "image/svg+xml", b"<svg"), ({"format": "IMAGE/SVG+XML"}, "image/svg+xml", b"<svg"),
    ({"format": "IMAGE/PNG", "size": 300}, "image/png", b"\x89PNG")])
async def test_qr_flow_returns_a_qr_image_of_the_landing_page(sandbox, fmt, content_type, magic):
    shop = merchant(sandbox)
    body = create_body("order-qr-00001", flow="QR")
    if fmt:
        body["qrFormat"] = fmt
    created = await shop.create(body)
    assert created.status == 201
    assert_schema("CreatePaymentResponse", created.json)
    url = created.json["redirectUrl"]
    assert url.startswith(sandbox.url("test") + "/_sandbox/qr?token=")
    async with sandbox.session.get(url) as resp:
        assert resp.status == 200 and resp.content_type == content_type
        image = await resp.read()
    assert magic in image[:200]
    if content_type == "image/png":
        width = struct.unpack(">I", image[16:20])[0]
        assert 200 <= width <= 300
    # the QR code encodes the landing page, which works
    landing = sandbox.url("test") + "/_sandbox/landing?token=" + token_of(url)
    async with sandbox.session.get(landing) as resp:
        assert resp.status == 200


async def test_qr_target_url_format_returns_the_landing_url(sandbox):
    created = await merchant(sandbox).create(create_body("order-qr-00002", flow="QR",
                                                         qrFormat={"format": "TEXT/TARGETURL"}))
    assert created.json["redirectUrl"].startswith(sandbox.url("test") + "/_sandbox/landing?token=")


async def test_qr_code_decodes_to_the_landing_url(sandbox):
    """segno draws what it is given; check it was given the landing URL by re-encoding and comparing."""
    created = await merchant(sandbox).create(create_body("order-qr-00003", flow="QR"))
    url = created.json["redirectUrl"]
    async with sandbox.session.get(url) as resp:
        svg = await resp.read()
    landing = sandbox.url("test") + "/_sandbox/landing?token=" + token_of(url)
    expected = io.BytesIO()
    segno.make(landing, error="m").save(expected, kind="svg", scale=8, xmldecl=False)
    assert svg == expected.getvalue()


async def test_control_plane_acts_as_the_user_in_each_environment(sandbox):
    janitor = partner(sandbox)
    for reference, action, state in (("order-ctl-00001", "approve", "AUTHORIZED"),
                                     ("order-ctl-00002", "reject", "ABORTED"),
                                     ("order-ctl-00003", "expire", "EXPIRED")):
        assert (await janitor.create(create_body(reference, flow="PUSH_MESSAGE"))).status == 201
        wrong_env = await sandbox.request("POST", f"/_sandbox/payments/{janitor.msn}/{reference}/{action}", "test")
        assert wrong_env.status == 404
        reply = await sandbox.request("POST", f"/_sandbox/payments/{janitor.msn}/{reference}/{action}",
                                      "production")
        assert reply.status == 200 and reply.json["state"] == state
        assert_schema("GetPaymentResponse", reply.json)
        assert (await janitor.get(reference)).json["state"] == state
    again = await sandbox.request("POST", f"/_sandbox/payments/{janitor.msn}/order-ctl-00001/approve", "production")
    assert again.status == 200
    clash = await sandbox.request("POST", f"/_sandbox/payments/{janitor.msn}/order-ctl-00001/expire", "production")
    assert clash.status == 409
    names = [e["name"] for e in (await janitor.events("order-ctl-00003")).json]
    assert names == ["CREATED", "EXPIRED"]


async def test_created_payments_expire_after_ten_minutes_of_virtual_time(sandbox):
    shop = merchant(sandbox)
    seen: list[str] = []
    sandbox.runtime.listeners.append(lambda kind, payload: seen.append(kind))
    assert (await shop.create(create_body("order-exp-00001"))).status == 201
    await shop.authorized("order-exp-00002")
    moved = await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 599})
    assert moved.status == 200
    assert (await shop.get("order-exp-00001")).json["state"] == "CREATED"
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 2})
    # the clock call itself expired it: the event went out without touching the payment
    assert seen.count("epayment.expired") == 1
    got = (await shop.get("order-exp-00001")).json
    assert got["state"] == "EXPIRED"
    assert (await shop.get("order-exp-00002")).json["state"] == "AUTHORIZED"
    events = (await shop.events("order-exp-00001")).json
    assert [e["name"] for e in events] == ["CREATED", "EXPIRED"]
    landing = await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/order-exp-00001/approve", "test")
    assert landing.status == 409 or landing.status == 400


async def test_expiry_is_checked_on_access_too(sandbox):
    """Even if nobody reads the clock, the next access to the payment sees it expired."""
    shop = merchant(sandbox)
    assert (await shop.create(create_body("order-exp-00003"))).status == 201
    sandbox.runtime.clock.advance(601)  # moved directly, no HTTP clock call
    reply = await shop.force_approve("order-exp-00003")
    assert reply.status == 400 and "EXPIRED" in reply.json["detail"]


async def test_long_living_payment_expires_at_expires_at(sandbox):
    shop = merchant(sandbox)
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    now = sandbox.runtime.clock.now()
    at = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    receipt = {"orderLines": [{"name": "Socks", "id": "1", "totalAmount": 10000, "totalAmountExcludingTax": 8000,
                               "totalTaxAmount": 2000, "taxPercentage": 25}],
               "bottomLine": {"currency": "NOK"}}
    body = create_body("order-long-0001", expiresAt=at, receipt=receipt)
    created = await shop.create(body)
    assert created.status == 201, created.text
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3600})
    shop.forget_token()  # test tokens live an hour on the same clock
    assert (await shop.get("order-long-0001")).json["state"] == "CREATED"
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3600})
    shop.forget_token()
    assert (await shop.get("order-long-0001")).json["state"] == "EXPIRED"
    now = sandbox.runtime.clock.now()
    at = (now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    too_soon = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = await shop.create(create_body("order-long-0002", expiresAt=too_soon, receipt=receipt))
    assert reply.status == 400 and "expiresAt" in reply.text
    reply = await shop.create(create_body("order-long-0003", expiresAt=at))
    assert reply.status == 400 and "receipt" in reply.text


async def test_landing_forms_that_cannot_be_read_are_400(sandbox):
    for content_type in ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain"):
        reply = await sandbox.request("POST", "/_sandbox/landing/approve", "test", data=b"token=%ff%fe\xff",
                                      headers={"Content-Type": content_type})
        assert reply.status == 400, (content_type, reply.text)


async def test_reject_page_links_back_only_to_safe_return_urls(sandbox):
    """An app's custom scheme is linked back to; a script URL never gets that far: it is refused at create
    (it used to be accepted and only left unlinked; tests/evidence/test_security_pages.py has the rest)."""
    shop = merchant(sandbox)
    created = await shop.create(create_body("order-land-0005", flow="NATIVE_REDIRECT", returnUrl="myapp://done"))
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/reject",
                                    data={"token": token_of(created.json["redirectUrl"])}) as resp:
        page = await resp.text()
    assert resp.status == 200 and "Back to the merchant" in page and 'href="myapp://done"' in page
    refused = await shop.create(create_body("order-land-0006", flow="NATIVE_REDIRECT", returnUrl="javascript:alert(1)"))
    assert refused.status == 400 and refused.json["extraDetails"][0]["name"] == "returnUrl", refused.text
