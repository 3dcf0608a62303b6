"""The simulated user's pages under attack (issue 13, findings 2 and 4), through real servers and a real Chromium.

- Landing tokens: signed with a random key of this sandbox (kept in the state directory with --state) and
  bound to one payment, so a token cannot be made without the sandbox, moved to another payment, or taken
  to another sandbox.
- returnUrl: read as a browser reads it (tabs, newlines, padding and case do not hide javascript:), refused
  at create in the ePayment API's format, and never linked or followed from a page even when a snapshot
  holds one.
- Every response under /_sandbox/ carries the pages' Content-Security-Policy and friends (the routes come
  from the policy table), and in Chromium the CSP stops script that a page did not ship.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stat
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from api_formats import BROWSER_PAGES
from browser_support import chromium, needs_chromium, new_page, prefilled_order
from epayment_support import create_body, merchant
from snapshot_support import edit_state, payment_records

from sandbox.core.settings import Settings
from sandbox.core.urls import browser_view, return_url_problem
from sandbox.gateway.page_security import CSP
from sandbox.gateway.policy import ROUTES, Api
from sandbox.testing import started

PAGE_HEADERS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}
#: Said by the CSP, whatever else it says.
CSP_MUSTS = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
             "frame-ancestors 'none'", "form-action 'self'")


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def landing(sandbox, env: str, token: str):
    async with sandbox.session.get(sandbox.url(env) + "/_sandbox/landing?token=" + quote(token)) as resp:
        return resp.status, await resp.text()


async def post_landing(sandbox, env: str, action: str, token: str):
    async with sandbox.session.post(sandbox.url(env) + f"/_sandbox/landing/{action}", data={"token": token},
                                    allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers


# -- finding 2: landing tokens ----------------------------------------------------------------------------------


async def test_a_token_forged_with_the_old_constant_key_is_refused(sandbox):
    """Before: the key was sha256("vipps-sandbox landing token"), in the source; env, MSN, reference and
    pspReference are guessable, so anyone could approve anyone's payment without keys or the admin token."""
    shop = merchant(sandbox)
    created = await shop.create(create_body("forge-ref-0001"))
    assert created.status == 201, created.text
    real = token_of(created.json["redirectUrl"])
    raw = base64.urlsafe_b64decode(real.split(".")[0] + "==")  # b"test|<msn>|forge-ref-0001|<psp>", guessable
    old_key = hashlib.sha256(b"vipps-sandbox landing token").digest()
    for mac in (hmac.new(old_key, raw, hashlib.sha256).digest()[:12],
                hmac.new(old_key, b"vipps-sandbox landing token v2|" + raw, hashlib.sha256).digest()[:16]):
        forged = b64(raw) + "." + b64(mac)
        assert forged != real
        status, text, _ = await post_landing(sandbox, "test", "approve", forged)
        assert status == 400 and "not a landing page token of this sandbox" in text, text
        assert (await landing(sandbox, "test", forged))[0] == 400
    assert (await shop.get("forge-ref-0001")).json["state"] == "CREATED"
    assert (await landing(sandbox, "test", real))[0] == 200


async def test_a_token_of_another_sandbox_is_refused(sandbox):
    """Two sandboxes from the same fixture make the same payment (same MSN, reference and pspReference): the
    token of one opens nothing in the other."""
    async with started(Settings(port=0, prod_port=0)) as other:
        mine = await merchant(sandbox).create(create_body("twin-ref-0001"))
        theirs = await merchant(other).create(create_body("twin-ref-0001"))
        my_token, their_token = token_of(mine.json["redirectUrl"]), token_of(theirs.json["redirectUrl"])
        assert my_token.split(".")[0] == their_token.split(".")[0]  # the same payment, as far as names go
        assert my_token != their_token
        status, text, _ = await post_landing(sandbox, "test", "approve", their_token)
        assert status == 400 and "not a landing page token of this sandbox" in text, text
        assert (await landing(other, "test", my_token))[0] == 400
        assert (await merchant(sandbox).get("twin-ref-0001")).json["state"] == "CREATED"
        # Force approve with the other sandbox's token is refused too (it is checked against this payment's).
        forced = await sandbox.request("POST", "/epayment/v1/test/payments/twin-ref-0001/approve", "test",
                                       keyset=merchant(sandbox).keyset, msn=merchant(sandbox).msn,
                                       json_body={"token": their_token})
        assert forced.status == 400 and "token" in forced.text


async def test_a_token_for_another_payment_is_refused(sandbox):
    """The MAC covers environment, MSN, reference and pspReference: no part can be swapped."""
    shop = merchant(sandbox)
    first = token_of((await shop.create(create_body("bound-ref-0001"))).json["redirectUrl"])
    second = token_of((await shop.create(create_body("bound-ref-0002"))).json["redirectUrl"])
    raw1, mac1 = first.split(".")
    raw2, _ = second.split(".")
    decoded = base64.urlsafe_b64decode(raw1 + "==").decode()
    env, msn, reference, psp = decoded.split("|")
    tampered = [f"{raw2}.{mac1}"] + [b64("|".join(parts).encode()) + "." + mac1 for parts in (
        ("production", msn, reference, psp), (env, "999999", reference, psp), (env, msn, "bound-ref-0002", psp),
        (env, msn, reference, str(int(psp) + 1)))]
    for token in tampered:
        status, text, _ = await post_landing(sandbox, "test", "reject", token)
        assert status == 400, (token, text)
    assert (await shop.get("bound-ref-0002")).json["state"] == "CREATED"
    assert (await shop.get("bound-ref-0001")).json["state"] == "CREATED"


async def test_a_landing_token_survives_a_restart_with_state(tmp_path):
    """With --state the landing key is kept beside the signing key (private, 0600), so links outlive a
    restart; it is never in a snapshot file."""
    state = tmp_path / "state"
    settings = Settings(port=0, prod_port=0, state=state)
    async with started(settings) as first:
        created = await merchant(first).create(create_body("restart-ref-0001"))
        token = token_of(created.json["redirectUrl"])
        assert (await landing(first, "test", token))[0] == 200
    key_file = state / "landing-key"
    assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    async with started(Settings(port=0, prod_port=0, state=state)) as second:
        status, page = await landing(second, "test", token)
        assert status == 200 and "restart-ref-0001" in page
        assert (await post_landing(second, "test", "approve", token))[0] == 303
        saved = await second.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "landing-key-leak"})
        assert saved.status == 200 and key not in Path(saved.json["path"]).read_text()
    for path in state.rglob("*"):
        if path.is_file() and path != key_file:
            assert key not in path.read_text(errors="replace"), path
    # A sandbox without that state directory does not accept it.
    async with started(Settings(port=0, prod_port=0)) as stranger:
        await merchant(stranger).create(create_body("restart-ref-0001"))
        assert (await landing(stranger, "test", token))[0] == 400


# -- finding 4: returnUrl ---------------------------------------------------------------------------------------

#: What browsers read as javascript:, data: and the like, however the scheme is dressed up.
SCRIPT_URLS = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "\tjavascript:alert(1)",
    "java\tscript:alert(1)", "java\nscript:alert(1)", "java\rscript:alert(1)", "\x01javascript:alert(1)",
    "javascript:alert(1)\x00", "jav\x0bascript:alert(1)", "vbscript:msgbox(1)", "VBScript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>", "DATA:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "file:///etc/passwd", "blob:http://127.0.0.1/uuid", "about:blank", "view-source:http://127.0.0.1/",
    "filesystem:http://127.0.0.1/temporary/x",
]
#: Not script, but not a place to send a user back to either: no scheme, or a web URL without a host.
NOT_ABSOLUTE = ["/relative/path", "//shop.example.com/return", "shop.example.com/return", "https:shop.example.com",
                "https:/shop.example.com", "https://", "http:\\\\shop.example.com"]
#: What the docs allow: https (http too, for merchants on localhost) and an app's custom scheme.
ALLOWED = ["https://shop.example.com/return?order=1", "http://localhost:3000/back", "HTTPS://Shop.Example.com/",
           "myapp://payment/done", "com.example.shop:/return", "vipps-shop+v2.app://x",
           "intent://done#Intent;scheme=myapp;end"]


def test_the_url_reader_does_what_a_browser_does():
    """The WHATWG URL Standard's first steps: strip C0 and space at both ends, drop tabs and newlines, lower
    the scheme. A check by name (the old `url.split(':')[0].strip().lower()`) saw "java\\tscript" here."""
    for url in ("java\tscript:x", " \x00JAVA\nSCRIPT:x", "javascript\r:x", "\x1fjavascript:x\x20"):
        assert browser_view(url).scheme == "javascript", url
    assert browser_view("/no/scheme").scheme is None and browser_view("1http://x").scheme is None
    assert browser_view("myapp://x").scheme == "myapp"


@pytest.mark.parametrize("url", SCRIPT_URLS + NOT_ABSOLUTE, ids=repr)
async def test_a_return_url_that_is_not_a_safe_link_is_refused_at_create(sandbox, url):
    shop = merchant(sandbox)
    reference = "xss-" + hashlib.sha1(url.encode()).hexdigest()[:12]
    reply = await shop.create(create_body(reference, flow="NATIVE_REDIRECT", returnUrl=url))
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    body = reply.json
    # the documented code since issue 14: 4090 "Invalid URL" (it was a code-less 400 "Bad Request")
    assert body["title"] == "Invalid URL" and body["detail"] == "See extraDetails for further details"
    assert [d["name"] for d in body["extraDetails"] if d["name"] != "ErrorCode"] == ["returnUrl"]
    assert {"name": "ErrorCode", "reason": "4090"} in body["extraDetails"]
    assert reply.headers["Vipps-Sandbox-Rule"] == "return-url-refused"
    reason = reply.headers.get("Vipps-Sandbox-Reason", "")
    assert "alert(" not in reason and "msgbox" not in reason and "passwd" not in reason  # the value is not echoed
    assert (await shop.get(reference)).status == 404


@pytest.mark.parametrize("url", ALLOWED)
async def test_https_and_app_schemes_are_still_accepted(sandbox, url):
    assert return_url_problem(url) is None
    reference = "ok-" + hashlib.sha1(url.encode()).hexdigest()[:12]
    reply = await merchant(sandbox).create(create_body(reference, flow="NATIVE_REDIRECT", returnUrl=url))
    assert reply.status == 201, reply.text


async def stored_return_urls(sandbox, urls: dict[str, str]) -> None:
    """Payments whose returnUrl the create call now refuses, as an old snapshot can hold them."""
    shop = merchant(sandbox)
    for reference in urls:
        created = await shop.create(create_body(reference, flow="NATIVE_REDIRECT"))
        assert created.status == 201, created.text

    def edit(data: dict) -> None:
        for record in payment_records(data):
            if record["reference"] in urls:
                record["return_url"] = urls[record["reference"]]

    await edit_state(sandbox, edit)


async def test_a_stored_script_return_url_is_never_linked_or_followed(sandbox):
    """Defence in depth at render time: before, the reject page linked "java\\tscript:..." (the tab hid the
    scheme from the check by name, and html.escape leaves tabs alone), and approve redirected to anything."""
    urls = {"stored-xss-0001": "java\tscript:alert(document.domain)", "stored-xss-0002": " javascript:alert(1)",
            "stored-xss-0003": "data:text/html,<script>alert(1)</script>",
            "stored-xss-0004": "https://shop.example.com/\r\nSet-Cookie: x=1"}
    await stored_return_urls(sandbox, urls)
    shop = merchant(sandbox)
    for reference in urls:
        status, page = await landing(sandbox, "test", await landing_token(shop, reference))
        assert status == 200
        status, page, _ = await post_landing(sandbox, "test", "reject", await landing_token(shop, reference))
        assert status == 200 and "ABORTED" in page
        assert "Back to the merchant" not in page and "<a " not in page, page
    await stored_return_urls(sandbox, {"stored-xss-0005": "JAVA\tSCRIPT:alert(1)"})
    status, page, headers = await post_landing(sandbox, "test", "approve", await landing_token(shop, "stored-xss-0005"))
    assert status == 200 and "AUTHORIZED" in page and "Location" not in headers


async def landing_token(shop, reference: str) -> str:
    return token_of((await shop.get(reference)).json["redirectUrl"])


# -- finding 4: the headers of every page ------------------------------------------------------------------------


def test_every_sandbox_route_is_under_the_covered_paths():
    """The hook covers /_sandbox* and /favicon.ico: every control-plane and page route of the policy table is
    there, so a page added to the table gets the headers without anyone remembering to."""
    from sandbox.gateway.page_security import covers

    sandbox_routes = [r for r in ROUTES.values() if r.api is Api.SANDBOX]
    assert len(sandbox_routes) > 20
    assert [r.name for r in sandbox_routes if not covers(r.path)] == []


async def test_every_route_of_the_policy_table_answers_pages_with_the_security_headers(sandbox):
    """Each route of the policy table is called (its path filled in with live ids where they matter); every
    /_sandbox response, and any HTML or SVG anywhere, must carry the CSP, X-Frame-Options DENY, nosniff and
    a same-origin Referrer-Policy. Before, none did."""
    shop = merchant(sandbox)
    tokens = {}
    for name, reference, extra in (("approve", "hdr-ref-0001", {}), ("reject", "hdr-ref-0002", {}),
                                   ("landing", "hdr-ref-0003", {})):
        body = create_body(reference, flow="NATIVE_REDIRECT", **extra)
        del body["returnUrl"]
        tokens[name] = token_of((await shop.create(body)).json["redirectUrl"])
    order_id = await prefilled_order(sandbox, "Header Sykler", "hdr-order-1")
    values = {"id": order_id, "productOrderId": order_id, "msn": shop.msn, "reference": "hdr-ref-0003",
              "name": "dashboard.js", "env": "test", "action": "approve", "client_id": "no-such-client"}
    token_for = {"sandbox.landing.approve": tokens["approve"], "sandbox.landing.reject": tokens["reject"]}
    last = {"sandbox.reset", "sandbox.restore"}
    entries = sorted(ROUTES.values(), key=lambda r: (r.name in last, r.method != "GET", r.name))
    html_routes, svg_routes, checked = set(), set(), 0
    for route in entries:
        path = re.sub(r"\{(\w+)\}", lambda m: quote(values.get(m[1], "x"), safe=""), route.path)
        token = token_for.get(route.name, tokens["landing"])
        if path.startswith("/_sandbox"):
            path += "?token=" + quote(token)
        kwargs = {"data": {"token": token}} if route.name in token_for else {"json": {}} if route.method != "GET" \
            else {}
        async with sandbox.session.request(route.method, sandbox.url("test") + path, allow_redirects=False,
                                           **kwargs) as resp:
            await resp.read()
            content_type, headers = resp.content_type, resp.headers
        page_like = content_type in ("text/html", "image/svg+xml")
        if route.api is Api.SANDBOX or page_like:
            checked += 1
            csp = headers.get("Content-Security-Policy", "")
            missing = [must for must in CSP_MUSTS if must not in csp]
            assert not missing, (route.name, resp.status, missing, csp)
            for name, value in PAGE_HEADERS.items():
                assert headers.get(name) == value, (route.name, name, headers.get(name))
        if content_type == "text/html":
            html_routes.add(route.name)
        elif content_type == "image/svg+xml":
            svg_routes.add(route.name)
    # Login's authorize is an API route, but the user's browser opens it: its error page is a page like the others.
    assert "login.auth" in html_routes
    assert checked == sum(r.api is Api.SANDBOX for r in ROUTES.values()) + len(html_routes & BROWSER_PAGES)
    # The pages were really served (not just their errors): the check above saw each of them.
    assert {"sandbox.landing", "sandbox.landing.approve", "sandbox.landing.reject", "sandbox.product_orders.page",
            "sandbox.dashboard"} <= html_routes, html_routes
    assert {"sandbox.qr", "sandbox.favicon"} <= svg_routes, svg_routes
    assert all(ROUTES[name].api is Api.SANDBOX or name in BROWSER_PAGES for name in html_routes | svg_routes)


async def test_the_landing_page_widens_form_action_only_to_its_return_url_scheme(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("csp-form-0001", flow="NATIVE_REDIRECT", returnUrl="myapp://done"))
    async with sandbox.session.get(created.json["redirectUrl"]) as resp:
        csp = resp.headers["Content-Security-Policy"]
    assert "form-action 'self' myapp:;" in csp + ";" and csp.replace(" myapp:", "") == CSP


async def test_a_redirect_a_page_raises_carries_the_headers_and_api_answers_do_not(sandbox):
    """The headers are set by the front door: on the redirect the landing page's Approve raises (to the
    returnUrl), and not on an API's JSON answer (a GET payment), which is no page."""
    shop = merchant(sandbox)
    created = await shop.create(create_body("csp-redirect-01", flow="NATIVE_REDIRECT"))
    token = token_of(created.json["redirectUrl"])
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/landing/approve", data={"token": token},
                                    allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers.get("Content-Security-Policy") == CSP
        for name, value in PAGE_HEADERS.items():
            assert resp.headers.get(name) == value, name
    reply = await shop.get("csp-redirect-01")
    assert reply.status == 200 and "Content-Security-Policy" not in reply.headers


# -- in a real Chromium ------------------------------------------------------------------------------------------


@pytest.fixture
async def browser():
    async with chromium() as launched:
        yield launched


async def watch(page) -> dict:
    """Dialogs (alert, confirm) and CSP violations the page reports; dialogs are dismissed."""
    seen = {"dialogs": [], "violations": []}

    async def on_dialog(dialog):
        seen["dialogs"].append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: seen["violations"].append(msg.text) if "Content Security Policy" in msg.text
            else None)
    return seen


INJECT = """() => {
  window.__ran = [];
  const inline = document.createElement("script");
  inline.textContent = "window.__ran.push('inline script')";
  document.body.append(inline);
  const link = document.createElement("a");
  link.href = "javascript:window.__ran.push('javascript: link');alert('javascript: link')";
  link.id = "__injected";
  link.textContent = "x";
  document.body.append(link);
  const handler = document.createElement("div");
  handler.setAttribute("onclick", "window.__ran.push('inline handler')");
  handler.id = "__handler";
  handler.textContent = "y";
  document.body.append(handler);
  return true;
}"""


@needs_chromium
async def test_in_chromium_a_crafted_return_url_never_runs_script(browser, sandbox):
    """The stored returnUrl of a landing page, clicked in a real browser: no link to click, no dialog, no
    flag set; and the approve button does not take the browser to it either."""
    payload = "java\tscript:window.__pwned=1;alert(document.domain)"
    await stored_return_urls(sandbox, {"browser-xss-0001": payload, "browser-xss-0002": payload})
    shop = merchant(sandbox)
    page, errors = await new_page(browser)
    seen = await watch(page)
    await page.goto(sandbox.url("test") + "/_sandbox/landing?token=" + await landing_token(shop, "browser-xss-0001"))
    await page.locator("button.reject").click()
    await page.locator("p.state").filter(has_text="ABORTED").wait_for()
    links = page.locator("a")
    for n in range(await links.count()):  # whatever is there is clicked: nothing may run
        await links.nth(n).click()
    await page.wait_for_timeout(300)
    assert await links.count() == 0
    assert await page.evaluate("() => window.__pwned") is None
    await page.goto(sandbox.url("test") + "/_sandbox/landing?token=" + await landing_token(shop, "browser-xss-0002"))
    await page.locator("button.approve").click()
    await page.locator("p.state").filter(has_text="AUTHORIZED").wait_for()
    assert await page.evaluate("() => window.__pwned") is None
    assert seen["dialogs"] == [] and errors == []


@needs_chromium
async def test_in_chromium_the_csp_stops_script_a_page_did_not_ship(browser, sandbox):
    """Each kind of page (landing, the page after reject, product order, dashboard, QR) in Chromium: a script
    element, a javascript: link and an inline handler injected into it do not run. Before, all three did."""
    shop = merchant(sandbox)
    first = (await shop.create(create_body("csp-page-0001"))).json["redirectUrl"]
    second = token_of((await shop.create(create_body("csp-page-0002"))).json["redirectUrl"])
    qr = (await shop.create(create_body("csp-page-0003", flow="QR"))).json["redirectUrl"]
    order_id = await prefilled_order(sandbox, "CSP Sykler", "csp-order-1")
    page, errors = await new_page(browser)
    seen = await watch(page)

    async def attempt(where: str) -> None:
        await page.evaluate(INJECT)
        await page.locator("#__injected").click()
        await page.locator("#__handler").click()
        await page.wait_for_timeout(200)
        assert await page.evaluate("() => window.__ran") == [], where

    for url in (first, sandbox.url("production") + f"/_sandbox/product-orders/{order_id}",
                sandbox.url("test") + "/_sandbox/"):
        response = await page.goto(url)
        assert response.status == 200 and response.headers["content-security-policy"].startswith("default-src")
        await attempt(url)
    await page.goto(sandbox.url("test") + "/_sandbox/landing?token=" + quote(second))
    await page.locator("button.reject").click()
    await page.locator("p.state").filter(has_text="ABORTED").wait_for()
    await attempt("after reject")
    response = await page.goto(qr)
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert response.headers["content-security-policy"] == CSP
    assert seen["dialogs"] == [] and len(seen["violations"]) >= 3 and errors == []


@needs_chromium
async def test_in_chromium_pages_still_work_under_the_csp(browser, sandbox):
    """The dashboard loads and renders its tables, and Approve on the landing page still takes the browser to a
    returnUrl on another origin (form-action), with no CSP violation anywhere."""
    shop = merchant(sandbox)
    back = sandbox.url("production") + "/_sandbox/health"  # another origin (port) than the test-port landing page
    created = await shop.create(create_body("csp-works-0001", returnUrl=back))
    page, errors = await new_page(browser)
    seen = await watch(page)
    await page.goto(sandbox.url("test") + "/_sandbox/")
    await page.locator("#matrix-grid td.allow").first.wait_for()
    await page.locator('#payments-table tr[data-reference="csp-works-0001"]').wait_for()
    await page.locator(".floor").first.wait_for()
    await page.goto(created.json["redirectUrl"])
    await page.locator("button.approve").click()
    await page.wait_for_url(back)
    assert (await shop.get("csp-works-0001")).json["state"] == "AUTHORIZED"
    assert seen["violations"] == [] and seen["dialogs"] == [] and errors == []
