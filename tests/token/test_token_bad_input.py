"""Bad input at the token endpoints: always a 400 or 401 with a clear body, never a 500."""

from __future__ import annotations

import base64

import pytest


def creds(keyset: dict) -> dict:
    return {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}


def assert_clear(reply, statuses=(400, 401)):
    assert reply.status in statuses, (reply.status, reply.text)
    body = reply.json
    assert isinstance(body, dict) and body
    text = reply.text.lower()
    assert "traceback" not in text and "exception" not in text
    return body


@pytest.mark.parametrize("missing", ["client_id", "client_secret", "Ocp-Apim-Subscription-Key"])
@pytest.mark.parametrize("empty", [False, True])
async def test_missing_or_empty_standard_headers(sandbox, missing, empty):
    headers = creds(sandbox.key("merchant", "test"))
    if empty:
        headers[missing] = ""
    else:
        del headers[missing]
    body = assert_clear(await sandbox.request("POST", "/accesstoken/get", "test", headers=headers))
    if missing == "Ocp-Apim-Subscription-Key":
        assert body == {"statusCode": 401, "message": "Access denied due to missing subscription key. Make sure to "
                        "include subscription key when making requests to an API."}
    else:
        assert missing in body["error_description"]


async def test_wrong_secret_and_unknown_client(sandbox):
    headers = creds(sandbox.key("merchant", "test"))
    body = assert_clear(await sandbox.request("POST", "/accesstoken/get", "test",
                                              headers=headers | {"client_secret": "nope"}), (401,))
    assert body["error"] == "invalid_client" and "client secret" in body["error_description"]
    # an unknown client id is Azure AD's 400 (the Vipps FAQ's example), not a 401
    body = assert_clear(await sandbox.request("POST", "/accesstoken/get", "test",
                                              headers=headers | {"client_id": "00000000-0000-0000-0000-000000000000"}),
                        (400,))
    assert body["error"] == "unauthorized_client" and "Application with identifier" in body["error_description"]


async def test_subscription_key_of_other_keys_is_refused(sandbox):
    one, two = sandbox.keys("merchant", "test")[:2]
    headers = creds(one) | {"Ocp-Apim-Subscription-Key": two["subscription_key_primary"]}
    body = assert_clear(await sandbox.request("POST", "/accesstoken/get", "test", headers=headers), (401,))
    assert body["statusCode"] == 401 and "invalid subscription key" in body["message"]


async def test_msn_of_another_sales_unit_is_refused_at_the_token_endpoint(sandbox):
    one, two = sandbox.keys("merchant", "test")[:2]
    headers = creds(one) | {"Merchant-Serial-Number": two["owner"]}
    body = assert_clear(await sandbox.request("POST", "/accesstoken/get", "test", headers=headers), (401,))
    assert "Invalid MSN" in body["error_description"]


@pytest.mark.parametrize("auth", ["Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon").decode(),
                                  "Basic " + base64.b64encode(b"\xff\xfe:x").decode(), "Basic "])
async def test_basic_auth_that_is_not_valid(sandbox, auth):
    headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                              data="grant_type=client_credentials"))
    assert body["error"] in ("invalid_request", "invalid_client")


def basic(keyset):
    raw = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
    return {"Authorization": f"Basic {raw}", "Content-Type": "application/x-www-form-urlencoded"}


async def test_wrong_grant_type(sandbox):
    headers = basic(sandbox.key("management", "production"))
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                              data="grant_type=password"), (400,))
    assert body["error"] == "unsupported_grant_type"


async def test_missing_grant_type_is_invalid_client(sandbox):
    headers = basic(sandbox.key("management", "production"))
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                              data="scope=x"), (401,))
    assert body["error"] == "invalid_client"


async def test_json_body_to_miami(sandbox):
    headers = basic(sandbox.key("accounting", "production")) | {"Content-Type": "application/json"}
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                              data='{"grant_type":"client_credentials"}'), (400,))
    assert body["error"] == "invalid_request" and "x-www-form-urlencoded" in body["error_description"]


async def test_subscription_key_sent_to_miami_is_invalid_client(sandbox):
    headers = basic(sandbox.key("accounting", "production")) | {"Ocp-Apim-Subscription-Key": "abc"}
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                              data="grant_type=client_credentials"), (401,))
    assert body["error"] == "invalid_client"


async def test_no_credentials_at_miami(sandbox):
    body = assert_clear(await sandbox.request("POST", "/miami/v1/token", "production",
                                              data="grant_type=client_credentials",
                                              headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert body["error"] == "invalid_client"


@pytest.mark.parametrize("header", ["client_id", "client_secret", "Ocp-Apim-Subscription-Key",
                                    "Merchant-Serial-Number", "Vipps-System-Name"])
async def test_10kb_header_values(sandbox, header):
    headers = creds(sandbox.key("merchant", "test")) | {header: "A" * 10_000}
    assert_clear(await sandbox.request("POST", "/accesstoken/get", "test", headers=headers))


async def test_10kb_basic_auth(sandbox):
    headers = {"Authorization": "Basic " + "QUFB" * 2500, "Content-Type": "application/x-www-form-urlencoded"}
    assert_clear(await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                       data="grant_type=client_credentials"))


async def test_get_on_a_token_endpoint_is_a_clear_405(sandbox):
    reply = await sandbox.request("GET", "/accesstoken/get", "test")
    assert reply.status == 405 and reply.json["status"] == 405 if "status" in reply.json else reply.status == 405
