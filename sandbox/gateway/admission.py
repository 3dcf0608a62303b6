"""Admissions: the gateway's verdict on a request it has already let through, kept for its exact repeat.

An integration polls: the same GET with the same headers (the same token, subscription key, Merchant-Serial-Number
and Vipps-System-* values), again and again. Everything the gateway's synchronous checks look at (the Host, the
body's announced size, the system headers, the token, the subscription key, the Merchant-Serial-Number, the
policy) is in those headers, the route and the environment, so their verdict is too (a route that takes no
credentials, Login's discovery and JWKS: the same, with nothing to authenticate). The front door
(sandbox/gateway/front_door.py) keeps it under (route, method, environment, raw headers) in `world.decisions`,
which the directory empties on any change of keys, sales units or consents (sandbox/core/world.py), and uses it
for a repeat only while the token is valid on the virtual clock. Only allowed GETs are kept (for a route that
takes no credentials, only those that sent none: the request log would look up whose keys they were); a refusal
is checked again every time. The asynchronous checks (body depth, rate limits, injected faults) still run on
every request. The request log's and the readiness book's per-request work on a repeat reads what is kept here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.core.model import Env, KeySet
    from sandbox.gateway.policy import Decision
    from sandbox.gateway.tokens import Claims

#: The first element of an admission's key in world.decisions, (ADMISSION, route name, method, env, raw headers); the
#: policy decisions kept there start with a route name.
ADMISSION = "admission"
LIMIT = 10_000  # world.decisions holds at most this many entries (policy decisions and admissions together)


class Admission:
    """What the gateway decided about one exact request, and what the log and the readiness book derive from its
    headers (the same on every repeat)."""

    __slots__ = ("keyset", "decision", "msn", "missing", "warnings", "nbf", "exp", "logged_msn", "presented",
                 "host", "env", "evidence")

    def __init__(self, keyset: KeySet | None, decision: Decision | None, msn: str | None, missing: list[str],
                 warnings: tuple[str, ...], claims: Claims | None, logged_msn: str | None, presented: tuple | None,
                 host: str | None, env: Env) -> None:
        self.keyset, self.decision, self.msn = keyset, decision, msn
        self.missing, self.warnings = missing, warnings
        # The token's validity, on the virtual clock; a route that takes no credentials: always.
        self.nbf, self.exp = (claims.nbf, claims.exp) if claims is not None else (-math.inf, math.inf)
        # The request log's fields from the headers (sandbox/ops/requestlog.py): MSN, credentials (redacted), Host.
        self.logged_msn, self.presented, self.host = logged_msn, presented, host
        self.env = env
        #: The readiness book's cache for this admission (sandbox/readiness/evidence.py), or None.
        self.evidence: tuple | None = None

    def holds(self, now: float) -> bool:
        return self.nbf <= now < self.exp

