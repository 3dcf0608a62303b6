"""Attacks on the Login API, each refused with the right error: code replay, a code used by another client, a
wrong or missing PKCE verifier, a redirect_uri one character off, open redirects through /oauth2/auth and the
login page, a short state, a cross-site post to the consent form, tokens where they do not belong."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from login_support import (
    PREFIX,
    authorize,
    basic,
    callback,
    code_for,
    consent,
    login_client,
    login_id,
    pkce_pair,
    token,
)

CODE = "authorization_code"


def exchange(code: str, redirect_uri: str | None = None, **extra: str) -> dict:
    return {"grant_type": CODE, "code": code, "redirect_uri": redirect_uri or callback(), **extra}


async def test_a_code_works_once(sandbox):
    client = login_client(sandbox)
    back = await code_for(sandbox, client)
    assert (await token(sandbox, client, exchange(back["code"]))).status == 200
    replay = await token(sandbox, client, exchange(back["code"]))
    assert replay.status == 400 and replay.json["error"] == "invalid_grant"
    assert replay.headers["Vipps-Sandbox-Rule"] == "login-code-reused"


async def test_a_code_of_another_client_is_refused(sandbox):
    mine, theirs = login_client(sandbox), login_client(sandbox, role="independent-1")
    back = await code_for(sandbox, mine)
    stolen = await token(sandbox, theirs, exchange(back["code"]))
    assert stolen.status == 400 and stolen.json["error"] == "invalid_grant"
    assert stolen.headers["Vipps-Sandbox-Rule"] == "login-code-other-client"


@pytest.mark.parametrize("verifier,rule", [(None, "login-pkce-verifier-missing"),
                                           ("x" * 43, "login-pkce-verifier-wrong")])
async def test_pkce_verifier_missing_or_wrong(sandbox, verifier, rule):
    client = login_client(sandbox)
    right, challenge = pkce_pair()
    back = await code_for(sandbox, client, code_challenge=challenge, code_challenge_method="S256")
    form = exchange(back["code"]) | ({"code_verifier": verifier} if verifier else {})
    reply = await token(sandbox, client, form)
    assert reply.status == 400 and reply.json["error"] == "invalid_grant"
    assert reply.headers["Vipps-Sandbox-Rule"] == rule
    assert (await token(sandbox, client, exchange(back["code"], code_verifier=right))).status == 200


async def test_plain_pkce_is_the_default_method(sandbox):
    client = login_client(sandbox)
    verifier = "v" * 50
    back = await code_for(sandbox, client, code_challenge=verifier)
    assert (await token(sandbox, client, exchange(back["code"], code_verifier=verifier))).status == 200


@pytest.mark.parametrize("uri", ["http://127.0.0.1:53682/callbacks", "http://127.0.0.1:53682/callback/",
                                 "http://127.0.0.1:53682/Callback", "https://127.0.0.1:53682/callback",
                                 "http://127.0.0.2:53682/callback", "http://127.0.0.1@evil.example/callback",
                                 "http://127.0.0.1:53682@evil.example/callback", "https://evil.example/callback",
                                 "http://127.0.0.1:53682/callback?x=1", None])
async def test_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(sandbox, uri):
    response = await authorize(sandbox, login_client(sandbox), redirect_uri=uri)
    assert response.status == 400 and "Location" not in response.headers
    assert response.headers["Vipps-Sandbox-Rule"] == "login-redirect-uri-unregistered"
    assert "Content-Security-Policy" in response.headers and response.content_type == "text/html"


async def test_loopback_redirect_uris_match_on_any_port(sandbox):
    client = login_client(sandbox)
    for uri in ("http://127.0.0.1/callback", "http://localhost:8000/callback", "http://127.0.0.1:65535/callback"):
        response = await authorize(sandbox, client, redirect_uri=uri)
        assert response.status == 302 and response.headers["Location"].startswith("/_sandbox/login?login="), uri


async def test_the_token_call_needs_the_same_redirect_uri(sandbox):
    client = login_client(sandbox)
    back = await code_for(sandbox, client)
    reply = await token(sandbox, client, exchange(back["code"], "http://127.0.0.1:53683/callback"))
    assert reply.status == 400 and reply.json["error"] == "invalid_grant"
    assert reply.headers["Vipps-Sandbox-Rule"] == "login-redirect-uri-differs"


async def test_registered_redirect_uris_are_exact_and_listed(sandbox):
    client = login_client(sandbox)
    shop = "https://shop.example/login/callback"
    reply = await sandbox.request("POST", f"/_sandbox/login/clients/{client['client_id']}", "test",
                                  json_body={"redirectUris": [shop]})
    assert reply.status == 200 and shop in reply.json["redirectUris"]
    keys = await sandbox.request("GET", "/_sandbox/keys", "test")
    row = next(row for row in keys.json if row["client_id"] == client["client_id"])
    assert row["redirect_uris"] == ["http://127.0.0.1/callback", "http://localhost/callback", shop]
    assert (await authorize(sandbox, client, redirect_uri=shop)).status == 302
    assert (await authorize(sandbox, client, redirect_uri=shop + "/")).status == 400
    bad = await sandbox.request("POST", f"/_sandbox/login/clients/{client['client_id']}", "test",
                                json_body={"redirectUris": ["javascript:alert(1)"]})
    assert bad.status == 400


@pytest.mark.parametrize("params,error", [({"state": "short"}, "invalid_request"),
                                          ({"scope": "name"}, "invalid_scope"),
                                          ({"response_type": "token"}, "unsupported_response_type"),
                                          ({"code_challenge_method": "S512", "code_challenge": "c" * 43},
                                           "invalid_request")])
async def test_redirectable_errors_go_back_with_error_and_state(sandbox, params, error):
    response = await authorize(sandbox, login_client(sandbox), **params)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(callback() + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error] and query["error_description"]
    assert query["state"] == [params.get("state", "state-123456")]


async def test_the_login_page_cannot_be_made_to_redirect_elsewhere(sandbox):
    client = login_client(sandbox)
    response = await authorize(sandbox, client)
    location = response.headers["Location"] + "&redirect_uri=https%3A%2F%2Fevil.example%2F"
    page = await sandbox.session.get(sandbox.url("test") + location)
    assert page.status == 200 and "evil.example" not in await page.text()
    form = {"login": login_id(location), "user": sandbox.runtime.world.users_by_role["no-user"].phone_number,
            "redirect_uri": "https://evil.example/", "backToPhone": "https://evil.example/"}
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/login/consent", data=form,
                                    allow_redirects=False) as posted:
        assert posted.status == 303 and posted.headers["Location"].startswith(callback() + "?code=")


async def test_a_cross_site_post_to_the_consent_form_is_refused(sandbox):
    response = await authorize(sandbox, login_client(sandbox))
    form = {"login": login_id(response.headers["Location"]),
            "user": sandbox.runtime.world.users_by_role["no-user"].phone_number}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Referer": "https://evil.example/page"}):
        async with sandbox.session.post(sandbox.url("test") + "/_sandbox/login/consent", data=form, headers=headers,
                                        allow_redirects=False) as posted:
            assert posted.status == 403, headers
    back = await consent(sandbox, response.headers["Location"])  # the login is still there, untouched
    assert back["code"]


async def test_cancel_is_access_denied_and_under_15_is_refused(sandbox):
    client = login_client(sandbox)
    response = await authorize(sandbox, client)
    young = sandbox.runtime.world.users_by_role["no-under-15"]
    refused = await sandbox.request("POST", "/_sandbox/login/approve", "test",
                                    json_body={"loginId": login_id(response.headers["Location"]),
                                               "phoneNumber": young.phone_number})
    assert refused.status == 409 and refused.headers["Vipps-Sandbox-Rule"] == "login-user-refused"
    back = await consent(sandbox, response.headers["Location"], cancel=True)
    assert back["error"] == "access_denied" and back["state"] == "state-123456"


async def test_codes_expire_on_the_virtual_clock(sandbox):
    client = login_client(sandbox)
    back = await code_for(sandbox, client)
    assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 180})).status == 200
    reply = await token(sandbox, client, exchange(back["code"]))
    assert reply.status == 400 and reply.json["error"] == "invalid_grant"


async def test_client_authentication(sandbox):
    client = login_client(sandbox)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    back = await code_for(sandbox, client)
    wrong = await token(sandbox, {**client, "client_secret": "wrong"}, exchange(back["code"]))
    assert wrong.status == 401 and wrong.json["error"] == "invalid_client"
    # openid-client's Basic: id and secret form-urlencoded before base64 (a secret with + / = differs)
    from urllib.parse import quote_plus
    encoded = {"client_id": quote_plus(client["client_id"]), "client_secret": quote_plus(client["client_secret"])}
    assert (await token(sandbox, None, exchange(back["code"]), headers={"Authorization": basic(encoded)})).status == 200
    # client_secret_post works by default, and not once the client is switched to basic only
    back = await code_for(sandbox, client)
    post = exchange(back["code"], client_id=client["client_id"], client_secret=client["client_secret"])
    await sandbox.request("POST", f"/_sandbox/login/clients/{client['client_id']}", "test",
                          json_body={"basicOnly": True})
    refused = await token(sandbox, None, post)
    assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "login-client-secret-post-disabled"
    await sandbox.request("POST", f"/_sandbox/login/clients/{client['client_id']}", "test",
                          json_body={"basicOnly": False})
    assert (await token(sandbox, None, post)).status == 200
    nothing = await sandbox.request("POST", PREFIX + "oauth2/token", "test", data="grant_type=refresh_token",
                                    headers=headers | {"Authorization": basic(client)})
    assert nothing.status == 400 and nothing.json["error"] == "unsupported_grant_type"


async def test_partner_keys_use_their_token_and_the_msn_in_production(sandbox):
    partner = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    merchant = login_client(sandbox, "production")
    # msn= instead of client_id=: the same URL again, with the merchant's client_id
    response = await authorize(sandbox, merchant, "production", client_id=None, msn=msn)
    assert response.status == 302 and f"client_id={merchant['client_id']}" in response.headers["Location"]
    back = await code_for(sandbox, merchant, "production")
    bearer = {"Authorization": "Bearer " + await sandbox.token(partner)}
    no_msn = await token(sandbox, None, exchange(back["code"]), "production", headers=bearer)
    assert no_msn.status == 401 and no_msn.headers["Vipps-Sandbox-Rule"] == "partner-keys-need-msn"
    reply = await token(sandbox, None, exchange(back["code"]), "production",
                        headers=bearer | {"Merchant-Serial-Number": msn})
    assert reply.status == 200, reply.text
    import jwt
    assert jwt.decode(reply.json["id_token"], options={"verify_signature": False})["msn"] == msn
    management = sandbox.key("management", "production")
    mgmt = await token(sandbox, management, exchange(back["code"]), "production")
    assert mgmt.status == 401 and mgmt.json["error"] == "invalid_client"


async def test_the_login_access_token_reaches_only_login_userinfo(sandbox):
    client = login_client(sandbox)
    back = await code_for(sandbox, client)
    access = (await token(sandbox, client, exchange(back["code"]))).json["access_token"]
    user = {"Authorization": "Bearer " + access}
    for path in ("/vipps-userinfo-api/userinfo", "/vipps-userinfo-api/userinfo/"):
        assert (await sandbox.request("GET", path, "test", headers=user)).status == 200
    with_key = await sandbox.request("GET", "/vipps-userinfo-api/userinfo/", "test",
                                     headers=user | {"Ocp-Apim-Subscription-Key": client["subscription_key_primary"]})
    assert with_key.status == 401 and with_key.json["error"] == "invalid_token"
    merchant_token = {"Authorization": "Bearer " + await sandbox.token(client)}
    assert (await sandbox.request("GET", "/vipps-userinfo-api/userinfo/", "test", headers=merchant_token)).status == 401
    payments = await sandbox.request("GET", "/epayment/v1/payments/abc-12345", "test",
                                     headers=user | {"Ocp-Apim-Subscription-Key": client["subscription_key_primary"]})
    assert payments.status == 401
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 660})
    assert (await sandbox.request("GET", "/vipps-userinfo-api/userinfo/", "test", headers=user)).status == 401
