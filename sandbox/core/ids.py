"""Every id and secret the sandbox makes while it runs comes from here.

By default they are truly random (the `secrets` module). With `--id-seed N` they come from a keyed
deterministic generator, so a run is reproducible, and a reset starts the sequence again. With
`--state DIR` the generator is keyed too (a random 256-bit key kept, mode 0600, in DIR), so that
replaying the journal after a crash hands out exactly the same ids and secrets as the first time;
there a reset does not rewind, so a secret given out once is never handed out again.

The generator is HMAC-SHA256 in counter mode: block i is HMAC(key, i). Its outputs say nothing about
the key or about other outputs, so one merchant's own registrations (secrets, ids) never let it compute
another's next secret, as a seeded Mersenne Twister did. Its whole state is the counter: that is what
the crash-safe snapshots in DIR keep, with a fingerprint of the key (never the key), and never in
/_sandbox/snapshot files. A `--id-seed N` is a key anyone who knows N can use: reproducible, not secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import uuid

BLOCK_BITS = 256
_SEED_DOMAIN = b"vipps-sandbox ids --id-seed\x00"


def key_of_seed(seed: int) -> bytes:
    """The generator key of a user-chosen `--id-seed N`."""
    return hashlib.sha256(_SEED_DOMAIN + str(seed).encode("ascii")).digest()


def fingerprint(key: bytes) -> str:
    """Names a key without revealing it (a snapshot says which key its counter belongs to)."""
    return hashlib.sha256(b"vipps-sandbox ids key fingerprint\x00" + key).hexdigest()[:16]


class Ids:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.rewind_on_reset = seed is not None  # only a seed the user chose is replayed from the start
        self.key: bytes | None = key_of_seed(seed) if seed is not None else None
        self.counter = 0
        self.side_counter = 0  # the stream of `unjournaled_uuid4`, apart from the journaled one
        #: Only while replaying a --state directory made by a version that used random.Random(seed).
        self.legacy: random.Random | None = None

    @property
    def seeded(self) -> bool:
        return self.key is not None or self.legacy is not None

    def use_key(self, key: bytes) -> None:
        """Deterministic from now on (from the counter at 0), without rewinding at reset: crash-safe state
        needs a replayable run, and a secret handed out once must never be handed out again."""
        if len(key) < 16:
            raise ValueError("the ids key must be at least 16 bytes")
        self.seed, self.key, self.counter, self.rewind_on_reset, self.legacy = None, bytes(key), 0, False, None

    def use_legacy_seed(self, seed: int) -> None:
        """A state directory made before the keyed generator: its journal was written with random.Random(seed)
        and is replayed with it; persistence switches to a key (`use_key`) once the replay is done."""
        self.seed, self.key, self.counter, self.rewind_on_reset = seed, None, 0, False
        self.legacy = random.Random(seed)

    def _bits(self, n: int) -> int:
        if self.legacy is not None:
            return self.legacy.getrandbits(n)
        if self.key is None:
            return secrets.randbits(n)
        blocks = -(-n // BLOCK_BITS)
        out = b"".join(hmac.digest(self.key, (self.counter + i).to_bytes(16, "big"), "sha256") for i in range(blocks))
        self.counter += blocks
        return int.from_bytes(out, "big") >> (blocks * BLOCK_BITS - n)

    def uuid4(self) -> str:
        return str(uuid.UUID(int=self._bits(128), version=4))

    def unjournaled_uuid4(self) -> str:
        """A uuid for an answer that changes no state (an error's trace and correlation ids): drawing it from
        the main stream would shift the ids of every later journaled request, so a crash replay would hand out
        other ids than the first run did. Under --id-seed N it comes from a stream of its own (reproducible, and
        rewound with the main one at a reset); otherwise it is random."""
        if self.key is None or self.seed is None:
            return str(uuid.uuid4())
        block = hmac.digest(self.key, b"side\x00" + self.side_counter.to_bytes(16, "big"), "sha256")
        self.side_counter += 1
        return str(uuid.UUID(int=int.from_bytes(block[:16], "big"), version=4))

    def hex(self, nbytes: int) -> str:
        return self._bits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def b64(self, nbytes: int) -> str:
        return base64.b64encode(self._bits(nbytes * 8).to_bytes(nbytes, "big")).decode("ascii")

    def below(self, n: int) -> int:
        if self.legacy is not None:
            return self.legacy.randrange(n)
        if self.key is None:
            return secrets.randbelow(n)
        return self._bits(n.bit_length() + 64) % n  # 64 extra bits: the modulo's bias is below 2**-64

    def reset(self) -> None:
        if self.rewind_on_reset and self.seed is not None:
            self.key, self.counter, self.side_counter = key_of_seed(self.seed), 0, 0

    def dump(self) -> dict:
        """The generator's state: the counter, and which key it counts for (a fingerprint, never the key)."""
        if self.legacy is not None:
            version, internal, gauss = self.legacy.getstate()
            return {"seeded": True, "rewind": False, "seed": self.seed, "version": version,
                    "internal": list(internal), "gauss": gauss}
        if self.key is None:
            return {"seeded": False}
        return {"seeded": True, "generator": "hmac-sha256-ctr", "rewind": self.rewind_on_reset, "seed": self.seed,
                "key": fingerprint(self.key), "counter": self.counter}

    def load(self, state: object) -> None:
        if not isinstance(state, dict):
            raise ValueError("the ids state must be an object")
        if not state.get("seeded"):
            return  # random ids stay random
        if isinstance(state.get("internal"), list):  # random.Random's state, from before the keyed generator
            legacy = random.Random()
            try:
                legacy.setstate((state["version"], tuple(state["internal"]), state["gauss"]))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"the ids state is not a random.Random state ({exc})") from exc
            self.seed, self.rewind_on_reset, self.key, self.legacy = state.get("seed"), False, None, legacy
            return
        counter, seed = state.get("counter"), state.get("seed")
        if state.get("generator") != "hmac-sha256-ctr" or not isinstance(counter, int) or counter < 0:
            raise ValueError("the ids state must be {seeded, generator: hmac-sha256-ctr, key, counter}")
        if isinstance(seed, int) and not isinstance(seed, bool):  # a --id-seed: public, its key follows from it
            key = key_of_seed(seed)
        elif seed is None and self.key is not None:  # the ids-key of a state directory: must be this one
            key = self.key
        else:
            raise ValueError("the ids state names no --id-seed and these ids have no key to continue it with")
        if state.get("key") != fingerprint(key):
            raise ValueError("the ids state was made with another key (another --id-seed, or another ids-key file)")
        self.seed, self.key, self.counter, self.legacy = seed, key, counter, None
        self.rewind_on_reset = bool(state.get("rewind")) and seed is not None
