"""The QR API (/qr/v1): thin handlers over sandbox.apis.qr.backend.QrBackend.

The gateway has already checked keys and policy; `call(request).msn` is the sales unit the call acts for. The
merchant callback operations need the Merchant-Serial-Number header whatever the keys (the spec marks it
required there): without it they answer 400.
"""

from __future__ import annotations

import json

from aiohttp import web

from sandbox.apis.qr import pages, rules
from sandbox.apis.qr.backend import QrBackend
from sandbox.core.errors import Detail
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

QR = web.AppKey("qr", QrBackend)
BASE = "/qr/v1"


def backend(request: web.Request) -> QrBackend:
    return request.app[QR]


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def acting(request: web.Request):
    ctx = call(request)
    assert ctx.msn is not None
    return ctx.env, ctx.msn


def msn_header_required(request: web.Request):
    if not request.headers.get("Merchant-Serial-Number"):
        raise rules.invalid("BadRequest", [Detail("Merchant-Serial-Number", "The Merchant-Serial-Number header is "
                                                  "required on the merchant callback operations.")])
    return acting(request)


def reply(body: object, status: int = 200) -> web.Response:
    if body is None:
        return web.Response(status=status)
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def size_header(request: web.Request) -> int | None:
    return rules.image_size(request.headers.get("Size"), "Size")


def accept(request: web.Request, strict: bool = False) -> str:
    return rules.accept_format(request.headers.get("Accept"), strict)


def image_query(request: web.Request) -> tuple[str, int | None]:
    fmt = rules.image_format(request.query.get("QrImageFormat"))
    return fmt, rules.image_size(request.query.get("QrImageSize"), "QrImageSize", "QrImageSize")


# -- one-time payment QR -----------------------------------------------------------------------------------
async def one_time(request: web.Request) -> web.Response:
    env, msn = acting(request)
    fmt, size = accept(request, strict=True), size_header(request)
    body = await read_json(request)
    return reply(backend(request).create_one_time(env, msn, body, fmt, size, origin(request)))


# -- merchant redirect QR ------------------------------------------------------------------------------------
async def create_redirect(request: web.Request) -> web.Response:
    env, msn = acting(request)
    fmt, size = accept(request, strict=True), size_header(request)
    body = await read_json(request)
    return reply(backend(request).create_redirect(env, msn, body, fmt, size, origin(request)))


async def list_redirects(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).list_redirects(env, msn, accept(request), size_header(request), origin(request)))


async def get_redirect(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).get_redirect(env, msn, request.match_info["id"], accept(request),
                                               size_header(request), origin(request)))


async def update_redirect(request: web.Request) -> web.Response:
    env, msn = acting(request)
    fmt, size = accept(request), size_header(request)
    body = await read_json(request)
    return reply(backend(request).update_redirect(env, msn, request.match_info["id"], body, fmt, size,
                                                  origin(request)))


async def delete_redirect(request: web.Request) -> web.Response:
    env, msn = acting(request)
    backend(request).delete_redirect(env, msn, request.match_info["id"])
    return reply(None)


# -- merchant callback QR ------------------------------------------------------------------------------------
async def list_callbacks(request: web.Request) -> web.Response:
    env, msn = msn_header_required(request)
    fmt, size = image_query(request)
    return reply(backend(request).list_callbacks(env, msn, fmt, size, origin(request)))


async def get_callback(request: web.Request) -> web.Response:
    env, msn = msn_header_required(request)
    fmt, size = image_query(request)
    return reply(backend(request).get_callback(env, msn, request.match_info["merchantQrId"], fmt, size,
                                               origin(request)))


async def put_callback(request: web.Request) -> web.Response:
    env, msn = msn_header_required(request)
    body = await read_json(request)
    backend(request).put_callback(env, msn, request.match_info["merchantQrId"], body)
    return reply(None)


async def delete_callback(request: web.Request) -> web.Response:
    env, msn = msn_header_required(request)
    backend(request).delete_callback(env, msn, request.match_info["merchantQrId"])
    return reply(None)


async def put_mobilepay(request: web.Request) -> web.Response:
    env, msn = msn_header_required(request)
    body = await read_json(request)
    backend(request).put_mobilepay(env, msn, request.match_info["beaconId"], body)
    return reply(None)


# -- exchange --------------------------------------------------------------------------------------------------
async def exchange(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).exchange(env, msn, await read_json(request)))


async def exchange_customer(request: web.Request) -> web.Response:
    env, msn = acting(request)
    return reply(backend(request).exchange_customer(env, msn, await read_json(request)))


def setup(app: web.Application) -> None:
    qr = app[QR] = QrBackend(app[RUNTIME])
    runtime = app[RUNTIME]
    runtime.reset_hooks.append(qr.clear)
    runtime.state_providers["qr"] = (qr.dump, qr.load)
    router = routes(app)
    router.add_post(BASE, one_time, name="qr.one_time")
    redirect = BASE + "/merchant-redirect"
    router.add_post(redirect, create_redirect, name="qr.redirect.create")
    router.add_get(redirect, list_redirects, name="qr.redirect.list")
    router.add_get(redirect + "/{id}", get_redirect, name="qr.redirect.get")
    router.add_put(redirect + "/{id}", update_redirect, name="qr.redirect.update")
    router.add_delete(redirect + "/{id}", delete_redirect, name="qr.redirect.delete")
    callback = BASE + "/merchant-callback"
    router.add_get(callback, list_callbacks, name="qr.callback.list")
    router.add_put(callback + "/mobilepay/{beaconId}", put_mobilepay, name="qr.callback.mobilepay")
    router.add_get(callback + "/{merchantQrId}", get_callback, name="qr.callback.get")
    router.add_put(callback + "/{merchantQrId}", put_callback, name="qr.callback.put")
    router.add_delete(callback + "/{merchantQrId}", delete_callback, name="qr.callback.delete")
    router.add_post(BASE + "/exchange", exchange, name="qr.exchange")
    router.add_post(BASE + "/exchange/customer", exchange_customer, name="qr.exchange.customer")
    pages.setup(app, QR)
