"""Snapshots: every registered part of the live state (runtime.state_providers) in one TinyDB file.

Tokens are never part of a snapshot; keys are (they are the fixture), as SHA-256 digests of their secrets.
The control plane's save and restore use it, and so does --state's compaction.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from tinydb import JSONStorage, TinyDB
from tinydb.middlewares import CachingMiddleware

from sandbox.core.errors import Detail, Problem
from sandbox.core.runtime import Runtime

SNAPSHOT_FORMAT = "vipps-sandbox-snapshot"
SNAPSHOT_VERSION = 1
META_TABLE = "_snapshot"
DEFAULT_NAME = "snapshot"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _bad(name: str, reason: str, rule: str) -> Problem:
    return Problem(400, "Bad Request", f"{name}: {reason}", details=[Detail(name, reason)], rule=rule)


class Snapshots:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def directory(self) -> Path:
        configured = self.runtime.settings.snapshot_dir
        return Path(configured) if configured else Path(tempfile.gettempdir()) / "vipps-sandbox-snapshots"

    def path_for(self, body: object) -> Path:
        """{"path": ...} (relative to the snapshot directory), {"name": ...}, or nothing: the default file."""
        if body is None:
            body = {}
        if not isinstance(body, dict) or set(body) - {"path", "name"} or len(body) > 1:
            raise _bad("body", 'Send nothing, {"name": "before-capture"} or {"path": "/some/file.json"}.',
                       "snapshot-body-invalid")
        if "path" in body:
            if not isinstance(body["path"], str) or not body["path"].strip():
                raise _bad("path", "Must be a file path.", "snapshot-body-invalid")
            return self.directory / Path(body["path"]).expanduser()
        name = body.get("name", DEFAULT_NAME)
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise _bad("name", "Must be 1 to 64 letters, digits, '.', '_' or '-'.", "snapshot-body-invalid")
        return self.directory / (name if name.endswith(".json") else name + ".json")

    def save(self, body: object) -> dict:
        path = self.path_for(body)
        # Not the ids generator's state: from it anyone could compute the secrets it hands out next.
        state = self.runtime.dump_state(exclude=frozenset({"ids"}))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_snapshot(state, path, self.runtime.clock.iso())
        except OSError as exc:
            raise Problem(400, "Bad Request", f"Cannot write the snapshot to {path}: {exc.strerror or exc}",
                          rule="snapshot-write-failed") from exc
        return {"path": str(path), "providers": list(state), "virtualTime": self.runtime.clock.iso()}

    def restore(self, body: object) -> dict:
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
    except ValueError as exc:  # broken JSON
        raise invalid(str(exc)) from exc
