"""Test users as plain dicts: what `vipps-sandbox users --json` and GET /_sandbox/users return.

Every field is listed, the national identity number too: the users are synthetic (see docs/reference/fixture.md).
"""

from __future__ import annotations

from dataclasses import asdict

from sandbox.core.clock import VirtualClock
from sandbox.core.world import World

MARKETS = ("NO", "DK", "FI")


class UnknownMarket(ValueError):
    def __init__(self, market: str) -> None:
        super().__init__(f"no market {market!r}; the markets are: {', '.join(MARKETS)}")
        self.market = market


def user_rows(world: World, market: str | None = None, age_on=None) -> list[dict]:
    """The users in fixture order, with `name` and (given `age_on`, a date) `age`; `market` filters."""
    if market is not None and market not in MARKETS:
        raise UnknownMarket(market)
    rows = []
    for user in world.users.values():
        if market is not None and user.market != market:
            continue
        row = asdict(user)
        row["name"] = user.name
        if age_on is not None:
            row["age"] = user.age(age_on)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """A table for people: role, market, phone number, name, birthdate and age, addresses, nin."""
    headers = ["role", "market", "phone_number", "name", "birthdate", "addresses", "nin"]
    lines = [[r["role"] or "-", r["market"], r["phone_number"], r["name"],
              r["birthdate"] + (f" ({r['age']})" if "age" in r else ""), str(len(r["addresses"])), r["nin"]]
             for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = [f"{len(rows)} test user{'s' if len(rows) != 1 else ''} (synthetic people). Every field: "
           "vipps-sandbox users --json", ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    out.extend("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)
    return "\n".join(out)


def today(clock: VirtualClock):
    """The virtual clock's date (UTC), for ages."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(clock.time(), UTC).date()
