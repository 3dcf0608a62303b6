"""The crash-safe journal behind `--state DIR`: append-only JSON lines, fsynced, compacted now and then.

DIR holds `snapshot.json` (a TinyDB snapshot of the whole live state, with the number of the last
journal entry it includes), `journal.jsonl` (every acknowledged change since), and two private files
made at the first start: the ids' seed and the token signing key. A torn last
line, from a kill in the middle of a write, is ignored: its request was never acknowledged.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

log = logging.getLogger("sandbox.persistence")

SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
IDS_SEED = "ids-seed"
SIGNING_KEY = "signing-key.pem"  # the token signing key, so tokens outlive a restart
LANDING_KEY = "landing-key"  # the landing pages' token key (hex), so landing links outlive a restart
#: Compact when the journal is this big, or bigger than twice the last snapshot: amortised O(1) a write.
MIN_COMPACT_BYTES = int(os.environ.get("VIPPS_SANDBOX_COMPACT_BYTES", 4 * 1024 * 1024))


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = self.directory / SNAPSHOT
        self.journal_path = self.directory / JOURNAL
        self.seq = 0
        self._fh = None
        self._bytes = self.journal_path.stat().st_size if self.journal_path.exists() else 0

    def ids_seed(self) -> int:
        """The seed of this state's ids, made at the first start and kept (private) in the directory."""
        return int(self.kept(IDS_SEED, lambda: str(secrets.randbits(64))).strip())

    def kept(self, name: str, make: Callable[[], str]) -> str:
        """A private file of this directory (mode 0600): read, or made once with `make`. Made whole or not at
        all (written and fsynced under a temporary name, then linked into place), so a crash never leaves an
        empty one; and never replaced once there (ids must not rewind, tokens must keep working)."""
        path = self.directory / name
        if not path.exists():
            tmp = self.directory / f".{name}.{secrets.token_hex(4)}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(make())
                    fh.flush()
                    os.fsync(fh.fileno())
                try:
                    os.link(tmp, path)
                except FileExistsError:  # another start made it first: theirs is the one
                    pass
            finally:
                tmp.unlink()
            fsync_dir(self.directory)
        elif path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users; it holds a secret (chmod 600 it)", path)
        return path.read_text()

    def entries(self, after: int) -> Iterator[dict]:
        """The complete entries with a number above `after`, in order; stops at a torn line."""
        if not self.journal_path.exists():
            return
        with open(self.journal_path, "rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    return  # torn by a crash mid-write: never acknowledged
                try:
                    entry = json.loads(line)
                except ValueError:
                    return
                if entry.get("seq", 0) > after:
                    yield entry

    def open(self, last_seq: int) -> None:
        """Ready to append after entry `last_seq`; drops a torn tail so new lines start clean."""
        self.seq = last_seq
        if self.journal_path.exists():
            good = 0
            with open(self.journal_path, "rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break
                    try:
                        json.loads(line)
                    except ValueError:
                        break
                    good += len(line)
            if good != self.journal_path.stat().st_size:
                os.truncate(self.journal_path, good)
            self._bytes = good
        self._fh = open(self.journal_path, "ab", buffering=0)

    def append(self, entry: dict) -> int:
        """Writes one entry and fsyncs it: when this returns, the change survives a crash."""
        self.seq += 1
        entry = dict(entry, seq=self.seq)
        data = (json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n").encode()
        assert self._fh is not None, "journal not open"
        self._fh.write(data)
        os.fsync(self._fh.fileno())
        self._bytes += len(data)
        return self.seq

    def wants_compaction(self) -> bool:
        snapshot = self.snapshot_path.stat().st_size if self.snapshot_path.exists() else 0
        return self._bytes > max(MIN_COMPACT_BYTES, 2 * snapshot)

    def rotate(self) -> None:
        """After a snapshot that includes every entry so far: start an empty journal."""
        if self._fh is not None:
            self._fh.close()
        tmp = self.directory / (JOURNAL + ".tmp")
        with open(tmp, "wb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal_path)
        fsync_dir(self.directory)
        self._bytes = 0
        self._fh = open(self.journal_path, "ab", buffering=0)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
