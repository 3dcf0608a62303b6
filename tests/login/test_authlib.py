"""Python Authlib, unmodified, against the sandbox's Login API: discovery, authorization code with PKCE S256 and a
nonce, the id_token validated through the JWKS (signature, iss, aud, nonce, at_hash), userinfo. The browser step is
the control plane consenting as a test user (tests/login/test_login_page.py drives the page in Chromium).

Authlib's framework apps (Flask, Starlette, Django) are its OAuth2Mixin + OpenIDMixin + BaseApp over a client
class; the same three over its requests client make a framework-free app, with no method of the library replaced.
"""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.base_client.sync_openid import OpenIDMixin
from authlib.integrations.requests_client import OAuth2Session
from login_support import PREFIX, callback, consent, login_client

from sandbox.core.claims import subject


class VippsLogin(OAuth2Mixin, OpenIDMixin, BaseApp):
    client_cls = OAuth2Session


def app_for(sandbox, client: dict) -> VippsLogin:
    return VippsLogin(None, name="vipps", client_id=client["client_id"], client_secret=client["client_secret"],
                      server_metadata_url=sandbox.url("test") + PREFIX + ".well-known/openid-configuration",
                      client_kwargs={"scope": "openid name email address", "code_challenge_method": "S256"})


def start(app: VippsLogin) -> dict:
    """What a web app's login route does: the authorization URL with state, nonce and the PKCE verifier."""
    from authlib.common.security import generate_token

    nonce = generate_token(20)
    verifier = generate_token(48)
    return app.create_authorization_url(redirect_uri=callback(8765), nonce=nonce, code_verifier=verifier) | {
        "nonce": nonce, "code_verifier": verifier}


def browser_to_login_page(url: str) -> str:
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    return response.headers["Location"]


async def test_authlib_code_flow_with_pkce_and_nonce(sandbox):
    client = login_client(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    app = app_for(sandbox, client)
    started = await asyncio.to_thread(start, app)
    query = parse_qs(urlsplit(started["url"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] == [started["nonce"]]
    location = await asyncio.to_thread(browser_to_login_page, started["url"])
    back = await consent(sandbox, location, user.phone_number)
    assert back["state"] == started["state"]

    def finish() -> tuple[dict, dict, dict]:
        token = app.fetch_access_token(redirect_uri=callback(8765), code=back["code"],
                                       code_verifier=started["code_verifier"])
        claims = app.parse_id_token(token, nonce=started["nonce"])
        return token, dict(claims), dict(app.userinfo(token=token))

    token, claims, info = await asyncio.to_thread(finish)
    msn = sandbox.msn_role("premium-shop-1")
    assert claims["sub"] == info["sub"] == subject(msn, user.phone_number)
    assert claims["iss"] == sandbox.url("test") + PREFIX and claims["nonce"] == started["nonce"]
    assert "at_hash" in claims  # Authlib checked it against the access token
    assert info["name"] == user.name and info["address"]["street_address"] and info["other_addresses"]


def tamper(id_token: str) -> str:
    head, body, signature = id_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{signature}"


async def test_authlib_rejects_a_tampered_id_token_and_a_wrong_nonce(sandbox):
    client = login_client(sandbox)
    app = app_for(sandbox, client)
    started = await asyncio.to_thread(start, app)
    location = await asyncio.to_thread(browser_to_login_page, started["url"])
    back = await consent(sandbox, location, sandbox.runtime.world.users_by_role["no-user"].phone_number)
    token = await asyncio.to_thread(app.fetch_access_token, redirect_uri=callback(8765), code=back["code"],
                                    code_verifier=started["code_verifier"])
    assert await asyncio.to_thread(app.parse_id_token, token, started["nonce"])  # the real one is fine
    with pytest.raises(Exception, match="(?i)signature"):
        await asyncio.to_thread(app.parse_id_token, {**token, "id_token": tamper(token["id_token"])},
                                started["nonce"])
    with pytest.raises(Exception, match="nonce"):
        await asyncio.to_thread(app.parse_id_token, token, "another-nonce")
    with pytest.raises(Exception, match="at_hash"):
        await asyncio.to_thread(app.parse_id_token, {**token, "access_token": "not-the-token"}, started["nonce"])
