"""The Management API (production only) and the merchant's side of product orders under /_sandbox/.

Thin handlers: the gateway has already checked the keys (sandbox/gateway/policy.py); each handler parses
the request, calls one ManagementBackend method and renders JSON. Errors are raised, never built.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.apis.management.backend import ManagementBackend
from sandbox.apis.management.pages import render_page
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import KeySet
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

BACKEND = web.AppKey("management_backend", ManagementBackend)
JSON = "application/json"


def backend(request: web.Request) -> ManagementBackend:
    return request.app[BACKEND]


def keyset(request: web.Request) -> KeySet:
    keys = call(request).keyset
    assert keys is not None  # the gateway authenticated this bearer route
    return keys


def reply(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, content_type=JSON)


async def sales_units_list(request: web.Request) -> web.Response:
    return reply(backend(request).list_sales_units(keyset(request), notes=call(request).warnings))


async def sales_unit_get(request: web.Request) -> web.Response:
    return reply(backend(request).sales_unit(keyset(request), request.match_info["msn"]))


async def merchant_get(request: web.Request) -> web.Response:
    info = request.match_info
    return reply(backend(request).merchant(keyset(request), info["scheme"], info["id"]))


async def merchant_sales_units(request: web.Request) -> web.Response:
    info = request.match_info
    return reply(backend(request).merchant_sales_units(keyset(request), info["scheme"], info["id"],
                                                       notes=call(request).warnings))


def origin(request: web.Request) -> str:
    """The base URL the caller reached the sandbox on: URLs in responses are built from it when answering."""
    return f"{request.scheme}://{request.host}"


async def price_packages(request: web.Request) -> web.Response:
    return reply(backend(request).price_packages(keyset(request)))


async def product_order_create(request: web.Request) -> web.Response:
    body = await read_json(request)
    created = backend(request).create_order(keyset(request), request.headers.get("Idempotency-Key"), body,
                                            origin(request))
    return reply(created, 201)


async def product_order_delete(request: web.Request) -> web.Response:
    backend(request).delete_order(keyset(request), request.match_info["productOrderId"])
    return web.Response(status=200)


def include_expired(request: web.Request) -> bool:
    value = request.query.get("includeExpired", "false").lower()
    if value not in ("true", "false"):
        raise Problem(400, "Bad Request", "includeExpired must be true or false.",
                      details=[Detail("includeExpired", "Must be true or false.")])
    return value == "true"


async def product_orders_list(request: web.Request) -> web.Response:
    return reply(backend(request).list_orders(keyset(request), include_expired(request), origin(request)))


async def product_order_details(request: web.Request) -> web.Response:
    return reply(backend(request).order_details(keyset(request), request.match_info["productOrderId"],
                                                origin(request)))


# -- /_sandbox/product-orders: the merchant's page and the control plane ---------------------------------
async def order_page(request: web.Request) -> web.Response:
    store = backend(request).book
    order = store.order(request.match_info["id"])
    return web.Response(text=render_page(store.sandbox_view(order, origin(request))), content_type="text/html")


def mover(action: str):
    async def move(request: web.Request) -> web.StreamResponse:
        store = backend(request).book
        order = store.move(request.match_info["id"], action)
        if request.content_type == "application/x-www-form-urlencoded":  # a button on the page
            raise web.HTTPSeeOther(f"/_sandbox/product-orders/{order.id}")
        return reply(store.sandbox_view(order, origin(request)))

    move.__name__ = f"order_{action}"
    return move


def setup(app: web.Application) -> None:
    store = ManagementBackend(app[RUNTIME])
    app[BACKEND] = store
    app[RUNTIME].reset_hooks.append(store.book.reset)
    app[RUNTIME].state_providers["product_orders"] = (store.book.dump, store.book.load)
    router = routes(app)
    router.add_get("/management/v1/sales-units", sales_units_list, name="management.sales_units.list")
    router.add_get("/management/v1/sales-units/{msn}", sales_unit_get, name="management.sales_units.get")
    router.add_get("/management/v1/merchants/{scheme}/{id}", merchant_get, name="management.merchants.get")
    router.add_get("/management/v1/merchants/{scheme}/{id}/sales-units", merchant_sales_units,
                   name="management.merchants.sales_units")
    router.add_get("/management/v1/partners/price-packages", price_packages, name="management.price_packages")
    router.add_post("/management/v1/product-orders", product_order_create, name="management.product_orders.create")
    router.add_delete("/management/v1/product-orders/{productOrderId}", product_order_delete,
                      name="management.product_orders.delete")
    router.add_get("/management/v2/product-orders", product_orders_list, name="management.product_orders.list")
    router.add_get("/management/v2/product-orders/{productOrderId}/details", product_order_details,
                   name="management.product_orders.details")
    router.add_get("/_sandbox/product-orders/{id}", order_page, name="sandbox.product_orders.page")
    for action in ("view", "submit", "complete", "reject"):
        router.add_post(f"/_sandbox/product-orders/{{id}}/{action}", mover(action),
                        name=f"sandbox.product_orders.{action}")
