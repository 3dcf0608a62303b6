"""Hostile input to EVERY route of the policy table: never a 5xx or a traceback, 4xx in the API's format.

Each test sends one kind of bad input to all the routes (path parameters filled with plausible
values, valid credentials for bearer routes, so the input reaches the handlers), then checks that
the server still answers its health check.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import aiohttp
import pytest
import raw_http
from api_formats import BROWSER_PAGES, error_format_problem
from multidict import CIMultiDict

from sandbox.apis.donations.routes import DONATIONS
from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.model import Env
from sandbox.gateway.policy import ROUTES, Api, Auth, RoutePolicy

ALL = sorted(ROUTES.values(), key=lambda r: r.name)
#: Every query parameter a handler reads, found in the source, so a new one is covered without a test change.
SOURCE = "".join(path.read_text() for path in (Path(__file__).resolve().parents[2] / "sandbox").rglob("*.py"))
QUERY_NAMES = sorted(set(re.findall(r'query(?:\.get\(|\[)"(\w+)"', SOURCE)) | {"limit", "since"})
#: Every request header the sandbox reads (its own Vipps-Sandbox-* response headers aside), from the source too.
HEADER_NAMES = sorted({name for name in re.findall(r'headers(?:\.get\(|\[)"([\w-]+)"', SOURCE)
                       if not name.startswith("Vipps-Sandbox") and name != "Retry-After"}
                      | {"Vipps-System-Name", "Vipps-System-Version", "Vipps-System-Plugin-Name",
                         "Vipps-System-Plugin-Version", "Content-Type", "Host"})
WITH_BODY = [r for r in ALL if r.method in ("POST", "PATCH", "DELETE", "PUT")]
TEN_MB = 10 * 1024 * 1024
BIG = 2**63
#: Routes that take no body and ignore one: bad bodies may get their normal 2xx there.
IGNORES_BODY = {"sandbox.keys.regenerate", "sandbox.keys.regenerate_subscription_key", "sandbox.reset",
                "sandbox.requests.clear", "sandbox.faults.clear", "sandbox.faults.delete",
                "token.accesstoken", "sandbox.inbox.post", "sandbox.product_orders.view",
                "sandbox.product_orders.submit", "sandbox.product_orders.complete", "sandbox.product_orders.reject",
                "sandbox.consents.revoke", "webhooks.delete", "management.product_orders.delete",
                "sandbox.payments.approve", "sandbox.payments.reject", "sandbox.payments.expire",
                "sandbox.landing.approve", "sandbox.landing.reject", "sandbox.dashboard.payment_action",
                # Recurring: cancel takes no body; the control plane's reject, expire and stop ignore one.
                "recurring.charges.cancel", "sandbox.recurring.agreements.reject",
                "sandbox.recurring.agreements.expire", "sandbox.recurring.agreements.stop",
                "sandbox.recurring.confirm.reject",
                # QR and Order Management (issue 18): the deletes take no body
                "qr.redirect.delete", "qr.callback.delete", "ordermanagement.v3.category.delete",
                # Donations: stop takes no body.
                "donations.agreements.stop",
                # Checkout: expire takes no body.
                "checkout.session.expire"}
#: Free-form labels held in memory, never file names: ".." is just a name there.
FREE_FORM_NAMES = {"sandbox.inbox.get", "sandbox.inbox.post"}
#: POST routes whose whole body is optional JSON: an empty one is fine.
EMPTY_BODY_OK = IGNORES_BODY | {"sandbox.clock.set", "sandbox.snapshot", "sandbox.restore", "epayment.cancel",
                                "epayment.force_approve", "sandbox.dashboard.payment_action",
                                "recurring.agreements.update", "sandbox.recurring.agreements.approve",
                                "sandbox.recurring.confirm.approve"}


def world_merchant_key(sandbox, role: str) -> str:
    return next(m.key for m in sandbox.runtime.world.merchants.values() if m.role == role)


def env_of(route: RoutePolicy) -> str:
    return "test" if Env.TEST in route.allowed_envs else "production"


class Corpus:
    """The sandbox, a real payment to aim at, and credentials per API."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.msn = sandbox.msn_role("premium-shop-1")
        self.reference = "hostile-ref-0001"
        self.auth: dict[Api, dict] = {}

    async def prepare(self) -> None:
        sb = self.sandbox
        merchant = sb.key("merchant", "test", msn=self.msn)
        self.auth[Api.EPAYMENT] = self.auth[Api.WEBHOOKS] = await sb.auth_headers(merchant)
        self.auth[Api.MANAGEMENT] = await sb.auth_headers(sb.key("partner", "production",
                                                                 owner=sb.partner_role("premium")))
        self.auth[Api.REPORT] = await sb.auth_headers(sb.key("accounting", "production",
                                                             owner=sb.partner_role("accountant")))
        reply = await sb.request("POST", "/epayment/v1/payments", "test", headers=self.auth[Api.EPAYMENT] | {
            "Idempotency-Key": "hostile-1"}, json_body={
            "amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": self.reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/r"})
        assert reply.status == 201, reply.text
        # Recurring: merchant test keys of a unit that allows it, an ACTIVE agreement and a charge to aim at. Every
        # call carries an Idempotency-Key, so hostile bodies reach the body checks.
        self.recurring_msn = next(u.msn for u in sorted(sb.runtime.world.sales_units.values(), key=lambda u: u.msn)
                                  if u.configuration.get("recurringAllowed") and u.market == "NO"
                                  and sb.runtime.world.is_active(u.msn))
        self.auth[Api.RECURRING] = await sb.auth_headers(sb.key("merchant", "test", msn=self.recurring_msn)) | {
            "Idempotency-Key": "hostile-recurring"}
        reply = await sb.request("POST", "/recurring/v3/agreements", "test", headers=self.auth[Api.RECURRING] | {
            "Idempotency-Key": "hostile-draft"}, json_body={
            "pricing": {"type": "FLEXIBLE", "currency": "NOK"}, "merchantRedirectUrl": "https://example.com/r",
            "productName": "Hostile"})
        assert reply.status == 201, reply.text
        self.agreement_id = reply.json["agreementId"]
        reply = await sb.request("POST", f"/_sandbox/recurring/{self.recurring_msn}/agreements/{self.agreement_id}/"
                                 "approve", "test")
        assert reply.status == 200, reply.text
        reply = await sb.request("POST", f"/recurring/v3/agreements/{self.agreement_id}/charges", "test",
                                 headers=self.auth[Api.RECURRING] | {"Idempotency-Key": "hostile-charge"},
                                 json_body={"amount": 1000, "description": "Hostile", "due": "2099-01-01",
                                            "retryDays": 0, "transactionType": "DIRECT_CAPTURE"})
        assert reply.status == 400 or reply.status == 201, reply.text
        self.charge_id = reply.json.get("chargeId", "chr-none")
        # Userinfo (issue 16): the merchant's own token and the sub of a payment that shared a profile.
        self.auth[Api.USERINFO] = self.auth[Api.EPAYMENT]
        reply = await sb.request("POST", "/epayment/v1/payments", "test", headers=self.auth[Api.EPAYMENT] | {
            "Idempotency-Key": "hostile-2"}, json_body={
            "amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": "hostile-ref-0002", "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/r",
            "profile": {"scope": "name address"}})
        assert reply.status == 201, reply.text
        reply = await sb.request("POST", f"/_sandbox/payments/{self.msn}/hostile-ref-0002/approve", "test",
                                 json_body={"phoneNumber": next(iter(sb.runtime.world.users))})
        assert reply.status == 200, reply.text
        self.sub = (await sb.request("GET", "/epayment/v1/payments/hostile-ref-0002", "test",
                                     headers=self.auth[Api.EPAYMENT])).json["profile"]["sub"]
        # QR and Order Management (issue 18): merchant test keys with the Merchant-Serial-Number (required on the
        # callback QR and every Order Management operation), and codes, an order and a category that exist.
        self.auth[Api.QR] = self.auth[Api.ORDER_MANAGEMENT] = await sb.auth_headers(merchant, self.msn)
        for method, path, body in (
                ("POST", "/qr/v1/merchant-redirect", {"id": "hostile", "redirectUrl": "https://example.com/h"}),
                ("PUT", "/qr/v1/merchant-callback/hostile", {"locationDescription": "Hostile"}),
                ("PUT", "/order-management/v2/ecom/categories/hostile-ref-0001",
                 {"category": "GENERAL", "orderDetailsUrl": "https://example.com/o"})):
            reply = await sb.request(method, path, "test", headers=self.auth[Api.QR] | {"Accept": "image/png"},
                                     json_body=body)
            assert reply.status == 200, reply.text
        reply = await sb.request("POST", "/order-management/v3/categories", "test", headers=self.auth[Api.QR],
                                 json_body={"orderId": "hostile-ref-0001", "paymentType": "ECOM", "type": "RECEIPT",
                                            "url": "https://example.com/r"})
        self.category_id = reply.json["categoryId"]
        reply = await sb.request("GET", "/qr/v1/merchant-callback/hostile", "test", headers=self.auth[Api.QR])
        self.qr_code = reply.json["qrContent"].rsplit("/", 1)[1]
        # Donations: merchant-level keys of premium-shop, and one of its donation agreements to aim at.
        merchant_key = world_merchant_key(sb, "premium-shop")
        self.auth[Api.DONATIONS] = await sb.auth_headers(sb.key("merchant-level", "production", owner=merchant_key))
        self.donation_id = next(a.id for a in sb.running.app[DONATIONS].agreements.values()
                                if sb.runtime.world.sales_units[a.msn].merchant == merchant_key)
        # Checkout: the keys themselves as headers (no token), and a session under the payment's reference.
        checkout_keys = sb.key("merchant", "test", msn=self.msn)
        self.auth[Api.CHECKOUT] = {"client_id": checkout_keys["client_id"],
                                   "client_secret": checkout_keys["client_secret"],
                                   "Ocp-Apim-Subscription-Key": checkout_keys["subscription_key_primary"],
                                   "Merchant-Serial-Number": self.msn}
        reply = await sb.request("POST", "/checkout/v3/session", "test", headers=self.auth[Api.CHECKOUT], json_body={
            "type": "PAYMENT", "reference": self.reference,
            "merchantInfo": {"callbackUrl": "https://example.com/cb", "returnUrl": "https://example.com/r",
                             "callbackAuthorizationToken": "hostile"},
            "transaction": {"amount": {"currency": "NOK", "value": 1000}, "paymentDescription": "Hostile"}})
        assert reply.status == 200, reply.text

    def values(self, route: RoutePolicy) -> dict[str, str]:
        world = self.sandbox.runtime.world
        merchant = world.merchants[world.sales_units[self.msn].merchant]
        values = {"reference": self.reference, "msn": self.msn, "scheme": merchant.scheme,
                  "id": str(uuid.uuid4()), "productOrderId": str(uuid.uuid4()), "ledgerId": ledger_id_for(self.msn),
                  "topic": "funds", "ledgerDate": "2024-01-01", "name": "hostile", "env": "test",
                  "action": "approve", "accountingPartnerId": self.sandbox.partner_role("accountant"),
                  "merchantId": merchant.id, "client_id": self.sandbox.key(
                      "management", "production", owner=self.sandbox.partner_role("basic"))["client_id"]}
        values["agreementId"], values["chargeId"] = self.agreement_id, self.charge_id
        values["phoneNumber"] = next(iter(world.users))  # the virtual phone of a test user (issue 16)
        values["sub"] = self.sub  # a Userinfo sub (issue 16)
        values |= {"merchantQrId": "hostile", "beaconId": "100000000042", "paymentType": "ecom",
                   "orderId": self.reference, "transactionId": self.reference, "categoryId": self.category_id,
                   "file": "qr.png", "code": self.qr_code}  # QR and Order Management (issue 18)
        if route.name.startswith("qr.redirect"):
            values["id"] = "hostile"
        if "recurring" in route.name:
            values["msn"] = self.recurring_msn
        if "donations" in route.name:
            values["agreementId"] = self.donation_id
        if route.name.startswith("management.merchants"):
            values["id"] = merchant.id
        if route.name == "sandbox.dashboard.asset":
            values["name"] = "dashboard.js"
        if route.name == "sandbox.faults.delete":
            values["id"] = "1"
        return values

    def path(self, route: RoutePolicy, overrides: dict[str, str] | None = None) -> str:
        values = self.values(route) | (overrides or {})
        return route.path.format(**values)

    def headers(self, route: RoutePolicy) -> dict[str, str]:
        return dict(self.auth.get(route.api, {})) if route.rule.auth is not Auth.NONE else {}

    def port(self, route: RoutePolicy) -> int:
        running = self.sandbox.running
        return running.test_port if env_of(route) == "test" else running.prod_port

    async def send(self, route: RoutePolicy, *, path: str | None = None, data: bytes | None = None,
                   headers: dict | CIMultiDict | None = None, content_type: str | None = "application/json",
                   chunked: bool = False):
        all_headers = CIMultiDict(self.headers(route))
        if content_type:
            all_headers["Content-Type"] = content_type
        if headers:
            all_headers.extend(headers)
        url = self.sandbox.url(env_of(route)) + (path or self.path(route))
        payload = data
        if chunked and data is not None:
            async def chunks(body=data):
                for i in range(0, len(body), 65536):
                    yield body[i:i + 65536]
            payload = chunks()
        async with self.sandbox.session.request(route.method, url, data=payload, headers=all_headers,
                                                skip_auto_headers=("Content-Type",)) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.read()

    async def healthy(self) -> None:
        for env in ("test", "production"):
            reply = await self.sandbox.request("GET", "/_sandbox/health", env)
            assert reply.status == 200 and reply.json["status"] == "ok"


def check(route: RoutePolicy, what: str, status: int, content_type: str, body: bytes, *,
          must_fail: bool = False, expect: int | None = None) -> None:
    where = f"{what} -> {route.name} {route.method} {route.path}: {status} {body[:300]!r}"
    assert status < 500, where
    assert b"Traceback" not in body and b'File "' not in body, where
    if expect is not None:
        assert status == expect, where
    if must_fail:
        assert 400 <= status < 500, where
    if status < 400:
        return
    if (route.api is Api.SANDBOX or route.name in BROWSER_PAGES) and content_type.startswith("text/html"):
        return
    wrong = error_format_problem(route.api, content_type, body)
    assert wrong is None, f"{where} ({wrong})"


@pytest.fixture
async def corpus(sandbox):
    c = Corpus(sandbox)
    await c.prepare()
    return c


@pytest.mark.parametrize("body", [b'{"amount": ', b"{'a': 1}", b"[1, 2", b"\x00\x01\x02", b"NaN",
                                  b'{"a": Infinity}', b"[" * 100_000 + b"]" * 100_000])
async def test_malformed_json(corpus, body):
    for route in WITH_BODY:
        status, ctype, reply = await corpus.send(route, data=body)
        check(route, f"malformed JSON {body[:20]!r}", status, ctype, reply,
              must_fail=route.name not in IGNORES_BODY)
    await corpus.healthy()


@pytest.mark.parametrize("body", [[], ["reference"], "text", 42, True, None, {"amount": "ten"},
                                  {"amount": {"value": "1000", "currency": 7}}])
async def test_json_of_the_wrong_type(corpus, body):
    for route in WITH_BODY:
        status, ctype, reply = await corpus.send(route, data=json.dumps(body).encode())
        # optional bodies (cancel's {"cancelTransactionOnly"}) may be null, and ignore fields they do not know
        lenient = route.name in EMPTY_BODY_OK and (body is None or isinstance(body, dict)) or (
            route.name == "recurring.charges.batch" and body == [])  # an empty batch is a batch: 202
        check(route, f"wrong type {body!r}", status, ctype, reply,
              must_fail=route.name not in IGNORES_BODY and not lenient and body != {"amount": "ten"})
    await corpus.healthy()


async def test_empty_body(corpus):
    for route in ALL:
        status, ctype, reply = await corpus.send(route, data=b"")
        check(route, "empty body", status, ctype, reply,
              must_fail=route in WITH_BODY and route.name not in EMPTY_BODY_OK)
    await corpus.healthy()


async def test_ten_megabyte_body_is_413(corpus):
    body = b"x" * TEN_MB
    for route in ALL:
        status, ctype, reply = await corpus.send(route, data=body)
        check(route, "10 MB body", status, ctype, reply, expect=413)
    await corpus.healthy()


async def test_ten_megabyte_chunked_body_is_413_where_read(corpus):
    """Without Content-Length the limit bites when a handler reads the body: 413 in the API's format."""
    body = b"[" + b"1," * (TEN_MB // 2) + b"1]"
    for route in WITH_BODY:
        if route.name in IGNORES_BODY:
            continue
        status, ctype, reply = await corpus.send(route, data=body, chunked=True)
        check(route, "10 MB chunked body", status, ctype, reply, must_fail=True)
    await corpus.healthy()


@pytest.mark.parametrize("where", ["body", "path", "query", "header"])
async def test_invalid_utf8(corpus, where):
    for route in ALL:
        port = corpus.port(route)
        headers = [(k.encode(), v.encode()) for k, v in corpus.headers(route).items()]
        target = corpus.path(route).encode()
        body = b""
        if where == "body":
            body = b'{"reference": "\xff\xfe\xfd", "amount": {"currency": "N\xc3\x28K", "value": 1}}'
            headers.append((b"Content-Type", b"application/json"))
        elif where == "path":
            target = target.replace(b"hostile", b"hos\xff\xfetile") if b"hostile" in target else target + b"\xff"
        elif where == "query":
            target += b"?cursor=\xff\xfe&limit=\xc3\x28"
        else:
            headers += [(b"Merchant-Serial-Number", b"\xff\xfe"), (b"Idempotency-Key", b"\xc3\x28\xa0"),
                        (b"Vipps-System-Name", b"\xff" * 10), (b"client_id", b"\xff\xfe")]
        reply = await raw_http.send(port, raw_http.build(route.method, target, headers, body))
        check(route, f"invalid UTF-8 in the {where}", reply.status, reply.content_type, reply.body,
              must_fail=where in ("path",) or (where == "body" and route in WITH_BODY
                                                and route.name not in IGNORES_BODY))
    await corpus.healthy()


@pytest.mark.parametrize("where", ["header", "path", "encoded-path"])
async def test_nul_bytes(corpus, where):
    for route in ALL:
        port = corpus.port(route)
        headers = [(k.encode(), v.encode()) for k, v in corpus.headers(route).items()]
        target = corpus.path(route).encode()
        if where == "header":
            headers.append((b"Merchant-Serial-Number", b"12\x0034"))
        elif where == "path":
            target += b"\x00"
        else:
            target = corpus.path(route, {k: "a%00b" for k in corpus.values(route)}).encode()
        reply = await raw_http.send(port, raw_http.build(route.method, target, headers))
        check(route, f"NUL in the {where}", reply.status, reply.content_type, reply.body,
              must_fail=where != "encoded-path" or "{" in route.path)
    await corpus.healthy()


@pytest.mark.parametrize("value", [b"\xff\xfe\xfd", b"9" * 40, b"-1", b"../../etc/passwd", b"a" * 100_000,
                                   b"Bearer " + b"\xc3\x28" * 50, b"%00%0d%0a", b" "],
                         ids=["bad-utf8", "huge-number", "negative", "dot-dot", "100kB", "bad-bearer", "escapes",
                              "blank"])
async def test_hostile_values_in_every_header_read(corpus, value):
    """One header at a time (the others valid), every header a handler or the gateway reads."""
    for route in ALL:
        valid = {k.encode(): v.encode() for k, v in corpus.headers(route).items()}
        body = b"{}" if route in WITH_BODY else b""
        for name in HEADER_NAMES:
            headers = {**valid, name.encode(): value}
            if name == "Content-Type" or body:
                headers.setdefault(b"Content-Type", b"application/json")
            reply = await raw_http.send(corpus.port(route), raw_http.build(
                route.method, corpus.path(route).encode(), list(headers.items()), body))
            check(route, f"{name}: {value[:20]!r}", reply.status, reply.content_type, reply.body)
    await corpus.healthy()


@pytest.mark.parametrize("traversal", ["../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "..", "%2e%2e"])
async def test_dot_dot_in_path_parameters(corpus, traversal):
    for route in ALL:
        if "{" not in route.path:
            continue
        path = corpus.path(route, {k: traversal for k in corpus.values(route)})
        reply = await raw_http.send(corpus.port(route), raw_http.build(
            route.method, path.encode(), [(k.encode(), v.encode()) for k, v in corpus.headers(route).items()]))
        check(route, f"{traversal!r} in path parameters", reply.status, reply.content_type, reply.body,
              must_fail=route.name not in FREE_FORM_NAMES)
        assert b"root:" not in reply.body
    await corpus.healthy()


@pytest.mark.parametrize("spread", [False, True], ids=["one-parameter", "every-parameter"])
async def test_64_kb_query_string(corpus, spread):
    """64 kB of query string: all in one parameter the handlers read, or spread over all of them."""
    for i, route in enumerate(ALL):
        if spread:
            share = 64 * 1024 // len(QUERY_NAMES)
            query = "&".join(f"{name}={'9' * share}" for name in QUERY_NAMES)
        else:
            query = f"{QUERY_NAMES[i % len(QUERY_NAMES)]}={'A' * 64 * 1024}"
        status, ctype, reply = await corpus.send(route, path=f"{corpus.path(route)}?{query}", data=None,
                                                 content_type=None)
        check(route, f"64 kB query string ({query[:30]}...)", status, ctype, reply)
    await corpus.healthy()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/json; charset=latin-1", "image/png", "application/xml"])
async def test_wrong_content_type(corpus, content_type):
    body = json.dumps({"amount": {"currency": "NOK", "value": 1000}}).encode()
    for route in WITH_BODY:
        status, ctype, reply = await corpus.send(route, data=body, content_type=content_type)
        check(route, f"Content-Type {content_type}", status, ctype, reply)
    await corpus.healthy()


@pytest.mark.parametrize("header", ["Authorization", "Ocp-Apim-Subscription-Key", "Merchant-Serial-Number",
                                    "Content-Type", "Idempotency-Key", "Host", "Vipps-System-Name"])
async def test_duplicated_headers(corpus, header):
    for route in ALL:
        extra = [(header.encode(), b"duplicate-one"), (header.encode(), b"1234567")]
        if header in corpus.headers(route):
            extra = [(header.encode(), corpus.headers(route)[header].encode())] * 2
        headers = [(k.encode(), v.encode()) for k, v in corpus.headers(route).items() if k != header] + extra
        reply = await raw_http.send(corpus.port(route), raw_http.build(route.method, corpus.path(route).encode(),
                                                                       headers, b"{}" if route in WITH_BODY else b""))
        check(route, f"duplicated {header}", reply.status, reply.content_type, reply.body)
    await corpus.healthy()


def b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode()


@pytest.mark.parametrize("value", [
    b64(b"[" * 5000 + b"]" * 5000), b64(b'{"ledgerId": "1", "topic": "funds", "position": 1e999}'),
    b64(b'{"ledgerId": "1", "topic": "funds", "position": NaN}'), b64(b'{"position": 18446744073709551617}'),
    b64(b"\xff\xfe not json"), b64(b"null"), b64(b"[]"), "%ZZ", "====", "eyJ"],
    ids=["deep", "inf", "nan", "2^64", "not-utf8", "null", "list", "bad-escape", "padding", "truncated"])
async def test_opaque_values_that_decode_to_hostile_json(corpus, value):
    """Cursors (and landing tokens) are opaque base64: whatever they decode to, never a 5xx (a deeply nested
    cursor once gave one). Few enough parameters that the request line stays within the parser's limit."""
    query = "&".join(f"{name}={value}" for name in ("cursor", "token"))
    for route in ALL:
        status, ctype, reply = await corpus.send(route, path=f"{corpus.path(route)}?{query}", data=None,
                                                 content_type=None)
        check(route, f"query value {value[:20]}", status, ctype, reply)
    await corpus.healthy()


@pytest.mark.parametrize("number", [BIG, -BIG - 1, 2**64 + 1, 10**400, -(10**400)])
async def test_numbers_past_2_63(corpus, number):
    body = (f'{{"amount": {{"currency": "NOK", "value": {number}}}, "modificationAmount": {{"currency": "NOK", '
            f'"value": {number}}}, "paymentMethod": {{"type": "WALLET"}}, '
            f'"reference": "hostile-big-{abs(number) % 997}", "userFlow": "WEB_REDIRECT", '
            f'"returnUrl": "https://example.com", "advanceSeconds": {number}, '
            f'"expiresAt": {number}, "annualTurnover": {number}, "limit": {number}}}').encode()
    for route in WITH_BODY:
        status, ctype, reply = await corpus.send(route, data=body)
        check(route, f"number {str(number)[:20]}", status, ctype, reply,
              must_fail=route.name.startswith(("epayment.create", "epayment.capture", "epayment.refund",
                                               "sandbox.clock.set", "recurring.charges.create",
                                               "recurring.charges.capture", "recurring.charges.refund")))
    for route in ALL:
        query = "&".join(f"{name}={number}" for name in QUERY_NAMES)
        path = corpus.path(route, {k: str(number) for k in corpus.values(route)}) + "?" + query
        status, ctype, reply = await corpus.send(route, path=path, data=None, content_type=None)
        check(route, f"number {str(number)[:20]} in the path and query", status, ctype, reply)
    await corpus.healthy()


async def test_the_corpus_reaches_every_route(corpus):
    """The corpus is generated from the policy table, and every API is in it."""
    assert {r.api for r in ALL} == set(Api)
    assert len(ALL) == len(ROUTES) and len(WITH_BODY) > 10
    for route in ALL:
        assert "{" not in corpus.path(route)


async def test_a_refused_parse_is_the_gateways_json(corpus):
    """What the HTTP parser refuses (a raw NUL in a header) is answered as gateway JSON, not text."""
    reply = await raw_http.send(corpus.sandbox.running.test_port, raw_http.build(
        "GET", b"/_sandbox/health", [(b"X-Evil", b"a\x00b")]))
    assert reply.status == 400 and reply.content_type == "application/json"
    assert reply.json["statusCode"] == 400 and "could not be parsed" in reply.json["message"]


@pytest.mark.parametrize("request_bytes", [
    raw_http.build("GET", b"/_sandbox/health", [(b"X-Long", b"a" * 200_000)]),  # past the 128 kB line limit
    raw_http.build("GET", b"/epayment/v1/payments?" + b"a" * 200_000, []),
    raw_http.build("G\x00T", b"/_sandbox/health", []),
    b"POST /_sandbox/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /_sandbox/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /_sandbox/clock HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
], ids=["long-header", "long-url", "nul-method", "cl-and-te", "cl-overflow", "bad-chunk"])
async def test_unparsable_requests_get_short_gateway_json(corpus, request_bytes):
    reply = await raw_http.send(corpus.sandbox.running.test_port, request_bytes)
    assert reply.status == 400 and reply.content_type == "application/json", reply.body[:300]
    assert reply.json["statusCode"] == 400 and len(reply.json["message"]) < 300
    await corpus.healthy()


async def test_aiohttp_session_still_works_after_the_corpus(corpus):
    async with aiohttp.ClientSession() as session:
        async with session.get(corpus.sandbox.url("test") + "/_sandbox/health") as resp:
            assert resp.status == 200
