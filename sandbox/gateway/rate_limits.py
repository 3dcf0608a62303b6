"""Documented per-reference rate limits, opt-in (`--rate-limits`), on the virtual clock; ePayment registers its own.

ePayment's (reference section 2, rate limits [doc], registered from sandbox/apis/epayment/rules.py):
create, capture, cancel and refund 5 per minute per `reference` + MSN; GET payment and GET events 120
per minute per `reference` + subscription key.
Excess gets the gateway's 429 with a Retry-After. Off by default: test suites poll and retry on one
reference far faster than production allows, and most want that; switch it on to find the polling
loop that production will throttle. A sliding window of 60 seconds on the virtual clock, so moving
the clock forward (POST /_sandbox/clock) lifts a limit (a frozen clock never does), and reset and
restore clear every window. Only well-formed references are counted (the handler refuses the rest),
windows empty for a minute are dropped, and at most MAX_WINDOWS are kept: memory stays small.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
MAX_WINDOWS = 10_000  # windows kept at most: idle ones go first, then the oldest


def _any_reference(reference: str) -> bool:
    return True


@dataclass(frozen=True)
class Limit:
    per_minute: int
    keyed_by: str  # "msn" (writes) or "subscription-key" (reads), besides the reference
    #: Only well-formed references get a window (the handler refuses the rest); the API says what is well-formed.
    reference_is_valid: Callable[[str], bool] = field(default=_any_reference, compare=False)
    reference_in_body: bool = False  # create: the reference is a body field, not a path parameter
    #: The path parameters that, with `body_field`, name what is counted (ePayment: the path's reference;
    #: Recurring: its agreementId and chargeId; none: per caller only).
    params: tuple[str, ...] = ("reference",)
    body_field: str | None = None  # a body field counted too (a charge's orderId)

    def counted(self) -> tuple[tuple[str, ...], str | None]:
        """(path parameters, body field) whose values name the window."""
        if self.reference_in_body:
            return (), "reference"
        return self.params, self.body_field


#: Route name -> its limit. Routes not listed here are not limited. The API packages that document limits
#: register theirs (sandbox/apis/epayment/rules.py), so the gateway knows no API's rules.
LIMITS: dict[str, Limit] = {}


def register(limits: dict[str, Limit]) -> None:
    LIMITS.update(limits)


class RateLimiter:
    def __init__(self) -> None:
        self.windows: dict[tuple, deque[float]] = {}

    def clear(self) -> None:
        self.windows.clear()

    def take(self, key: tuple, limit: Limit, now: float) -> int | None:
        """Counts one call at `now`; None when allowed, else the seconds until the window lets one through."""
        window = self.windows.get(key)
        if window is None:
            if len(self.windows) >= MAX_WINDOWS:
                self._make_room(now)
            window = self.windows[key] = deque()
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit.per_minute:
            return max(1, math.ceil(window[0] + WINDOW_SECONDS - now))
        window.append(now)
        return None

    def _make_room(self, now: float) -> None:
        """Drops the windows with no call in the last minute; if none is idle, the oldest one."""
        idle = [key for key, window in self.windows.items() if not window or window[-1] <= now - WINDOW_SECONDS]
        for key in idle:
            del self.windows[key]
        if len(self.windows) >= MAX_WINDOWS:
            del self.windows[next(iter(self.windows))]
