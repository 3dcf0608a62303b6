"""The Donations API's input rules and constants (no spec exists: reference section 6, guesses marked UNCERTAIN).

Errors are Problems rendered by sandbox/core/errors.py in the generic Vipps problem format (type, title, status,
detail, instance, traceId, extraDetails): the real API's error body is not published (UNCERTAIN).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sandbox.core.errors import Detail, Problem, printable

#: "At most 1,000 per response (since Oct 2025, subject to change)".
PAGE_MAX = 1000
#: The hour (UTC) a monthly gift is withdrawn on its withdrawal day. UNCERTAIN: the documentation names the day only.
WITHDRAWAL_HOUR = 6
WITHDRAWAL_DAYS = range(1, 29)  # UNCERTAIN: 1 to 28, so every month has the day
AMOUNT_MIN, AMOUNT_MAX = 100, 10_000_000  # minor units; UNCERTAIN
SEED_MAX = 5000  # one-off donations per control-plane call
HANDLE = re.compile(r"^(api|NO|DK|FI):[0-9]{1,12}$")
MAX_HANDLES = 100
MAX_TIME_TEXT = 64
INTERVAL = "MONTHLY"
STATUSES = ("ACTIVE", "STOPPED")


def bad_request(name: str, reason: str) -> Problem:
    return Problem(400, "Bad Request", reason, details=[Detail(name, reason)], rule="donations-input-invalid")


def parse_time(name: str, text: str | None, required: bool = True) -> float | None:
    """An ISO 8601 timestamp ("2025-01-01T00:00:00Z", an offset, fractions); one without an offset is UTC
    (UNCERTAIN). Returns epoch seconds."""
    if text is None or text == "":
        if required:
            raise bad_request(name, f"{name} is required: an ISO 8601 timestamp such as 2025-01-01T00:00:00Z.")
        return None
    try:
        if len(text) > MAX_TIME_TEXT or not text.isascii() or not text[:4].isdigit():
            raise ValueError
        moment = datetime.fromisoformat(text.replace(" ", "+"))  # a '+' that a query string turned into ' '
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise bad_request(name, f"{name} {printable(text, 40)!r} is not an ISO 8601 timestamp such as "
                          "2025-01-01T00:00:00Z.") from None


def parse_flag(name: str, text: str | None) -> bool:
    if text is None or text.lower() == "false":
        return False
    if text.lower() == "true":
        return True
    raise bad_request(name, f"{name} must be true or false.")


def parse_handles(values: list[str]) -> list[str] | None:
    """recipientHandles, comma-separated or repeated (UNCERTAIN which the real API takes; both work here)."""
    handles = [h.strip() for value in values for h in value.split(",") if h.strip()]
    if not values:
        return None
    if not handles:
        raise bad_request("recipientHandles", "recipientHandles is empty: leave it out, or name handles such as "
                          "api:123456.")
    if len(handles) > MAX_HANDLES:
        raise bad_request("recipientHandles", f"At most {MAX_HANDLES} recipientHandles in one call.")
    for handle in handles:
        if not HANDLE.fullmatch(handle):
            raise bad_request("recipientHandles", f"{printable(handle, 16)!r} is not a recipient handle such as "
                              "api:123456 or NO:6666.")
    return list(dict.fromkeys(handles))


def iso_seconds(epoch: float) -> str:
    """capturedAt as the documentation's example writes it: whole seconds, Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(epoch: float) -> str:
    """startedAt as the documentation's example writes it: fractions and +00:00."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def parse_fixture_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def whole_number(body: dict, name: str, low: int, high: int, default: int | None = None) -> int:
    value = body.get(name, default)
    if value is None:
        raise bad_request(name, f"{name} is required.")
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad_request(name, f"{name} must be a whole number from {low} to {high}.")
    return value


def optional_text(body: dict, name: str, limit: int = 50) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= limit or not value.isprintable():
        raise bad_request(name, f"{name} must be text of 1 to {limit} printable characters.")
    return value
