"""The Donations API (/donations/v1, production only) and its control plane under /_sandbox/donations/.

Thin handlers over sandbox.apis.donations.backend.DonationsBackend. The gateway has already applied the key-type
policy (merchant-level keys and partner keys; sandbox/gateway/policy.py), so `call(request).keyset` is the caller
and `call(request).msn` the one sales unit partner keys named, if they named one.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.apis.donations.backend import DonationsBackend
from sandbox.core.model import KeySet
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

DONATIONS = web.AppKey("donations", DonationsBackend)
BASE = "/donations/v1"


def backend(request: web.Request) -> DonationsBackend:
    return request.app[DONATIONS]


def caller(request: web.Request) -> tuple[KeySet, str | None]:
    ctx = call(request)
    assert ctx.keyset is not None  # the gateway authenticated every Donations API call
    return ctx.keyset, ctx.msn


async def payments(request: web.Request) -> web.Response:
    keyset, msn = caller(request)
    query = {name: request.query.getall(name) for name in set(request.query)}
    return web.json_response(backend(request).report(keyset, msn, query))


async def get_agreement(request: web.Request) -> web.Response:
    keyset, msn = caller(request)
    donations = backend(request)
    return web.json_response(donations.agreement_view(donations.agreement(keyset, msn,
                                                                          request.match_info["agreementId"])))


async def stop_agreement(request: web.Request) -> web.Response:
    keyset, msn = caller(request)
    await request.read()  # no body is expected; one sent is ignored (UNCERTAIN)
    donations = backend(request)
    agreement = donations.stop(keyset, msn, request.match_info["agreementId"])
    return web.json_response(donations.agreement_view(agreement))


# -- /_sandbox/donations ------------------------------------------------------------------------------


async def list_agreements(request: web.Request) -> web.Response:
    return web.json_response({"agreements": backend(request).listing()})


async def create_agreement(request: web.Request) -> web.Response:
    donations = backend(request)
    agreement = donations.create_agreement(await read_json(request))
    return web.json_response(dict(donations.agreement_view(agreement), msn=agreement.msn), status=201)


async def change_agreement(request: web.Request) -> web.Response:
    donations = backend(request)
    agreement = donations.change(request.match_info["agreementId"], await read_json(request))
    return web.json_response(dict(donations.agreement_view(agreement), msn=agreement.msn))


async def seed_payments(request: web.Request) -> web.Response:
    return web.json_response(backend(request).seed_payments(await read_json(request)), status=201)


def setup(app: web.Application) -> None:
    donations = app[DONATIONS] = DonationsBackend(app[RUNTIME])
    runtime = app[RUNTIME]
    runtime.reset_hooks.append(donations.clear)
    runtime.clock_hooks.append(donations.sweep)
    runtime.state_providers["donations"] = (donations.dump, donations.load)
    router = routes(app)
    router.add_get(BASE + "/reports/payments", payments, name="donations.payments")
    router.add_get(BASE + "/agreements/{agreementId}", get_agreement, name="donations.agreements.get")
    router.add_post(BASE + "/agreements/{agreementId}/stop", stop_agreement, name="donations.agreements.stop")
    router.add_get("/_sandbox/donations/agreements", list_agreements, name="sandbox.donations.agreements.list")
    router.add_post("/_sandbox/donations/agreements", create_agreement, name="sandbox.donations.agreements.create")
    router.add_post("/_sandbox/donations/agreements/{agreementId}/change", change_agreement,
                    name="sandbox.donations.agreements.change")
    router.add_post("/_sandbox/donations/payments", seed_payments, name="sandbox.donations.payments.create")
