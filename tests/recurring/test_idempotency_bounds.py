"""Idempotency records are bounded (sandbox/core/idempotency.py), in Recurring and ePayment alike: a key is
honoured for Settings.idempotency_retention_seconds on the virtual clock, then it is new again; and a sales unit
keeps at most Settings.idempotency_max_per_unit records, the oldest going first. Memory stays bounded whatever a
client sends. Over HTTP, with the clock moved by the control plane."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass

from epayment_support import create_body
from epayment_support import merchant as epayment_merchant
from recurring_support import assert_problem, charge_body, draft_body, merchant

from sandbox.apis.recurring.routes import RECURRING
from sandbox.core.idempotency import IdempotencyRecords
from sandbox.core.settings import Settings

DAY = 86400.0
RETENTION = 30 * DAY


async def advance(sandbox, seconds: float) -> None:
    reply = await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": seconds})
    assert reply.status == 200, reply.text


def test_the_default_retention_is_30_days_and_the_cap_100_000():
    settings = Settings()
    assert settings.idempotency_retention_seconds == RETENTION and settings.idempotency_max_per_unit == 100_000


async def test_a_recurring_key_replays_within_the_window_and_is_new_after_it(sandbox):
    shop = merchant(sandbox)
    body = draft_body()
    first = await shop.draft(body, key="draft-window")
    assert first.status == 201, first.text
    await advance(sandbox, RETENTION - 3600)
    shop._headers = None
    again = await shop.draft(body, key="draft-window")
    assert again.status == 201 and again.json["agreementId"] == first.json["agreementId"]
    other = await shop.draft(draft_body(productName="Another"), key="draft-window")
    assert_problem(other, 409, "idempotency-conflict")
    await advance(sandbox, 3600)
    shop._headers = None
    later = await shop.draft(body, key="draft-window")
    assert later.status == 201 and later.json["agreementId"] != first.json["agreementId"]  # a new agreement
    # a cached 4xx ages the same way: within the window the same error, after it the request is run again
    agreement_id = await shop.active()
    bad = charge_body(sandbox, days=0)
    assert_problem(await shop.charge(agreement_id, bad, key="charge-window"), 400, "charge-due-too-soon")
    await advance(sandbox, RETENTION - 60)
    shop._headers = None
    assert_problem(await shop.charge(agreement_id, bad, key="charge-window"), 400, "charge-due-too-soon")
    assert_problem(await shop.charge(agreement_id, charge_body(sandbox, days=5), key="charge-window"), 409,
                   "idempotency-conflict")
    await advance(sandbox, 60)
    shop._headers = None
    good = await shop.charge(agreement_id, charge_body(sandbox, days=5), key="charge-window")
    assert good.status == 201, good.text  # no 409: the first request's record is gone


async def test_an_epayment_key_replays_within_the_window_and_is_new_after_it(sandbox):
    shop = epayment_merchant(sandbox)
    await shop.authorized("bounds-0001", 10000)
    first = await shop.capture("bounds-0001", 1000, key="capture-window")
    assert first.status == 200, first.text
    await advance(sandbox, RETENTION - 60)
    shop.forget_token()
    replay = await shop.capture("bounds-0001", 1000, key="capture-window")
    assert replay.status == 200 and replay.json["aggregate"]["capturedAmount"]["value"] == 1000
    await advance(sandbox, 60)
    shop.forget_token()
    again = await shop.capture("bounds-0001", 1000, key="capture-window")
    assert again.status == 200 and again.json["aggregate"]["capturedAmount"]["value"] == 2000  # captured again
    created = await shop.create(create_body("bounds-0002"), key="create-window")
    assert created.status == 201, created.text
    await advance(sandbox, RETENTION)
    shop.forget_token()
    refused = await shop.create(create_body("bounds-0002"), key="create-window")
    assert refused.status == 409, refused.text  # not a replay any more: the reference exists


@dataclass(slots=True)
class Record:
    value: int
    at: float = 0.0


def test_memory_stays_bounded_whatever_a_client_sends():
    now = [1_000_000.0]
    records: IdempotencyRecords[Record] = IdempotencyRecords(lambda: now[0], lambda: 100.0, lambda: 1000)
    for n in range(50_000):  # one unit, a new key every call: the cap holds
        records.put(("test", "1001", "r", f"k{n}"), Record(n))
        now[0] += 0.001
    assert len(records) == 1000
    assert records.get(("test", "1001", "r", "k49999")).value == 49999 and records.get(("test", "1001", "r", "k0")) \
        is None
    assert len(records._by_time) <= 2 * 1000 + 1024 and all(len(q) <= 2 * 1000 + 64
                                                            for q in records._by_unit.values())
    for n in range(20_000):  # many units, one key each: the retention holds
        records.put(("test", str(2000 + n), "r", "k"), Record(n))
        now[0] += 0.01
    assert len(records) < 100 / 0.01 + 1000 + 2
    now[0] += 100.0
    assert records.get(("test", "1001", "r", "k49999")) is None
    assert len(records) == 0 and not records._by_unit and not records._live
    assert len(records._by_time) == 0


async def test_a_record_keeps_its_age_through_a_snapshot_and_restore(sandbox):
    shop = merchant(sandbox)
    first = await shop.draft(draft_body(), key="aged")
    await advance(sandbox, 20 * DAY)
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "aged"})).status == 200
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "aged"})).status == 200
    shop._headers = None
    assert (await shop.draft(draft_body(), key="aged")).json["agreementId"] == first.json["agreementId"]
    await advance(sandbox, 10 * DAY)  # 30 days after it was made, not after the restore
    shop._headers = None
    assert (await shop.draft(draft_body(), key="aged")).json["agreementId"] != first.json["agreementId"]


async def test_a_remembered_4xx_keeps_no_traceback_and_so_no_request(sandbox):
    """Found by the soak: a cached 4xx was the raised exception itself, whose traceback's frames held the aiohttp
    request (headers, body, match info) for as long as the record lived (30 days, up to 100,000 per unit)."""
    shop = merchant(sandbox)
    agreement_id = await shop.active()
    bad = charge_body(sandbox, days=0)
    for key in ("tb-1", "tb-1", "tb-2"):  # the first answer, its replay, another key
        assert_problem(await shop.charge(agreement_id, bad, key=key), 400, "charge-due-too-soon")
    gc.collect()
    errors = [r.error for _, r in sandbox.running.app[RECURRING].idempotency.items() if r.error is not None]
    assert len(errors) == 2
    for error in errors:
        assert error.__traceback__ is None and error.__context__ is None and error.__cause__ is None
        assert error.status == 400 and error.code == "charge-due-too-soon" and error.details
    assert sys.getrefcount(errors[0]) <= 4  # the records and this list only
