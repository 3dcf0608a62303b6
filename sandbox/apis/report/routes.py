"""The Report API (production only) and its control plane: accounting consents under /_sandbox/consents.

Thin handlers: the gateway has already checked the environment and key type; each handler passes the
raw path and query strings to the ReportBackend (sandbox/apis/report/backend.py) and renders its dict.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.apis.report.backend import MAX_PAGE_SIZE, ReportBackend, parse_page_size
from sandbox.core.model import KeySet
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

REPORT_BACKEND = web.AppKey("report_backend", ReportBackend)


def backend(request: web.Request) -> ReportBackend:
    return request.app[REPORT_BACKEND]


def keyset(request: web.Request) -> KeySet:
    found = call(request).keyset
    assert found is not None  # the gateway authenticated every Report API call
    return found


def page_response(request: web.Request, body: dict) -> web.Response:
    size = parse_page_size(request.query.get("pageSize")) if "pageSize" in request.query else MAX_PAGE_SIZE
    return web.json_response(body, headers={"Vipps-Feed-Page-Size": str(size)})


async def ledgers(request: web.Request) -> web.Response:
    query = request.query
    body = backend(request).list_ledgers(keyset(request), query.get("settlesForRecipientHandles"),
                                         query.get("cursor"), query.get("pageSize"), notes=call(request).warnings)
    return web.json_response(body)


async def dates(request: web.Request) -> web.Response:
    info, query = request.match_info, request.query
    body = backend(request).date_page(keyset(request), info["ledgerId"], info["topic"], info["ledgerDate"],
                                      query.get("cursor"), query.get("includeGDPRSensitiveData"),
                                      query.get("pageSize"))
    return page_response(request, body)


async def feed(request: web.Request) -> web.Response:
    info, query = request.match_info, request.query
    body = backend(request).feed_page(keyset(request), info["ledgerId"], info["topic"], query.get("cursor"),
                                      query.get("includeGDPRSensitiveData"), query.get("pageSize"))
    return page_response(request, body)


async def consents_list(request: web.Request) -> web.Response:
    return web.json_response(backend(request).consents(request.query.get("accountingPartnerId")))


async def consents_grant(request: web.Request) -> web.Response:
    consent, created = backend(request).grant(await read_json(request))
    return web.json_response(consent, status=201 if created else 200)


async def consents_revoke(request: web.Request) -> web.Response:
    info = request.match_info
    backend(request).revoke(info["accountingPartnerId"], info["merchantId"])
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app[REPORT_BACKEND] = ReportBackend(app[RUNTIME])
    router = routes(app)
    router.add_get("/settlement/v1/ledgers", ledgers, name="report.ledgers")
    router.add_get("/report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate}", dates, name="report.dates")
    router.add_get("/report/v2/ledgers/{ledgerId}/{topic}/feed", feed, name="report.feed")
    router.add_get("/_sandbox/consents", consents_list, name="sandbox.consents.list")
    router.add_post("/_sandbox/consents", consents_grant, name="sandbox.consents.grant")
    router.add_delete("/_sandbox/consents/{accountingPartnerId}/{merchantId}", consents_revoke,
                          name="sandbox.consents.revoke")
