"""One virtual clock for the whole sandbox: token expiry, payment expiry and ledger dates.

It follows real time plus an offset, and can be frozen or moved forward, never backwards.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class VirtualClock:
    def __init__(self, start: datetime | None = None, frozen: bool = False) -> None:
        self._offset = 0.0 if start is None else start.timestamp() - time.time()
        self._frozen_at: float | None = None
        if frozen:
            self.freeze()

    def time(self) -> float:
        """Seconds since the epoch on the virtual clock."""
        if self._frozen_at is not None:
            return self._frozen_at
        return time.time() + self._offset

    def at(self, wall: float) -> float:
        """The virtual time at a moment of the wall clock (time.time()), as the clock stands now."""
        return self._frozen_at if self._frozen_at is not None else wall + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> None:
        if self._frozen_at is None:
            self._frozen_at = time.time() + self._offset

    def unfreeze(self) -> None:
        if self._frozen_at is not None:
            self._offset = self._frozen_at - time.time()
            self._frozen_at = None

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        if self._frozen_at is not None:
            self._frozen_at += seconds
        else:
            self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0
        self._frozen_at = None

    def state(self) -> dict:
        return {"offset": self._offset, "frozen_at": self._frozen_at}

    def load_state(self, state: dict) -> None:
        self._offset = float(state["offset"])
        self._frozen_at = state["frozen_at"]

    def iso(self) -> str:
        return iso_utc(self.time())


def iso_utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
