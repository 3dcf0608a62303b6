"""Forged and stale access tokens are refused by the gateway with a 401, never accepted or a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import jwt
import pytest

PATH = "/epayment/v1/payments/forgery-ref-0001"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def parts(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (json.loads(base64.urlsafe_b64decode(pad(header))), json.loads(base64.urlsafe_b64decode(pad(payload))),
            signature)


def assemble(header: dict, payload: dict, signature: str) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


async def call(sandbox, keyset: dict, token: str, env: str = "test"):
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    return await sandbox.request("GET", PATH, env, headers=headers)


@pytest.fixture
async def merchant(sandbox):
    keyset = sandbox.key("merchant", "test")
    return keyset, await sandbox.token(keyset)


async def test_a_genuine_token_passes_the_gateway(sandbox, merchant):
    keyset, token = merchant
    reply = await call(sandbox, keyset, token)
    assert reply.status not in (401, 403)
    assert reply.headers["Vipps-Sandbox-Decision"] == "allow"


def assert_refused(reply, rule: str | None = None):
    assert reply.status == 401, reply.text
    assert reply.json["statusCode"] == 401 and reply.json["message"]
    if rule:
        assert reply.headers["Vipps-Sandbox-Rule"] == rule


async def test_alg_none(sandbox, merchant):
    keyset, token = merchant
    header, payload, _ = parts(token)
    assert_refused(await call(sandbox, keyset, assemble(header | {"alg": "none"}, payload, "")), "token-invalid")


async def test_hs256_keyed_with_the_rsa_public_key(sandbox, merchant):
    keyset, token = merchant
    header, payload, _ = parts(token)
    header = header | {"alg": "HS256"}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    secret = sandbox.runtime.tokens.public_pem
    signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    assert_refused(await call(sandbox, keyset, f"{signing_input}.{signature}"), "token-invalid")


async def test_tampered_claims(sandbox, merchant):
    keyset, token = merchant
    header, payload, signature = parts(token)
    other = sandbox.keys("merchant", "test")[1]
    forged = assemble(header, payload | {"cid": other["client_id"], "owner": other["owner"]}, signature)
    assert_refused(await call(sandbox, other, forged), "token-invalid")


async def test_tampered_claims_after_the_genuine_token_was_verified(sandbox, merchant):
    """A forgery that keeps the genuine token's signature, sent once the genuine token is in the cache of verified
    tokens (sandbox/gateway/tokens.py), is still checked whole: a cache keyed by a part of the token would let it
    through."""
    keyset, token = merchant
    assert (await call(sandbox, keyset, token)).headers["Vipps-Sandbox-Decision"] == "allow"
    header, payload, signature = parts(token)
    other = sandbox.keys("merchant", "test")[1]
    forged = assemble(header, payload | {"cid": other["client_id"], "owner": other["owner"]}, signature)
    assert forged.rsplit(".", 1)[1] == token.rsplit(".", 1)[1]
    assert_refused(await call(sandbox, other, forged), "token-invalid")
    assert (await call(sandbox, keyset, token)).headers["Vipps-Sandbox-Decision"] == "allow"


async def test_kid_swapped(sandbox, merchant):
    keyset, token = merchant
    header, payload, signature = parts(token)
    assert_refused(await call(sandbox, keyset, assemble(header | {"kid": "0123456789abcdef"}, payload, signature)),
                   "token-invalid")


async def test_garbage_and_empty_tokens(sandbox, merchant):
    keyset, _ = merchant
    for token in ("garbage", "a.b.c", "", "eyJ" * 500):
        reply = await call(sandbox, keyset, token)
        assert reply.status == 401 and reply.json["statusCode"] == 401


async def test_lowercase_bearer_is_not_bearer(sandbox, merchant):
    keyset, token = merchant
    headers = {"Authorization": f"bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    assert_refused(await sandbox.request("GET", PATH, "test", headers=headers), "token-missing")


async def test_expired_on_the_virtual_clock(sandbox, merchant):
    keyset, token = merchant
    reply = await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3601})
    assert reply.status == 200
    assert_refused(await call(sandbox, keyset, token), "token-expired")


async def test_not_yet_valid(sandbox, merchant):
    keyset, token = merchant
    _, payload, _ = parts(token)
    tokens = sandbox.runtime.tokens
    future = payload | {"nbf": payload["nbf"] + 600, "iat": payload["iat"] + 600}
    early = jwt.encode(future, tokens.private_key, algorithm="RS256", headers={"kid": tokens.kid})
    assert_refused(await call(sandbox, keyset, early), "token-not-yet-valid")


async def test_token_of_the_other_environment(sandbox):
    prod = sandbox.key("merchant", "production")
    token = await sandbox.token(prod)
    test_keys = sandbox.key("merchant", "test", owner=prod["owner"])
    assert_refused(await call(sandbox, test_keys, token, env="test"), "keys-stay-in-their-environment")
    # and its own subscription key on the wrong port fails at the subscription-key check
    assert_refused(await call(sandbox, prod, token, env="test"), "keys-stay-in-their-environment")


async def test_subscription_key_of_other_keys(sandbox, merchant):
    keyset, token = merchant
    other = sandbox.keys("merchant", "test")[1]
    assert_refused(await call(sandbox, other, token), "subscription-key-mismatch")


async def test_missing_subscription_key_for_a_standard_token(sandbox, merchant):
    _, token = merchant
    reply = await sandbox.request("GET", PATH, "test", headers={"Authorization": f"Bearer {token}"})
    assert reply.status == 401
    assert reply.json == {"statusCode": 401, "message": "Access denied due to missing subscription key. Make sure "
                          "to include subscription key when making requests to an API."}


async def test_token_of_another_sandbox_instance(sandbox, merchant):
    """A token signed by another app (another key id) is refused, even with the same fixture."""
    from sandbox.core.runtime import Runtime
    from sandbox.core.settings import Settings
    from sandbox.gateway.tokens import TokenService

    keyset, _ = merchant
    other_runtime = Runtime(Settings())
    other = TokenService(other_runtime.clock, other_runtime.world)
    from sandbox.core.model import Env

    foreign, _, _ = other.issue(other_runtime.world.keys[keyset["client_id"]], Env.TEST, 3600, "standard")
    assert_refused(await call(sandbox, keyset, foreign), "token-invalid")
