"""Recurring's memory budget (issue 15: at most 3 kB per ACTIVE agreement with one charge) and what the compact
records must keep: idempotent replays byte for byte, history as the responses show it, snapshots as before."""

from __future__ import annotations

import gc
import json
import tracemalloc
from datetime import UTC, datetime, timedelta

from recurring_support import BASE, charge_body, draft_body, merchant, new_key

from sandbox.apis.recurring.backend import RecurringBackend
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime
from sandbox.core.settings import Settings

DRAFT = {"pricing": {"type": "LEGACY", "amount": 9900, "currency": "NOK"}, "interval": {"unit": "MONTH", "count": 1},
         "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
         "productName": "Morgenavisen Digital"}


def _fill(backend: RecurringBackend, msn: str, start: int, count: int) -> None:
    due = (datetime.fromtimestamp(backend.now(), UTC).date() + timedelta(days=300)).isoformat()
    for n in range(start, start + count):
        _, reply = backend.draft(Env.TEST, msn, DRAFT, f"d{n}", "http://127.0.0.1")
        backend.approve(backend.agreements[(Env.TEST, msn, reply["agreementId"])], "4712345678")
        body = {"amount": 9900, "description": "Monthly", "due": due, "retryDays": 0,
                "transactionType": "DIRECT_CAPTURE"}
        assert backend.create_charge(Env.TEST, msn, reply["agreementId"], body, f"c{n}")[0] == 201


def test_an_active_agreement_with_one_charge_costs_at_most_3_kb():
    """The same measurement as bench/recurring_clock.py, smaller: the records retained after a warm-up (first-use
    caches are not per agreement), idempotency records of the draft and the charge included."""
    runtime = Runtime(Settings(port=0, prod_port=0))
    runtime.clock.freeze()
    backend = RecurringBackend(runtime)
    msn = next(u.msn for u in sorted(runtime.world.sales_units.values(), key=lambda u: u.msn)
               if u.market == "NO" and u.configuration.get("recurringAllowed") and runtime.world.is_active(u.msn))
    _fill(backend, msn, 0, 100)
    gc.collect()
    count = 2000
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        _fill(backend, msn, 100, count)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    per = sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count
    assert len(backend.idempotency) == 2 * (100 + count)
    assert per <= 3072, f"{per:.0f} B per ACTIVE agreement with one charge"


async def test_replays_are_byte_identical_after_activation_and_a_snapshot(sandbox):
    """The draft's and the charge's answers are rebuilt, not kept: a replay is the first answer byte for byte, with
    an initial charge, after the agreement turned ACTIVE, and after a snapshot's restore."""
    shop = merchant(sandbox)
    body = draft_body(initialCharge={"amount": 100, "description": "First", "transactionType": "DIRECT_CAPTURE"})
    first = await shop.draft(body, key="mem-draft")
    assert first.status == 201, first.text
    agreement_id = first.json["agreementId"]
    plain = await shop.draft(draft_body(), key="mem-plain")
    assert plain.json["chargeId"] is None
    reply = await shop.call("PATCH", f"{BASE}/agreements/{agreement_id}/accept", {"phoneNumber": "4712345678"},
                            new_key())
    assert reply.status == 204, reply.text
    charged = charge_body(sandbox, days=40)
    made = await shop.charge(agreement_id, charged, key="mem-charge")
    assert made.status == 201, made.text
    for _ in range(2):
        again = await shop.draft(body, key="mem-draft")
        assert (again.status, again.text) == (first.status, first.text)
        assert (await shop.draft(draft_body(), key="mem-plain")).text == plain.text
        repeat = await shop.charge(agreement_id, charged, key="mem-charge")
        assert (repeat.status, repeat.text) == (made.status, made.text)
        saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "mem-replay"})
        assert saved.status == 200, saved.text
        assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
        restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "mem-replay"})
        assert restored.status == 200, restored.text
        shop = merchant(sandbox)


async def test_history_renders_as_before_and_survives_dump_and_load(sandbox):
    """History entries are kept as tuples; the responses and the snapshot tables still show the documented dicts,
    and a dump loaded and dumped again is the same."""
    shop = merchant(sandbox)
    agreement_id = await shop.active()
    charge_id = (await shop.charge(agreement_id, charge_body(sandbox, days=3, retryDays=0), key="mem-h")).json[
        "chargeId"]
    await shop.advance(4 * 86400)
    agreement = (await shop.get(agreement_id)).json
    assert [e["event"] for e in agreement["history"]] == ["CREATE", "ACTIVATE"]
    assert set(agreement["history"][0]) == {"event", "actor", "occurred"}
    charge = (await shop.get_charge(agreement_id, charge_id)).json
    assert [e["event"] for e in charge["history"]] == ["CREATE", "RESERVE", "CAPTURE"]
    assert list(charge["history"][0]) == ["occurred", "event", "amount", "idempotencyKey", "success"]
    assert charge["history"][0]["idempotencyKey"] == "mem-h"
    dump, load = sandbox.runtime.state_providers["recurring"]
    dumped = json.dumps(dump(), sort_keys=True)
    rows = json.loads(dumped)
    mine = next(r for r in rows["agreements"] if r["id"] == agreement_id)
    assert mine["history"] == agreement["history"]
    assert next(r for r in rows["charges"] if r["id"] == charge_id)["history"] == charge["history"]
    load(rows)
    assert json.dumps(dump(), sort_keys=True) == dumped
    assert (await shop.get(agreement_id)).json == agreement
    broken = json.loads(dumped)
    next(r for r in broken["agreements"] if r["id"] == agreement_id)["history"][0]["occurred"] = "yesterday"
    try:
        load(broken)
    except ValueError as exc:
        assert "not valid" in str(exc)
    else:
        raise AssertionError("a history entry with a bad time was loaded")
    assert (await shop.get(agreement_id)).json == agreement
