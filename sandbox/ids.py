"""Every id and secret the sandbox makes while it runs comes from one seeded generator.

With a seed (`--id-seed`), a run is reproducible; its state is part of snapshots, so replaying the
journal after a crash hands out exactly the same ids and secrets as the first time. This is a
sandbox: a seeded PRNG is fine for its secrets, and that is the point.
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed if seed is not None else secrets.randbits(64)
        self.rng = random.Random(self.seed)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def hex(self, nbytes: int) -> str:
        return self.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self.rng.getrandbits(nbytes * 8).to_bytes(nbytes, "big")).decode("ascii")

    def below(self, n: int) -> int:
        return self.rng.randrange(n)

    def reset(self) -> None:
        self.rng = random.Random(self.seed)

    def dump(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"seed": self.seed, "version": version, "internal": list(internal), "gauss": gauss}

    def load(self, state: object) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("internal"), list):
            raise ValueError("the ids state must be {seed, version, internal, gauss}")
        self.seed = state["seed"]
        self.rng.setstate((state["version"], tuple(state["internal"]), state["gauss"]))
