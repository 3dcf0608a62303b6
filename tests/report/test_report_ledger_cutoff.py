"""The configurable cutoff: "it can be configured to other cutoffs such as 04:00 to 04:00" (Report API guide,
2023). With Settings(ledger_cutoff="04:00") a ledger date runs from 04:00 to 04:00 Oslo time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from report_support import ZONES, advance_to, capture, freeze, ledger_id

from sandbox.core.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, ledger_cutoff="04:00")


async def test_a_0400_cutoff_keeps_the_small_hours_on_the_evening_before(sandbox):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    day = now.astimezone(ZONES["NO"]).date() + timedelta(days=1)
    next_day = day + timedelta(days=1)
    cutoff = datetime.combine(next_day, time(4, 0), tzinfo=ZONES["NO"]).astimezone(UTC)
    await advance_to(sandbox, datetime.combine(next_day, time(1, 30), tzinfo=ZONES["NO"]).astimezone(UTC))
    capture(sandbox, msn, "small-hours", 1_000)
    await advance_to(sandbox, cutoff)
    capture(sandbox, msn, "at-the-cutoff", 2_000)
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    first = (await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/dates/{day}", headers=headers)).json
    assert first["tryLater"] is False
    assert [e["reference"] for e in first["items"]][:1] == ["small-hours"]
    assert first["items"][-1]["entryType"] == "payout-scheduled"
    assert first["items"][-1]["time"] == cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    second = (await sandbox.request("GET", f"/report/v2/ledgers/{lid}/funds/dates/{next_day}", headers=headers)).json
    assert [e["reference"] for e in second["items"]] == ["at-the-cutoff"] and second["tryLater"] is True


def test_a_malformed_cutoff_is_refused_at_start():
    from sandbox.apis.report.ledger import LedgerBook

    for bad in ("4:00", "24:00", "04:60", "noon", ""):
        with pytest.raises(ValueError, match="HH:MM"):
            LedgerBook(lambda: None, bad)
