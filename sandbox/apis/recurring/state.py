"""Snapshots of the Recurring API (runtime.state_providers["recurring"]): agreements, charges, idempotency records.

`dump` gives JSON-able tables (no secrets: a confirmation token is derived from the landing key, never stored).
`load` checks the whole dump before it touches the live state, so a bad snapshot raises ValueError and changes
nothing (Runtime.load_state then undoes the parts loaded before it). The index by time is not stored: it is
rebuilt from each record's state, with the very times it had, so a restored sandbox moves on exactly as the
saved one would have.
"""

from __future__ import annotations

import heapq
import sys
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

from sandbox.apis.recurring.backend import (
    Agreement,
    Charge,
    RecurringBackend,
    Remembered,
    Reply,
    agreement_history_view,
    charge_history_view,
)
from sandbox.apis.recurring.rules import iso
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import Env

AGREEMENT_FIELDS = tuple(f.name for f in fields(Agreement))
CHARGE_FIELDS = tuple(f.name for f in fields(Charge))
AGREEMENT_STATUSES = frozenset({"PENDING", "ACTIVE", "STOPPED", "EXPIRED"})
CHARGE_STATUSES = frozenset({"PENDING", "DUE", "PROCESSING", "RESERVED", "CHARGED", "PARTIALLY_CAPTURED", "FAILED",
                             "CANCELLED", "PARTIALLY_REFUNDED", "REFUNDED"})


def dump(backend: RecurringBackend) -> dict:
    agreements = []
    for agreement in backend.agreements.values():
        record = {name: getattr(agreement, name) for name in AGREEMENT_FIELDS}
        record["env"] = str(agreement.env)
        record["history"] = agreement_history_view(agreement.history)  # the format of the responses
        agreements.append(record)
    charges = []
    for charge in backend.charges.values():
        record = {name: getattr(charge, name) for name in CHARGE_FIELDS}
        record["env"], record["due"] = str(charge.env), charge.due.isoformat()
        record["failing"] = list(charge.failing) if charge.failing is not None else None
        record["history"] = charge_history_view(charge.history)
        charges.append(record)
    idempotency = []
    for (env, msn, route, key), remembered in backend.idempotency.items():
        row: dict = {"env": str(env), "msn": msn, "route": route, "key": key,
                     "fingerprint": remembered.fingerprint.hex(), "status": remembered.status, "at": remembered.at}
        body = remembered.body
        if isinstance(body, Reply) and body.kind == "draft" and isinstance(body.key, tuple):
            # Never the answer itself: its vippsConfirmationUrl holds the confirmation token, a secret a snapshot
            # file must not carry. The answer is rebuilt from the agreement and the landing key on load.
            row["reply"] = {"kind": "draft", "agreementId": body.key[2], "origin": body.origin}
        else:
            row["body"] = backend.reply_body(body)
        error = remembered.error
        if error is not None:
            row["error"] = {"status": error.status, "title": error.title, "detail": error.detail, "code": error.code,
                            "details": [[d.name, d.reason] for d in error.details], "rule": error.rule,
                            "reason": error.reason}
        idempotency.append(row)
    return {"agreements": agreements, "charges": charges, "idempotency": idempotency,
            "counters": [{"transactions": backend._transaction_seq}]}


def _table(data: dict, name: str) -> list[dict]:
    rows = data.get(name, [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"the recurring state's {name!r} must be a list of objects")
    return rows


def _epoch(text: object) -> float:
    """An entry's `occurred` back to the epoch it was rendered from (whole seconds: all the ISO form shows)."""
    if not isinstance(text, str):
        raise ValueError("a history entry's occurred must be a string")
    epoch = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    if iso(epoch) != text:
        raise ValueError(f"a history entry's occurred {text!r} is not in the sandbox's form")
    return epoch


def _agreement_history(rows: object) -> list[tuple[float, str, str]]:
    if not isinstance(rows, list):
        raise ValueError("an agreement's history must be a list")
    return [(_epoch(row["occurred"]), str(row["event"]), str(row["actor"])) for row in rows]


def _charge_history(rows: object) -> list[tuple[float, str, int, str, bool]]:
    if not isinstance(rows, list):
        raise ValueError("a charge's history must be a list")
    entries = []
    for row in rows:
        amount, success = row["amount"], row["success"]
        if not isinstance(amount, int) or isinstance(amount, bool) or not isinstance(success, bool):
            raise ValueError("a charge history entry needs a whole amount and a true/false success")
        entries.append((_epoch(row["occurred"]), str(row["event"]), amount, str(row["idempotencyKey"]), success))
    return entries


def _agreement(row: dict) -> Agreement:
    unknown = set(row) - set(AGREEMENT_FIELDS)
    if unknown:
        raise ValueError(f"an agreement has unknown fields {sorted(unknown)}")
    record = dict(row)
    record["env"] = Env(record["env"])
    record["history"] = _agreement_history(record.get("history", []))
    agreement = Agreement(**record)
    if agreement.status not in AGREEMENT_STATUSES:
        raise ValueError(f"agreement {agreement.id} has an unknown status {agreement.status!r}")
    for name in ("id", "msn", "uuid", "product_name", "create_key"):
        if not isinstance(getattr(agreement, name), str):
            raise ValueError(f"agreement field {name} must be a string")
    if not isinstance(agreement.pricing, dict) or not isinstance(agreement.charges, list) or not isinstance(
            agreement.history, list):
        raise ValueError(f"agreement {agreement.id} has a malformed pricing, charge list or history")
    float(agreement.created)
    return agreement


def _charge(row: dict) -> Charge:
    unknown = set(row) - set(CHARGE_FIELDS)
    if unknown:
        raise ValueError(f"a charge has unknown fields {sorted(unknown)}")
    record = dict(row)
    record["env"], record["due"] = Env(record["env"]), date.fromisoformat(record["due"])
    failing = record.get("failing")
    record["failing"] = (str(failing[0]), str(failing[1])) if failing is not None else None
    record["history"] = _charge_history(record.get("history", []))
    charge = Charge(**record)
    if charge.status not in CHARGE_STATUSES:
        raise ValueError(f"charge {charge.id} has an unknown status {charge.status!r}")
    for name in ("amount", "captured", "refunded", "cancelled", "retry_days"):
        value = getattr(charge, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"charge field {name} must be a whole number")
    if charge.next_at is not None:
        charge.next_at = float(charge.next_at)
    return charge


def _remembered(row: dict) -> tuple[tuple[Env, str, str, str], Remembered]:
    key = (Env(row["env"]), str(row["msn"]), str(row["route"]), str(row["key"]))
    error = None
    if row.get("error") is not None:
        e = row["error"]
        error = Problem(int(e["status"]), str(e["title"]), str(e["detail"]), code=e.get("code"),
                        details=[Detail(str(name), str(reason)) for name, reason in e.get("details", [])],
                        rule=e.get("rule"), reason=e.get("reason"))
    body = row.get("body")
    if row.get("reply") is not None:
        reply = row["reply"]
        if not isinstance(reply, dict) or reply.get("kind") != "draft":
            raise ValueError("an idempotency record's reply must be {kind: draft, agreementId, origin}")
        body = _DraftReply(str(reply["agreementId"]), str(reply.get("origin", "")))
    at = row.get("at", -1.0)  # none: a snapshot made before records expired (kept a whole period from the load)
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise ValueError("an idempotency record's at must be a number (epoch seconds)")
    return key, Remembered(bytes.fromhex(row["fingerprint"]), int(row.get("status") or 0), body, error, float(at))


@dataclass(frozen=True)
class _DraftReply:
    """A dumped draft answer while loading, until its agreement's key is known (then a Reply)."""

    agreement_id: str
    origin: str


def _timer(charge: Charge) -> str | None:
    """Which transition a charge's heap entry (at charge.next_at) is: what _schedule_charge would have pushed."""
    if charge.next_at is None:
        return None
    if charge.status == "PENDING":
        return "due"
    if charge.status == "DUE":
        return "process" if charge.failing is None else "fail"
    return None


def load(backend: RecurringBackend, data: object) -> None:
    """Replaces every agreement, charge and idempotency record with the dump's; ValueError, and no change, if it is
    malformed."""
    if not isinstance(data, dict):
        raise ValueError("the recurring state must be an object of tables")
    try:
        agreements = {}
        for row in _table(data, "agreements"):
            agreement = _agreement(row)
            agreements[(agreement.env, agreement.msn, agreement.id)] = agreement
        charges = {}
        for row in _table(data, "charges"):
            charge = _charge(row)
            if (charge.env, charge.msn, charge.agreement_id) not in agreements:
                raise ValueError(f"charge {charge.id} belongs to no agreement of the snapshot")
            charges[(charge.env, charge.msn, charge.id)] = charge
        idempotency = dict(_remembered(row) for row in _table(data, "idempotency"))
        for (env, msn, _, key), remembered in idempotency.items():
            if isinstance(remembered.body, _DraftReply) and (env, msn, remembered.body.agreement_id) not in agreements:
                raise ValueError(f"the draft answer of Idempotency-Key {key!r} names no agreement of the snapshot")
        counters = _table(data, "counters")
        transactions = int(counters[0]["transactions"]) if counters else 0
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ValueError(f"the recurring state is not valid: {exc}") from exc
    heap: list[tuple[float, int, str, tuple]] = []
    seq = 0
    by_unit: dict[tuple[Env, str], list[str]] = {}
    for key, agreement in agreements.items():
        by_unit.setdefault((agreement.env, agreement.msn), []).append(agreement.id)
        if agreement.status == "PENDING":
            seq += 1
            heap.append((agreement.expires_at, seq, "expire", key))
    for key, charge in charges.items():
        kind = _timer(charge)
        if kind is None:
            charge.next_at = None
            continue
        assert charge.next_at is not None
        seq += 1
        heap.append((charge.next_at, seq, kind, key))
    heapq.heapify(heap)
    backend.clear()
    backend.agreements, backend.by_unit, backend.charges = agreements, by_unit, charges
    backend.order = list(agreements)
    backend._heap, backend._seq, backend._transaction_seq = heap, seq, transactions
    now = backend.now()
    backend.idempotency.load([(key, remembered, remembered.at if remembered.at >= 0 else now)
                              for key, remembered in idempotency.items()])
    for (env, msn, route, _), remembered in idempotency.items():
        dumped = remembered.body
        if isinstance(dumped, _DraftReply):
            remembered.body = Reply("draft", (env, msn, dumped.agreement_id), sys.intern(dumped.origin))
        else:
            remembered.body = _compact(backend, env, msn, route, remembered.body)


def _compact(backend: RecurringBackend, env: Env, msn: str, route: str, body: object) -> object:
    """A loaded draft or charge answer back to the Reply it was dumped from, when it rebuilds to the same body:
    the memory it had, and a replay in the key order it first had (a snapshot file's keys are sorted). One made
    with another landing key (another sandbox's snapshot) stays as it was."""
    if not isinstance(body, dict):
        return body
    if route == "charge" and list(body) == ["chargeId"]:
        return Reply("charge", body["chargeId"]) if isinstance(body["chargeId"], str) else body
    if route != "draft" or sorted(body) != ["agreementId", "chargeId", "uuid", "vippsConfirmationUrl"]:
        return body
    url, key = body["vippsConfirmationUrl"], (env, msn, body["agreementId"])
    if not isinstance(url, str) or not isinstance(key[2], str) or key not in backend.agreements:
        return body
    reply = Reply("draft", key, sys.intern(url.partition("/_sandbox/recurring/confirm?token=")[0]))
    return reply if backend.reply_body(reply) == body else body
