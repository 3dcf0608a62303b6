"""The two token endpoints, for every key type in every environment."""

from __future__ import annotations

import base64

import jwt
import pytest

from sandbox.core.spec import SpecSchemas
from sandbox.testing import started

TOKEN_SPEC = SpecSchemas("access-token-2024.yaml")


def standard_headers(keyset: dict, sub: str = "primary") -> dict:
    return {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": keyset[f"subscription_key_{sub}"] or ""}


def basic(keyset: dict) -> dict:
    raw = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
    return {"Authorization": f"Basic {raw}", "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("env,lifetime", [("test", 3600), ("production", 86400)])
@pytest.mark.parametrize("sub", ["primary", "secondary"])
async def test_merchant_keys_get_a_standard_token_in_their_environment(sandbox, env, lifetime, sub):
    keyset = sandbox.key("merchant", env)
    reply = await sandbox.request("POST", "/accesstoken/get", env, headers=standard_headers(keyset, sub))
    assert reply.status == 200, reply.text
    body = reply.json
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "expires_on", "not_before", "resource",
                         "access_token"}
    assert all(isinstance(value, str) for value in body.values())
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == str(lifetime)
    assert int(body["expires_on"]) - int(body["not_before"]) == lifetime
    assert TOKEN_SPEC.errors("AuthorizationTokenResponse", body) == []
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["env"] == env and claims["kt"] == "merchant" and claims["owner"] == keyset["owner"]
    assert claims["exp"] - claims["iat"] == lifetime and "nbf" in claims


async def test_path_is_matched_case_insensitively(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accessToken/get", "test", headers=standard_headers(keyset))
    assert reply.status == 200


async def test_what_the_official_sdk_sends_is_accepted(sandbox):
    """JSON content type with an empty body and an empty 'Authorization: Bearer' header."""
    keyset = sandbox.key("merchant", "test")
    headers = standard_headers(keyset) | {"Content-Type": "application/json", "Authorization": "Bearer ",
                                          "Vipps-System-Name": "", "Vipps-System-Version": ""}
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=headers, data=b"")
    assert reply.status == 200, reply.text


async def test_merchant_keys_fail_in_the_other_environment(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "production", headers=standard_headers(keyset))
    # Azure AD: the production directory holds no test application (AADSTS700016, 400); the why is in the header
    assert reply.status == 400 and reply.json["error_codes"] == [700016]
    assert "other environment" in reply.headers["Vipps-Sandbox-Reason"]


async def test_partner_keys_work_in_production_only(sandbox):
    keyset = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    prod = await sandbox.request("POST", "/accesstoken/get", "production", headers=standard_headers(keyset))
    assert prod.status == 200
    assert prod.json["expires_in"] == "86400"
    test = await sandbox.request("POST", "/accesstoken/get", "test", headers=standard_headers(keyset))
    assert test.status == 400 and test.json["error_codes"] == [700016]
    assert "Partner keys only work in the production environment" in test.headers["Vipps-Sandbox-Reason"]
    assert test.headers["Vipps-Sandbox-Rule"] == "partner-keys-production-only"


@pytest.mark.parametrize("key_type", ["management", "accounting"])
@pytest.mark.parametrize("env", ["test", "production"])
async def test_miami_key_types_are_pointed_to_miami(sandbox, key_type, env):
    keyset = sandbox.key(key_type, "production")
    headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"]}
    reply = await sandbox.request("POST", "/accesstoken/get", env, headers=headers)
    assert reply.status == 400 and reply.json["error_codes"] == [700016]
    assert "/miami/v1/token" in reply.headers["Vipps-Sandbox-Reason"]


@pytest.mark.parametrize("key_type", ["management", "accounting"])
async def test_miami_token_for_management_and_accounting_keys(sandbox, key_type):
    keyset = sandbox.key(key_type, "production")
    reply = await sandbox.request("POST", "/miami/v1/token", "production", headers=basic(keyset),
                                  data="grant_type=client_credentials")
    assert reply.status == 200, reply.text
    assert set(reply.json) == {"access_token", "token_type", "expires_in"}
    assert reply.json["token_type"] == "Bearer" and reply.json["expires_in"] == 900
    claims = jwt.decode(reply.json["access_token"], options={"verify_signature": False})
    assert claims["kt"] == key_type and claims["exp"] - claims["iat"] == 900


@pytest.mark.parametrize("key_type", ["management", "accounting"])
async def test_miami_keys_fail_in_test(sandbox, key_type):
    keyset = sandbox.key(key_type, "production")
    reply = await sandbox.request("POST", "/miami/v1/token", "test", headers=basic(keyset),
                                  data="grant_type=client_credentials")
    assert reply.status == 401
    assert reply.json["error"] == "invalid_client"


async def test_miami_accepts_the_older_header_form(sandbox):
    keyset = sandbox.key("management", "production")
    headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
               "Content-Type": "application/x-www-form-urlencoded"}
    reply = await sandbox.request("POST", "/miami/v1/token", "production", headers=headers,
                                  data="grant_type=client_credentials")
    assert reply.status == 200, reply.text


@pytest.mark.parametrize("key_type,env", [("merchant", "test"), ("merchant", "production"),
                                          ("partner", "production")])
async def test_standard_keys_are_pointed_to_accesstoken(sandbox, key_type, env):
    keyset = sandbox.key(key_type, env)
    reply = await sandbox.request("POST", "/miami/v1/token", env, headers=basic(keyset),
                                  data="grant_type=client_credentials")
    assert reply.status == 401
    assert reply.json["error"] == "invalid_client"
    assert "/accesstoken/get" in reply.json["error_description"]


async def test_miami_string_expires_in_is_configurable(settings):
    settings.miami_expires_in_as_string = True
    async with started(settings) as client:
        keyset = client.key("accounting", "production")
        reply = await client.request("POST", "/miami/v1/token", "production", headers=basic(keyset),
                                     data="grant_type=client_credentials")
        assert reply.json["expires_in"] == "900"
        assert TOKEN_SPEC.errors("TokenResponse", reply.json) == []


async def test_host_header_selects_the_environment(sandbox):
    keyset = sandbox.key("partner", "production")
    # Sent to the test port, but addressed to api.vipps.no: served as production.
    headers = standard_headers(keyset) | {"Host": "api.vipps.no"}
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=headers)
    assert reply.status == 200
    health = await sandbox.request("GET", "/_sandbox/health", "production", headers={"Host": "apitest.vipps.no"})
    assert health.json["environment"] == "test"


async def test_partner_keys_without_system_headers_get_a_warning(sandbox):
    keyset = sandbox.key("partner", "production")
    reply = await sandbox.request("POST", "/accesstoken/get", "production", headers=standard_headers(keyset))
    assert "Vipps-System-Name" in reply.headers["Vipps-Sandbox-Warning"]
    full = standard_headers(keyset) | {"Vipps-System-Name": "acme", "Vipps-System-Version": "3.1.2",
                                       "Vipps-System-Plugin-Name": "acme-webshop",
                                       "Vipps-System-Plugin-Version": "4.5.6"}
    reply = await sandbox.request("POST", "/accesstoken/get", "production", headers=full)
    assert reply.status == 200 and "Vipps-Sandbox-Warning" not in reply.headers


async def test_system_header_longer_than_30_characters_is_a_400_naming_it(sandbox):
    keyset = sandbox.key("merchant", "test")
    headers = standard_headers(keyset) | {"Vipps-System-Plugin-Name": "x" * 31}
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=headers)
    assert reply.status == 400
    assert "Vipps-System-Plugin-Name" in reply.text
    ok = await sandbox.request("GET", "/_sandbox/health", "test", headers={"Vipps-System-Name": "y" * 30})
    assert ok.status == 200


async def test_strict_headers_refuse_partner_keys_without_system_headers(settings):
    settings.strict_headers = True
    async with started(settings) as client:
        keyset = client.key("partner", "production")
        reply = await client.request("POST", "/accesstoken/get", "production", headers=standard_headers(keyset))
        assert reply.status == 400
        assert "Vipps-System-Name" in reply.text
        merchant = client.key("merchant", "test")
        assert (await client.request("POST", "/accesstoken/get", "test",
                                     headers=standard_headers(merchant))).status == 200


async def test_a_long_system_header_cannot_hide_behind_a_short_copy(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=standard_headers(keyset))
    assert reply.status == 200
    token = reply.json["access_token"]
    from multidict import CIMultiDict

    headers = CIMultiDict({"Authorization": f"Bearer {token}",
                           "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
    headers.add("Vipps-System-Plugin-Name", "p")
    headers.add("Vipps-System-Plugin-Name", "a" * 31)
    async with sandbox.session.get(sandbox.url("test") + "/epayment/v1/payments/some-ref-0001",
                                   headers=headers) as resp:
        assert resp.status == 400
        assert "Vipps-System-Plugin-Name" in await resp.text()


async def test_token_responses_and_gateway_refusals_carry_the_decision_header(sandbox):
    keyset = sandbox.key("merchant", "test")
    ok = await sandbox.request("POST", "/accesstoken/get", "test", headers=standard_headers(keyset))
    assert ok.headers["Vipps-Sandbox-Decision"] == "allow"
    refused = await sandbox.request("POST", "/accesstoken/get", "test",
                                    headers=standard_headers(keyset) | {"client_secret": "wrong"})
    assert refused.headers["Vipps-Sandbox-Decision"] == "deny"
    no_key = await sandbox.request("GET", "/epayment/v1/payments/some-ref-0001", "test",
                                   headers={"Authorization": "Bearer xyz"})
    assert no_key.status == 401 and no_key.headers["Vipps-Sandbox-Decision"] == "deny"
    health = await sandbox.request("GET", "/_sandbox/health", "test")
    assert "Vipps-Sandbox-Decision" not in health.headers
