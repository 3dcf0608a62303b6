"""The dashboard at /_sandbox/: static files plus the JSON feeds only the dashboard needs.

The page is plain HTML/CSS/JS bundled with the package (no CDN: it must work offline). It reads
the building and the matrix from here, and the request log, clock, payments, Recurring agreements and product orders
from the control plane, so everything it shows comes from the same state the APIs use.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from sandbox.core.errors import Detail, GatewayNotFound, Problem, SandboxError
from sandbox.dashboard.feeds import (
    PAGE_DEFAULT,
    PAGE_MAX,
    PAYMENT_ACTIONS,
    agreement_page,
    building,
    payment_action,
    payment_page,
    product_order_rows,
)
from sandbox.dashboard.icon import ICON_SVG
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.front_door import routes
from sandbox.gateway.policy import matrix

#: The only files served, so no path ever reaches the file system unchecked.
ASSETS = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
#: The favicon is kept a day: a browser asks for it on every page otherwise.
ICON_HEADERS = {"Cache-Control": "public, max-age=86400"}


def _asset(name: str) -> str:
    return resources.files("sandbox.dashboard").joinpath(name).read_text(encoding="utf-8")


async def page(request: web.Request) -> web.Response:
    return web.Response(text=_asset("index.html"), content_type="text/html",
                        headers={"Cache-Control": "no-store"})


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name == "favicon.svg":
        return favicon(request)
    if name not in ASSETS:
        raise GatewayNotFound(f"The dashboard has no file {name!r}.", rule="unknown-path")
    return web.Response(text=_asset(name), content_type=ASSETS[name], headers={"Cache-Control": "no-store"})


def favicon(request: web.Request) -> web.Response:
    return web.Response(text=ICON_SVG, content_type="image/svg+xml", headers=ICON_HEADERS)


async def root_favicon(request: web.Request) -> web.Response:
    """GET /favicon.ico: what a browser asks for when a page names no icon (a QR code or a feed opened alone)."""
    return favicon(request)


async def building_feed(request: web.Request) -> web.Response:
    return web.json_response(building(request.app[RUNTIME].world))


async def matrix_feed(request: web.Request) -> web.Response:
    return web.json_response(matrix())


def _whole_number(request: web.Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.isascii() and raw.isdigit() and len(raw) <= 19 and low <= int(raw) <= high:
        return int(raw)
    reason = f"Must be a whole number from {low} to {high}."
    raise Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule="query-invalid")


async def payments_feed(request: web.Request) -> web.Response:
    """GET /_sandbox/payments?limit=&before= — a page of payments, newest first (the `next` of the last page)."""
    limit = _whole_number(request, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    before = _whole_number(request, "before", None, 0, 2**62)
    return web.json_response(payment_page(request.app, limit or PAGE_DEFAULT, before))


async def agreements_feed(request: web.Request) -> web.Response:
    """GET /_sandbox/recurring/agreements?limit=&before= — Recurring agreements with their charges, newest first."""
    limit = _whole_number(request, "limit", PAGE_DEFAULT, 1, PAGE_MAX)
    before = _whole_number(request, "before", None, 0, 2**62)
    return web.json_response(agreement_page(request.app, limit or PAGE_DEFAULT, before))


async def product_orders_feed(request: web.Request) -> web.Response:
    return web.json_response(product_order_rows(request.app))


async def payment_action_route(request: web.Request) -> web.Response:
    info = request.match_info
    if info["action"] not in PAYMENT_ACTIONS:
        raise GatewayNotFound(f"No payment action {info['action']!r}: approve, reject or expire.", rule="unknown-path")
    await read_json(request)  # a malformed body still gets a clear 400
    return web.json_response(payment_action(request.app, info["env"], info["msn"], info["reference"], info["action"]))


#: The longest Location a redirect may carry: most HTTP clients (aiohttp's, Node's) refuse a header line past 8 kB.
MAX_LOCATION = 8000


async def bare(request: web.Request) -> web.Response:
    """`/_sandbox`, typed without its slash: the dashboard's address (the query kept).

    A query too long to travel in a Location header that clients can read is refused (414) rather than dropped."""
    query = request.raw_path.partition("?")[2]
    if len(query) > MAX_LOCATION:
        raise SandboxError(f"The query is {len(query)} characters long: too long to carry to /_sandbox/ in a "
                           f"redirect (at most {MAX_LOCATION}). Open /_sandbox/ with a shorter query.",
                           status=414, rule="query-too-long")
    raise web.HTTPPermanentRedirect("/_sandbox/" + ("?" + query if query else ""))


def setup(app: web.Application) -> None:
    router = routes(app)
    router.add_get("/_sandbox/", page, name="sandbox.dashboard")
    router.add_get("/_sandbox", bare, name="sandbox.dashboard.bare")
    router.add_get("/_sandbox/dashboard/{name}", asset, name="sandbox.dashboard.asset")
    router.add_get("/_sandbox/building", building_feed, name="sandbox.building")
    router.add_get("/_sandbox/matrix", matrix_feed, name="sandbox.matrix")
    router.add_get("/_sandbox/payments", payments_feed, name="sandbox.payments.list")
    router.add_get("/_sandbox/product-orders", product_orders_feed, name="sandbox.product_orders.list")
    router.add_get("/_sandbox/recurring/agreements", agreements_feed, name="sandbox.recurring.agreements.list")
    router.add_post("/_sandbox/dashboard/payments/{env}/{msn}/{reference}/{action}", payment_action_route,
                        name="sandbox.dashboard.payment_action")
    router.add_get("/favicon.ico", root_favicon, name="sandbox.favicon")
