"""Every id and secret the sandbox makes while it runs comes from here.

By default they are truly random (the `secrets` module). With `--id-seed N` they come from a seeded
generator, so a run is reproducible, and a reset starts the sequence again. With `--state DIR` the
generator is seeded too (a random seed kept in DIR), so that replaying the journal after a crash
hands out exactly the same ids and secrets as the first time; there a reset does not rewind, so a
secret given out once is never handed out again. The generator's state is saved in the crash-safe
snapshots in DIR, never in /_sandbox/snapshot files (it would let anyone compute the secrets).
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rewind_on_reset = seed is not None  # only a seed the user chose is replayed from the start
        self.rng: random.Random | None = random.Random(seed) if seed is not None else None

    @property
    def seeded(self) -> bool:
        return self.rng is not None

    def reseed(self, seed: int) -> None:
        """Deterministic from now on, without rewinding at reset (crash-safe state needs a replayable run)."""
        self.seed, self.rng, self.rewind_on_reset = seed, random.Random(seed), False

    def _bits(self, n: int) -> int:
        return self.rng.getrandbits(n) if self.rng is not None else secrets.randbits(n)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._bits(128), version=4))

    def hex(self, nbytes: int) -> str:
        return self._bits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self._bits(nbytes * 8).to_bytes(nbytes, "big")).decode("ascii")

    def below(self, n: int) -> int:
        return self.rng.randrange(n) if self.rng is not None else secrets.randbelow(n)

    def reset(self) -> None:
        if self.rewind_on_reset and self.seed is not None:
            self.rng = random.Random(self.seed)

    def dump(self) -> dict:
        if self.rng is None:
            return {"seeded": False}
        version, internal, gauss = self.rng.getstate()
        return {"seeded": True, "rewind": self.rewind_on_reset, "seed": self.seed, "version": version,
                "internal": list(internal), "gauss": gauss}

    def load(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ValueError("the ids state must be an object")
        if not state.get("seeded"):
            return  # random ids stay random
        if not isinstance(state.get("internal"), list):
            raise ValueError("the ids state must be {seeded, seed, version, internal, gauss}")
        self.seed, self.rewind_on_reset = state["seed"], bool(state.get("rewind"))
        self.rng = random.Random()
        self.rng.setstate((state["version"], tuple(state["internal"]), state["gauss"]))
