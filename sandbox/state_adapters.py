"""Snapshot providers for backends that do not register their own (webhook registrations).

A snapshot must hold the whole live state. These adapters read and rebuild the backends' records;
the control plane registers them only when a backend has not registered its own provider, so a
backend that learns to dump itself takes over. Not saved: webhook deliveries in flight (a restore
starts with empty queues).
"""

from __future__ import annotations

from sandbox.model import Env
from sandbox.runtime import StateProvider
from sandbox.webhook_delivery import Registration, WebhookBackend


def _tables(data: object, *names: str) -> dict[str, list[dict]]:
    if not isinstance(data, dict) or any(not isinstance(data.get(name, []), list) for name in names):
        raise ValueError(f"expected tables {', '.join(names)}")
    return {name: data.get(name, []) for name in names}


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
