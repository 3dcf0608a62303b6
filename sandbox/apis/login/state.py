"""The Login API's live records, and the index by time that forgets them when they expire.

Nothing here survives a restart or goes into a snapshot: codes, access tokens and CIBA requests are secrets
or lead to them (docs/reference/security.md). What --state keeps is the clients' settings (redirect URIs,
basic only), which live in the directory (World.login_clients).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from sandbox.core.model import Env


@dataclass
class Authorization:
    """What /oauth2/auth asked for, as the login page and then the code carry it."""

    env: Env
    client_id: str
    msn: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str
    requested_at: float  # `rat`: when the login was asked for


@dataclass
class PendingLogin:
    """A login waiting on the login page (or the control plane)."""

    id: str
    request: Authorization
    expires_at: float


@dataclass
class Grant:
    """A code, or an approved CIBA request: what the token endpoint exchanges, once."""

    request: Authorization
    phone: str
    auth_time: float
    sid: str
    expires_at: float
    auth_req_id: str | None = None
    used: bool = False


@dataclass
class Session:
    """A Login access token: it reaches Login's userinfo only, until `expires_at`."""

    env: Env
    msn: str
    phone: str
    scopes: list[str]
    sub: str
    sid: str
    expires_at: float


@dataclass
class CibaRequest:
    id: str
    request: Authorization
    phone: str
    binding_message: str | None
    expires_at: float
    interval: int
    flow: str | None  # None (poll), or "login_to_webpage"
    created: float
    status: str = "pending"  # pending, approved, rejected, done
    last_poll: float = 0.0  # time.monotonic() of the last poll (the client's pace, not the virtual clock)
    grant: Grant | None = None


@dataclass
class ExpiryIndex:
    """(when, table, key) in a heap: what has expired is dropped without scanning the tables."""

    heap: list[tuple[float, int, str, str]] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)

    def add(self, at: float, table: str, key: str) -> None:
        heapq.heappush(self.heap, (at, next(self.counter), table, key))

    def due(self, now: float):
        while self.heap and self.heap[0][0] <= now:
            _, _, table, key = heapq.heappop(self.heap)
            yield table, key

    def clear(self) -> None:
        self.heap.clear()
