"""One fault injection rule: what it matches, what it does, and how often it still fires.

Apart from the fault book (sandbox/ops/faults.py) so a request's context can name the rule that fired
without importing the book, which reads that context.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field

from sandbox.core.model import KeyType


@dataclass
class FaultRule:
    id: int
    method: str
    path: str
    key_type: KeyType | None
    msn: str | None
    status: int | None
    latency_ms: float | None
    drop: bool
    retry_after: int
    remaining: int | None  # None: no limit
    probability: float | None  # None: always
    seed: int
    hits: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def matches(self, method: str, path: str, key_type: KeyType | None, msn: str | None) -> bool:
        return (self.active and self.method in ("*", method) and fnmatch.fnmatchcase(path, self.path)
                and (self.key_type is None or self.key_type is key_type) and (self.msn is None or self.msn == msn))

    def fire(self) -> bool:
        """Draws (when there is a probability) and counts; True when the fault happens now."""
        if self.probability is not None and self.rng.random() >= self.probability:
            return False
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    def as_json(self) -> dict:
        effect = {"status": self.status} if self.status is not None else \
            {"latencyMs": self.latency_ms} if self.latency_ms is not None else {"drop": True}
        if self.status == 429:
            effect["retryAfterSeconds"] = self.retry_after
        return {"id": self.id, "method": self.method, "path": self.path,
                "keyType": str(self.key_type) if self.key_type else None, "msn": self.msn, **effect,
                "count": self.remaining, "probability": self.probability, "seed": self.seed, "hits": self.hits,
                "active": self.active}
