"""Helpers for the Login API tests: a sales unit's Login client, the browser's /oauth2/auth step, and the control
plane standing in for the user (consent with a test user)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from sandbox.testing import SandboxClient

PREFIX = "/access-management-1.0/access/"


def login_client(sandbox: SandboxClient, env: str = "test", role: str = "premium-shop-1") -> dict:
    """The merchant keys of a sales unit: its Login client (client_id, client_secret)."""
    return sandbox.key("merchant", env, owner=sandbox.msn_role(role))


def callback(port: int = 53682) -> str:
    return f"http://127.0.0.1:{port}/callback"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client: dict) -> str:
    return "Basic " + base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()


async def authorize(sandbox: SandboxClient, client: dict, env: str = "test", **params: str) -> aiohttp.ClientResponse:
    """GET /oauth2/auth as the browser does, without following the redirect."""
    query = {"response_type": "code", "client_id": client["client_id"], "scope": "openid name",
             "state": "state-123456", "redirect_uri": callback(), **params}
    query = {name: value for name, value in query.items() if value is not None}
    async with sandbox.session.get(sandbox.url(env) + PREFIX + "oauth2/auth?" + urlencode(query),
                                   allow_redirects=False) as response:
        await response.read()
        return response


def login_id(location: str) -> str:
    return parse_qs(urlsplit(location).query)["login"][0]


async def consent(sandbox: SandboxClient, location: str, phone: str | None = None, env: str = "test",
                  cancel: bool = False) -> dict:
    """The control plane consents as the user; returns the redirect's query parameters (code, state, ...)."""
    body: dict = {"loginId": login_id(location), "cancel": cancel}
    if phone is not None:
        body["phoneNumber"] = phone
    reply = await sandbox.request("POST", "/_sandbox/login/approve", env, json_body=body)
    assert reply.status == 200, reply.text
    return {name: values[0] for name, values in parse_qs(urlsplit(reply.json["location"]).query).items()} | {
        "_location": reply.json["location"]}


async def code_for(sandbox: SandboxClient, client: dict, env: str = "test", phone: str | None = None,
                   **params: str) -> dict:
    response = await authorize(sandbox, client, env, **params)
    assert response.status == 302, response.status
    return await consent(sandbox, response.headers["Location"], phone, env)


async def token(sandbox: SandboxClient, client: dict | None, form: dict, env: str = "test",
                headers: dict | None = None):
    all_headers = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if client is not None:
        all_headers["Authorization"] = basic(client)
    return await sandbox.request("POST", PREFIX + "oauth2/token", env, data=urlencode(form), headers=all_headers)
