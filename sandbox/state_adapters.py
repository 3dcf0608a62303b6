"""Snapshot providers for backends that do not register their own: payments and webhook registrations.

A snapshot must hold the whole live state. These adapters read and rebuild the backends' records;
the control plane registers them only when a backend has not registered its own provider, so a
backend that learns to dump itself takes over. Not saved: webhook deliveries in flight (a restore
starts with empty queues).
"""

from __future__ import annotations

import heapq
from dataclasses import asdict, fields

from sandbox.model import Env
from sandbox.payments import Event, IdempotencyRecord, Payment, PaymentsBackend, State
from sandbox.runtime import StateProvider
from sandbox.webhook_delivery import Registration, WebhookBackend


def _tables(data: object, *names: str) -> dict[str, list[dict]]:
    if not isinstance(data, dict) or any(not isinstance(data.get(name, []), list) for name in names):
        raise ValueError(f"expected tables {', '.join(names)}")
    return {name: data.get(name, []) for name in names}


def payments_provider(backend: PaymentsBackend) -> StateProvider:
    """Payments with their events, the idempotency records and the pspReference counter."""
    payment_fields = [f.name for f in fields(Payment)]

    def dump() -> dict[str, list[dict]]:
        payments = []
        for payment in backend.payments.values():
            record = {name: getattr(payment, name) for name in payment_fields}
            record["env"], record["state"] = str(payment.env), str(payment.state)
            record["events"] = [asdict(event) for event in payment.events]
            payments.append(record)
        idempotency = []
        for (env, msn, route, key), r in backend.idempotency.items():
            snapshot = [str(r.snapshot[0]), *r.snapshot[1:]] if r.snapshot is not None else None
            idempotency.append({"env": str(env), "msn": msn, "route": route, "key": key,
                                "fingerprint": r.fingerprint.hex(), "reference": r.reference, "snapshot": snapshot})
        return {"payments": payments, "idempotency": idempotency, "counters": [{"seq": backend._seq}]}

    def load(data: object) -> None:
        tables = _tables(data, "payments", "idempotency", "counters")
        payments = {}
        for record in tables["payments"]:
            record = dict(record)
            record["env"], record["state"] = Env(record["env"]), State(record["state"])
            record["events"] = [Event(**event) for event in record.get("events", [])]
            payment = Payment(**record)
            payments[(payment.env, payment.msn, payment.reference)] = payment
        idempotency = {}
        for r in tables["idempotency"]:
            snapshot = (State(r["snapshot"][0]), *r["snapshot"][1:]) if r.get("snapshot") else None
            idempotency[(Env(r["env"]), r["msn"], r["route"], r["key"])] = IdempotencyRecord(
                bytes.fromhex(r["fingerprint"]), r["reference"], snapshot)
        seq = int((tables["counters"] or [{"seq": 0}])[0]["seq"])
        heap = [(p.expires_at, key) for key, p in payments.items() if p.state is State.CREATED]
        heapq.heapify(heap)
        backend.clear()
        backend.payments, backend.idempotency, backend._expiry_heap, backend._seq = payments, idempotency, heap, seq

    return dump, load


def webhooks_provider(backend: WebhookBackend) -> StateProvider:
    """Webhook registrations (with their secrets, as the real API keeps them); queues start empty."""

    def dump() -> dict[str, list[dict]]:
        return {"registrations": [
            {"id": r.id, "env": str(r.env), "scope": list(r.scope), "url": r.url, "events": list(r.events),
             "secret": r.secret} for r in backend.registrations.values()]}

    def load(data: object) -> None:
        records = _tables(data, "registrations")["registrations"]
        registrations = [Registration(r["id"], Env(r["env"]), (str(r["scope"][0]), str(r["scope"][1])), r["url"],
                                      list(r["events"]), r["secret"]) for r in records]
        backend.reset()
        for registration in registrations:
            key = (registration.env, registration.scope)
            backend.registrations[registration.id] = registration
            backend.by_scope.setdefault(key, {})[registration.id] = registration
            for event in registration.events:
                backend.by_event.setdefault((*key, event), {})[registration.id] = registration

    return dump, load
