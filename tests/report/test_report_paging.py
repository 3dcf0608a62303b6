"""Paging over more than 1000 entries, cursors that stay valid while entries arrive, and bad input."""

from __future__ import annotations

import base64
import json

import pytest
from report_support import (
    advance,
    assert_chain,
    capture,
    check_page_schema,
    freeze,
    ledger_id,
    local_date,
    past_midnight,
)


async def setup_ledger(sandbox, count: int):
    now = await freeze(sandbox)
    msn = sandbox.msn_role("premium-shop-2")
    headers = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    lid = await ledger_id(sandbox, headers, msn)
    for i in range(count):
        capture(sandbox, msn, f"order-{i}", 100 + i)
    return now, msn, headers, lid


async def get(sandbox, path, headers):
    reply = await sandbox.request("GET", path, headers=headers)
    assert reply.status == 200, reply.text
    return reply


async def test_feed_pages_over_1000_entries_while_entries_arrive(sandbox):
    now, msn, headers, lid = await setup_ledger(sandbox, 1200)
    for late, topic in enumerate(("funds", "fees"), start=1):
        base = f"/report/v2/ledgers/{lid}/{topic}/feed"
        first = await get(sandbox, base, headers)
        assert first.headers["Vipps-Feed-Page-Size"] == "1000"
        assert len(first.json["items"]) == 1000 and first.json["tryLater"] is False
        check_page_schema(first.json)
        capture(sandbox, msn, f"late-{topic}", 5000)  # arrives between two pages
        second = await get(sandbox, f"{base}?cursor={first.json['cursor']}", headers)
        assert len(second.json["items"]) == 200 + late  # every late capture has a fee too
        end = await get(sandbox, f"{base}?cursor={second.json['cursor']}", headers)
        assert end.json == {"items": [], "cursor": second.json["cursor"], "tryLater": True}
        items = first.json["items"] + second.json["items"]
        assert_chain(items)
        assert len({e["pspReference"] for e in items}) == len(items)
        assert items[-1]["reference"] == f"late-{topic}"
        # The old cursor still works and gives the same entries again.
        again = await get(sandbox, f"{base}?cursor={first.json['cursor']}", headers)
        assert again.json["items"] == second.json["items"]
    small = await get(sandbox, f"/report/v2/ledgers/{lid}/funds/feed?pageSize=7", headers)
    assert len(small.json["items"]) == 7 and small.headers["Vipps-Feed-Page-Size"] == "7"


async def test_date_pages_over_1000_entries(sandbox):
    now, msn, headers, lid = await setup_ledger(sandbox, 1500)
    day = local_date(now).isoformat()
    base = f"/report/v2/ledgers/{lid}/funds/dates/{day}"
    first = await get(sandbox, base, headers)
    assert first.json["hasMore"] is True and first.json["tryLater"] is True and first.json["cursor"]
    assert len(first.json["items"]) == 1000
    check_page_schema(first.json)
    capture(sandbox, msn, "late", 777)  # the date is still open: the report grows
    second = await get(sandbox, f"{base}?cursor={first.json['cursor']}", headers)
    assert len(second.json["items"]) == 501 and second.json["hasMore"] is False
    assert "cursor" not in second.json and second.json["tryLater"] is True
    assert second.json["items"][-1]["reference"] == "late"

    await past_midnight(sandbox, now)
    headers = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    # The cursor from before midnight still works; the date is now complete, payout last.
    third = await get(sandbox, f"{base}?cursor={first.json['cursor']}", headers)
    assert third.json["tryLater"] is False and third.json["hasMore"] is False
    assert [e["entryType"] for e in third.json["items"][-2:]] == ["fees-retained", "payout-scheduled"]
    all_items = first.json["items"] + third.json["items"]
    assert_chain(all_items)
    assert all_items[-1]["balanceAfter"] == 0 and len(all_items) == 1503
    fees = await get(sandbox, f"/report/v2/ledgers/{lid}/fees/dates/{day}?pageSize=1000", headers)
    more = await get(sandbox, f"/report/v2/ledgers/{lid}/fees/dates/{day}?cursor={fees.json['cursor']}", headers)
    fee_items = fees.json["items"] + more.json["items"]
    assert len(fee_items) == 1502 and fee_items[-1]["entryType"] == "fees-retained"
    assert_chain(fee_items)
    await advance(sandbox, 3600)
    headers = await sandbox.auth_headers(sandbox.key("accounting", owner=sandbox.partner_role("accountant")))
    tomorrow = await get(sandbox, f"/report/v2/ledgers/{lid}/funds/dates/{third.json['items'][-1]['ledgerDate']}",
                         headers)
    assert tomorrow.json["items"][:1000] == first.json["items"]  # entries never change


RAW_B64_NOT_JSON = base64.b64encode(b"not json").decode()
FEED, DATE = "/report/v2/ledgers/{lid}/funds/feed", "/report/v2/ledgers/{lid}/funds/dates/2026-01-05"
BAD = [  # (path, cursor data to encode with the real ledger id filled in, the field named)
    ("/report/v2/ledgers/abc/funds/feed", None, "ledgerId"),
    ("/report/v2/ledgers/12345678901234567890123/funds/feed", None, "ledgerId"),
    ("/report/v2/ledgers/{lid}/payouts/feed", None, "topic"),
    ("/report/v2/ledgers/{lid}/funds/dates/2026-13-01", None, "ledgerDate"),
    ("/report/v2/ledgers/{lid}/funds/dates/2026-02-30", None, "ledgerDate"),
    ("/report/v2/ledgers/{lid}/funds/dates/20260101", None, "ledgerDate"),
    ("/report/v2/ledgers/{lid}/funds/dates/yesterday", None, "ledgerDate"),
    (FEED + "?cursor=%21%21%21", None, "cursor"),
    (FEED + "?cursor=" + base64.urlsafe_b64encode(b"[" * 3000).decode(), None, "cursor"),  # too deep to parse
    (FEED + "?cursor=" + RAW_B64_NOT_JSON, None, "cursor"),
    (FEED, [1, 2], "cursor"),
    (FEED, {"ledgerId": "{lid}", "topic": "funds"}, "cursor"),
    (FEED, {"ledgerId": "{lid}", "topic": "funds", "position": "3"}, "cursor"),
    (FEED, {"ledgerId": "{lid}", "topic": "funds", "position": 99999}, "cursor"),
    (FEED, {"ledgerId": "{lid}", "topic": "funds", "position": -1}, "cursor"),
    (FEED, {"ledgerId": "{lid}", "topic": "funds", "position": True}, "cursor"),
    ("/report/v2/ledgers/{lid}/fees/feed", {"ledgerId": "{lid}", "topic": "funds", "position": 0}, "cursor"),
    (FEED, {"ledgerId": "111111111", "topic": "funds", "position": 0}, "cursor"),
    (DATE, {"ledgerId": "{lid}", "topic": "funds", "ledgerDate": "2026-01-04", "offset": 0}, "cursor"),
    (DATE, {"ledgerId": "{lid}", "topic": "funds", "ledgerDate": "2026-01-05", "offset": 5}, "cursor"),
    (FEED + "?pageSize=0", None, "pageSize"),
    (FEED + "?pageSize=1001", None, "pageSize"),
    (DATE + "?pageSize=ten", None, "pageSize"),
    (FEED + "?includeGDPRSensitiveData=yes", None, "includeGDPRSensitiveData"),
    ("/settlement/v1/ledgers?settlesForRecipientHandles=123456", None, "settlesForRecipientHandles"),
    ("/settlement/v1/ledgers?cursor=%7B%7D", None, "cursor"),
    ("/settlement/v1/ledgers", {"afterLedgerId": 5, "settlesForRecipientHandles": None}, "cursor"),
]


@pytest.mark.parametrize(("path", "cursor", "field"), BAD)
async def test_malformed_input_gives_400_problem(sandbox, path, cursor, field):
    msn = sandbox.msn_role("premium-shop-1")
    headers = await sandbox.auth_headers(sandbox.key("merchant", msn=msn))
    lid = await ledger_id(sandbox, headers, msn)
    path = path.replace("{lid}", lid)
    if cursor is not None:
        filled = json.loads(json.dumps(cursor).replace("{lid}", lid))
        path += "?cursor=" + base64.b64encode(json.dumps(filled).encode()).decode()
    reply = await sandbox.request("GET", path, headers=headers)
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    body = reply.json
    assert body["status"] == 400 and body["title"] == "Bad Request" and body["detail"]
    assert {"name": field, "reason": body["detail"]} in body["extraDetails"]
    assert {"name": "ErrorCode", "reason": "10002"} in body["extraDetails"]
