"""Everything one running sandbox holds: settings, clock, directory, tokens and API backends."""

from __future__ import annotations

import copy
from collections.abc import Callable

from sandbox.clock import VirtualClock
from sandbox.fixture import store
from sandbox.fixture.generate import generate
from sandbox.model import Env
from sandbox.settings import Settings
from sandbox.tokens import TokenService
from sandbox.world import World


def load_tables(settings: Settings) -> dict[str, list[dict]]:
    """The fixture tables this sandbox starts from (and returns to on reset)."""
    if settings.seed is not None:
        return generate(settings.seed)
    return store.read(settings.fixture or store.default_fixture_path())


class Runtime:
    def __init__(self, settings: Settings, tables: dict[str, list[dict]] | None = None) -> None:
        self.settings = settings
        self.fixture_tables = tables if tables is not None else load_tables(settings)
        self.clock = VirtualClock()
        self.port_env: dict[int, Env] = {}
        self.world = World(copy.deepcopy(self.fixture_tables))
        self.tokens = TokenService(self.clock, self.world)
        #: Called with (event kind, payload) for every domain event, e.g. ("epayment.captured", {...}).
        self.listeners: list[Callable[[str, dict], None]] = []
        #: Called on reset, after the directory and clock are back to the fixture.
        self.reset_hooks: list[Callable[[], None]] = []

    def publish(self, kind: str, payload: dict) -> None:
        """Tells every listener (ledgers, webhooks, the dashboard) that something happened."""
        for listener in self.listeners:
            listener(kind, payload)

    def reset(self) -> None:
        """Back to the fixture: directory, tokens and clock. Backends reset themselves too."""
        self.world = World(copy.deepcopy(self.fixture_tables))
        self.tokens.world = self.world
        self.tokens._cache.clear()
        self.clock.reset()
        for hook in self.reset_hooks:
            hook()
