"""The dashboard's JSON feeds, over real HTTP: building, matrix, listings and the payment buttons."""

from __future__ import annotations

import json

from snapshot_support import add_copies, edit_state, payment_records

from sandbox.apis.epayment.routes import PAYMENTS
from sandbox.dashboard.feeds import PAGE_DEFAULT, PAGE_MAX
from sandbox.gateway.policy import matrix


def count_calls(obj, name: str):
    """Counts the calls of obj.name from now on (the real method still runs); returns a reader of the count."""
    real, calls = getattr(obj, name), [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    setattr(obj, name, counted)
    return lambda: calls[0]


async def make_payment(sandbox, reference: str, env: str = "production") -> None:
    keyset = (sandbox.key("partner", owner=sandbox.partner_role("premium")) if env == "production"
              else sandbox.key("merchant", "test", msn=sandbox.msn_role("premium-shop-1")))
    reply = await sandbox.request("POST", "/epayment/v1/payments", env, keyset=keyset,
                                  msn=sandbox.msn_role("premium-shop-1"), headers={"Idempotency-Key": reference},
                                  json_body={"amount": {"currency": "NOK", "value": 1000},
                                             "paymentMethod": {"type": "WALLET"}, "reference": reference,
                                             "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/r"})
    assert reply.status == 201, reply.text


async def test_the_building_masks_every_secret_and_shows_every_client_id(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/building", "test")
    assert reply.status == 200
    text = reply.text
    for row in sandbox.keys():
        assert row["client_id"] in text
        for secret in (row["client_secret"], row["subscription_key_primary"], row["subscription_key_secondary"]):
            if secret:
                assert json.dumps(secret) not in text and secret not in text
    building = reply.json
    premium = next(p for p in building["partners"] if p["role"] == "premium")
    assert [k["type"] for k in premium["ring"]] == ["partner"]
    assert premium["ring"][0]["clientSecret"].startswith("••••") and len(premium["ring"][0]["clientSecret"]) == 8
    units = [u for m in premium["merchants"] for u in m["salesUnits"]]
    assert sandbox.msn_role("premium-shop-1") in {u["msn"] for u in units}
    assert set(premium["ring"][0]["doors"]) == {u["msn"] for u in units}  # partner keys: every connected door
    accountant = next(p for p in building["partners"] if p["role"] == "accountant")
    assert accountant["ring"][0]["type"] == "accounting" and accountant["ledgerRoom"]
    independent = [u["msn"] for m in building["independent"] for u in m["salesUnits"]]
    assert independent == [sandbox.msn_role("independent-1")]
    assert building["roles"]["salesUnits"]["premium-shop-1"] == sandbox.msn_role("premium-shop-1")


async def test_the_matrix_is_the_policy_table(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/matrix", "production")
    assert reply.status == 200 and reply.json == matrix()


async def test_payments_of_both_environments_are_listed_newest_first(sandbox):
    await make_payment(sandbox, "feed-test-0001", "test")
    await make_payment(sandbox, "feed-prod-0001", "production")
    rows = (await sandbox.request("GET", "/_sandbox/payments", "test")).json["payments"]
    assert [(r["environment"], r["reference"], r["state"]) for r in rows] == [
        ("production", "feed-prod-0001", "CREATED"), ("test", "feed-test-0001", "CREATED")]
    assert rows[0]["landingUrl"].startswith("/_sandbox/landing?token=")


async def test_the_dashboard_buttons_reach_the_other_environment(sandbox):
    """The page lives on the test port; a production payment is approved through the env in the path."""
    await make_payment(sandbox, "feed-prod-0002", "production")
    msn = sandbox.msn_role("premium-shop-1")
    reply = await sandbox.request("POST", f"/_sandbox/dashboard/payments/production/{msn}/feed-prod-0002/approve",
                                  "test")
    assert reply.status == 200, reply.text
    assert reply.json["state"] == "AUTHORIZED"
    again = await sandbox.request("POST", f"/_sandbox/dashboard/payments/production/{msn}/feed-prod-0002/expire",
                                  "test")
    assert again.status == 409, again.text


async def test_the_dashboard_buttons_refuse_bad_input_with_4xx(sandbox):
    msn = sandbox.msn_role("premium-shop-1")
    await make_payment(sandbox, "feed-prod-0003", "production")
    cases = [(f"/_sandbox/dashboard/payments/staging/{msn}/feed-prod-0003/approve", 400),
             (f"/_sandbox/dashboard/payments/production/{msn}/feed-prod-0003/capture", 404),
             (f"/_sandbox/dashboard/payments/test/{msn}/feed-prod-0003/approve", 404),
             (f"/_sandbox/dashboard/payments/production/{msn}/no-such-reference/approve", 404)]
    for path, status in cases:
        reply = await sandbox.request("POST", path, "test")
        assert reply.status == status, (path, reply.text)
    malformed = await sandbox.request("POST", f"/_sandbox/dashboard/payments/production/{msn}/feed-prod-0003/approve",
                                      "test", data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status == 400


async def test_product_orders_are_listed(sandbox):
    assert (await sandbox.request("GET", "/_sandbox/product-orders", "test")).json == []
    partner = sandbox.key("partner", owner=sandbox.partner_role("premium"))
    packages = await sandbox.request("GET", "/management/v1/partners/price-packages", "production", keyset=partner)
    body = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "912345688"},
            "pricePackageId": next(p["pricePackageId"] for p in packages.json if p["market"] == "NO"),
            "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Feed Sykler",
            "settlementBankAccount": {"scheme": "BBAN:NO", "id": "86011117947"}, "productUseCase": "Website",
            "annualTurnover": 1000000, "hasRecurring": False,
            "website": {"url": "https://sykler.example.no", "termsUrl": "https://sykler.example.no/terms"}}
    created = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                    json_body=body, headers={"Idempotency-Key": "feed-order-1"})
    assert created.status == 201, created.text
    rows = (await sandbox.request("GET", "/_sandbox/product-orders", "test")).json
    order_id = created.json["prefilledOrderId"]
    assert [(r["id"], r["status"], r["partnerId"], r["merchant"]) for r in rows] == [
        (order_id, "RECEIVED", partner["owner"], "business:NO:ORG/912345688")]
    for action in ("submit", "complete"):
        assert (await sandbox.request("POST", f"/_sandbox/product-orders/{order_id}/{action}", "test")).status == 200
    done = (await sandbox.request("GET", "/_sandbox/product-orders", "test")).json[0]
    assert done["status"] == "COMPLETED" and done["salesUnit"]["msn"]
    # The new merchant and its sales unit, with fresh merchant keys, appear in the building at once.
    building = (await sandbox.request("GET", "/_sandbox/building", "test")).json
    premium = next(p for p in building["partners"] if p["role"] == "premium")
    new = next(m for m in premium["merchants"] if m["key"] == "business:NO:ORG/912345688")
    assert [u["msn"] for u in new["salesUnits"]] == [done["salesUnit"]["msn"]]
    assert {k["environment"] for k in new["salesUnits"][0]["ring"]} == {"test", "production"}


async def test_only_the_dashboard_files_are_served(sandbox):
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        reply = await sandbox.request("GET", f"/_sandbox/dashboard/{name}", "test")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith(kind)
    for name in ("feeds.py", "__init__.py", "..%2F..%2Fpolicy.py", "index.html"):
        assert (await sandbox.request("GET", f"/_sandbox/dashboard/{name}", "test")).status == 404
    page = await sandbox.request("GET", "/_sandbox/", "production")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN


async def test_the_payment_feed_is_paged_and_a_page_costs_o_page_with_20000_payments(sandbox):
    """Finding 15: the feed made a row for every payment on each call (and the dashboard calls it every few
    seconds), blocking the event loop. Now a page of rows, newest first, with a cursor to the older ones."""
    await make_payment(sandbox, "feed-many-seed")
    await edit_state(sandbox, lambda data: add_copies(data, payment_records(data)[0], 20_000, "feed-many"))
    backend = sandbox.running.app[PAYMENTS]
    assert len(backend.payments) == 20_001
    rows_made = count_calls(backend, "refusal")  # one call per row the feed makes (a spy: the real method runs)

    first = await sandbox.request("GET", "/_sandbox/payments", "test")
    assert first.status == 200, first.text
    page = first.json
    assert len(page["payments"]) == PAGE_DEFAULT and page["total"] == 20_001
    assert [r["reference"] for r in page["payments"][:2]] == ["feed-many-19999", "feed-many-19998"]
    assert len(first.text) < 1000 * PAGE_DEFAULT  # a page, not 20,000 rows
    assert rows_made() == PAGE_DEFAULT

    # The next pages follow on exactly, and the last one ends with the oldest payment.
    second = (await sandbox.request("GET", f"/_sandbox/payments?before={page['next']}", "test")).json
    assert second["payments"][0]["reference"] == f"feed-many-{19999 - PAGE_DEFAULT:05d}"
    deep = (await sandbox.request("GET", "/_sandbox/payments?limit=3&before=3", "test")).json
    assert [r["reference"] for r in deep["payments"]] == ["feed-many-00001", "feed-many-00000", "feed-many-seed"]
    assert deep["next"] is None and rows_made() == 2 * PAGE_DEFAULT + 3
    seen, before = [], None
    while True:
        query = f"?limit={PAGE_MAX}" + (f"&before={before}" if before is not None else "")
        got = (await sandbox.request("GET", "/_sandbox/payments" + query, "test")).json
        assert len(got["payments"]) <= PAGE_MAX
        seen += [r["reference"] for r in got["payments"]]
        if got["next"] is None:
            break
        before = got["next"]
    assert seen == [f"feed-many-{n:05d}" for n in range(19_999, -1, -1)] + ["feed-many-seed"]
    # A new payment goes on top without moving the pages already read.
    await make_payment(sandbox, "feed-many-newest")
    again = (await sandbox.request("GET", f"/_sandbox/payments?before={page['next']}", "test")).json
    assert again["payments"] == second["payments"]


async def test_the_payment_feed_refuses_bad_paging_with_400(sandbox):
    for query in ("limit=0", f"limit={PAGE_MAX + 1}", "limit=ten", "before=-1", "before=1e3", "limit=%EF%BC%91"):
        reply = await sandbox.request("GET", f"/_sandbox/payments?{query}", "test")
        assert reply.status == 400, (query, reply.text)
        assert reply.json["extraDetails"][0]["name"] in ("limit", "before")


async def test_the_dashboard_without_its_slash_redirects_to_it(sandbox):
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(sandbox.url("test") + "/_sandbox?tab=log", allow_redirects=False) as reply:
            assert reply.status == 308
            assert reply.headers["Location"] == "/_sandbox/?tab=log"
            assert reply.headers["X-Frame-Options"]  # a page's security headers, like every /_sandbox answer
        async with session.get(sandbox.url("production") + "/_sandbox") as reply:
            assert reply.status == 200 and str(reply.url).endswith("/_sandbox/")
            assert "text/html" in reply.headers["Content-Type"]
    entries = await sandbox.request("GET", "/_sandbox/requests?limit=5", "test")
    listed = entries.json["entries"]
    assert any(entry["route"] == "sandbox.dashboard.bare" and entry["status"] == 308 for entry in listed), entries.text


async def test_a_query_too_long_for_a_location_is_refused_not_dropped(sandbox):
    """The redirect keeps the query percent-encoded; one no client could read back in a Location is a 414."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.get(sandbox.url("test") + "/_sandbox?q=a%20b%26c", allow_redirects=False) as reply:
            assert reply.status == 308 and reply.headers["Location"] == "/_sandbox/?q=a%20b%26c"
        async with session.get(sandbox.url("test") + "/_sandbox?q=" + "A" * 8000, allow_redirects=False) as reply:
            assert reply.status == 414
            body = await reply.json()
            assert "too long" in json.dumps(body) and "Location" not in reply.headers
        async with session.get(sandbox.url("test") + "/_sandbox?q=" + "A" * 7990, allow_redirects=False) as reply:
            assert reply.status == 308
