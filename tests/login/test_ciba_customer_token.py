"""CIBA with login_hint=urn:customer-token:<token>: the user who checked in at a sales unit's QR code (the QR API's
user.checked-in.v1) is asked to log in on the phone, without the merchant ever learning the phone number first.
The token names the user only to the sales unit whose code was scanned, and only while it lives."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from login_support import basic, login_client
from qr_support import call, eventually, inbox, merchant, register_check_in

CIBA = "/vipps-login-ciba/api/backchannel/authentication"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def check_in(sandbox, phone: str) -> str:
    """A test user scans the sales unit's callback QR; the customer token of the webhook it sends."""
    keys, msn = merchant(sandbox)
    await register_check_in(sandbox, keys, msn, "ciba-till")
    assert (await call(sandbox, "PUT", "/qr/v1/merchant-callback/ciba-1", keys, msn,
                       body={"locationDescription": "Till 1"})).status == 200
    code = (await call(sandbox, "GET", "/qr/v1/merchant-callback/ciba-1", keys, msn)).json["qrContent"]
    scan = await sandbox.request("POST", "/_sandbox/qr/scan", "test", json_body={"phoneNumber": phone,
                                                                                    "qrContent": code})
    assert scan.status == 200, scan.text
    [delivery] = await eventually(lambda: inbox(sandbox, "ciba-till"))
    return json.loads(delivery["body"])["customerToken"]


async def start(sandbox, client: dict, hint: str):
    return await sandbox.request("POST", CIBA, "test", data=urlencode({"login_hint": hint, "scope": "openid name"}),
                                 headers=FORM | {"Authorization": basic(client)})


async def test_a_check_in_s_customer_token_starts_a_login_on_that_user_s_phone(sandbox):
    user = sandbox.runtime.world.users_by_role["no-user"]
    token = await check_in(sandbox, user.phone_number)
    started = await start(sandbox, login_client(sandbox), f"urn:customer-token:{token}")
    assert started.status == 200, started.text
    async with sandbox.session.get(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}") as resp:
        page = await resp.text()
    assert started.json["auth_req_id"] in page  # the login request waits on the user's phone


async def test_another_sales_unit_an_unknown_or_an_expired_token_names_nobody(sandbox):
    user = sandbox.runtime.world.users_by_role["no-user"]
    token = await check_in(sandbox, user.phone_number)
    other = await start(sandbox, login_client(sandbox, role="independent-1"), f"urn:customer-token:{token}")
    assert other.status == 400 and other.json["error"] == "invalid_request"
    assert "another sales unit" in other.json["error_description"] and token not in other.text
    unknown = await start(sandbox, login_client(sandbox), "urn:customer-token:not-a-token")
    assert unknown.status == 400
    assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 16 * 60})).status \
        == 200
    expired = await start(sandbox, login_client(sandbox), f"urn:customer-token:{token}")
    assert expired.status == 400 and "expired" in expired.json["error_description"]
