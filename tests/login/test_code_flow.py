"""The authorization code flow over real HTTP: discovery, JWKS, /oauth2/auth, consent, token, userinfo."""

from __future__ import annotations

import jwt
from login_support import PREFIX, callback, code_for, login_client, pkce_pair, token

from sandbox.core.claims import subject


async def test_discovery_is_built_from_the_request_origin_and_cached(sandbox):
    reply = await sandbox.request("GET", PREFIX + ".well-known/openid-configuration", "test")
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "max-age=3600"
    doc = reply.json
    origin = sandbox.url("test")
    assert doc["issuer"] == origin + PREFIX
    assert doc["token_endpoint"] == origin + PREFIX + "oauth2/token"
    assert doc["userinfo_endpoint"] == origin + "/vipps-userinfo-api/userinfo"
    keys = (await sandbox.request("GET", PREFIX + ".well-known/jwks.json", "test")).json["keys"]
    assert len(keys) == 1 and keys[0]["kid"].startswith("public:") and keys[0]["alg"] == "RS256"


async def test_code_flow_with_pkce_gives_a_signed_id_token_and_userinfo(sandbox):
    client = login_client(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    verifier, challenge = pkce_pair()
    back = await code_for(sandbox, client, phone=user.phone_number, code_challenge=challenge,
                          code_challenge_method="S256", nonce="n-0S6_WzA2Mj", scope="openid name email")
    assert back["state"] == "state-123456" and back["scope"] == "openid name email"
    reply = await token(sandbox, client, {"grant_type": "authorization_code", "code": back["code"],
                                          "redirect_uri": callback(), "code_verifier": verifier})
    assert reply.status == 200, reply.text
    body = reply.json
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599 and "refresh_token" not in body
    jwk = (await sandbox.request("GET", PREFIX + ".well-known/jwks.json", "test")).json["keys"][0]
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(body["id_token"], key.key, algorithms=["RS256"], audience=client["client_id"])
    msn = sandbox.msn_role("premium-shop-1")
    assert claims["sub"] == subject(msn, user.phone_number) and claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["aud"] == [client["client_id"]] and claims["iss"] == sandbox.url("test") + PREFIX
    info = await sandbox.request("GET", "/vipps-userinfo-api/userinfo/", "test",
                                 headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status == 200, info.text
    assert info.json["sub"] == claims["sub"] and info.json["email"] == user.email and info.json["name"] == user.name
