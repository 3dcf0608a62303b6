"""Everything one running sandbox holds: settings, clock, directory, tokens and API backends."""

from __future__ import annotations

import copy
import pickle
import secrets
from collections.abc import Callable
from typing import Any, Protocol

from sandbox.core.clock import VirtualClock
from sandbox.core.customer_tokens import CustomerTokens
from sandbox.core.ids import Ids
from sandbox.core.model import Env
from sandbox.core.settings import Settings
from sandbox.core.world import World
from sandbox.fixture import store
from sandbox.gateway.rate_limits import RateLimiter
from sandbox.gateway.tokens import TokenService

#: A part of the live state that snapshots save and restore: (dump, load). `dump()` returns JSON-able
#: data without tokens; `load(data)` replaces the live state with it.
StateProvider = tuple[Callable[[], object], Callable[[object], None]]


class InFlight(Protocol):
    """Work a backend took on and has not finished (webhook deliveries due or being retried), which no snapshot
    holds but `--state` keeps across a crash (sandbox/ops/persistence.py). The journal's replay makes that work
    again; the provider keeps it queued until `release`, which drops what `marks` said was done."""

    #: Called with a mark (a short string naming it) for each piece of work done, to be written down.
    progress_hooks: list[Callable[[str], None]]

    def hold(self) -> None:
        """From now until `release`: queue new work, never act on it (the journal is being replayed)."""

    def pending(self) -> object:
        """What is still to do, JSON-able (a compaction puts it beside the snapshot's state)."""

    def compacted(self) -> None:
        """`pending()` was written down (the marks written before it count no more)."""

    def restore(self, data: object) -> None:
        """Queues the work `pending()` gave (after the snapshot's load, before the journal's replay)."""

    def release(self, marks: object | None) -> int:
        """Drops the work the marks (a list, each naming one piece done since the last compaction; None: none
        known) say was done, then acts again; returns how much is still to do."""


def load_tables(settings: Settings) -> dict[str, list[dict]]:
    """The fixture tables this sandbox starts from (and returns to on reset)."""
    if settings.seed is not None:
        from sandbox.fixture.generate import generate  # Faker is slow to import: only when generating

        return generate(settings.seed)
    return store.read(settings.fixture or store.default_fixture_path())


class Runtime:
    def __init__(self, settings: Settings, tables: dict[str, list[dict]] | None = None) -> None:
        self.settings = settings
        self.fixture_tables = tables if tables is not None else load_tables(settings)
        self.clock = VirtualClock()
        self.ids = Ids(settings.id_seed)
        self.port_env: dict[int, Env] = {}
        # Reset must be fast (goal: 20 ms): unpickling a pre-built World beats rebuilding it from tables.
        self._pristine_world = self._pickle_world(World(copy.deepcopy(self.fixture_tables)))
        self.world = self._fresh_world()
        self.tokens = TokenService(self.clock, self.world)
        #: The key of the landing pages' tokens (HMAC-SHA256): random per process; with --state, the one kept
        #: in the state directory (sandbox/ops/persistence.py), so links outlive a restart.
        self.landing_key: bytes = secrets.token_bytes(32)
        #: The documented ePayment rate limits, when switched on (--rate-limits); cleared on reset.
        self.rate_limiter = RateLimiter() if settings.rate_limits else None
        #: Called with (event kind, payload) for every domain event, e.g. ("epayment.captured", {...}).
        self.listeners: list[Callable[[str, dict], None]] = []
        #: Called when the control plane reads or moves the clock, so what fell due (expiries) happens now.
        self.clock_hooks: list[Callable[[], object]] = []
        #: Called on reset, after the directory and clock are back to the fixture.
        self.reset_hooks: list[Callable[[], None]] = []
        #: Who checked in at a QR code (user.checked-in.v1), for any API to resolve: QR's exchange, Login's CIBA.
        self.customer_tokens = CustomerTokens()
        self.reset_hooks.append(self.customer_tokens.clear)
        #: What snapshots hold, by name; backends register theirs. Loaded in this order (the world first).
        self.state_providers: dict[str, StateProvider] = {
            "world": (lambda: self.world.tables(secrets=False), self.load_world),
            "clock": (self.clock.state, self._load_clock),
            "ids": (self.ids.dump, self.ids.load),
        }
        #: Work in flight that only --state keeps (not snapshots), by name: see InFlight.
        self.in_flight: dict[str, InFlight] = {}
        #: What one API offers another without either importing the other, by name ("epayment.create_payment"):
        #: registered by the offering package's setup. The names and signatures are in sandbox/core/services.py.
        self.services: dict[str, Callable[..., Any]] = {}

    def publish(self, kind: str, payload: dict) -> None:
        """Tells every listener (ledgers, webhooks, the dashboard) that something happened."""
        for listener in self.listeners:
            listener(kind, payload)

    def reset(self) -> None:
        """Back to the fixture: directory, tokens and clock. Backends reset themselves too."""
        self._install_world(self._fresh_world())
        self.clock.reset()
        self.ids.reset()
        if self.rate_limiter is not None:
            self.rate_limiter.clear()
        for hook in self.reset_hooks:
            hook()

    # -- the directory --------------------------------------------------------------------------
    def _pickle_world(self, world: World) -> bytes | None:
        try:
            return pickle.dumps(world, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError):  # something unpicklable: rebuild from tables
            return None

    def _fresh_world(self) -> World:
        if self._pristine_world is not None:
            return pickle.loads(self._pristine_world)
        return World(copy.deepcopy(self.fixture_tables))

    def _install_world(self, world: World) -> None:
        self.world = world
        self.tokens.world = world
        self.tokens._cache.clear()

    def load_world(self, tables: object) -> None:
        """Replaces the directory with snapshot tables (World.tables() format)."""
        if not isinstance(tables, dict):
            raise ValueError("the world's state must be an object of tables")
        known = {record["client_id"]: record for record in self.fixture_tables.get("keys", [])}
        if "users" not in tables:  # a snapshot made before the fixture had test users: the fixture's
            tables = dict(tables, users=self.fixture_tables.get("users", []))
        self._install_world(World(copy.deepcopy(tables), known_keys=known))

    def _load_clock(self, state: object) -> None:
        def number(value: object) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool)

        if not isinstance(state, dict) or not number(state.get("offset")) or not (
                state.get("frozen_at") is None or number(state.get("frozen_at"))):
            raise ValueError("the clock's state must be {\"offset\": seconds, \"frozen_at\": epoch or null}")
        self.clock.load_state(state)

    # -- snapshots ------------------------------------------------------------------------------
    def dump_state(self, exclude: frozenset[str] = frozenset()) -> dict[str, object]:
        """Every registered part of the live state, by provider name (but the excluded ones)."""
        return {name: dump() for name, (dump, _) in self.state_providers.items() if name not in exclude}

    def load_state(self, state: dict[str, object]) -> list[str]:
        """Loads the parts present in `state`, in registration order; all or nothing.

        Returns the names loaded. Any failure puts back, as they were, the parts already loaded and raises
        ValueError; the others are never touched. A provider's `load` must either raise without changing
        anything (check the whole dump first) or replace its state: then a failed restore leaves
        everything as it was, also what no snapshot holds (inboxes, deliveries in flight, secrets).
        """
        if not isinstance(state, dict):
            raise ValueError("a snapshot's state must be an object of provider states")
        undo: list[Callable[[], None]] = []
        loaded = []
        failed = ""
        try:
            for name, (dump, load) in self.state_providers.items():
                if name in state:
                    failed = name
                    undo.append(self._undo_for(name, dump, load))
                    load(state[name])
                    loaded.append(name)
        except Exception as exc:
            for step in reversed(undo[:len(loaded)]):
                step()
            raise ValueError(f"the {failed!r} state cannot be loaded: {exc}") from exc
        if self.rate_limiter is not None:  # a restored clock may be earlier than the windows' calls
            self.rate_limiter.clear()
        return loaded

    def _undo_for(self, name: str, dump: Callable[[], object], load: Callable[[object], None]) -> Callable[[], None]:
        """How to put one part back as it is now. The directory goes back as the very object (a dump holds
        digests, not secrets); the other parts as their dump."""
        if name == "world":
            world = self.world
            return lambda: self._install_world(world)
        before = dump()
        return lambda: load(before)
