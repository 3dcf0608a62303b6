"""Simple JSON paths (`aggregate.capturedAmount.value`, `items[0].id`, `$.state`) and matchers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


#: What lookup returns when the path leads nowhere (None is a real JSON value: null).
MISSING = _Missing()


def lookup(document: object, path: str) -> object:
    path = path.strip()
    if path in ("$", ""):
        return document
    if path.startswith("$."):
        path = path[2:]
    value = document
    for name, index in TOKEN.findall(path):
        if index or name.isdigit():
            position = int(index or name)
            if not isinstance(value, list) or position >= len(value):
                return MISSING
            value = value[position]
        elif isinstance(value, dict) and name in value:
            value = value[name]
        else:
            return MISSING
    return value


def matches(expected: object, actual: object) -> bool:
    """Equality, or one matcher: contains, exists, oneOf, length, gte, lte, equals."""
    if isinstance(expected, dict) and len(expected) == 1:
        kind, argument = next(iter(expected.items()))
        if kind == "equals":
            return actual is not MISSING and matches_literally(argument, actual)
        if kind == "exists":
            return (actual is not MISSING) is argument
        if actual is MISSING:
            return False
        if kind == "contains":
            if isinstance(argument, list) and isinstance(actual, list):  # every one of them
                return all(matches({"contains": item}, actual) for item in argument)
            if isinstance(actual, str):
                return str(argument) in actual
            if isinstance(actual, dict) and isinstance(argument, dict):
                return argument.items() <= actual.items()
            if isinstance(actual, list):
                return argument in actual or any(isinstance(a, dict) and isinstance(argument, dict)
                                                 and argument.items() <= a.items() for a in actual)
            return False
        if kind == "oneOf":
            return actual in argument
        if kind == "length":
            return isinstance(actual, list | str | dict) and len(actual) == argument
        if kind in ("gte", "lte"):
            if not isinstance(actual, int | float) or isinstance(actual, bool):
                return False
            return actual >= argument if kind == "gte" else actual <= argument
    return matches_literally(expected, actual)


def matches_literally(expected: object, actual: object) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


FILTERS = ("query:NAME", "path", "date", "date:ZONE", "days:N")
DAYS_FILTER = re.compile(r"days:([+-]?[0-9]{1,4})")


def apply_filter(value: object, name: str) -> object:
    """`query:token` (a URL's query parameter), `path` (a URL's path and query), `date` (YYYY-MM-DD of a timestamp),
    `date:Europe/Oslo` (its date in that time zone: a Report API ledger date is the merchant's local date) and
    `days:N` (the timestamp N days later, so `now | days:3 | date` is a date three days ahead)."""
    if value is MISSING or not isinstance(value, str):
        return MISSING
    if name.startswith("query:"):
        found = parse_qs(urlsplit(value).query).get(name[6:])
        return found[0] if found else MISSING
    if name == "path":
        parts = urlsplit(value)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    if name == "date":
        return value[:10] if re.match(r"\d{4}-\d{2}-\d{2}", value) else MISSING
    if name.startswith("date:"):
        return local_date(value, name[5:])
    days = DAYS_FILTER.fullmatch(name)
    if days:
        return shift_days(value, int(days.group(1)))
    raise ValueError(f"unknown filter {name!r} (known: {', '.join(FILTERS)})")


def split_filters(source: str) -> tuple[str, list[str]]:
    """`redirectUrl | query:token` -> ("redirectUrl", ["query:token"])."""
    path, *filters = [part.strip() for part in source.split("|")]
    return path, filters


def shift_days(value: str, days: int) -> object:
    """An ISO 8601 timestamp N days later (earlier when negative), in UTC: `now | days:3 | date` is the date three
    days from now on the virtual clock (a Recurring charge's due date); MISSING for a bad timestamp."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return MISSING
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment + timedelta(days=days)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def local_date(value: str, zone: str) -> object:
    """YYYY-MM-DD of an ISO 8601 timestamp in the IANA time zone `zone`; MISSING for a bad timestamp."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return MISSING
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def known_zone(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True
