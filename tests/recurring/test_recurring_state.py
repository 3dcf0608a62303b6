"""Recurring state in snapshots: agreements, charges, idempotency records and the index by time survive
/_sandbox/snapshot + reset + /_sandbox/restore, and a bad recurring part restores nothing at all."""

from __future__ import annotations

import json
from pathlib import Path

from recurring_support import BASE, assert_problem, charge_body, draft_body, merchant, new_key
from snapshot_support import edit_state

DAY = 86400


async def _views(shop, agreement_ids: list[str], charges: list[tuple[str, str]]) -> tuple[list, list]:
    agreements = [(await shop.get(a)).json for a in agreement_ids]
    found = [(await shop.get_charge(a, c)).json for a, c in charges]
    return agreements, found


async def test_snapshot_and_restore_round_trip_agreements_charges_idempotency_and_timers(sandbox):
    shop = merchant(sandbox)
    pending = (await shop.draft(draft_body(productName="Still pending"))).json["agreementId"]
    active = await shop.active()
    due_key = new_key()
    due_body = charge_body(sandbox, days=5)
    charge = (await shop.charge(active, due_body, key=due_key)).json["chargeId"]
    failing = (await shop.charge(active, charge_body(sandbox, amount=151, days=3, retryDays=2))).json["chargeId"]
    refused_key = new_key()
    assert_problem(await shop.charge(active, charge_body(sandbox, days=0), key=refused_key), 400,
                   "charge-due-too-soon")
    before = await _views(shop, [pending, active], [(active, charge), (active, failing)])

    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "recurring-round-trip"})
    assert saved.status == 200, saved.text
    assert "recurring" in saved.json["providers"]
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    shop = merchant(sandbox)
    assert_problem(await shop.get(active), 404, "resource-not-found")
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "recurring-round-trip"})
    assert restored.status == 200, restored.text
    assert "recurring" in restored.json["restored"]
    shop = merchant(sandbox)
    assert await _views(shop, [pending, active], [(active, charge), (active, failing)]) == before

    # The idempotency records came back: the same key and body replay, another body conflicts, a 4xx replays.
    again = await shop.charge(active, due_body, key=due_key)
    assert again.status == 201 and again.json == {"chargeId": charge}
    assert_problem(await shop.charge(active, charge_body(sandbox, amount=100, days=6), key=due_key), 409,
                   "idempotency-conflict")
    assert_problem(await shop.charge(active, charge_body(sandbox, days=0), key=refused_key), 400,
                   "charge-due-too-soon")

    # The index by time was rebuilt: the pending agreement expires, the charges are processed on their dates.
    await shop.advance(11 * 60)
    assert (await shop.get(pending)).json["status"] == "EXPIRED"
    await shop.advance(5 * DAY + 60)
    assert (await shop.get_charge(active, charge)).json["status"] == "CHARGED"
    assert (await shop.get_charge(active, failing)).json["status"] == "FAILED"
    # And new ids do not collide with the restored ones.
    third = (await shop.charge(active, charge_body(sandbox, amount=100, days=10))).json["chargeId"]
    assert third not in (charge, failing)


async def test_a_snapshot_with_a_broken_recurring_part_restores_nothing(sandbox):
    """Runtime.load_state is all or nothing: the world and clock load before "recurring"; when the recurring part
    is broken they are put back, and the recurring state made after the save stays."""
    shop = merchant(sandbox)
    kept = await shop.active()
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "broken-recurring"})
    assert saved.status == 200, saved.text
    path = Path(saved.json["path"])
    data = json.loads(path.read_text())
    for row in data["recurring.agreements"].values():
        row["status"] = "NOT-A-STATUS"
    path.write_text(json.dumps(data))
    # Live state moves on after the save: the failed restore must leave it exactly so.
    later = await shop.active(draft_body(productName="Made after the save"))
    await shop.advance(3600)
    offset_before = sandbox.runtime.clock.state()["offset"]  # the snapshot's clock is an hour earlier
    reply = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "broken-recurring"})
    assert reply.status == 400, reply.text
    assert "recurring" in reply.json["detail"], reply.json
    assert (await shop.get(later)).json["status"] == "ACTIVE"
    assert (await shop.get(kept)).json["status"] == "ACTIVE"
    assert sandbox.runtime.clock.state()["offset"] == offset_before


async def test_an_edited_snapshot_can_hold_many_agreements(sandbox):
    """The tables layout: a snapshot edited by hand (copies of an agreement) restores, and the copies are served."""
    shop = merchant(sandbox)
    agreement_id = await shop.active()

    def copy(data: dict) -> None:
        table = data["recurring.agreements"]
        template = next(iter(table.values()))
        for n in range(3):
            record = dict(template, id=f"agr_copy00{n}", charges=[])
            table[str(len(table) + 1)] = record

    await edit_state(sandbox, copy)
    for n in range(3):
        got = await shop.get(f"agr_copy00{n}")
        assert got.status == 200 and got.json["status"] == "ACTIVE", got.text
    assert (await shop.get(agreement_id)).status == 200
    listed = await shop.call("GET", f"{BASE}/agreements?status=ACTIVE")
    assert {a["id"] for a in listed.json} >= {agreement_id, "agr_copy000", "agr_copy001", "agr_copy002"}


async def test_a_snapshot_file_never_holds_a_confirmation_token_and_the_draft_still_replays(sandbox):
    """The draft's answer carries vippsConfirmationUrl, whose token opens the confirmation page: a secret, so
    a snapshot keeps {kind, agreementId, origin} and the answer is rebuilt on load, byte for byte."""
    shop = merchant(sandbox)
    key, body = new_key(), draft_body(productName="Token never saved")
    first = await shop.draft(body, key=key)
    assert first.status == 201, first.text
    token = first.json["vippsConfirmationUrl"].split("token=", 1)[1]
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "no-token"})
    assert saved.status == 200, saved.text
    text = Path(saved.json["path"]).read_text()
    assert token not in text and "confirm?token=" not in text
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "no-token"})
    assert restored.status == 200, restored.text
    again = await merchant(sandbox).draft(body, key=key)
    assert again.status == 201 and again.text == first.text
