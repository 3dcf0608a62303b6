"""Snapshots: every registered part of the live state (runtime.state_providers) in one TinyDB file.

Tokens are never part of a snapshot; keys are (they are the fixture), as SHA-256 digests of their secrets.
The control plane's save and restore use it, and so does --state's compaction.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path, PurePosixPath

from sandbox.core.errors import Detail, Problem
from sandbox.core.runtime import Runtime

SNAPSHOT_FORMAT = "vipps-sandbox-snapshot"
SNAPSHOT_VERSION = 1
META_TABLE = "_snapshot"
DEFAULT_NAME = "snapshot"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _bad(name: str, reason: str, rule: str) -> Problem:
    return Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule=rule)


PATH_RULE = ("Must be a relative path to a .json file inside the snapshot directory: no absolute path, no '..', "
             "no symbolic link that leads out of it.")


class Snapshots:
    """POST /_sandbox/snapshot and /_sandbox/restore. Every file they write or read is a .json file inside the
    snapshot directory (`--snapshot-dir`; else `DIR/snapshots` with `--state DIR`; else a directory of this
    user's under the system's temporary directory): a request can never name a file anywhere else."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def directory(self) -> Path:
        settings = self.runtime.settings
        if settings.snapshot_dir:
            return Path(settings.snapshot_dir)
        if settings.state:
            return Path(settings.state) / "snapshots"
        return Path(tempfile.gettempdir()) / "vipps-sandbox-snapshots"

    def _root(self) -> Path:
        """The snapshot directory, made (0700) if need be; refused when it is a link or not this user's."""
        directory = self.directory
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = directory.lstat()
        except OSError as exc:
            raise Problem(400, "Bad Request", f"The snapshot directory {directory} cannot be used: "
                          f"{exc.strerror or exc}", rule="snapshot-dir-unusable") from exc
        if not stat.S_ISDIR(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            raise Problem(400, "Bad Request", f"The snapshot directory {directory} is not a directory of this user "
                          "(a link, a file, or another user's): choose one with --snapshot-dir.",
                          rule="snapshot-dir-unusable")
        return directory.resolve()

    def path_for(self, body: object) -> Path:
        """{"path": ...} (relative to the snapshot directory), {"name": ...}, or nothing: the default file."""
        if body is None:
            body = {}
        if not isinstance(body, dict) or set(body) - {"path", "name"} or len(body) > 1:
            raise _bad("body", 'Send nothing, {"name": "before-capture"} or {"path": "sub/before-capture.json"}.',
                       "snapshot-body-invalid")
        if "path" in body:
            raw = body["path"]
            if not isinstance(raw, str) or not raw.strip():
                raise _bad("path", "Must be a file path.", "snapshot-body-invalid")
            relative = PurePosixPath(raw)
            if (relative.is_absolute() or raw.startswith("~") or "\\" in raw or "\x00" in raw or ":" in raw
                    or ".." in relative.parts or relative.suffix != ".json"):
                raise _bad("path", PATH_RULE, "snapshot-path-outside-snapshot-dir")
            root = self._root()
            target = root.joinpath(*relative.parts)
        else:
            name = body.get("name", DEFAULT_NAME)
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise _bad("name", "Must be 1 to 64 letters, digits, '.', '_' or '-'.", "snapshot-body-invalid")
            root = self._root()
            target = root / (name if name.endswith(".json") else name + ".json")
        resolved = target.resolve()  # follows every link, the last one too
        if root not in resolved.parents:
            raise _bad("path" if "path" in body else "name", PATH_RULE, "snapshot-path-outside-snapshot-dir")
        state = self.runtime.settings.state
        if state is not None and resolved.parent == Path(state).resolve():
            raise _bad("path", "Must not name a file of the --state directory (its snapshot, journal and keys).",
                       "snapshot-path-outside-snapshot-dir")
        return resolved

    def save(self, body: object) -> dict:
        path = self.path_for(body)
        # Not the ids generator's state: from it anyone could compute the secrets it hands out next.
        state = self.runtime.dump_state(exclude=frozenset({"ids"}))
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_snapshot(state, path, self.runtime.clock.iso())
        except OSError as exc:
            raise Problem(400, "Bad Request", f"Cannot write the snapshot to {path}: {exc.strerror or exc}",
                          rule="snapshot-write-failed") from exc
        except (RecursionError, ValueError, TypeError) as exc:
            raise Problem(500, "Internal Server Error", f"The live state cannot be written as a snapshot "
                          f"({type(exc).__name__}); nothing was written.", rule="snapshot-write-failed") from exc
        return {"path": str(path), "providers": list(state), "virtualTime": self.runtime.clock.iso()}

    def restore(self, body: object) -> dict:
        """All or nothing: the file is read and checked whole first; a state that fails to load puts back every
        part it had replaced (sandbox/core/runtime.py `load_state`)."""
        path = self.path_for(body)
        if not path.is_file():
            raise Problem(404, "Not Found", f"No snapshot file at {path}.", rule="snapshot-not-found")
        state = read_snapshot(path)
        try:
            restored = self.runtime.load_state(state)
        except ValueError as exc:
            raise Problem(400, "Bad Request", f"The snapshot {path} cannot be restored: {exc}",
                          rule="snapshot-invalid") from exc
        providers = self.runtime.state_providers
        return {"path": str(path), "restored": restored, "ignored": sorted(set(state) - set(providers)),
                "missing": [name for name in providers if name not in state], "virtualTime": self.runtime.clock.iso()}


def _is_tables(data: object) -> bool:
    return isinstance(data, dict) and all(
        isinstance(rows, list) and all(isinstance(row, dict) for row in rows) for rows in data.values())


def write_snapshot(state: dict[str, object], path: Path, virtual_time: str) -> None:
    """One TinyDB file: tables of records become `<provider>.<table>` tables, anything else one document.

    Written to a temporary file first and renamed, so a crash never leaves half a snapshot.
    """
    from tinydb import JSONStorage, TinyDB  # on the first snapshot: serve starts without TinyDB
    from tinydb.middlewares import CachingMiddleware

    layout = {name: "tables" if _is_tables(data) else "value" for name, data in state.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".snapshot-", suffix=".json")
    os.close(fd)
    try:
        # The caching middleware writes the file once, on close, instead of once per table.
        with TinyDB(tmp, storage=CachingMiddleware(JSONStorage), sort_keys=True, indent=1, ensure_ascii=True) as db:
            db.drop_tables()
            db.table(META_TABLE).insert({"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION,
                                         "virtualTime": virtual_time, "layout": layout})
            for name, data in state.items():
                if layout[name] == "tables":
                    assert isinstance(data, dict)
                    for table, rows in data.items():
                        db.table(f"{name}.{table}").insert_multiple(rows)
                else:
                    db.table(name).insert({"value": data})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_snapshot(path: Path) -> dict[str, object]:
    """The provider states of a snapshot file, or a 400 problem naming what is wrong with it."""
    from tinydb import JSONStorage, TinyDB
    from tinydb.middlewares import CachingMiddleware

    def invalid(reason: str) -> Problem:
        return Problem(400, "Bad Request", f"{path} is not a sandbox snapshot: {reason}", rule="snapshot-invalid")

    try:
        with TinyDB(path, storage=CachingMiddleware(JSONStorage), access_mode="r") as db:
            meta = db.table(META_TABLE).all()
            if not meta or meta[0].get("format") != SNAPSHOT_FORMAT:
                raise invalid(f"no {META_TABLE} table with format {SNAPSHOT_FORMAT!r}")
            layout = meta[0].get("layout")
            if not isinstance(layout, dict):
                raise invalid("its layout is missing")
            names = db.tables()
            state: dict[str, object] = {}
            for name, kind in layout.items():
                if kind == "tables":
                    prefix = f"{name}."
                    # sort_keys wrote doc ids as text ("1", "10", "2"): put the records back in their order.
                    state[name] = {t[len(prefix):]: [dict(doc) for doc in sorted(db.table(t).all(),
                                                                                  key=lambda doc: doc.doc_id)]
                                   for t in names if t.startswith(prefix)}
                else:
                    docs = db.table(name).all()
                    if len(docs) != 1 or "value" not in docs[0]:
                        raise invalid(f"table {name!r} must hold one document with a value")
                    state[name] = docs[0]["value"]
            return state
    except Problem:
        raise
    except (ValueError, RecursionError) as exc:  # broken JSON, or JSON nested too deep to read
        raise invalid(str(exc)[:200] or type(exc).__name__) from exc
    except (AttributeError, TypeError, KeyError, IndexError) as exc:  # JSON, but not TinyDB's layout (a list, ...)
        raise invalid("it is not a TinyDB file of tables") from exc
    except OSError as exc:
        raise invalid(f"it cannot be read ({exc.strerror or exc})") from exc
