"""CIBA over real HTTP: start, authorization_pending, slow_down, approve or reject on the phone (control plane),
tokens once, expiry on the virtual clock, invalid_user, the spec's camelCase names, user-exists, and the
login_to_webpage variant with its ciba-redirect grant."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
from login_support import PREFIX, basic, callback, login_client

from sandbox.core.settings import Settings

CIBA = "/vipps-login-ciba/api/backchannel/authentication"
GRANT = "urn:openid:params:grant-type:ciba"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, login_ciba_interval=1)


async def start(sandbox, client: dict, **fields: str):
    return await sandbox.request("POST", CIBA, "test", data=urlencode(fields),
                                 headers=FORM | {"Authorization": basic(client)})


async def answer(sandbox, auth_req_id: str, action: str = "approve"):
    return await sandbox.request("POST", f"/_sandbox/login/ciba/{action}", "test",
                                 json_body={"auth_req_id": auth_req_id})


async def poll(sandbox, client: dict, auth_req_id: str, grant: str = GRANT):
    return await sandbox.request("POST", PREFIX + "oauth2/token", "test",
                                 data=urlencode({"grant_type": grant, "auth_req_id": auth_req_id}),
                                 headers=FORM | {"Authorization": basic(client)})


def adult(sandbox) -> str:
    return sandbox.runtime.world.users_by_role["no-user"].phone_number


async def test_pending_slow_down_approve_then_tokens_once(sandbox):
    client = login_client(sandbox)
    reply = await start(sandbox, client, login_hint=f"urn:msisdn:{adult(sandbox)}", scope="openid name",
                        binding_message="SHOP-1", requested_expiry="120")
    assert reply.status == 200 and reply.json["expires_in"] == 120 and reply.json["interval"] == 1
    auth_req_id = reply.json["auth_req_id"]
    too_fast = await poll(sandbox, client, auth_req_id)
    assert too_fast.status == 400 and too_fast.json["error"] == "slow_down"
    await asyncio.sleep(1)
    pending = await poll(sandbox, client, auth_req_id)
    assert pending.status == 400 and pending.json == {
        "error": "authorization_pending", "error_description": "The authorization request is still pending"}
    other = await poll(sandbox, login_client(sandbox, role="independent-1"), auth_req_id)
    assert other.status == 400 and other.json["error"] == "invalid_grant"
    approved = await answer(sandbox, auth_req_id)
    assert approved.status == 200 and approved.json["status"] == "approved"
    await asyncio.sleep(1)
    tokens = await poll(sandbox, client, auth_req_id)
    assert tokens.status == 200, tokens.text
    claims = jwt.decode(tokens.json["id_token"], options={"verify_signature": False})
    assert claims["auth_req_id"] == auth_req_id and "nonce" not in claims and tokens.json["expires_in"] == 300
    await asyncio.sleep(1)
    again = await poll(sandbox, client, auth_req_id)
    assert again.status == 400 and again.json["error"] == "invalid_grant"


async def test_rejected_and_expired(sandbox):
    client = login_client(sandbox)
    first = (await start(sandbox, client, login_hint=f"urn:msisdn:{adult(sandbox)}", scope="openid")).json
    await answer(sandbox, first["auth_req_id"], "reject")
    await asyncio.sleep(1)
    rejected = await poll(sandbox, client, first["auth_req_id"])
    assert rejected.status == 400 and rejected.json["error"] == "access_denied"
    second = (await start(sandbox, client, loginHint=f"urn:msisdn:{adult(sandbox)}", scope="openid",
                          bindingMessage="ABCDE")).json  # the spec's camelCase names
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 601})
    await asyncio.sleep(1)
    expired = await poll(sandbox, client, second["auth_req_id"])
    assert expired.status == 400 and expired.json["error"] == "expired_token"
    late = await sandbox.request("POST", "/_sandbox/login/ciba/approve", "test",
                                 json_body={"auth_req_id": second["auth_req_id"]})
    assert late.status == 409


@pytest.mark.parametrize("fields,error,code", [
    ({"login_hint": "urn:msisdn:4700000000"}, "invalid_request", "invalid_user"),
    ({"login_hint": "under-15"}, "invalid_request", "invalid_user"),
    ({"login_hint": "tel:4712345678"}, "invalid_request", None),
    ({"binding_message": "lower-case"}, "invalid_request", None),
    ({"requested_expiry": "30"}, "invalid_request", None),
    ({"scope": "name"}, "invalid_scope", None),
])
async def test_documented_refusals(sandbox, fields, error, code):
    young = sandbox.runtime.world.users_by_role["no-under-15"].phone_number
    form = {"login_hint": f"urn:msisdn:{adult(sandbox)}", "scope": "openid", **fields}
    if form["login_hint"] == "under-15":
        form["login_hint"] = f"urn:msisdn:{young}"
    reply = await start(sandbox, login_client(sandbox), **form)
    assert reply.status == 400 and reply.json["error"] == error and reply.json.get("error_code") == code


async def test_ciba_needs_client_credentials(sandbox):
    reply = await sandbox.request("POST", CIBA, "test", headers=FORM,
                                  data=urlencode({"login_hint": f"urn:msisdn:{adult(sandbox)}", "scope": "openid"}))
    assert reply.status == 401 and reply.json["error"] == "invalid_client"


async def test_user_exists(sandbox):
    client = login_client(sandbox)
    for number, exists in ((adult(sandbox), True), ("4700000001", False)):
        reply = await sandbox.request("POST", "/vipps-login-ciba/api/v1/user-exists", "test",
                                      data=urlencode({"login_hint": f"urn:msisdn:{number}"}),
                                      headers=FORM | {"Authorization": basic(client)})
        assert reply.status == 200 and reply.json == {"exists": exists}


async def test_login_to_webpage_redirects_with_a_code_for_the_redirect_grant(sandbox):
    client = login_client(sandbox)
    reply = await start(sandbox, client, login_hint=f"urn:msisdn:{adult(sandbox)}", scope="openid name",
                        requested_flow="login_to_webpage", redirect_uri=callback(), state="ciba-state-1")
    auth_req_id = reply.json["auth_req_id"]
    approved = await answer(sandbox, auth_req_id)
    location = approved.json["location"]
    assert location.startswith(callback() + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert query["state"] == "ciba-state-1"
    form = {"grant_type": "urn:vipps:params:grant-type:ciba-redirect", "code": query["code"]}
    headers = FORM | {"Authorization": basic(client)}
    tokens = await sandbox.request("POST", PREFIX + "oauth2/token", "test", data=urlencode(form), headers=headers)
    assert tokens.status == 200, tokens.text
    again = await sandbox.request("POST", PREFIX + "oauth2/token", "test", data=urlencode(form), headers=headers)
    assert again.status == 400 and again.json["error"] == "invalid_grant"
    unregistered = await start(sandbox, client, login_hint=f"urn:msisdn:{adult(sandbox)}", scope="openid",
                               requested_flow="login_to_webpage", redirect_uri="https://evil.example/")
    assert unregistered.status == 400
