"""Ledger dates, checked against the documentation's own words and examples, not against the sandbox's code.

- "Normally, a ledger date lasts from midnight to midnight in the timezone of the merchant" (Report API
  guide, 2023, "Method 1"), so the boundaries below are computed with zoneinfo from the market alone.
- The guide's table puts the closing entries of ledger date 2022-10-01 at "2022-10-02T00:00:00.000000+0200":
  the next local midnight. The spec says `time` is "Transaction time in UTC" (`...Z`).
- In the same tables `fees-retained` has an empty `reference` and no `recipientHandle`, and the payout
  "does not have an recipientHandle" (JSON example: `"recipientHandle": null`); its `reference` is the
  bank statement text.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from report_support import ZONES, advance_to, assert_chain, capture, check_page_schema, freeze, ledger_id


async def get(sandbox, path: str, msn: str) -> dict:
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))  # fresh: the clock jumps
    reply = await sandbox.request("GET", path, "production", headers=headers)
    assert reply.status == 200, reply.text
    check_page_schema(reply.json)
    return reply.json


def at(day: date, clock: time, market: str) -> datetime:
    """A wall-clock time in the merchant's zone, as a UTC instant."""
    return datetime.combine(day, clock, tzinfo=ZONES[market]).astimezone(UTC)


def utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def last_sunday(year: int, month: int) -> date:
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def next_dst_change(after: date) -> date:
    """The next EU summer-time change (last Sunday of March or October) at least two days away."""
    for year in (after.year, after.year + 1):
        for month in (3, 10):
            change = last_sunday(year, month)
            if change >= after + timedelta(days=2):
                return change
    raise AssertionError("unreachable")


async def dates(sandbox, msn: str, topic: str, day: date) -> dict:
    lid = await ledger_id(sandbox, await sandbox.auth_headers(sandbox.key("merchant", msn=msn)), msn)
    return await get(sandbox, f"/report/v2/ledgers/{lid}/{topic}/dates/{day.isoformat()}", msn)


async def test_norway_2330_local_is_that_date_and_0030_the_next(sandbox):
    """A capture late in the evening in Oslo stays on its local date; one just after Oslo midnight (still
    the previous day in UTC) is on the new date. The old sandbox put 00:30 Oslo on the previous (UTC) date."""
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    day = now.astimezone(ZONES["NO"]).date() + timedelta(days=1)
    await advance_to(sandbox, at(day, time(23, 30), "NO"))
    evening = capture(sandbox, msn, "evening", 10_000)
    after_midnight = at(day + timedelta(days=1), time(0, 30), "NO")
    assert after_midnight.date() == day  # in UTC this is still `day`: the case a UTC ledger gets wrong
    await advance_to(sandbox, after_midnight)
    night = capture(sandbox, msn, "night", 20_000)

    closed = await dates(sandbox, msn, "funds", day)
    assert closed["tryLater"] is False  # Oslo's midnight has passed: the date is complete
    assert [e["reference"] for e in closed["items"]][:1] == ["evening"]
    assert closed["items"][0]["pspReference"] == evening["pspReference"]
    assert {e["ledgerDate"] for e in closed["items"]} == {day.isoformat()}
    assert night["pspReference"] not in {e["pspReference"] for e in closed["items"]}
    stamp = closed["items"][0]["time"]  # `time` stays UTC (to the second: the clock moved by float seconds)
    assert stamp[:19] == utc_text(at(day, time(23, 30), "NO"))[:19] and stamp.endswith("Z")

    today = await dates(sandbox, msn, "funds", day + timedelta(days=1))
    assert today["tryLater"] is True  # the open date is the Oslo date
    assert [(e["reference"], e["ledgerDate"]) for e in today["items"]] == [("night", (day + timedelta(1)).isoformat())]


async def test_denmark_closes_at_copenhagen_midnight_with_the_documented_closing_entries(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-dk-1")
    day = now.astimezone(ZONES["DK"]).date() + timedelta(days=1)
    await advance_to(sandbox, at(day, time(12, 0), "DK"))
    capture(sandbox, msn, "noon", 10_000, currency="DKK")
    midnight = at(day + timedelta(days=1), time(0, 0), "DK")
    await advance_to(sandbox, midnight - timedelta(seconds=1))
    capture(sandbox, msn, "last-second", 5_000, currency="DKK")
    assert (await dates(sandbox, msn, "funds", day))["tryLater"] is True  # not closed one second early

    await advance_to(sandbox, midnight)
    capture(sandbox, msn, "first-second", 3_000, currency="DKK")
    funds = await dates(sandbox, msn, "funds", day)
    assert funds["tryLater"] is False
    kinds = [(e["entryType"], e["reference"]) for e in funds["items"]]
    assert kinds[:2] == [("capture", "noon"), ("capture", "last-second")]
    retained, payout = funds["items"][2], funds["items"][3]
    assert len(funds["items"]) == 4 and payout is funds["items"][-1]
    # The guide's table: fees-retained and the payout at the next local midnight, no recipientHandle,
    # an empty reference on fees-retained and the bank text on the payout.
    assert retained["entryType"] == "fees-retained" and retained["amount"] < 0
    assert retained["time"] == payout["time"] == utc_text(midnight)
    assert retained["reference"] == "" and retained["recipientHandle"] is None
    assert payout["entryType"] == "payout-scheduled" and payout["recipientHandle"] is None
    assert payout["reference"] and payout["balanceAfter"] == 0
    assert {e["ledgerDate"] for e in funds["items"]} == {day.isoformat()}
    assert_chain(funds["items"])
    fees = await dates(sandbox, msn, "fees", day)
    assert fees["items"][-1]["entryType"] == "fees-retained" and fees["items"][-1]["reference"] == ""
    assert fees["items"][-1]["recipientHandle"] is None and fees["items"][-1]["time"] == utc_text(midnight)
    assert all(e["recipientHandle"] == f"api:{msn}" for e in fees["items"][:-1])  # capture fees keep theirs

    next_day = await dates(sandbox, msn, "funds", day + timedelta(days=1))
    assert [e["reference"] for e in next_day["items"]] == ["first-second"]


async def test_finland_is_an_hour_ahead_of_norway(sandbox):
    """Helsinki's midnight comes at 23:00 Oslo time: a Finnish capture then is on the next date."""
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-fi-1")
    day = now.astimezone(ZONES["FI"]).date() + timedelta(days=1)
    await advance_to(sandbox, at(day + timedelta(days=1), time(0, 30), "FI"))  # 23:30 in Oslo, on `day`
    capture(sandbox, msn, "helsinki-night", 1_000, currency="EUR")
    page = await dates(sandbox, msn, "funds", day + timedelta(days=1))
    assert [e["reference"] for e in page["items"]] == ["helsinki-night"] and page["tryLater"] is True
    assert (await dates(sandbox, msn, "funds", day))["items"] == []


async def test_a_dst_change_day_is_one_ledger_date_of_23_or_25_hours(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-2")
    change = next_dst_change(now.astimezone(ZONES["NO"]).date())
    start, end = at(change, time(0, 0), "NO"), at(change + timedelta(days=1), time(0, 0), "NO")
    assert (end - start) in (timedelta(hours=23), timedelta(hours=25))
    await advance_to(sandbox, start + timedelta(minutes=30))
    capture(sandbox, msn, "early", 1_000)
    await advance_to(sandbox, end - timedelta(minutes=30))
    capture(sandbox, msn, "late", 2_000)
    await advance_to(sandbox, end + timedelta(minutes=1))
    page = await dates(sandbox, msn, "funds", change)
    assert [e["reference"] for e in page["items"][:2]] == ["early", "late"]
    assert page["tryLater"] is False and page["items"][-1]["entryType"] == "payout-scheduled"
    assert page["items"][-1]["time"] == utc_text(end)
    assert (await dates(sandbox, msn, "funds", change - timedelta(days=1)))["items"] == []
    assert (await dates(sandbox, msn, "funds", change + timedelta(days=1)))["items"] == []
