"""A small Login integration written against the public API only (plain aiohttp, not the sandbox's own test
client): discovery, /oauth2/auth, the user's consent (the control plane stands in for the user), /oauth2/token
with PKCE, and CIBA; with switches for the sloppy habits the Login checklist's automatic items catch."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

PREFIX = "/access-management-1.0/access/"
CIBA = "/vipps-login-ciba/api/backchannel/authentication"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_states = itertools.count(1)


@dataclass
class LoginIntegration:
    base: str
    keys: dict
    redirect_uri: str = "http://127.0.0.1:53682/callback"
    token_redirect_uri: str | None = None  # another value on /token than on /auth (L-4)
    state: str | None = None  # a fixed state for every login (L-7), None: a fresh one each time
    challenge_method: str | None = "S256"  # None: no PKCE; "plain": the weak default (L-9)
    discovery_per_login: bool = False  # L-11
    session: aiohttp.ClientSession | None = None
    discovery: dict | None = None

    async def __aenter__(self) -> LoginIntegration:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.session is not None
        await self.session.close()

    def basic(self) -> str:
        pair = f"{self.keys['client_id']}:{self.keys['client_secret']}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    async def discover(self) -> dict:
        assert self.session is not None
        if self.discovery is None or self.discovery_per_login:
            async with self.session.get(self.base + PREFIX + ".well-known/openid-configuration") as resp:
                assert resp.status == 200
                self.discovery = await resp.json()
        return self.discovery

    async def authorize(self, phone: str, **extra: str) -> tuple[int, dict]:
        """/oauth2/auth as the browser, the user's consent, then the code exchange. (token status, body)."""
        assert self.session is not None
        doc = await self.discover()
        verifier = secrets.token_urlsafe(48)
        query = {"response_type": "code", "client_id": self.keys["client_id"], "scope": "openid name",
                 "state": self.state or f"st-{secrets.token_hex(8)}-{next(_states)}", "redirect_uri": self.redirect_uri}
        if self.challenge_method == "S256":
            query["code_challenge"] = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            query["code_challenge_method"] = "S256"
        elif self.challenge_method == "plain":
            query["code_challenge"] = verifier
        query.update(extra)
        async with self.session.get(doc["authorization_endpoint"] + "?" + urlencode(query),
                                    allow_redirects=False) as resp:
            if resp.status != 302 or "/_sandbox/login?" not in resp.headers.get("Location", ""):
                return resp.status, {}
            login_id = parse_qs(urlsplit(resp.headers["Location"]).query)["login"][0]
        async with self.session.post(self.base + "/_sandbox/login/approve",
                                     json={"loginId": login_id, "phoneNumber": phone}) as resp:
            assert resp.status == 200, await resp.text()
            back = parse_qs(urlsplit((await resp.json())["location"]).query)
        assert back["state"][0] == query["state"]
        form = {"grant_type": "authorization_code", "code": back["code"][0],
                "redirect_uri": self.token_redirect_uri or self.redirect_uri}
        if self.challenge_method:
            form["code_verifier"] = verifier
        async with self.session.post(doc["token_endpoint"], data=urlencode(form),
                                     headers=FORM | {"Authorization": self.basic()}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def ciba_start(self, phone: str) -> dict:
        assert self.session is not None
        async with self.session.post(self.base + CIBA, data=urlencode({
                "login_hint": f"urn:msisdn:{phone}", "scope": "openid name", "binding_message": "SHOP-1"}),
                headers=FORM | {"Authorization": self.basic()}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def ciba_poll(self, auth_req_id: str) -> tuple[int, dict]:
        assert self.session is not None
        async with self.session.post(self.base + PREFIX + "oauth2/token", data=urlencode({
                "grant_type": CIBA_GRANT, "auth_req_id": auth_req_id}),
                headers=FORM | {"Authorization": self.basic()}) as resp:
            return resp.status, await resp.json(content_type=None)
