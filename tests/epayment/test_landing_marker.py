"""The pages a user's browser opens say "sandbox" on the page, and a visit logs no 404 for a favicon.

In Debian's headless Chromium (see browser_support), because only a real browser asks for /favicon.ico.
"""

from __future__ import annotations

from browser_support import chromium, log_entries, needs_chromium, new_page, prefilled_order, wait_for_entry
from epayment_support import create_body, merchant

pytestmark = needs_chromium


def favicon_request(entry: dict) -> bool:
    return "favicon" in entry["path"]


async def assert_visible_marker(page) -> None:
    marker = page.locator("[data-sandbox-marker]")
    assert await marker.count() == 1
    assert await marker.is_visible()
    assert "sandbox" in (await marker.inner_text()).lower()
    box = await marker.bounding_box()
    assert box is not None and box["y"] + box["height"] <= page.viewport_size["height"]  # seen without scrolling
    assert box["height"] >= 16 and box["width"] >= 200  # a band, not a speck


async def test_the_landing_page_says_sandbox_and_its_visit_logs_no_404(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("landing-marker-1", 24900, paymentDescription="Bike bell"))
    assert created.status == 201, created.text
    async with chromium() as browser:
        page, errors = await new_page(browser)
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
        response = await page.goto(created.json["redirectUrl"])
        assert response is not None and response.status == 200
        await assert_visible_marker(page)
        card = await page.locator(".card").bounding_box()
        marker = await page.locator("[data-sandbox-marker]").bounding_box()
        assert marker["y"] < card["y"]  # above the payment, the first thing read
        # The browser asks for the page's icon after the load: wait until it has, then look at the whole log.
        icon = await wait_for_entry(sandbox, favicon_request)
        assert (icon["method"], icon["path"], icon["status"]) == ("GET", "/_sandbox/dashboard/favicon.svg", 200)
        assert errors == [] and failed == []
    assert [(e["method"], e["path"], e["status"]) for e in await log_entries(sandbox) if e["status"] >= 400] == []


async def test_an_image_opened_alone_gets_the_icon_from_favicon_ico(sandbox):
    """A QR code's URL names no icon, so Chromium asks for /favicon.ico: the sandbox answers it with its icon."""
    shop = merchant(sandbox)
    created = await shop.create(create_body("landing-marker-2", flow="QR"))
    assert created.status == 201, created.text
    assert "/_sandbox/qr?" in created.json["redirectUrl"]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        response = await page.goto(created.json["redirectUrl"])
        assert response is not None and response.status == 200
        icon = await wait_for_entry(sandbox, favicon_request)
        assert (icon["method"], icon["path"], icon["status"]) == ("GET", "/favicon.ico", 200)
        assert errors == []
    assert [(e["method"], e["path"], e["status"]) for e in await log_entries(sandbox) if e["status"] >= 400] == []
    async with sandbox.session.get(sandbox.url("production") + "/favicon.ico") as reply:
        assert reply.status == 200 and reply.content_type == "image/svg+xml"
        assert "<svg" in await reply.text()


async def test_the_rejected_and_product_order_pages_say_sandbox_too(sandbox):
    shop = merchant(sandbox)
    created = await shop.create(create_body("landing-marker-3"))
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(created.json["redirectUrl"])
        await page.locator("button.reject").click()
        await page.locator(".state").filter(has_text="ABORTED").wait_for()
        await assert_visible_marker(page)
        assert (await shop.get("landing-marker-3")).json["state"] == "ABORTED"

        order_id = await prefilled_order(sandbox, "Marker Sykler", "marker-order-1")
        response = await page.goto(sandbox.url("production") + f"/_sandbox/product-orders/{order_id}")
        assert response is not None and response.status == 200
        await assert_visible_marker(page)
        icon = await wait_for_entry(sandbox, favicon_request)
        assert (icon["path"], icon["status"]) == ("/_sandbox/dashboard/favicon.svg", 200)
        assert errors == []
    assert not [e for e in await log_entries(sandbox) if e["path"] == "/favicon.ico"]
