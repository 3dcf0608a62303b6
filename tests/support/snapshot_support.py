"""Live state edited the way a user can: save a snapshot over HTTP, change the file, restore it over HTTP.

For states that the API refuses to make (a returnUrl the create call now refuses, kept in an old snapshot)
or that take too long to make one request at a time (20,000 payments)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

_names = itertools.count(1)


async def edit_state(sandbox, edit: Callable[[dict], None]) -> None:
    """Saves the live state, lets `edit` change the snapshot's tables (TinyDB: {"payments.payments": {"1":
    record, ...}, ...}) and restores it."""
    name = f"edited-{next(_names)}"
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": name})
    assert saved.status == 200, saved.text
    path = Path(saved.json["path"])
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": name})
    assert restored.status == 200, restored.text


def payment_records(data: dict) -> list[dict]:
    return list(data["payments.payments"].values())


def add_copies(data: dict, template: dict, count: int, prefix: str) -> None:
    """`count` copies of the payment record `template`, references prefix-00000..., made after it in order."""
    table = data["payments.payments"]
    psp = max(record["psp"] for record in table.values())
    for n in range(count):
        psp += 1
        record = json.loads(json.dumps(template))
        record["reference"] = f"{prefix}-{n:05d}"
        record["psp"] = psp
        for event in record["events"]:
            event["psp"] = psp
            event["idempotency_key"] = None
        table[str(len(table) + 1)] = record
    counters = data.setdefault("payments.counters", {"1": {"seq": 0}})
    next(iter(counters.values()))["seq"] += count  # pspReferences go on counting after the copies
