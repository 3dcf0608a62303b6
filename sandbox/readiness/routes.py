"""/_sandbox/readiness: the go-live checklists filled in from what the integration did here.

The evidence book is fed by the request log (every request the integration made, never the sandbox's own
control plane) and by the domain events; it is kept in snapshots and in the --state directory, so the report
outlives both the request log's ring and a restart.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.control.backend import ClockBackend
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import Env
from sandbox.gateway.bodies import read_fields
from sandbox.gateway.context import RUNTIME, CallContext
from sandbox.gateway.front_door import routes
from sandbox.gateway.policy import ROUTES
from sandbox.ops.faults import FAULTS
from sandbox.ops.requestlog import REQUEST_LOG
from sandbox.readiness.evidence import EvidenceBook, Proof
from sandbox.readiness.login_evidence import ANONYMOUS, LoginBook
from sandbox.readiness.repeats import Repeats

if TYPE_CHECKING:  # the checklists, their checks, the report and its pages: on the first report, not at the start
    from sandbox.readiness.checks import Context

log = logging.getLogger(__name__)
EVIDENCE = web.AppKey("readiness_evidence", EvidenceBook)
LOGIN_EVIDENCE = web.AppKey("readiness_login_evidence", LoginBook)
LOGIN_ROUTES = frozenset({"login.discovery", "login.jwks", "login.auth", "login.token"})
#: Login routes whose admitted repeats are still observed one by one (their query or form is read).
FOLDED_ROUTES = LOGIN_ROUTES - frozenset(ANONYMOUS)
STATE_FILE = "readiness.json"
_BY_METHOD_PATH = {(entry.method, entry.path): name for name, entry in ROUTES.items()}


def route_of(method: str, path: str) -> str | None:
    return _BY_METHOD_PATH.get((method, path))


def observe_login(logins: LoginBook, book: EvidenceBook, world, request: web.Request, entry: tuple,
                  ctx: CallContext) -> None:
    """The three Login routes L-4, L-7, L-9, L-11 and L-16 read: a few query or form fields (never a secret)."""
    request_id, wall, when, route, status = entry[0], entry[1], entry[2], entry[6].name, entry[10] or 0
    env = str(ctx.env)
    proof = Proof(request_id, None, when, wall)
    if route in ANONYMOUS:  # discovery and JWKS: no client, no fields; only who fetched them, and when
        logins.fetched(route, env, request.remote or "", status, proof, when)
        return
    msn, registered, query = ctx.msn, None, request.query
    if route == "login.auth":
        client_id = query.get("client_id") or ""
        keyset = world().keys.get(client_id)
        if keyset is not None and keyset.type.value == "merchant":
            msn, registered = keyset.owner, world().redirect_uris(client_id)
            book.route_seen(env, msn, route, status, proof)  # a browser request: no header rules apply
    peer = request.remote or ""
    logins.observe(env=env, msn=msn, route=route, peer=peer, query=query,
                   form=request.get(_login_form()), registered=registered, status=status, proof=proof, when=when)
    if msn is not None and route in ("login.auth", "login.token"):
        unit = book.units.get((env, msn))
        for name, fetched in logins.anonymous_proofs(env, peer):
            stat = unit.routes.get(name) if unit is not None else None
            if stat is None or stat.last_ok is None or stat.last_ok.request_id != fetched.request_id:
                book.route_seen(env, msn, name, 200, fetched)  # each fetch counted once per sales unit


def _login_form():
    """Where the token handler leaves the parsed form (imported on first use: the Login API's own key)."""
    from sandbox.apis.login.routes import FORM

    return FORM


def observer(book: EvidenceBook, world, logins: LoginBook | None = None, repeats: Repeats | None = None):
    """The request log's observer: what each request the integration made proves. `world()` is the directory
    now (a reset replaces it). Repeats of admitted requests are queued in `repeats` and folded in a run at a time
    (sandbox/readiness/repeats.py); anything else folds the queue in first, so the order is kept."""
    repeats = repeats or Repeats(book, logins)
    queued = FOLDED_ROUTES

    def observe(request: web.Request, entry: tuple) -> None:
        ctx, route = entry[3], entry[6]
        admission = ctx.admission
        # Queued: repeats of admitted GETs (a HEAD is no poll) that name their sales unit, or that need none (Login's
        # discovery and JWKS); partner keys without a Merchant-Serial-Number count against every unit they reach.
        if admission is not None and route is not None and route.name not in queued and request.method == "GET" \
                and (admission.msn is not None or admission.keyset is None):
            repeats.add(request, entry, admission)
            return
        if repeats.runs:
            repeats.settle()
        if route is None or entry[5].startswith("/_sandbox") or not isinstance(ctx, CallContext) or ctx.replayed:
            return
        name = route.name
        if logins is not None and name in LOGIN_ROUTES:
            observe_login(logins, book, world, request, entry, ctx)
            if name in ANONYMOUS:  # no keys, no sales unit: nothing more for the book (it notes that it changed)
                book.dirty = True
                return
        keyset = ctx.keyset
        msn = ctx.msn
        key_type = keyset.type._value_ if keyset is not None else None  # _value_: the property costs more
        if msn is None and key_type == "merchant":
            msn = keyset.owner
        api = route.api._value_
        if msn is None and key_type == "partner" and api != "token" \
                and not request.headers.get("Merchant-Serial-Number"):
            # partner keys without the MSN name no sales unit: it counts against every one they reach
            book.partner_without_msn(ctx.env._value_, world().reach(keyset), entry[0], entry[2], entry[1])
            return
        book.observe(ctx.env._value_, msn, name, api, entry[4], entry[5], entry[10], request.headers,
                     request.match_info, key_type, keyset.client_id if keyset is not None else None, entry[0],
                     entry[2], entry[1], ctx.fault is not None)

    return observe


def _unit_or_404(request: web.Request, msn: str | None) -> str:
    if not msn:
        raise Problem(400, "Bad Request", "Name the sales unit: /_sandbox/readiness?msn=123456.",
                      details=[Detail("msn", "Required.")])
    world = request.app[RUNTIME].world
    if msn not in world.sales_units:
        raise Problem(404, "Not Found", f"There is no sales unit {msn} in this sandbox's fixture.",
                      details=[Detail("msn", "Unknown sales unit.")])
    return msn


def _apis(values: list[str]) -> list[str]:
    from sandbox.readiness.checklists import CHECKLISTS

    names = [name for value in values for name in value.split(",") if name]
    unknown = [name for name in names if name not in CHECKLISTS]
    if unknown:
        raise Problem(400, "Bad Request", f"There is no {unknown[0]!r} checklist; use one or more of "
                      f"{', '.join(CHECKLISTS)}.", details=[Detail("api", "Unknown checklist.")])
    return names or list(CHECKLISTS)


def _live(request: web.Request, msn: str, envs: list[str]) -> tuple[list[dict], list[dict]]:
    """The sales unit's webhook registrations and delivery attempts (its own and its partner's)."""
    try:
        from sandbox.apis.webhooks.routes import WEBHOOKS
    except ImportError:  # pragma: no cover - a sandbox without the Webhooks API
        return [], []
    backend = request.app.get(WEBHOOKS)
    if backend is None:
        return [], []
    registrations = [{"env": str(r.env), "url": r.url, "events": list(r.events), "id": r.id}
                     for r in backend.registrations.values() if str(r.env) in envs and r.scope == ("msn", msn)]
    ids = {r["id"] for r in registrations}
    attempts = [a for a in backend.attempt_log if a.get("webhookId") in ids]
    return registrations, attempts


def _checkout_callbacks(request: web.Request, msn: str, envs: list[str]) -> list[dict]:
    """The payment-completed callback attempts of this sales unit's Checkout sessions."""
    try:
        from sandbox.apis.checkout.routes import CALLBACKS, CHECKOUT
    except ImportError:  # pragma: no cover - a sandbox without the Checkout API
        return []
    backend, callbacks = request.app.get(CHECKOUT), request.app.get(CALLBACKS)
    if backend is None or callbacks is None:
        return []
    mine = {reference for (env, unit, reference) in backend.sessions if unit == msn and str(env) in envs}
    return [a for a in callbacks.attempts() if a.get("reference") in mine]


def context(request: web.Request, msn: str, envs: list[str]) -> Context:
    from sandbox.readiness.checks import Context

    book, logins = request.app[EVIDENCE], request.app[LOGIN_EVIDENCE]
    book.settle()
    units = [(env, book.units[(env, msn)]) for env in envs if (env, msn) in book.units]
    clients = {client for env in envs for client in book.clients.get((env, msn), ())}
    registrations, attempts = _live(request, msn, envs)
    return Context(msn=msn, units=units,
                   token_calls=sum(book.token_calls.get((env, c), 0) for env in envs for c in clients),
                   client_calls=sum(book.client_calls.get((env, c), 0) for env in envs for c in clients),
                   registrations=registrations, attempts=attempts, now_wall=time.time(),
                   callbacks=_checkout_callbacks(request, msn, envs),
                   login=[logins.units[(env, msn)] for env in envs if (env, msn) in logins.units],
                   now_virtual=request.app[RUNTIME].clock.time(), route_of=route_of)


def _envs(value: str | None) -> list[str]:
    if value in (None, "", "both"):
        return [str(env) for env in Env]
    try:
        return [str(Env(value))]
    except ValueError as exc:
        raise Problem(400, "Bad Request", "env is test, production or both.",
                      details=[Detail("env", "Unknown environment.")]) from exc


async def readiness(request: web.Request) -> web.Response:
    from sandbox.readiness.pages import index_page, report_page
    from sandbox.readiness.report import build

    query = request.query
    wants_html = query.get("format") == "html" or (
        query.get("format") != "json" and "text/html" in request.headers.get("Accept", ""))
    if wants_html and not query.get("msn"):  # a browser without a sales unit: the list to pick one from
        units = request.app[RUNTIME].world.sales_units.values()
        return index_page([(unit.msn, unit.name, unit.role) for unit in sorted(units, key=lambda u: u.msn)])
    msn = _unit_or_404(request, query.get("msn"))
    envs = _envs(query.get("env"))
    report = build(context(request, msn, envs), _apis(query.getall("api", [])))
    report["environments"] = envs
    if wants_html:
        return report_page(report)
    return web.json_response(report)


async def exercise(request: web.Request) -> web.Response:
    """One click from the report: make an item's situation happen (a fault, the clock), then back to it."""
    from sandbox.readiness.checklists import CHECKLISTS

    fields = await read_fields(request)
    msn = _unit_or_404(request, fields.get("msn") if isinstance(fields.get("msn"), str) else None)
    api, item_id = fields.get("api"), fields.get("item")
    checklist = CHECKLISTS.get(api) if isinstance(api, str) else None
    item = next((i for i in checklist[1] if i.id == item_id), None) if checklist else None
    if item is None or item.exercise is None:
        raise Problem(400, "Bad Request", "Name a checklist (api) and one of its items (item) that has an exercise.",
                      details=[Detail("item", "No exercise for this item.")])
    body = {key: (msn if value == "{msn}" else value) for key, value in (item.exercise.body or {}).items()}
    if item.exercise.path == "/_sandbox/faults":
        done = {"fault": request.app[FAULTS].add(body).as_json()}
    elif item.exercise.path.endswith("/newest-created/reject"):
        done = {"rejected": _reject_newest(request, msn)}
    else:
        done = {"clock": ClockBackend(request.app[RUNTIME]).change(body)}
    if request.content_type == "application/json":
        return web.json_response({"exercise": item.exercise.label, **done})
    raise web.HTTPSeeOther(f"/_sandbox/readiness?msn={msn}&api={api}&format=html")


def _reject_newest(request: web.Request, msn: str) -> str:
    """The user rejects the sales unit's newest CREATED payment (in either environment); its reference."""
    from sandbox.apis.epayment.backend import State
    from sandbox.apis.epayment.routes import PAYMENTS

    backend = request.app[PAYMENTS]
    backend.sweep()  # what expired by now is no longer CREATED
    for key in reversed(backend.order):
        payment = backend.payments.get(key)
        if payment is not None and payment.msn == msn and payment.state is State.CREATED:
            backend.reject(payment)
            return payment.reference
    raise Problem(409, "Conflict", f"Sales unit {msn} has no CREATED payment to reject: create one first.",
                  details=[Detail("msn", "No CREATED payment.")])


def _persist(app: web.Application, book: EvidenceBook, logins: LoginBook, directory: Path) -> None:
    """With --state: the book is read back at start and written (atomically) when the app stops."""
    path = directory / STATE_FILE

    async def load(_: web.Application) -> None:
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                book.settle()
                book.load(data)
                logins.load(data.get("login", []))
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("the readiness evidence in %s could not be read (%s); starting afresh", path.name, exc)

    async def save(_: web.Application) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".readiness-")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({**book.dump(), "login": logins.dump()}, handle)
        os.replace(temporary, path)

    app.on_startup.append(load)
    app.on_cleanup.append(save)


def setup(app: web.Application) -> None:
    runtime = app[RUNTIME]
    book = app[EVIDENCE] = EvidenceBook()
    logins = app[LOGIN_EVIDENCE] = LoginBook(runtime.settings.login_ciba_interval)
    repeats = Repeats(book, logins)
    book.settle = repeats.settle  # type: ignore[method-assign]
    app[REQUEST_LOG].observers.append(observer(book, lambda: runtime.world, logins, repeats))

    def on_event(kind: str, payload: dict) -> None:
        if repeats.runs:
            repeats.settle()
        book.on_event(kind, payload, runtime.clock.time())

    runtime.listeners.append(on_event)
    runtime.reset_hooks.append(repeats.drop)
    runtime.reset_hooks.append(book.clear)
    runtime.reset_hooks.append(logins.clear)
    if runtime.settings.state is not None:
        # With --state the book has its own file, read at start and written at stop: the journal's snapshot is
        # made at other times (compaction), and loading an older copy from it would undo newer evidence.
        _persist(app, book, logins, Path(runtime.settings.state))
    else:
        def dump() -> dict:
            return {**book.dump(), "login": logins.dump()}

        def load(data: dict) -> None:
            book.settle()  # folded into the book the snapshot replaces
            book.load(data)
            logins.load(data.get("login", []))

        runtime.state_providers["readiness"] = (dump, load)  # named snapshots keep it
    router = routes(app)
    router.add_get("/_sandbox/readiness", readiness, name="sandbox.readiness")
    router.add_post("/_sandbox/readiness/exercises", exercise, name="sandbox.readiness.exercise")
