"""Shared helpers for the Checkout tests: the raw-header credentials, bodies, the hosted page's form, a receiver."""

from __future__ import annotations

import itertools
import re
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from sandbox.testing import Reply, SandboxClient

BASE = "/checkout/v3/session"
_refs = itertools.count(1)
#: What the official SDK adds to every Checkout call (sdk-requests.md #12): an empty bearer, empty system headers
#: when the integration sets none (here: empty, the case the gateway must ignore).
SDK_EXTRAS = {"Authorization": "Bearer ", "Vipps-System-Name": "", "Vipps-System-Version": "",
              "Vipps-System-Plugin-Name": "", "Vipps-System-Plugin-Version": ""}


def new_reference() -> str:
    return f"chk-order-{next(_refs):04d}"


def raw_headers(keyset: dict, msn: str | None, sdk_extras: bool = True) -> dict:
    headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"]}
    if keyset.get("subscription_key_primary"):
        headers["Ocp-Apim-Subscription-Key"] = keyset["subscription_key_primary"]
    if msn is not None:
        headers["Merchant-Serial-Number"] = msn
    if sdk_extras:
        headers.update(SDK_EXTRAS)
    return headers


def session_body(reference: str | None = None, value: int = 10000, callback: str = "https://shop.example.com/cb",
                 **extra) -> dict:
    body = {"type": "PAYMENT", "reference": reference or new_reference(),
            "merchantInfo": {"callbackUrl": callback, "returnUrl": "https://shop.example.com/return",
                             "callbackAuthorizationToken": "cb-secret-token-0001"},
            "transaction": {"amount": {"currency": "NOK", "value": value}, "paymentDescription": "Two pairs of socks"}}
    body.update(extra)
    return body


FIXED_OPTIONS = [
    {"id": "posten-mailbox", "brand": "POSTEN", "type": "MAILBOX", "amount": {"currency": "NOK", "value": 4900},
     "isDefault": True, "priority": 0, "title": "In the mailbox"},
    {"id": "pickup-home", "brand": "OTHER", "type": "HOME_DELIVERY", "amount": {"currency": "NOK", "value": 9900},
     "isDefault": False, "priority": 1, "title": "Home delivery"},
]


async def checkout_call(sandbox: SandboxClient, method: str, path: str, env: str, keyset: dict, msn: str | None,
                        body: object = None, **kw) -> Reply:
    return await sandbox.request(method, BASE + path, env, headers=raw_headers(keyset, msn, **kw), json_body=body)


def page_token(frontend_url: str) -> str:
    return parse_qs(urlsplit(frontend_url).query)["token"][0]


async def post_page(sandbox: SandboxClient, env: str, action: str, fields: dict) -> aiohttp.ClientResponse:
    """POSTs the hosted page's form (as the browser does), without following the redirect to returnUrl."""
    async with sandbox.session.post(f"{sandbox.url(env)}/_sandbox/checkout/session/{action}", data=fields,
                                    allow_redirects=False) as response:
        await response.read()
        return response


def problem_code(reply: Reply) -> str:
    return reply.json["errorCode"]


class Receiver:
    """A merchant's callback endpoint on loopback: answers each POST with the next status of `statuses`."""

    def __init__(self, statuses: list[int] | None = None, answer: object = None) -> None:
        self.statuses = list(statuses or [200])
        self.answer = answer  # a JSON body to answer with (the dynamic-logistics callback's options)
        self.received: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": await request.json(), "path": request.path})
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if self.answer is not None:
            return web.json_response(self.answer, status=status)
        return web.Response(status=status)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/vipps/callback"
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


FRONTEND = re.compile(r"^http://127\.0\.0\.1:\d+/_sandbox/checkout/session\?token=[A-Za-z0-9_.-]+$")
