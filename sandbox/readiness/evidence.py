"""What the readiness report needs to know about an integration, kept apart from the request log.

The request log is a ring: under load it forgets a sales unit's first capture within minutes. The report asks
questions over the whole run ("was every endpoint called once?", "did any request lack the system headers?"),
so this book keeps a small summary per (environment, sales unit) instead: counters, the newest successful
request per route, the first offender per rule, and a bounded map of recent references for the polling and
state rules. Each request costs a few dictionary updates; building a report reads only this summary.

Nothing here is a secret: header names and the four `Vipps-System-*` values (which partners must show the
checklist reviewers anyway), routes, statuses, references, request ids and times. Idempotency keys are kept
as a short digest, enough to tell "the same key" from "a new key".
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from sandbox.core.clock import iso_utc

SYSTEM_HEADERS = ("Vipps-System-Name", "Vipps-System-Version", "Vipps-System-Plugin-Name",
                  "Vipps-System-Plugin-Version")
NAME, VERSION, PLUGIN, PLUGIN_VERSION = SYSTEM_HEADERS
SYSTEM_HEADER_MAX = 30
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: References, agreements and charges remembered per sales unit for the polling and state rules (oldest go).
MAX_OBJECTS = 2000
MAX_POLLS = 64  # GET times kept per object
#: Path parameters that name the object a request is about, in the order they are preferred.
IDENT_PARAMS = ("chargeId", "reference", "agreementId", "orderId", "productOrderId", "id")


def digest(value: str) -> str:
    """A short, non-reversible stand-in for an Idempotency-Key."""
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:12]


@dataclass(slots=True)
class Proof:
    """One request that proves (or breaks) something: its request-log id, the object it was about, and when."""

    request_id: int
    ident: str | None
    when: float  # virtual time, epoch seconds (formatted only when a report shows it: this is on every request)
    wall: float  # epoch seconds, for the "at most 1 month old" rule

    @property
    def at(self) -> str:
        """The virtual time, ISO 8601."""
        return iso_utc(self.when)

    def as_json(self) -> dict:
        return {"requestId": self.request_id, "id": self.ident, "at": self.at, "wall": self.wall}

    @classmethod
    def from_json(cls, data: dict) -> Proof:
        at = data["at"]
        when = float(at) if isinstance(at, int | float) else \
            datetime.fromisoformat(str(at).replace("Z", "+00:00")).timestamp()
        return cls(int(data["requestId"]), data.get("id"), when, float(data["wall"]))


@dataclass(slots=True)
class RouteStat:
    total: int = 0
    ok: int = 0
    statuses: Counter = field(default_factory=Counter)
    last_ok: Proof | None = None
    last_fail: Proof | None = None


@dataclass
class Tracked:
    """One payment, agreement or charge: when it was created, what it reached, when the integration read it."""

    created: float | None = None
    amount: int | None = None
    states: dict[str, float] = field(default_factory=dict)
    polls: list[float] = field(default_factory=list)
    receipt: bool = False
    captured: int = 0  # what was captured so far (ePayment), to tell a full refund from a partial one


@dataclass
class Unit:
    """The summary for one (environment, sales unit)."""

    routes: dict[str, RouteStat] = field(default_factory=dict)
    api_calls: int = 0
    system_ok: int = 0
    system_bad: Proof | None = None  # the first request without all four headers within their limits
    system_seen: dict[str, str] = field(default_factory=dict)  # the newest values seen, for the checklist form
    system_last: tuple | None = None  # the same values as a tuple: a request that repeats them is checked at once
    key_types: Counter = field(default_factory=Counter)  # who acted for it: merchant, partner, ...
    partner_no_msn: Proof | None = None
    changes: int = 0  # state-changing API requests
    changes_keyed: int = 0
    change_unkeyed: Proof | None = None
    conflicts: Counter = field(default_factory=Counter)  # 409s and idempotency errors, by route
    retried_same_key: Proof | None = None  # a retry after a 5xx with the same key (what the rule wants)
    retried_new_key: Proof | None = None  # a retry after a 5xx with another key (a duplicate risk)
    resent_after_4xx: Proof | None = None  # the same key re-sent after a 4xx
    captures: int = 0  # ePayment captures asked for
    capture_early: Proof | None = None  # G-T3: the first capture asked for before the user approved
    objects: OrderedDict = field(default_factory=OrderedDict)  # ident -> Tracked, bounded
    references: Counter = field(default_factory=Counter)  # reference quality classes: digits, short, ...
    reference_examples: dict[str, str] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)  # "capture-full", "refund-partial", ... -> an example id
    last_change: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # "METHOD path" -> (key, status, id)

    def track(self, ident: str) -> Tracked:
        found = self.objects.get(ident)
        if found is None:
            found = self.objects[ident] = Tracked()
            if len(self.objects) > MAX_OBJECTS:
                self.objects.popitem(last=False)
        return found


class EvidenceBook:
    """Per (env, sales unit) summaries, fed by the request log (`observe`) and by domain events (`on_event`)."""

    def __init__(self) -> None:
        self.units: dict[tuple[str, str], Unit] = {}
        self.token_calls: Counter = Counter()  # (env, client id) -> token requests
        self.client_calls: Counter = Counter()  # (env, client id) -> API requests
        self.clients: dict[tuple[str, str], set[str]] = {}  # (env, msn) -> client ids that acted for it
        self.dirty = False

    def unit(self, env: str, msn: str) -> Unit:
        found = self.units.get((env, msn))
        if found is None:
            found = self.units[(env, msn)] = Unit()
        return found

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    @staticmethod
    def settle() -> None:
        """Folds in what is still queued (sandbox/readiness/repeats.py sets it): every reader calls it first."""

    # -- feeding -------------------------------------------------------------------------------------------
    def observe(self, env: str, msn: str | None, route: str | None, api: str, method: str, path: str,
                status: int | None, headers, match: dict, key_type: str | None, client_id: str | None,
                request_id: int, when: float, wall: float, fault: bool) -> None:
        """One request the integration made (never the sandbox's own control plane). Positional: it runs on every
        request, and keyword arguments cost more than the dictionary updates themselves."""
        self.dirty = True
        if api == "token":
            if client_id is not None and status is not None and status < 400:
                self.token_calls[(env, client_id)] += 1
            return
        if msn is None or route is None or status is None:
            return
        unit = self.unit(env, msn)
        ident = None
        if match:
            for name in IDENT_PARAMS:
                if name in match:
                    ident = match[name]
                    break
        proof = Proof(request_id, ident, when, wall)
        stat = unit.routes.get(route)
        if stat is None:
            stat = unit.routes[route] = RouteStat()
        stat.total += 1
        stat.statuses[status] += 1
        if 200 <= status < 300:
            stat.ok += 1
            stat.last_ok = proof
        else:
            stat.last_fail = proof
        unit.api_calls += 1
        if key_type:
            unit.key_types[key_type] += 1
        if client_id is not None:
            self.client_calls[(env, client_id)] += 1
            acting = self.clients.get((env, msn))
            if acting is None:
                self.clients[(env, msn)] = {client_id}
            elif client_id not in acting:
                acting.add(client_id)
        self._system_headers(unit, headers, proof)
        if key_type == "partner" and not headers.get("Merchant-Serial-Number") and unit.partner_no_msn is None:
            unit.partner_no_msn = proof
        if status == 409:
            unit.conflicts[route] += 1
        if route == "epayment.capture" and ident is not None:
            unit.captures += 1
            tracked = unit.objects.get(ident)
            if tracked is not None and "authorized" not in tracked.states and unit.capture_early is None:
                unit.capture_early = proof
        if method in STATE_CHANGING and "/receipts/" in path and 200 <= status < 300 and "orderId" in match:
            unit.track(match["orderId"]).receipt = True  # Order Management: a receipt for the payment
        if method in STATE_CHANGING:
            self._idempotency(unit, method, path, headers.get("Idempotency-Key"), status, proof, fault)
        elif method == "GET" and ident is not None and 200 <= status < 300:
            polls = unit.track(ident).polls
            polls.append(when)
            if len(polls) > MAX_POLLS:
                del polls[0]

    def observe_run(self, admission, route: str, status: int | None, headers, match: dict, n: int, first: tuple,
                    last: tuple, whens: list[float]) -> None:
        """`observe`, for a run of n repeats of a GET the gateway admitted (sandbox/gateway/admission.py): the same
        path, status and connection, one after the other (sandbox/readiness/repeats.py); `first` and `last` are
        their request-log entries, `whens` their virtual times. The effects are those of n calls of `observe`.
        What comes from the requests' headers, route and caller (the sales unit, the route's counters, the system
        headers' values, the path parameter that names the object) is worked out once and kept on the admission,
        as long as this book keeps the same units (clear and load make new ones)."""
        cached = admission.evidence
        if cached is None or cached[0] is not self.units:
            cached = admission.evidence = self._repeat_facts(admission, route, headers, match)
        _, unit, stat, key_type, calls, values, no_msn, param = cached
        self.dirty = True
        if status is None or unit is None:  # as `observe`: no sales unit named, nothing to count
            return
        ident = match[param] if param is not None else None
        proof = Proof(last[0], ident, last[2], last[1])  # an entry: (id, wall time, virtual time, ...)
        stat.total += n
        stat.statuses[status] += n
        ok = 200 <= status < 300
        if ok:
            stat.ok += n
            stat.last_ok = proof
        else:
            stat.last_fail = proof
        unit.api_calls += n
        if key_type:
            unit.key_types[key_type] += n
        self.client_calls[calls] += n
        if values == unit.system_last:
            unit.system_ok += n
        else:
            self._system_values(unit, values, Proof(first[0], ident, first[2], first[1]))
            if values == unit.system_last:  # good: the run's other requests repeat them
                unit.system_ok += n - 1
        if no_msn and unit.partner_no_msn is None:
            unit.partner_no_msn = Proof(first[0], ident, first[2], first[1])
        if status == 409:
            unit.conflicts[route] += n
        if ident is not None and ok:
            polls = unit.track(ident).polls
            polls.extend(whens)
            if len(polls) > MAX_POLLS:
                del polls[:-MAX_POLLS]

    def _repeat_facts(self, admission, route: str, headers, match: dict) -> tuple:
        keyset = admission.keyset
        env, key_type = admission.env._value_, keyset.type._value_
        msn = admission.msn if admission.msn is not None else keyset.owner if key_type == "merchant" else None
        if msn is None:
            return (self.units, None, None, None, None, None, None, None)
        unit = self.unit(env, msn)
        stat = unit.routes.get(route)
        if stat is None:
            stat = unit.routes[route] = RouteStat()
        acting = self.clients.get((env, msn))
        if acting is None:
            self.clients[(env, msn)] = {keyset.client_id}
        else:
            acting.add(keyset.client_id)
        get = headers.get
        values = (get(NAME), get(VERSION), get(PLUGIN), get(PLUGIN_VERSION))
        no_msn = key_type == "partner" and not get("Merchant-Serial-Number")
        param = next((name for name in IDENT_PARAMS if name in match), None) if match else None
        return (self.units, unit, stat, key_type, (env, keyset.client_id), values, no_msn, param)

    def route_seen(self, env: str, msn: str, route: str, status: int, proof: Proof) -> None:
        """A request that proves an endpoint item only (Login's /auth, made by the user's browser: no headers,
        keys or idempotency rules apply); a redirect (3xx) is its success."""
        self.dirty = True
        stat = self.unit(env, msn).routes.get(route)
        if stat is None:
            stat = self.unit(env, msn).routes[route] = RouteStat()
        stat.total += 1
        stat.statuses[status] += 1
        if 200 <= status < 400:
            stat.ok += 1
            stat.last_ok = proof
        else:
            stat.last_fail = proof

    def partner_without_msn(self, env: str, msns: list[str], request_id: int, when: float, wall: float) -> None:
        """G-H3: a request with partner keys and no Merchant-Serial-Number (refused by the gateway)."""
        proof = Proof(request_id, None, when, wall)
        for msn in msns:
            unit = self.unit(env, msn)
            unit.key_types["partner"] += 1
            if unit.partner_no_msn is None:
                unit.partner_no_msn = proof
        self.dirty = True

    def _system_headers(self, unit: Unit, headers, proof: Proof) -> None:
        get = headers.get
        values = (get(NAME), get(VERSION), get(PLUGIN), get(PLUGIN_VERSION))
        if values == unit.system_last:  # the same four values as this unit's last request: good, and seen
            unit.system_ok += 1
            return
        self._system_values(unit, values, proof)

    @staticmethod
    def _system_values(unit: Unit, values: tuple, proof: Proof) -> None:
        for value in values:
            if not value or len(value) > SYSTEM_HEADER_MAX:
                if unit.system_bad is None:
                    unit.system_bad = proof
                return
        unit.system_ok += 1
        unit.system_last = values
        unit.system_seen = dict(zip(SYSTEM_HEADERS, values, strict=True))

    def _idempotency(self, unit: Unit, method: str, path: str, key: str | None, status: int, proof: Proof,
                     fault: bool) -> None:
        unit.changes += 1
        if not key:
            if unit.change_unkeyed is None:
                unit.change_unkeyed = proof
            return
        unit.changes_keyed += 1
        slot = f"{method} {path}"
        now = (digest(key), status, proof.request_id)
        before = unit.last_change.get(slot)
        if before is not None:
            same = before[0] == now[0]
            if before[1] >= 500 or before[1] == 0:
                if same:
                    unit.retried_same_key = unit.retried_same_key or proof
                else:
                    unit.retried_new_key = unit.retried_new_key or proof
            elif 400 <= before[1] < 500 and same and before[1] != 429:
                unit.resent_after_4xx = unit.resent_after_4xx or proof
        unit.last_change[slot] = now
        if len(unit.last_change) > MAX_OBJECTS:
            unit.last_change.pop(next(iter(unit.last_change)))

    def on_event(self, kind: str, payload: dict, when: float) -> None:
        """Domain events: what each payment, agreement and charge reached, and when (virtual time)."""
        env, msn = payload.get("env"), payload.get("msn")
        ident = payload.get("reference") or payload.get("chargeId") or payload.get("agreementId") \
            or payload.get("orderId")  # order.receipt names the payment by its orderId
        if not isinstance(env, str) or not isinstance(msn, str) or not isinstance(ident, str):
            return
        if "receipt" in kind:  # a receipt sent with the payment, whatever API carried it
            self.dirty = True
            self.unit(env, msn).track(ident).receipt = True
            return
        if not (kind.startswith("epayment.") or kind.startswith("recurring.")):
            return
        self.dirty = True
        unit = self.unit(env, msn)
        tracked = unit.track(ident)
        name = kind.split(".", 1)[1]
        tracked.states.setdefault(name, when)
        amount = payload.get("amount")
        value = amount.get("value") if isinstance(amount, dict) else None
        if kind in ("epayment.captured", "epayment.refunded") and isinstance(value, int):
            self._mode(unit, tracked, kind, value, ident)
        if kind == "epayment.created":
            tracked.created = when
            amount = payload.get("amount")
            if isinstance(amount, dict) and isinstance(amount.get("value"), int):
                tracked.amount = amount["value"]
            self._reference(unit, ident)

    @staticmethod
    def _mode(unit: Unit, tracked: Tracked, kind: str, value: int, ident: str) -> None:
        """A capture of the whole amount or of a part; a refund of all that was captured or of a part (the
        checklist asks for one of each)."""
        if kind == "epayment.captured":
            whole = tracked.amount is not None and tracked.captured == 0 and value >= tracked.amount
            tracked.captured += value
            mode = "capture-full" if whole else "capture-partial"
        else:
            mode = "refund-full" if value >= tracked.captured else "refund-partial"
        unit.modes.setdefault(mode, ident)

    def _reference(self, unit: Unit, reference: str) -> None:
        """G-R2/G-R3: the reference's quality class, with one example of each."""
        classes = ["all"]
        if reference.isdigit():
            classes.append("digits-only")
        if reference.startswith("0"):
            classes.append("leading-zero")
        if len(reference) < 8:
            classes.append("short")
        if len(reference) == 36 and reference.count("-") == 4:
            classes.append("uuid")
        for name in classes:
            unit.references[name] += 1
            unit.reference_examples.setdefault(name, reference)

    # -- snapshots -----------------------------------------------------------------------------------------
    def dump(self) -> dict:
        self.settle()

        def proof(value: Proof | None) -> dict | None:
            return value.as_json() if value else None

        units = []
        for (env, msn), unit in self.units.items():
            units.append({
                "env": env, "msn": msn, "apiCalls": unit.api_calls, "systemOk": unit.system_ok,
                "systemBad": proof(unit.system_bad), "systemSeen": unit.system_seen,
                "keyTypes": dict(unit.key_types), "partnerNoMsn": proof(unit.partner_no_msn),
                "changes": unit.changes, "changesKeyed": unit.changes_keyed,
                "changeUnkeyed": proof(unit.change_unkeyed),
                "conflicts": dict(unit.conflicts), "retriedSameKey": proof(unit.retried_same_key),
                "retriedNewKey": proof(unit.retried_new_key), "resentAfter4xx": proof(unit.resent_after_4xx),
                "captures": unit.captures, "captureEarly": proof(unit.capture_early),
                "references": dict(unit.references), "referenceExamples": unit.reference_examples,
                "routes": {name: {"total": s.total, "ok": s.ok, "statuses": {str(k): v for k, v in s.statuses.items()},
                                  "lastOk": proof(s.last_ok), "lastFail": proof(s.last_fail)}
                           for name, s in unit.routes.items()},
                "modes": unit.modes,
                "objects": [[ident, t.created, t.amount, t.states, t.polls, t.receipt, t.captured]
                            for ident, t in unit.objects.items()],
                "lastChange": {slot: list(value) for slot, value in unit.last_change.items()},
            })
        return {"units": units,
                "tokenCalls": [[env, client, n] for (env, client), n in self.token_calls.items()],
                "clientCalls": [[env, client, n] for (env, client), n in self.client_calls.items()],
                "clients": [[env, msn, sorted(ids)] for (env, msn), ids in self.clients.items()]}

    def load(self, data: dict) -> None:
        def proof(value: dict | None) -> Proof | None:
            return Proof.from_json(value) if value else None

        self.clear()
        for raw in data.get("units", []):
            unit = self.unit(raw["env"], raw["msn"])
            unit.api_calls, unit.system_ok = raw["apiCalls"], raw["systemOk"]
            unit.system_bad, unit.system_seen = proof(raw["systemBad"]), dict(raw["systemSeen"])
            unit.key_types = Counter(raw["keyTypes"])
            unit.partner_no_msn = proof(raw["partnerNoMsn"])
            unit.changes, unit.changes_keyed = raw["changes"], raw["changesKeyed"]
            unit.change_unkeyed = proof(raw["changeUnkeyed"])
            unit.conflicts = Counter(raw["conflicts"])
            unit.retried_same_key, unit.retried_new_key = proof(raw["retriedSameKey"]), proof(raw["retriedNewKey"])
            unit.resent_after_4xx = proof(raw["resentAfter4xx"])
            unit.captures, unit.capture_early = raw.get("captures", 0), proof(raw.get("captureEarly"))
            unit.references, unit.reference_examples = Counter(raw["references"]), dict(raw["referenceExamples"])
            for name, s in raw["routes"].items():
                statuses = Counter({int(k): v for k, v in s["statuses"].items()})
                unit.routes[name] = RouteStat(s["total"], s["ok"], statuses, proof(s["lastOk"]), proof(s["lastFail"]))
            unit.modes = dict(raw.get("modes", {}))
            for ident, created, amount, states, polls, receipt, *rest in raw["objects"]:
                unit.objects[ident] = Tracked(created, amount, dict(states), list(polls), bool(receipt),
                                              int(rest[0]) if rest else 0)
            unit.last_change = {slot: (v[0], int(v[1]), int(v[2])) for slot, v in raw["lastChange"].items()}
        self.token_calls = Counter({(env, client): n for env, client, n in data.get("tokenCalls", [])})
        self.client_calls = Counter({(env, client): n for env, client, n in data.get("clientCalls", [])})
        self.clients = {(env, msn): set(ids) for env, msn, ids in data.get("clients", [])}
        self.dirty = False
