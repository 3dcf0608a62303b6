"""Idempotency records with bounds: kept for a retention period on the virtual clock, and at most so many per
sales unit, the oldest going first.

No reference says how long the real APIs honour an Idempotency-Key (UNCERTAIN, docs/reference/fidelity.md), so
the period is a setting (`Settings.idempotency_retention_seconds`). Without bounds, a client that sends a new key
on every call grows the records without end. Both bounds work through indexes by insertion time, which is
virtual-clock time (the clock never moves back): one deque for the whole store, so that what expired is popped
from its head (O(1) per record, never a scan), and one per sales unit, so that the cap evicts that unit's oldest.
Both deques share one small (at, key) tuple per record. An entry whose record was evicted, expired or replaced
is skipped when it reaches a head, and a deque that holds more stale entries than live ones is rebuilt: memory
stays proportional to the live records.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    at: float  # when the record was made (virtual clock); set by the store


R = TypeVar("R", bound=Timed)
Key = tuple  # (env, msn, route, key): its first two items are the sales unit
_Entry = tuple[float, Key]


class IdempotencyRecords(Generic[R]):
    """A dict of records by key, with the two bounds. `retention()` and `cap()` are read on every write, so a
    changed setting applies at once."""

    def __init__(self, now: Callable[[], float], retention: Callable[[], float], cap: Callable[[], int]) -> None:
        self._now, self._retention, self._cap = now, retention, cap
        self.clear()

    def clear(self) -> None:
        self._records: dict[Key, R] = {}
        self._by_time: deque[_Entry] = deque()
        self._by_unit: dict[Hashable, deque[_Entry]] = {}
        self._live: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._records)

    def items(self) -> Iterator[tuple[Key, R]]:
        return iter(list(self._records.items()))

    def get(self, key: Key) -> R | None:
        """The key's live record, or None (also once it is older than the retention period)."""
        self.expire()
        record = self._records.get(key)
        if record is not None and record.at + self._retention() <= self._now():
            self._drop(key)  # only when the clock moved back past a reload: the head check did not see it
            return None
        return record

    def put(self, key: Key, record: R, at: float | None = None) -> None:
        """Keeps `record` for `key` (made now, or `at` when loaded from a snapshot); evicts the sales unit's
        oldest while it holds more than the cap."""
        self.expire()
        if key in self._records:
            self._drop(key)
        record.at = self._now() if at is None else at
        entry = (record.at, key)
        unit = key[:2]
        self._records[key] = record
        self._by_time.append(entry)
        queue = self._by_unit.get(unit)
        if queue is None:
            queue = self._by_unit[unit] = deque()
        queue.append(entry)
        self._live[unit] = self._live.get(unit, 0) + 1
        cap = max(1, self._cap())
        while self._live[unit] > cap:
            old_at, old_key = queue.popleft()
            if self._is_live(old_at, old_key):
                self._drop(old_key)
        if len(queue) > 2 * self._live[unit] + 64:
            self._by_unit[unit] = deque(e for e in queue if self._is_live(*e))
        if len(self._by_time) > 2 * len(self._records) + 1024:
            self._by_time = deque(e for e in self._by_time if self._is_live(*e))

    def load(self, rows: list[tuple[Key, R, float]]) -> None:
        """Replaces every record with these (key, record, made at), oldest first."""
        self.clear()
        for key, record, at in sorted(rows, key=lambda row: row[2]):
            self.put(key, record, at)

    def expire(self) -> int:
        """Drops the records older than the retention period, oldest first, from the time index's head: O(1) when
        none is due. Returns how many."""
        limit = self._now() - self._retention()
        queue, dropped = self._by_time, 0
        while queue and queue[0][0] <= limit:
            at, key = queue.popleft()
            if self._is_live(at, key):
                self._drop(key)
                dropped += 1
        return dropped

    # -- internals ---------------------------------------------------------------------------
    def _is_live(self, at: float, key: Key) -> bool:
        record = self._records.get(key)
        return record is not None and record.at == at

    def _drop(self, key: Key) -> None:
        del self._records[key]
        unit = key[:2]
        left = self._live[unit] - 1
        if left:
            self._live[unit] = left
        else:  # the unit's deque holds only stale entries now
            del self._live[unit]
            self._by_unit.pop(unit, None)
