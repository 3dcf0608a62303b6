"""The crash-safe journal behind `--state DIR`: append-only JSON lines, fsynced, compacted now and then.

DIR holds `snapshot.json` (a TinyDB snapshot of the whole live state, with the number of the last
journal entry it includes), `journal.jsonl` (every acknowledged change since), and private files made
at the first start: the ids' key and the token signing key. Every file is mode 0600.

A torn last line, from a kill in the middle of a write, is ignored (and cut off before the next
append): its request was never acknowledged. Anything else that is wrong (a line that is not an
entry, a gap in the entries' numbers, a journal that starts after an entry no snapshot holds) stops
the start with a StateError naming the file, the line and the way out: an acknowledged change is
never dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("sandbox.persistence")

SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"
IDS_SEED = "ids-seed"  # before the keyed generator: random.Random's seed (read to replay old directories)
IDS_KEY = "ids-key"  # the key of the run-time ids' HMAC generator (sandbox/core/ids.py)
SIGNING_KEY = "signing-key.pem"  # the token signing key, so tokens outlive a restart
LANDING_KEY = "landing-key"  # the landing pages' token key (hex), so landing links outlive a restart
#: Compact when the journal is this big, or bigger than twice the last snapshot: amortised O(1) a write.
MIN_COMPACT_BYTES = int(os.environ.get("VIPPS_SANDBOX_COMPACT_BYTES", 4 * 1024 * 1024))


class StateError(ValueError):
    """The state directory cannot be loaded as it is; the message names the file, where, and the way out."""


def corrupt(path: Path, line: int, what: str) -> StateError:
    return StateError(
        f"{path}, line {line}: {what}. The sandbox does not start, so that no acknowledged change is lost "
        f"silently. Way out: restore the directory from a backup, or move {path.name} aside (then everything "
        f"it holds from line {line} on is gone) and start again.")


class Journal:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.snapshot_path = self.directory / SNAPSHOT
        self.journal_path = self.directory / JOURNAL
        self.seq = 0
        self._fh = None
        self._bytes = self.journal_path.stat().st_size if self.journal_path.exists() else 0

    def ids_key(self) -> bytes:
        """The key of this state's ids, made at the first start and kept (private) in the directory."""
        path = self.directory / IDS_KEY
        text = self.kept(IDS_KEY, lambda: secrets.token_hex(32)).strip()
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) < 16:
            raise StateError(f"{path} is not an ids key (64 hex digits). It must not be replaced: the journal's "
                             "ids and secrets come from it. Restore it from a backup.")
        return key

    def legacy_ids_seed(self) -> int | None:
        """The ids-seed of a directory made before the keyed generator (until its first compaction), else None."""
        path = self.directory / IDS_SEED
        if not path.exists():
            return None
        try:
            return int(path.read_text().strip())
        except ValueError as exc:
            raise StateError(f"{path} is not an ids seed (a whole number). Restore it from a backup.") from exc

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

    def scan(self) -> tuple[list[dict], int]:
        """Every complete entry, in order, and the length of the good part of the file (all of it but a torn
        last line). Raises StateError for anything but a torn last line: a line that is not an entry, or
        numbers that do not follow each other."""
        entries: list[dict] = []
        good = 0
        if not self.journal_path.exists():
            return entries, good
        with open(self.journal_path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                if not line.endswith(b"\n"):
                    break  # torn by a crash mid-write: never acknowledged (and only the last line can lack its \n)
                try:
                    entry = json.loads(line)
                except (ValueError, RecursionError):
                    raise corrupt(self.journal_path, number, "not a journal entry (not JSON)") from None
                seq = entry.get("seq") if isinstance(entry, dict) else None
                if not isinstance(seq, int) or isinstance(seq, bool) or not all(
                        name in entry for name in ("t", "env", "method", "path", "clock")):
                    raise corrupt(self.journal_path, number, "not a journal entry (no seq, t, env, method, path "
                                  "or clock)")
                if entries and seq != entries[-1]["seq"] + 1:
                    before = entries[-1]["seq"]
                    what = f"entries {before + 1} to {seq - 1} are missing" if seq > before + 1 else "out of order"
                    raise corrupt(self.journal_path, number, f"entry {seq} follows entry {before}: {what}")
                entry["_line"] = number
                entries.append(entry)
                good += len(line)
        return entries, good

    def entries(self, after: int) -> list[dict]:
        """The complete entries with a number above `after` (the snapshot's last), which must start at after + 1."""
        entries, _ = self.scan()
        later = [entry for entry in entries if entry["seq"] > after]
        if later and later[0]["seq"] != after + 1:
            first = later[0]
            if after == 0 and not self.snapshot_path.exists():
                raise StateError(
                    f"{self.journal_path} starts at entry {first['seq']} (line {first['_line']}), after a compaction, "
                    f"but {self.snapshot_path} (which holds entries 1 to {first['seq'] - 1}) is missing. The sandbox "
                    "does not start rather than replay the journal onto the fixture. Way out: put the snapshot back "
                    f"(from a backup), or move {self.journal_path.name} aside too to start from the fixture.")
            raise corrupt(self.journal_path, first["_line"],
                          f"entry {first['seq']} follows the snapshot's last entry {after}: entries {after + 1} to "
                          f"{first['seq'] - 1} are missing")
        return later

    def open(self, last_seq: int) -> None:
        """Ready to append after entry `last_seq`; drops a torn tail (only that) so new lines start clean."""
        self.seq = last_seq
        if self.journal_path.exists():
            _, good = self.scan()
            if good != self.journal_path.stat().st_size:
                os.truncate(self.journal_path, good)
            self._bytes = good
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)  # a journal made by an older version may be readable by others
        self._fh = os.fdopen(fd, "ab", buffering=0)

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
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal_path)
        fsync_dir(self.directory)
        self._bytes = 0
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_APPEND, 0o600)
        self._fh = os.fdopen(fd, "ab", buffering=0)

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
