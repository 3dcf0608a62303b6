"""The front door against a hostile web page, a hostile client and a slow one (issue 13: findings 5, 8, 12, 13, 17).

Everything goes through real servers on loopback: raw sockets where the bytes matter (Host, Origin, partial
heads), headless Chromium where a browser's own behaviour is the point (cross-origin form posts).
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from browser_support import TIMEOUT_MS, chromium, needs_chromium, new_page, prefilled_order
from raw_http import RawReply, send

from sandbox.cli import build_parser, serve_settings
from sandbox.core.settings import Settings
from sandbox.testing import started


def request_bytes(method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> bytes:
    """A request with exactly these headers (no Host added), Connection: close."""
    lines = [f"{method} {target} HTTP/1.1", "Connection: close", *(f"{name}: {value}" for name, value in headers)]
    if body or method in ("POST", "PUT", "PATCH", "DELETE"):
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


async def raw(port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> RawReply:
    return await send(port, request_bytes(method, target, headers, body))


async def log_entries(sandbox) -> list[dict]:
    reply = await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")
    assert reply.status == 200, reply.text
    return reply.json["entries"]


# ---------------------------------------------------------------------------------------------------------
# 5 (b): the Host header, on every request
# ---------------------------------------------------------------------------------------------------------

async def test_a_rebound_host_name_cannot_read_the_keys(sandbox):
    """DNS rebinding: the browser sends the attacker's name in Host. The keys are not given out, on the control
    plane or anywhere else, and the refusal is the gateway's JSON with a clear reason."""
    port = sandbox.running.test_port
    secret = sandbox.key("merchant", "test")["client_secret"]
    for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", "evil.localhost.attacker.example"):
        reply = await raw(port, "GET", "/_sandbox/keys", [("Host", host)])
        assert reply.status == 421, (host, reply.status, reply.body[:200])
        assert reply.content_type == "application/json"
        assert reply.json["statusCode"] == 421 and "does not serve the host" in reply.json["message"]
        assert reply.headers["vipps-sandbox-rule"] == "host-unknown"
        assert secret.encode() not in reply.body
    # The APIs' routes too (the page would call them with the user's browser).
    reply = await raw(port, "POST", "/accesstoken/get", [("Host", "rebind.attacker.example")])
    assert reply.status == 421 and reply.json["statusCode"] == 421
    entries = [e for e in await log_entries(sandbox) if e["decision"]["rule"] == "host-unknown"]
    assert len(entries) == 4


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "127.0.0.2", "[::1]:{port}",
                                  "LOCALHOST.:{port}", "shop.localhost:{port}", "10.0.0.7:{port}",
                                  "[fe80::1]:{port}", "apitest.vipps.no", "api.vipps.no:443", None])
async def test_loopback_ip_addresses_and_the_vipps_hosts_are_served(sandbox, host):
    port = sandbox.running.test_port
    if host is None:  # HTTP/1.0 needs no Host (HTTP/1.1 without one is the parser's 400)
        reply = await send(port, b"GET /_sandbox/health HTTP/1.0\r\n\r\n")
    else:
        reply = await raw(port, "GET", "/_sandbox/health", [("Host", host.format(port=port))])
    assert reply.status == 200, (host, reply.status, reply.body)


@pytest.mark.parametrize("headers", [[("Host", "a b")], [("Host", "evil.example/x")], [("Host", "[zz::1]")],
                                     [("Host", "127.0.0.1:99999")],
                                     [("Host", "127.0.0.1"), ("Host", "rebind.attacker.example")]],
                         ids=["space", "slash", "bad-ipv6", "bad-port", "two-hosts"])
async def test_a_malformed_or_repeated_host_is_a_400(sandbox, headers):
    reply = await raw(sandbox.running.test_port, "GET", "/_sandbox/keys", headers)
    assert reply.status == 400, reply.body
    assert reply.json["statusCode"] == 400 and b"client_secret" not in reply.body
    if len(headers) == 1:  # two Host headers are already the HTTP parser's 400
        assert reply.headers["vipps-sandbox-rule"] == "host-malformed"


async def test_allowed_hosts_serve_compose_service_names():
    settings = Settings(port=0, prod_port=0, allowed_hosts=("vipps-sandbox", ".svc.test"))
    async with started(settings) as sandbox:
        port = sandbox.running.test_port
        for host, status in (("vipps-sandbox:8080", 200), ("VIPPS-SANDBOX", 200), ("svc.test", 200),
                             ("sandbox.ns.svc.test:80", 200), ("vipps-sandbox.evil.example", 421),
                             ("evilsvc.test", 421)):
            reply = await raw(port, "GET", "/_sandbox/health", [("Host", host)])
            assert reply.status == status, (host, reply.status)
    async with started(Settings(port=0, prod_port=0, allowed_hosts=("*",))) as sandbox:
        reply = await raw(sandbox.running.test_port, "GET", "/_sandbox/health", [("Host", "anything.example")])
        assert reply.status == 200


async def test_the_configured_host_name_is_served():
    async with started(Settings(host="localhost", port=0, prod_port=0)) as sandbox:
        reply = await raw(sandbox.running.test_port, "GET", "/_sandbox/health", [("Host", "localhost")])
        assert reply.status == 200


def test_allowed_hosts_come_from_the_flag_and_the_environment(monkeypatch):
    monkeypatch.setenv("VIPPS_SANDBOX_ALLOWED_HOSTS", "vipps, other.test")
    settings = serve_settings(build_parser().parse_args(["serve", "--allowed-host", "extra.test"]))
    assert settings.allowed_hosts == ("vipps", "other.test", "extra.test")
    monkeypatch.delenv("VIPPS_SANDBOX_ALLOWED_HOSTS")
    assert serve_settings(build_parser().parse_args(["serve"])).allowed_hosts == ()


# ---------------------------------------------------------------------------------------------------------
# 5 (a): the Origin of control-plane changes
# ---------------------------------------------------------------------------------------------------------

async def test_a_cross_origin_change_to_the_control_plane_is_refused(sandbox):
    port = sandbox.running.test_port
    own = [("Host", f"127.0.0.1:{port}")]
    body = json.dumps({"advanceSeconds": 3600}).encode()
    before = sandbox.runtime.clock.time()
    for foreign in ([("Origin", "http://attacker.example")], [("Origin", "null")],
                    [("Origin", f"http://localhost:{port}")],  # another origin, though the same machine
                    [("Origin", f"http://127.0.0.1:{port + 1}")],
                    [("Sec-Fetch-Site", "cross-site")], [("Sec-Fetch-Site", "same-site")],
                    [("Referer", "http://attacker.example/page.html")]):
        reply = await raw(port, "POST", "/_sandbox/clock", own + foreign + [("Content-Type", "text/plain")], body)
        assert reply.status == 403, (foreign, reply.status, reply.body)
        assert reply.content_type == "application/problem+json"
        assert reply.headers["vipps-sandbox-rule"] == "cross-origin-refused"
    assert sandbox.runtime.clock.time() - before < 3600
    refused = [e for e in await log_entries(sandbox) if e["decision"]["rule"] == "cross-origin-refused"]
    assert len(refused) == 7 and {e["status"] for e in refused} == {403}
    client_id = sandbox.key("merchant", "test")["client_id"]
    secret = sandbox.key("merchant", "test")["client_secret"]
    for method, target in (("POST", f"/_sandbox/keys/{client_id}/regenerate"), ("POST", "/_sandbox/reset"),
                           ("DELETE", "/_sandbox/requests"), ("POST", "/_sandbox/faults")):
        reply = await raw(port, method, target, own + [("Origin", "http://attacker.example")], b"{}")
        assert reply.status == 403, (target, reply.status, reply.body)
    assert sandbox.key("merchant", "test")["client_secret"] == secret


async def test_same_origin_pages_and_clients_that_are_not_browsers_still_change_things(sandbox):
    port = sandbox.running.test_port
    before = sandbox.runtime.clock.time()
    body = json.dumps({"advanceSeconds": 60}).encode()
    for headers in ([("Host", f"127.0.0.1:{port}"), ("Origin", f"http://127.0.0.1:{port}")],
                    [("Host", f"localhost:{port}"), ("Origin", f"http://LOCALHOST:{port}"),
                     ("Sec-Fetch-Site", "same-origin")],
                    [("Host", "127.0.0.1"), ("Origin", "http://127.0.0.1:80")],
                    [("Host", f"127.0.0.1:{port}"), ("Referer", f"http://127.0.0.1:{port}/_sandbox/")],
                    [("Host", f"127.0.0.1:{port}")]):  # curl, the SDKs, the scenario runner: no Origin
        reply = await raw(port, "POST", "/_sandbox/clock", headers + [("Content-Type", "application/json")], body)
        assert reply.status == 200, (headers, reply.status, reply.body)
    assert sandbox.runtime.clock.time() - before >= 5 * 60


async def test_reads_and_the_apis_have_no_origin_rule(sandbox):
    """GETs change nothing (and another origin cannot read the answer); the APIs are called by servers."""
    port = sandbox.running.test_port
    reply = await raw(port, "GET", "/_sandbox/clock", [("Host", f"127.0.0.1:{port}"),
                                                       ("Origin", "http://attacker.example")])
    assert reply.status == 200
    keyset = sandbox.key("merchant", "test")
    token = await sandbox.request("POST", "/accesstoken/get", "test", headers={
        "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
        "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"], "Origin": "https://shop.example"})
    assert token.status == 200, token.text


@needs_chromium
async def test_in_chromium_a_foreign_page_cannot_post_to_the_control_plane_but_the_sandbox_pages_can(sandbox):
    """A page on another port auto-submits a text/plain form with a JSON body (the classic CSRF) and fires a
    no-cors fetch: both refused, the clock stays put. The landing page's Approve and the product-order page's
    Submit, same-origin forms, keep working."""
    target = sandbox.url("test")
    attack = (f'<form method="post" action="{target}/_sandbox/clock" enctype="text/plain">'
              '<input name=\'{"advanceSeconds": 86400, "x": "\' value=\'"}\'></form>'
              f'<script>fetch("{target}/_sandbox/reset", {{method: "POST", mode: "no-cors"}});'
              'document.forms[0].submit();</script>')

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=attack, content_type="text/html")

    evil = web.Application()
    evil.router.add_get("/", page)
    runner = web.AppRunner(evil)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    evil_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    before = sandbox.runtime.clock.time()
    try:
        async with chromium() as browser:
            tab, _ = await new_page(browser)
            await tab.goto(f"http://127.0.0.1:{evil_port}/")
            await tab.wait_for_load_state("load")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TIMEOUT_MS / 1000
            while True:
                refused = [e for e in await log_entries(sandbox) if e["decision"]["rule"] == "cross-origin-refused"]
                if {e["path"] for e in refused} >= {"/_sandbox/clock", "/_sandbox/reset"}:
                    break
                assert loop.time() < deadline, refused
                await asyncio.sleep(0.1)
            assert sandbox.runtime.clock.time() - before < 86400

            created = await create_payment(sandbox, "origin-landing-1")
            tab, errors = await new_page(browser)
            await tab.goto(created["redirectUrl"])
            await tab.locator("button.approve").click()
            await tab.wait_for_url("**/_sandbox/health")
            order_id = await prefilled_order(sandbox, "Origin Sykler", "origin-order-1")
            await tab.goto(sandbox.url("production") + f"/_sandbox/product-orders/{order_id}")
            async with tab.expect_navigation():
                await tab.locator("button", has_text="Submit").first.click()
            assert errors == []
    finally:
        await runner.cleanup()
    state = await sandbox.request("GET", "/epayment/v1/payments/origin-landing-1", "production",
                                  keyset=sandbox.key("partner", owner=sandbox.partner_role("premium")),
                                  msn=sandbox.msn_role("premium-shop-1"))
    assert state.json["state"] == "AUTHORIZED", state.text
    orders = await sandbox.request("GET", "/_sandbox/product-orders", "test")
    assert [o["status"] for o in orders.json if o["id"] == order_id] == ["ORDER_SUBMITTED"], orders.text


async def create_payment(sandbox, reference: str) -> dict:
    body = {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT",
            "returnUrl": sandbox.url("production") + "/_sandbox/health"}
    reply = await sandbox.request("POST", "/epayment/v1/payments", "production",
                                  keyset=sandbox.key("partner", owner=sandbox.partner_role("premium")),
                                  msn=sandbox.msn_role("premium-shop-1"), json_body=body,
                                  headers={"Idempotency-Key": f"idem-{reference}"})
    assert reply.status == 201, reply.text
    return reply.json


# ---------------------------------------------------------------------------------------------------------
# 8: JSON nesting is capped at the front door, for every JSON body
# ---------------------------------------------------------------------------------------------------------

def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_a_deeply_nested_product_order_is_refused_and_snapshots_keep_working(sandbox, tmp_path):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    packages = await sandbox.request("GET", "/management/v1/partners/price-packages", "production", keyset=partner)
    body = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "912345688"},
            "pricePackageId": next(p["pricePackageId"] for p in packages.json if p["market"] == "NO"),
            "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Deep Sykler",
            "settlementBankAccount": {"scheme": "BBAN:NO", "id": "86011117947"}, "productUseCase": "Website",
            "annualTurnover": 1000000, "hasRecurring": False,
            "website": {"url": "https://sykler.example.no", "termsUrl": "https://sykler.example.no/terms"},
            "extra": nested(900)}
    reply = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                  json_body=body, headers={"Idempotency-Key": "deep-order-1"})
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.headers["Vipps-Sandbox-Rule"] == "json-too-deep" and "64 levels" in reply.json["detail"]
    assert (await sandbox.request("GET", "/_sandbox/product-orders", "test")).json == []
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "after-deep"})
    assert saved.status == 200, saved.text
    # Sixty-four levels are fine.
    body["extra"] = nested(60)
    reply = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                  json_body=body, headers={"Idempotency-Key": "deep-order-2"})
    assert reply.status == 201, reply.text


@pytest.mark.parametrize("content_type", ["application/json", "application/problem+json", "text/plain", None])
@pytest.mark.parametrize("depth", [65, 100_000])
async def test_deep_json_is_a_400_on_the_control_plane_and_the_inbox_never_a_500(sandbox, depth, content_type):
    port = sandbox.running.test_port
    body = b"[" * depth + b"]" * depth
    typed = [("Content-Type", content_type)] if content_type else []
    for target in ("/_sandbox/clock", "/_sandbox/faults", "/_sandbox/consents", "/_sandbox/restore",
                   "/_sandbox/inbox/deep"):
        reply = await raw(port, "POST", target, [("Host", "127.0.0.1"), *typed], body)
        if target == "/_sandbox/inbox/deep" and content_type not in ("application/json", "application/problem+json"):
            assert reply.status == 200, (target, reply.status)  # the inbox parses nothing it is not told is JSON
            continue
        assert reply.status == 400, (target, content_type, reply.status, reply.body[:300])
        assert reply.content_type == "application/problem+json"
        assert reply.headers["vipps-sandbox-rule"] == "json-too-deep", reply.body[:300]
    inbox = await sandbox.request("GET", "/_sandbox/inbox/deep", "test")
    expected = 0 if content_type in ("application/json", "application/problem+json") else 1
    assert len(inbox.json["deliveries"]) == expected


async def test_brackets_inside_strings_nest_nothing(sandbox):
    reply = await raw(sandbox.running.test_port, "POST", "/_sandbox/inbox/flat",
                      [("Host", "127.0.0.1"), ("Content-Type", "application/json")],
                      json.dumps({"text": "[" * 5000 + '\\"{' * 100, "list": nested(63)}).encode())
    assert reply.status == 200, reply.body


# ---------------------------------------------------------------------------------------------------------
# 12: a value that failed to match is never echoed; malformed values are logged clipped and escaped
# ---------------------------------------------------------------------------------------------------------

async def test_swapped_credentials_and_a_secret_in_the_msn_header_are_never_echoed(sandbox, caplog, capfd):
    import base64
    import logging

    caplog.set_level(logging.DEBUG)
    merchant = sandbox.key("merchant", "test")
    management = sandbox.key("management", "production")
    secret, other = merchant["client_secret"], management["client_secret"]
    seen: list[str] = []

    async def call(method: str, path: str, env: str, headers: dict, data: str | None = None) -> None:
        async with sandbox.session.request(method, sandbox.url(env) + path, headers=headers, data=data) as resp:
            seen.append(await resp.text())
            seen.append(json.dumps(dict(resp.headers)))
            assert resp.status in (400, 401), (path, resp.status)

    # client_id and client_secret swapped, on both token endpoints and both credential forms
    await call("POST", "/accesstoken/get", "test", {"client_id": secret, "client_secret": merchant["client_id"],
                                                    "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"]})
    basic = base64.b64encode(f"{other}:{management['client_id']}".encode()).decode()
    await call("POST", "/miami/v1/token", "production", {"Authorization": f"Basic {basic}",
                                                        "Content-Type": "application/x-www-form-urlencoded"},
               "grant_type=client_credentials")
    await call("POST", "/miami/v1/token", "production", {"client_id": other, "client_secret": management["client_id"]},
               "grant_type=" + other)
    # a secret in the Merchant-Serial-Number header (and a value with a control character)
    await call("POST", "/accesstoken/get", "test", {"client_id": merchant["client_id"], "client_secret": secret,
                                                    "Ocp-Apim-Subscription-Key": merchant["subscription_key_primary"],
                                                    "Merchant-Serial-Number": secret})
    await call("GET", "/epayment/v1/payments/abcdefgh", "test", {"Merchant-Serial-Number": "12\t34"})
    log = (await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")).text
    out, err = capfd.readouterr()
    for text in (*seen, log, out, err, caplog.text):
        assert secret not in text and other not in text
    # the body is Azure AD's, with a placeholder for the identifier; the plain words are in the sandbox's header
    assert "'(not shown by the sandbox)'" in seen[0] and "not a known client id" in seen[1]
    msns = [entry["msn"] for entry in json.loads(log)["entries"] if entry["msn"]]
    assert msns == ["12\\t34", secret[:8] + "…"], msns


# ---------------------------------------------------------------------------------------------------------
# 17: patterns match the whole value: a trailing newline is not a different payment or a valid MSN
# ---------------------------------------------------------------------------------------------------------

async def test_a_reference_with_a_trailing_newline_is_refused_with_the_real_400(sandbox):
    merchant = sandbox.key("merchant", "test")
    body = {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": "newline-ref-1", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example/r"}
    created = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant, json_body=body,
                                    headers={"Idempotency-Key": "newline-1"})
    assert created.status == 201, created.text
    reply = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant,
                                  json_body=body | {"reference": "newline-ref-1\n"},
                                  headers={"Idempotency-Key": "newline-2"})
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert [d["name"] for d in reply.json["extraDetails"]] == ["reference"], reply.json
    for target in ("newline-ref-1%0A", "newline-ref-1%0A/capture"):
        method = "POST" if target.endswith("capture") else "GET"
        reply = await sandbox.request(method, f"/epayment/v1/payments/{target}", "test", keyset=merchant,
                                      json_body={"modificationAmount": {"currency": "NOK", "value": 100}}
                                      if method == "POST" else None, headers={"Idempotency-Key": "newline-3"})
        assert reply.status == 400, (target, reply.status, reply.text)


async def test_msns_ledger_ids_and_fault_rules_with_a_trailing_newline_are_refused(sandbox):
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    msn = sandbox.msn_role("premium-shop-1")
    assert (await sandbox.request("GET", f"/management/v1/sales-units/{msn}", "production",
                                  keyset=partner)).status == 200
    reply = await sandbox.request("GET", f"/management/v1/sales-units/{msn}%0A", "production", keyset=partner)
    assert reply.status == 400 and "MSN in the path" in reply.json["detail"], reply.text
    accountant = sandbox.key("accounting", owner=sandbox.partner_role("accountant"))
    reply = await sandbox.request("GET", "/report/v2/ledgers/123%0A/funds/feed", "production", keyset=accountant)
    assert reply.status == 400, reply.text
    reply = await sandbox.request("GET", "/report/v2/ledgers/123/funds/dates/2024-01-01%0A", "production",
                                  keyset=accountant)
    assert reply.status == 400, reply.text
    reply = await sandbox.request("POST", "/_sandbox/faults", "test", json_body={
        "path": "/epayment/v1/payments/*", "msn": f"{msn}\n", "status": 500})
    assert reply.status == 400 and reply.json["extraDetails"][0]["name"] == "msn", reply.text
    # The header can carry no newline: the HTTP parser refuses a folded or CR-ended value first.
    for value in (f"{msn}\r\n ", f"{msn}\r"):
        request = (f"GET /epayment/v1/payments/newline-ref-9 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Merchant-Serial-Number: {value}\r\nConnection: close\r\n\r\n").encode()
        reply = await send(sandbox.running.test_port, request)
        assert reply.status == 400, (value, reply.status, reply.body)


async def test_unicode_digits_are_not_numbers(sandbox):
    """'²' is a digit to str.isdigit() but not to int(): a 404 and a 400, not a 500."""
    reply = await raw(sandbox.running.test_port, "DELETE", "/_sandbox/faults/%C2%B2", [("Host", "127.0.0.1")])
    assert reply.status == 404, reply.body
    accountant = sandbox.key("accounting", owner=sandbox.partner_role("accountant"))
    reply = await sandbox.request("GET", "/settlement/v1/ledgers?pageSize=%C2%B2", "production", keyset=accountant)
    assert reply.status == 400, reply.text


def test_spec_patterns_are_read_the_ecma_way():
    from sandbox.core.spec import SpecSchemas, ecma_pattern

    assert ecma_pattern(r"^[0-9]{4,10}$") == r"^[0-9]{4,10}\Z"
    assert ecma_pattern(r"^a\$[$]b$") == r"^a\$[$]b\Z"
    assert ecma_pattern(r"^[^]$]x$") == r"^[^]$]x\Z"
    epayment = SpecSchemas("epayment-1.8.1.yaml")
    assert epayment.errors("Reference", "abcdefgh") == []
    assert epayment.errors("Reference", "abcdefgh\n") != []


async def test_inbox_and_snapshot_names_with_a_trailing_newline_are_refused(sandbox):
    reply = await raw(sandbox.running.test_port, "POST", "/_sandbox/inbox/orders%0A", [("Host", "127.0.0.1")], b"{}")
    assert reply.status == 400, reply.body
    reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "before\n"})
    assert reply.status == 400, reply.text


# ---------------------------------------------------------------------------------------------------------
# 13: slow clients: head and body timeouts, and the accept-error log throttled
# ---------------------------------------------------------------------------------------------------------

async def read_until_closed(reader: asyncio.StreamReader, within: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (generous bound: a hung socket fails)."""
    return await asyncio.wait_for(reader.read(), within)


async def test_a_partial_head_is_closed_after_the_head_timeout_while_others_are_served():
    async with started(Settings(port=0, prod_port=0, head_timeout=0.5)) as sandbox:
        port = sandbox.running.test_port
        slow = []
        for first in (b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"", b"G"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(first)
            slow.append((reader, writer))

        async def drip(writer: asyncio.StreamWriter) -> None:  # one byte at a time: the head's total time counts
            try:
                for byte in b"ET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.05)
            except (ConnectionError, RuntimeError):
                pass

        dripping = asyncio.create_task(drip(slow[2][1]))
        for _ in range(5):  # meanwhile everyone else is served
            reply = await sandbox.request("GET", "/_sandbox/health", "test")
            assert reply.status == 200
        for reader, writer in slow:
            answer = await read_until_closed(reader)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["statusCode"] == 408
            writer.close()
        dripping.cancel()
        assert (await sandbox.request("GET", "/_sandbox/health", "test")).status == 200


async def keep_alive_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await reader.readexactly(length)
    return head


async def test_the_head_timeout_times_each_head_of_a_keep_alive_connection():
    """A connection keeps one head timer across its requests (no timer per request): quick requests for longer
    than the head timeout in all are served, and a later request's partial head still gets its 408, whether it
    begins while the timer of an earlier head is pending or after that timer found the connection idle."""
    async with started(Settings(port=0, prod_port=0, head_timeout=0.5)) as sandbox:
        port = sandbox.running.test_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(8):  # 0.8 s or more of quick requests on one connection
            assert (await keep_alive_get(reader, writer)).startswith(b"HTTP/1.1 200 ")
            await asyncio.sleep(0.1)
        writer.write(b"GET /_sandbox/health HTTP/1.1\r\n")  # a head that never ends, begun mid-timer
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await keep_alive_get(reader, writer)).startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(1.0)  # idle: the connection's timer has fired and stopped
        writer.write(b"GET /_sandbox/health HTTP/1.1\r\n")
        answer = await read_until_closed(reader)
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        writer.close()
        assert (await sandbox.request("GET", "/_sandbox/health", "test")).status == 200


async def test_a_stalled_body_gets_the_apis_408_after_the_body_timeout():
    async with started(Settings(port=0, prod_port=0, body_timeout=0.5)) as sandbox:
        port = sandbox.running.test_port
        before = sandbox.runtime.clock.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /_sandbox/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"advanceSeconds\": 36")
        reply = await sandbox.request("GET", "/_sandbox/health", "test")
        assert reply.status == 200
        answer = await read_until_closed(reader)
        writer.close()
        head, body = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 408 ") and b"application/problem+json" in head, answer
        assert json.loads(body)["status"] == 408
        assert sandbox.runtime.clock.time() - before < 3600
        entries = await log_entries(sandbox)
        assert [e["status"] for e in entries if e["path"] == "/_sandbox/clock"] == [408]


async def test_a_slow_but_steady_body_and_keep_alive_still_work():
    """The body timeout is for a body that stops, not for one that comes in pieces."""
    async with started(Settings(port=0, prod_port=0, body_timeout=0.5, head_timeout=0.5)) as sandbox:
        reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.running.test_port)
        body = json.dumps({"advanceSeconds": 60}).encode()
        for _ in range(2):  # two requests on one connection
            writer.write(b"POST /_sandbox/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            for i in range(0, len(body), 4):
                writer.write(body[i:i + 4])
                await asyncio.sleep(0.1)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 "), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            await reader.readexactly(length)
        writer.close()


async def test_out_of_file_descriptors_the_log_stays_short_and_the_server_recovers():
    """A server limited to few descriptors, and more silent connections than it has: it cannot accept for a
    while. asyncio would log that with a traceback every second; the log holds a line or two, and once the head
    timeout has closed the silent connections, requests are served again."""
    import resource
    import sys

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "serve", "--port", "0", "--prod-port", "0", "--head-timeout", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, preexec_fn=few_descriptors)
    output: list[str] = []
    port = None

    async def read_output() -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            output.append(line.decode(errors="replace"))

    reading = asyncio.create_task(read_output())
    silent: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(30):
            while port is None:
                await asyncio.sleep(0.05)
                for line in output:
                    if "serving the test environment" in line:
                        port = int(line.split("http://127.0.0.1:")[1].split()[0])
        for _ in range(80):
            _, writer = await asyncio.open_connection("127.0.0.1", port)  # the kernel's backlog takes them
            silent.append(writer)
        await asyncio.sleep(6)  # the server runs out, retries every second, closes the silent ones after 3 s
        async with asyncio.timeout(30):
            while True:  # generous: served again once the silent connections are gone
                try:
                    reply = await send(port, b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                             b"Connection: close\r\n\r\n", timeout=5)
                    if reply.status == 200:
                        break
                except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
                    pass
                await asyncio.sleep(0.2)
    finally:
        for writer in silent:
            writer.close()
        proc.terminate()
        code = await proc.wait()
        await reading
    text = "".join(output)
    assert code == 0, text[-3000:]  # stopped cleanly
    accept_lines = [line for line in output if "accept" in line]
    assert accept_lines and "Too many open files" in accept_lines[0], text[-3000:]
    assert len(accept_lines) <= 2, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert len([line for line in output if "no whole request head" in line]) <= 2, text[-3000:]


# ---------------------------------------------------------------------------------------------------------
# Also: the admin token on the command line shows in `ps`
# ---------------------------------------------------------------------------------------------------------

async def test_admin_token_on_the_command_line_warns_and_help_names_the_variable():
    import sys

    helptext = " ".join(build_parser()._subparsers._group_actions[0].choices["serve"].format_help().split())
    assert "VIPPS_SANDBOX_ADMIN_TOKEN" in helptext and "ps" in helptext
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "serve", "--port", "0", "--prod-port", "0", "--admin-token", "t" * 32,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"--admin-token shows in the process list" in line and b"VIPPS_SANDBOX_ADMIN_TOKEN" in line, line
        assert b"t" * 32 not in line
    finally:
        proc.terminate()
        await proc.wait()
