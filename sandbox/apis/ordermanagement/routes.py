"""The Order Management API (/order-management): thin handlers over OrderManagementBackend.

The gateway has already checked keys and policy; `call(request).msn` is the sales unit the call acts for. The
spec marks Merchant-Serial-Number required on every operation, whatever the keys: without it, a 400. With
Settings.order_management_test off, the test environment has no Order Management API (the gateway's 404).
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.apis.ordermanagement import pages, rules
from sandbox.apis.ordermanagement.backend import OrderManagementBackend, not_found
from sandbox.core.errors import Detail, GatewayNotFound, Problem
from sandbox.core.model import Env
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

ORDERS = web.AppKey("ordermanagement", OrderManagementBackend)
BASE = "/order-management"


def backend(request: web.Request) -> OrderManagementBackend:
    return request.app[ORDERS]


def acting(request: web.Request) -> tuple[Env, str]:
    ctx = call(request)
    if ctx.env is Env.TEST and not request.app[RUNTIME].settings.order_management_test:
        raise GatewayNotFound("Resource not found", rule="order-management-production-only")
    if not request.headers.get("Merchant-Serial-Number"):
        raise rules.invalid([Detail("Merchant-Serial-Number", "The Merchant-Serial-Number header is required.")])
    assert ctx.msn is not None
    return ctx.env, ctx.msn


def order_of(request: web.Request, name: str = "orderId", reading: bool = False) -> tuple[str, str]:
    """(payment type, order id) of the path. A read of an order id no order can have is a 404 (the reads document
    no 400); a write of one is a 400 naming it."""
    info = request.match_info
    payment_type = rules.payment_type(info["paymentType"]) if "paymentType" in info else "ecom"
    if name == "transactionId":  # the deprecated v1 gives transactionId no pattern, and documents no 400 on reads
        return payment_type, info[name]
    if reading:
        try:
            return payment_type, rules.order_id(info[name], name)
        except Problem:
            raise not_found(f"No order {info[name][:128]!r} exists.") from None
    return payment_type, rules.order_id(info[name], name)


def reply(body: object, status: int = 200) -> web.Response:
    if body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def add_image(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).add_image(env, msn, await read_json(request)))


async def put_category(request: web.Request) -> web.Response:
    env, msn = acting(request)
    payment_type, order_id = order_of(request)
    body = await read_json(request)
    return reply(backend(request).put_category(env, msn, payment_type, order_id, body))


async def post_receipt(request: web.Request) -> web.Response:
    env, msn = acting(request)
    payment_type, order_id = order_of(request)
    body = await read_json(request)
    return reply(backend(request).post_receipt(env, msn, payment_type, order_id, body), 201)


async def get_order(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).get_order(env, msn, *order_of(request, reading=True)))


async def add_category_v3(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).add_category_v3(env, msn, await read_json(request)), 201)


async def query_categories_v3(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).query_categories_v3(env, msn, request.query.get("orderId")))


async def get_category_v3(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).get_category_v3(env, msn, request.match_info["categoryId"]))


async def delete_category_v3(request: web.Request) -> web.Response:
    env, msn = acting(request)
    backend(request).delete_category_v3(env, msn, request.match_info["categoryId"])
    return reply(None)


# -- v1 (deprecated): ecom orders by transactionId --------------------------------------------------------------
async def v1_put_order(request: web.Request) -> web.Response:
    env, msn = acting(request)
    payment_type, order_id = order_of(request, "transactionId")
    backend(request).put_category(env, msn, payment_type, order_id, await read_json(request), check_image=False)
    return reply(None)


async def v1_get_order(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).get_category(env, msn, *order_of(request, "transactionId", reading=True)))


async def v1_post_receipt(request: web.Request) -> web.Response:
    env, msn = acting(request)
    payment_type, order_id = order_of(request, "transactionId")
    backend(request).post_receipt(env, msn, payment_type, order_id, await read_json(request), once=False)
    return reply(None)


async def v1_get_receipt(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).get_receipt(env, msn, *order_of(request, "transactionId", reading=True)))


def setup(app: web.Application) -> None:
    orders = app[ORDERS] = OrderManagementBackend(app[RUNTIME])
    runtime = app[RUNTIME]
    runtime.reset_hooks.append(orders.clear)
    runtime.state_providers["ordermanagement"] = (orders.dump, orders.load)
    router = routes(app)
    router.add_post(BASE + "/v1/images", add_image, name="ordermanagement.images.add")
    v2 = BASE + "/v2/{paymentType}"
    router.add_put(v2 + "/categories/{orderId}", put_category, name="ordermanagement.v2.category")
    router.add_post(v2 + "/receipts/{orderId}", post_receipt, name="ordermanagement.v2.receipt")
    router.add_get(v2 + "/{orderId}", get_order, name="ordermanagement.v2.order")
    v3 = BASE + "/v3/categories"
    router.add_post(v3, add_category_v3, name="ordermanagement.v3.categories.add")
    router.add_get(v3, query_categories_v3, name="ordermanagement.v3.categories.query")
    router.add_get(v3 + "/{categoryId}", get_category_v3, name="ordermanagement.v3.category.get")
    router.add_delete(v3 + "/{categoryId}", delete_category_v3, name="ordermanagement.v3.category.delete")
    router.add_put(BASE + "/v1/orders/{transactionId}", v1_put_order, name="ordermanagement.v1.order.put")
    router.add_get(BASE + "/v1/orders/{transactionId}", v1_get_order, name="ordermanagement.v1.order.get")
    router.add_post(BASE + "/v1/receipts/{transactionId}", v1_post_receipt, name="ordermanagement.v1.receipt.post")
    router.add_get(BASE + "/v1/receipts/{transactionId}", v1_get_receipt, name="ordermanagement.v1.receipt.get")
    pages.setup(app, ORDERS)
