"""The front door every request passes through, with its steps in a fixed order:

1. open the call: a CallContext with the environment (Host header, else the port);
2. the Host header, for every request, and the Origin of control-plane changes (sandbox/gateway/hosts.py);
   the admin token, for the control plane under /_sandbox/ (sandbox/gateway/admin.py);
3. the journal, for state-changing requests when --state is on (sandbox/ops/persistence.py);
4. the gateway's checks and the handler (sandbox/gateway/checks.py);
5. the request log, last, so it sees the final status of everything (sandbox/ops/requestlog.py).

Responses to /_sandbox/ and /favicon.ico get the pages' security headers here (sandbox/gateway/page_security.py).

Every handler is registered behind it (`routes(app).add_get(...)`), and a catch-all resource brings
every request target nothing else serves through it too: the gateway's 404 (or 405), and a log entry.
It is a wrapper around each handler rather than an aiohttp middleware: the steps share one
CallContext and the app's services directly, and a call pays for none of aiohttp's middleware
machinery (which costs more than the gateway's checks themselves on a GET).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Mapping

from aiohttp import web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from yarl import URL

from sandbox.core.errors import printable
from sandbox.core.runtime import Runtime
from sandbox.gateway.admin import is_control_plane, refusal
from sandbox.gateway.admission import ADMISSION
from sandbox.gateway.checks import UNMATCHED, Handler, resolve_env, through_gateway
from sandbox.gateway.context import CALL, CallContext
from sandbox.gateway.delivery_guard import delivery_refusal
from sandbox.gateway.hosts import HostRule, cross_origin_refusal
from sandbox.gateway.page_security import add_page_headers, covers
from sandbox.gateway.policy import ROUTES, Auth
from sandbox.ops.faults import FAULTS, FaultBook
from sandbox.ops.persistence import MUTATING, PERSISTENCE, Persistence, journaled
from sandbox.ops.requestlog import QUIET, REQUEST_LOG, RequestLog

log = logging.getLogger("sandbox")

NO_HEADERS: Mapping[str, str] = {}


class FrontDoor:
    """Wraps handlers; `attach` hands it the app's services once every module has set them up."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.ring: RequestLog | None = None
        self.book: FaultBook | None = None
        self.persistence: Persistence | None = None
        self.wrapped: set[Handler] = set()  # every wrapper made here, so the app can check none is missing
        self.hosts = HostRule(runtime.settings)

    def attach(self, app: web.Application) -> None:
        self.ring = app.get(REQUEST_LOG)
        self.book = app.get(FAULTS)
        self.persistence = app.get(PERSISTENCE)

    def wrap(self, handler: Handler, name: str | None = None) -> Handler:
        """The handler behind the front door. `name` is its route's: the policy entry is bound here, once, rather
        than looked up on every request (the catch-all has none: through_gateway finds it unmatched)."""
        door = self
        runtime = self.runtime
        settings = runtime.settings
        hosts = self.hosts
        route = ROUTES.get(name) if name is not None else None
        clock = runtime.clock
        # Repeats of an admitted request skip the synchronous checks (sandbox/gateway/admission.py): API GETs
        # with an access token or without credentials. Never the control plane or pages (their admin token and
        # Origin rules).
        repeatable = route is not None and route.method == "GET" and route.auth in REPEATABLE \
            and not covers(route.path) and not is_control_plane(route.path)

        def serve(request: web.Request, ctx: CallContext, admission_key: tuple | None) -> Awaitable[web.StreamResponse]:
            """Steps 2 to 4, as one awaitable (a plain function: one coroutine less per call)."""
            refused = hosts.refusal(request)
            if refused is not None:
                return _ready(refused)
            if is_control_plane(request.path):
                refused = delivery_refusal(request, ctx)  # deliveries first: they never get control-plane power
                if refused is None:
                    refused = refusal(request, ctx, settings)
                if refused is not None:
                    return _ready(refused)
                refused = cross_origin_refusal(request, ctx)
                if refused is not None:
                    return _ready(refused)
            persistence = door.persistence
            if persistence is not None and request.method in MUTATING:
                return journaled(persistence, request, ctx, runtime.clock.time(),
                                 through_gateway(request, handler, ctx, runtime, door.book, True, route))
            return through_gateway(request, handler, ctx, runtime, door.book, False, route, admission_key)

        async def front_door(request: web.Request) -> web.StreamResponse:
            ctx = request[CALL] = CallContext(env=resolve_env(request, runtime))
            ring = door.ring
            path = request.path
            admission = None
            if repeatable:
                key = (ADMISSION, name, request.method, ctx.env, request.raw_headers)  # admission.py
                admission = runtime.world.decisions.get(key)
                if admission is not None and admission.nbf <= clock.time() < admission.exp:  # Admission.holds
                    ctx.admission = admission
                    served = through_gateway(request, handler, ctx, runtime, door.book, False, route)
                else:
                    admission = None
                    served = serve(request, ctx, key)
            else:
                served = serve(request, ctx, None)
                if covers(path):  # a page or the control plane: the browser-facing headers (page_security.py)
                    served = _with_page_headers(served)
            if ring is None or path in QUIET_PATHS and (request.method, path) in QUIET:
                return await served
            started = time.perf_counter()
            status: int | None = None
            headers: Mapping[str, str] = NO_HEADERS
            interrupted = False
            try:
                response = await served
                status, headers = response.status, response.headers
                return response
            except web.HTTPException as exc:  # redirects the gateway lets through
                status, headers = exc.status, exc.headers
                raise
            except BaseException:  # the client went away (CancelledError) or worse: still one entry
                interrupted = True
                raise
            finally:
                try:
                    if admission is not None:
                        ring.record_repeat(request, ctx, admission, status, headers, started, interrupted)
                    else:
                        ring.record(request, ctx, runtime.world, status, headers, started, interrupted)
                except Exception:  # the log must never break a request
                    log.exception("could not record %s %s in the request log", request.method,
                                  printable(request.path, 200))

        front_door.__name__ = f"front_door({getattr(handler, '__name__', 'handler')})"
        self.wrapped.add(front_door)
        return front_door


FRONT_DOOR = web.AppKey("front_door", FrontDoor)
CONNECT_HANDLER = web.AppKey("connect_handler", Handler)  # type: ignore[arg-type]
QUIET_PATHS = frozenset(path for _, path in QUIET)
REPEATABLE = frozenset({Auth.BEARER, Auth.NONE})  # the credentials of routes whose GETs may be admitted


async def _ready(response: web.StreamResponse) -> web.StreamResponse:
    return response


async def _with_page_headers(served: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    try:
        response = await served
    except web.HTTPException as exc:  # a redirect a page raised
        add_page_headers(exc.headers)
        raise
    add_page_headers(response.headers)
    return response


class Routes:
    """app.router's add_* methods, with every handler behind the front door. Modules register with this."""

    def __init__(self, app: web.Application) -> None:
        self._router = app.router
        self._door = app[FRONT_DOOR]

    def add_route(self, method: str, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_route(method, path, self._door.wrap(handler, kwargs.get("name")), **kwargs)

    def add_get(self, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_get(path, self._door.wrap(handler, kwargs.get("name")), **kwargs)

    def add_post(self, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_post(path, self._door.wrap(handler, kwargs.get("name")), **kwargs)

    def add_put(self, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_put(path, self._door.wrap(handler, kwargs.get("name")), **kwargs)

    def add_patch(self, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_patch(path, self._door.wrap(handler, kwargs.get("name")), **kwargs)

    def add_delete(self, path: str, handler: Handler, **kwargs) -> web.AbstractRoute:
        return self._router.add_delete(path, self._door.wrap(handler, kwargs.get("name")), **kwargs)


def routes(app: web.Application) -> Routes:
    return Routes(app)


async def _unmatched(request: web.Request) -> web.StreamResponse:
    raise AssertionError("the gateway answers unmatched paths itself")  # pragma: no cover


class CatchAll(web.Resource):
    """Matches every request target, even those a path pattern cannot (a decoded newline, `OPTIONS *`).

    Indexed under "/", the router tries it after every other route: it gets exactly what nothing else serves.
    """

    def _match(self, path: str) -> dict[str, str] | None:
        return {"tail": path}

    def raw_match(self, path: str) -> bool:
        return True

    @property
    def canonical(self) -> str:
        return "/"

    def url_for(self, **kwargs: str) -> URL:
        return URL("/")

    def add_prefix(self, prefix: str) -> None:
        raise RuntimeError("the catch-all route takes no prefix")

    def get_info(self) -> dict[str, str]:
        return {"catch_all": UNMATCHED}


def add_catch_all(app: web.Application) -> None:
    """Last of all routes: whatever no other route matches (path or method) comes through the front door.
    Also makes the app refuse to start if a route was added behind the front door's back after create_app."""
    resource = CatchAll(name=UNMATCHED)
    app.router.register_resource(resource)
    route = resource.add_route("*", app[FRONT_DOOR].wrap(_unmatched))
    app[CONNECT_HANDLER] = _connect_handler(app, route)
    app.on_startup.insert(0, _refuse_unguarded_routes)  # before any other startup work (webhook sessions)


def _connect_handler(app: web.Application, route: web.AbstractRoute) -> Handler:
    """The app's handler for `CONNECT host:port` on the plain and TLS ports. Its target has no path, so the router
    finds no route for it, not even the catch-all (aiohttp would answer a plain-text 404 and nothing would log it);
    sandbox/gateway/lowlevel.py sends it here instead: the catch-all route, through the front door (the
    gateway's JSON 404 and a request-log entry), and the connection closes (the parser reads no more from it)."""
    async def answer_connect(request: web.Request) -> web.StreamResponse:
        info = UrlMappingMatchInfo({"tail": request.raw_path}, route)
        info.add_app(app)
        info.freeze()
        request._match_info = info  # what app._handle sets after the router's match
        response = await route.handler(request)
        response.force_close()
        return response

    return answer_connect


async def _refuse_unguarded_routes(app: web.Application) -> None:
    bypassing = unguarded_routes(app)
    if bypassing:
        raise RuntimeError(bypassing_message(bypassing[0]))


def bypassing_message(route: web.AbstractRoute) -> str:
    return (f"route {route.method} {route.resource} was registered on app.router directly, so it bypasses the "
            "gateway; register it with sandbox.gateway.front_door.routes(app)")


def unguarded_routes(app: web.Application) -> list[web.AbstractRoute]:
    """Routes whose handler is not behind the front door (registered on app.router directly)."""
    wrapped = app[FRONT_DOOR].wrapped
    return [route for route in app.router.routes() if route.handler not in wrapped]
