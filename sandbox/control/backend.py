"""The control plane's backends: key regeneration and the virtual clock. They know nothing of HTTP.

Key regeneration does what the business portal's Regenerate button does: the old secret (and
every token made with it) stops working at once, with a reason that says so. Snapshots live in
sandbox/ops/snapshots.py, since --state's compaction uses them too.
"""

from __future__ import annotations

from sandbox.core.errors import Detail, Problem
from sandbox.core.model import KeySet
from sandbox.core.runtime import Runtime


def _bad(name: str, reason: str, rule: str) -> Problem:
    return Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule=rule)


class KeyRotation:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _keyset(self, client_id: str) -> KeySet:
        keyset = self.runtime.world.keys.get(client_id)
        if keyset is None:
            raise Problem(404, "Not Found", f"No key set has client_id {client_id!r}.", rule="unknown-client-id")
        return keyset

    def regenerate_secret(self, client_id: str) -> dict:
        """A new client_secret; the old one and every token made with it are refused from now on."""
        keyset = self._keyset(client_id)
        # From the runtime's seeded ids, so a replayed journal (--state) hands out the same secret.
        self.runtime.world.replace_secret(keyset, self.runtime.ids.b64(16))
        return {"client_id": client_id, "client_secret": keyset.client_secret}

    def regenerate_subscription_key(self, client_id: str, body: object) -> dict:
        """Replaces the primary or the secondary subscription key; the other keeps working."""
        keyset = self._keyset(client_id)
        if not isinstance(body, dict) or body.get("which") not in ("primary", "secondary") or len(body) != 1:
            raise _bad("which", 'The body must be {"which": "primary"} or {"which": "secondary"}.',
                       "regenerate-body-invalid")
        which = body["which"]
        world = self.runtime.world
        if not world.has_subscription_key(keyset, which):
            raise _bad("which", f"{keyset.type} keys have no subscription keys: their tokens come from "
                       "/miami/v1/token.", "no-subscription-keys")
        new = self.runtime.ids.hex(16)
        world.replace_subscription_key(keyset, which, new)
        return {"client_id": client_id, "which": which, "subscription_key": new}


class ClockBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def read(self) -> dict:
        """The clock, after whatever fell due by now has happened (payments expire, and tell listeners)."""
        for hook in self.runtime.clock_hooks:
            hook()
        clock = self.runtime.clock
        return {"now": clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "frozen": clock.frozen}

    def change(self, body: object) -> dict:
        """Checks the whole body first, then applies it: a bad field changes nothing."""
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", "The body must be a JSON object such as {\"advanceSeconds\": 60}.")
        unknown = sorted(set(body) - {"advanceSeconds", "freeze"})
        if unknown:
            raise Problem(400, "Bad Request", f"Unknown field {unknown[0]!r}.",
                          details=[Detail(unknown[0], "Unknown field.")])
        if "freeze" in body and not isinstance(body["freeze"], bool):
            raise Problem(400, "Bad Request", "freeze must be true or false.",
                          details=[Detail("freeze", "Must be a boolean.")])
        seconds = body.get("advanceSeconds", 0)
        number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
        if not number or not 0 <= seconds <= 10 * 365 * 86400:
            raise Problem(400, "Bad Request", "advanceSeconds must be a number from 0 to ten years.",
                          details=[Detail("advanceSeconds", "Must be a non-negative number of seconds.")])
        clock = self.runtime.clock
        if "freeze" in body:
            clock.freeze() if body["freeze"] else clock.unfreeze()
        if "advanceSeconds" in body:
            clock.advance(seconds)
        return self.read()
