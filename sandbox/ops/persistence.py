"""Opt-in crash safety (`--state DIR`): every acknowledged change is on disk before its response.

The front door appends each successful state-changing request to the journal (sandbox/ops/journal.py)
and fsyncs it before the response goes out. At start the last snapshot is loaded and the journal
is replayed through the app itself, on private loopback ports, with the virtual clock frozen at
each request's moment and ids from the same keyed generator, so the state comes back as it was.
Now and then the whole state is compacted into a TinyDB snapshot and the journal starts afresh.

Each entry names the identity it was made as (the key set's client id, the environment, the MSN).
A replayed request carries this process's replay nonce and that client id, and the gateway takes the
identity from them instead of checking credentials (a snapshot keeps secrets only as digests, and keys
may have been regenerated since); everything else, the policy included, runs as the first time. Any
entry that does not replay as it was acknowledged stops the start with a StateError: never a silent
loss. A compaction that fails (a full disk, an unwritable snapshot, a state that cannot be serialised)
never fails the write that triggered it: the write is journaled and fsynced already; the failure is
logged and the compaction retried later.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable
from pathlib import Path

from aiohttp import web

from sandbox.core.errors import Problem
from sandbox.core.model import Env, KeySet
from sandbox.core.runtime import Runtime
from sandbox.gateway.context import RUNTIME, CallContext
from sandbox.gateway.tokens import new_private_pem
from sandbox.ops.journal import IDS_SEED, JOURNAL, LANDING_KEY, SIGNING_KEY, Journal, StateError, fsync_dir, fsync_file
from sandbox.ops.snapshots import read_snapshot, write_snapshot

log = logging.getLogger("sandbox.persistence")

REPLAY_HEADER = "Vipps-Sandbox-Replay"
REPLAY_CLIENT_HEADER = "Vipps-Sandbox-Replay-Client"  # the client id a replayed entry was made as
#: After a failed compaction, the next try waits this long (writes in between are journaled as usual).
COMPACT_RETRY_SECONDS = float(os.environ.get("VIPPS_SANDBOX_COMPACT_RETRY_SECONDS", 30))
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Requests that change nothing worth keeping, or that are captured by compacting at once.
NOT_JOURNALED = frozenset({"token.accesstoken", "token.miami", "sandbox.snapshot", "sandbox.requests.clear",
                           "sandbox.faults.create", "sandbox.faults.clear", "sandbox.faults.delete",
                           "sandbox.inbox.post",
                           # issue 18: read-only POSTs, and what holds customer tokens or lives 10 minutes
                           "qr.exchange", "qr.exchange.customer", "qr.one_time", "sandbox.qr.scan",
                           # Login: codes, tokens and CIBA requests live in memory only and their requests carry
                           # secrets (client secrets, codes); only the clients' settings are journaled.
                           "login.token", "login.ciba", "login.user_exists", "sandbox.login.consent",
                           "sandbox.login.cancel", "sandbox.login.approve", "sandbox.login.ciba.approve",
                           "sandbox.login.ciba.reject"})
COMPACT_AT_ONCE = frozenset({"sandbox.reset", "sandbox.restore"})
#: The snapshot's part that holds the work in flight (runtime.in_flight), and the file of its marks.
IN_FLIGHT = "inFlight"
MARKS = "in-flight-marks.jsonl"
KEPT_HEADERS = ("Content-Type", "Idempotency-Key", "Merchant-Serial-Number", "Host", "Vipps-System-Name",
                "Vipps-System-Version", "Vipps-System-Plugin-Name", "Vipps-System-Plugin-Version")


class Persistence:
    def __init__(self, runtime: Runtime, directory: Path) -> None:
        self.runtime = runtime
        self.journal = Journal(directory)
        self.nonce = secrets.token_hex(16)  # marks our own replayed requests
        self.replaying = False  # only while recover() runs, on its private ports, is the nonce honoured
        self.replayed = 0
        self.legacy_ids_seed: int | None = None
        self.compaction_failures = 0
        self._retry_at = 0.0
        self.base = 0  # the journal entry of the snapshot that the marks of work in flight count from
        self.recovering = False  # from the first read of the state directory until the work in flight is released
        self.in_flight_state: dict = {}
        self._marks_fd: int | None = None

    # -- writing --------------------------------------------------------------------------------
    def record(self, request: web.Request, ctx: CallContext, started_at: float, body: bytes) -> None:
        entry = {
            "t": started_at, "env": str(ctx.env), "method": request.method, "path": request.path_qs,
            "clientId": ctx.keyset.client_id if ctx.keyset is not None else None, "msn": ctx.msn,
            "headers": {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers},
            "body": base64.b64encode(body).decode("ascii"), "clock": self.runtime.clock.state(),
        }
        self.journal.append(entry)
        if self.journal.wants_compaction():
            self.compact_if_possible()

    def compact(self) -> None:
        """The whole state into snapshot.json (with the last entry it holds, and the work in flight: webhook
        deliveries not yet done), then an empty journal, and marks that count from this snapshot on."""
        state = self.runtime.dump_state()
        state["journal"] = {"seq": self.journal.seq}
        state[IN_FLIGHT] = {name: provider.pending() for name, provider in self.runtime.in_flight.items()}
        path = self.journal.snapshot_path
        write_snapshot(state, path, self.runtime.clock.iso())
        fsync_file(path)
        fsync_dir(path.parent)
        self.journal.rotate()
        self.base = self.journal.seq
        for provider in self.runtime.in_flight.values():
            provider.compacted()
        self.start_marks()

    # -- work in flight (webhook deliveries) ----------------------------------------------------------
    def start_marks(self) -> None:
        """A marks file that names the snapshot they count from (`base`) and no work done yet, then opened for
        appending. Replaced whole (written aside, then renamed), so a crash leaves the old one or this one."""
        path = self.journal.directory / MARKS
        tmp = self.journal.directory / f".{MARKS}.tmp"
        self.close_marks()
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps({"base": self.base}) + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("writing %s failed (%s): webhook deliveries in flight may be sent twice after a crash",
                        path, exc)
            return
        self.open_marks()

    def open_marks(self) -> None:
        path = self.journal.directory / MARKS
        try:
            self._marks_fd = os.open(path, os.O_WRONLY | os.O_APPEND, 0o600)
        except OSError as exc:
            log.warning("%s cannot be opened (%s): webhook deliveries may be sent twice after a crash", path, exc)

    def close_marks(self) -> None:
        if self._marks_fd is not None:
            os.close(self._marks_fd)
            self._marks_fd = None

    def append_mark(self, name: str, mark: str) -> None:
        """One piece of work done (a webhook delivery delivered or given up), one line. Not fsynced: the line is
        the kernel's as soon as it is written, so it survives the process's crash; after a power cut, a delivery
        may be sent twice, never lost. Never while the journal replays: the marks on disk are what it reads."""
        if self.replaying or self.recovering or self._marks_fd is None:
            return
        try:
            os.write(self._marks_fd, (json.dumps({"n": name, "m": mark}, separators=(",", ":")) + "\n").encode())
        except OSError as exc:
            log.warning("writing a webhook delivery's mark failed (%s): it may be sent twice after a crash", exc)

    def read_marks(self) -> tuple[object, dict[str, list[str]]]:
        """The marks file's base and, per name, the marks of the work done since (a torn last line: left out)."""
        path = self.journal.directory / MARKS
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None, {}
        except OSError as exc:
            log.warning("%s cannot be read (%s): webhook deliveries in flight may be sent twice", path, exc)
            return None, {}
        lines = raw.split(b"\n")[:-1]  # the last piece lacks its newline: torn, or empty
        found: dict[str, list[str]] = {}
        base = None
        for number, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except ValueError:
                log.warning("%s, line %d, is not a mark: the deliveries it names may be sent twice", path, number + 1)
                continue
            if not isinstance(entry, dict):
                continue
            if number == 0:
                base = entry.get("base")
            elif isinstance(entry.get("n"), str) and isinstance(entry.get("m"), str):
                found.setdefault(entry["n"], []).append(entry["m"])
        return base, found

    def compact_if_possible(self) -> bool:
        """Compacts unless a recent try failed; a failure is logged (once, until it works again) and never raised:
        every write is in the journal already, which is all a restart needs."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            self.compact()
        except Exception as exc:  # noqa: BLE001 - whatever it is, the acknowledged write stands
            self.compaction_failures += 1
            self._retry_at = now + COMPACT_RETRY_SECONDS
            if self.compaction_failures == 1:
                log.error("compacting %s failed (%s: %s); every change is still in %s, and compaction is "
                          "retried every %g s", self.journal.snapshot_path, type(exc).__name__, str(exc)[:200],
                          self.journal.journal_path, COMPACT_RETRY_SECONDS)
            return False
        if self.compaction_failures:
            log.warning("compacting %s works again, after %d failed tries", self.journal.snapshot_path,
                        self.compaction_failures)
            self.compaction_failures = 0
        return True

    # -- reading --------------------------------------------------------------------------------
    def load_snapshot(self) -> int:
        path = self.journal.snapshot_path
        if not path.exists():
            return 0
        way_out = (f"Way out: restore {path.name} from a backup. (Moving it aside starts from the fixture plus "
                   f"{JOURNAL}, which then refuses to start if the snapshot held entries it needs.)")
        try:
            state = read_snapshot(path)
        except Problem as exc:
            raise StateError(f"{exc.detail}. {way_out}") from None
        except (OSError, RecursionError) as exc:
            raise StateError(f"{path} cannot be read ({exc}). {way_out}") from None
        meta = state.pop("journal", None)
        in_flight = state.pop(IN_FLIGHT, None)
        self.in_flight_state = in_flight if isinstance(in_flight, dict) else {}
        if not isinstance(meta, dict) or not isinstance(meta.get("seq"), int) or meta["seq"] < 0:
            raise StateError(f"{path} is not a --state snapshot: it names no journal entry. {way_out}")
        try:
            self.runtime.load_state(state)
        except ValueError as exc:
            raise StateError(f"{path} cannot be loaded: {exc}. {way_out}") from None
        return int(meta["seq"])

    async def recover(self, runner: web.AppRunner) -> None:
        """Snapshot, then the journal replayed through private loopback sites; then ready to append."""
        ids = self.runtime.ids
        had_snapshot = self.journal.snapshot_path.exists()
        marks_base, marks = self.read_marks()
        self.recovering = True
        for provider in self.runtime.in_flight.values():
            provider.hold()
        last = self.load_snapshot()
        self.base = last  # the marks of work in flight count from this snapshot (0: none, the fixture)
        for name, provider in self.runtime.in_flight.items():
            try:
                provider.restore(self.in_flight_state.get(name))
            except (ValueError, TypeError, KeyError) as exc:
                raise StateError(f"{self.journal.snapshot_path} holds {name} in flight that cannot be loaded ({exc}). "
                                 "Way out: restore the directory from a backup.") from None
        entries = self.journal.entries(after=last)
        if not had_snapshot and self.legacy_ids_seed is not None:
            ids.use_legacy_seed(self.legacy_ids_seed)  # an old journal-only directory: replay its ids as made
        if entries:
            import aiohttp  # the client side of aiohttp is only needed to replay

            sites = {}
            for env in Env:
                site = web.TCPSite(runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self.runtime.port_env[port] = env
                sites[env] = (site, port)
            # What was acknowledged is replayed whatever the limits now: it may have been made without them.
            limiter, self.runtime.rate_limiter = self.runtime.rate_limiter, None
            self.replaying = True
            try:
                async with aiohttp.ClientSession() as session:
                    for entry in entries:
                        await self._replay(session, sites[Env(entry["env"])][1], entry)
                        last = entry["seq"]
            finally:
                self.replaying = False
                self.runtime.rate_limiter = limiter
                for site, port in sites.values():
                    self.runtime.port_env.pop(port, None)
                    await site.stop()
        self.journal.open(last)
        # Marks made since another snapshot than this one name other work: none is known done (sent again).
        same = marks_base == self.base
        known = marks if same else {}
        self.recovering = False
        for name, provider in self.runtime.in_flight.items():
            left = provider.release(known.get(name))
            if left:
                log.info("%s: %d %s in flight from before the restart, sent again", self.journal.directory, left,
                         name)
        if same:
            self.open_marks()  # they still count: after another crash, the same replay makes the same work again
        else:
            self.start_marks()
        if ids.legacy is not None:  # made by random.Random: from now on the keyed generator, from a snapshot
            ids.use_key(self.journal.ids_key())
            try:
                self.compact()
            except Exception as exc:
                raise StateError(f"{self.journal.snapshot_path} cannot be written ({exc}); it must be, once, to move "
                                 "this directory to the keyed id generator. Make the directory writable.") from None
        legacy_seed = self.journal.directory / IDS_SEED
        if ids.legacy is None and legacy_seed.exists() and self.journal.snapshot_path.exists():
            legacy_seed.unlink()  # the snapshot holds the keyed generator's state: the old seed is never used again

    def _failed(self, entry: dict, what: str) -> StateError:
        path = str(entry.get("path", "")).split("?", 1)[0]  # never a query: it may hold a landing token
        return StateError(
            f"--state {self.journal.directory}: journal entry {entry['seq']} (line {entry.get('_line')} of "
            f"{JOURNAL}), {entry.get('method')} {path}, {what}. The sandbox does not start, so that no acknowledged "
            f"change is lost silently. Way out: start the version of vipps-sandbox that wrote the journal, or restore "
            f"the directory from a backup; or move {JOURNAL} aside to start from the last snapshot without entry "
            f"{entry['seq']} and those after it.")

    def identity(self, request: web.Request) -> KeySet | None:
        """The key set a replayed request was journaled as, when it carries this process's replay nonce during
        recovery; None for every other request. The gateway then skips only its credential checks."""
        if not self.replaying:
            return None
        nonce = request.headers.get(REPLAY_HEADER)
        client_id = request.headers.get(REPLAY_CLIENT_HEADER)
        if not nonce or not client_id or not hmac.compare_digest(nonce.encode(), self.nonce.encode()):
            return None
        return self.runtime.world.keys.get(client_id)

    async def _replay(self, session, port: int, entry: dict) -> None:
        runtime = self.runtime
        runtime.clock.load_state({"offset": 0.0, "frozen_at": entry["t"]})
        headers = dict(entry.get("headers") or {})
        headers.pop("Host", None)
        headers[REPLAY_HEADER] = self.nonce
        try:
            env = Env(entry["env"])
        except ValueError:
            raise self._failed(entry, f"names an unknown environment {str(entry['env'])[:20]!r}") from None
        client_id = entry.get("clientId")
        if client_id:
            keyset = runtime.world.keys.get(client_id)
            if keyset is None:
                raise self._failed(entry, f"was made with the key set {client_id}, which no longer exists")
            if keyset.environment is not env:
                raise self._failed(entry, f"was made in {env} with the key set {client_id} of {keyset.environment}")
            headers[REPLAY_CLIENT_HEADER] = client_id
        elif runtime.settings.admin_token:
            headers["Authorization"] = f"Bearer {runtime.settings.admin_token}"
        try:
            body = base64.b64decode(entry.get("body") or "", validate=True)
        except ValueError:
            raise self._failed(entry, "holds a body that is not base64") from None
        async with session.request(entry["method"], f"http://127.0.0.1:{port}{entry['path']}", data=body,
                                   headers=headers, allow_redirects=False) as resp:
            await resp.read()
            if not 200 <= resp.status < 400:
                rule = resp.headers.get("Vipps-Sandbox-Rule")
                raise self._failed(entry, f"replayed with status {resp.status}" + (f" (rule {rule[:60]})" if rule
                                                                                   else "") +
                                   " although it was acknowledged with a 2xx or a redirect")
        runtime.clock.load_state(entry["clock"])
        self.replayed += 1


PERSISTENCE = web.AppKey("persistence", Persistence)


async def journaled(persistence: Persistence, request: web.Request, ctx: CallContext, started_at: float,
                    respond: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """Awaits the response, then journals the change (fsynced) before it goes out. Called by the front door
    for state-changing methods only, with --state on."""
    ctx.replayed = persistence.identity(request)  # None but for our own replay (read by the gateway's checks)
    try:
        response = await respond
    except web.HTTPException as redirect:  # a redirect after a change (the landing page's approve)
        if redirect.status < 400:
            await _journal(request, ctx, persistence, redirect, started_at)
        raise
    return await _journal(request, ctx, persistence, response, started_at)


async def _journal(request: web.Request, ctx: CallContext, persistence: Persistence, response: web.StreamResponse,
                   started_at: float) -> web.StreamResponse:
    route = ctx.route
    if route is None or not 200 <= response.status < 400 or route.name in NOT_JOURNALED:
        return response
    if request.headers.get(REPLAY_HEADER) == persistence.nonce:
        return response
    if route.name in COMPACT_AT_ONCE and persistence.compact_if_possible():
        return response
    # Journaled (and then replayed) as any other change, also a reset or restore whose compaction failed.
    persistence.record(request, ctx, started_at, await request.read())
    return response


def enable(app: web.Application, directory: Path) -> Persistence:
    persistence = Persistence(app[RUNTIME], directory)
    for name, provider in app[RUNTIME].in_flight.items():
        provider.progress_hooks.append(lambda mark, name=name: persistence.append_mark(name, mark))
    ids = app[RUNTIME].ids
    if not ids.seeded:  # a replay must hand out the same ids: key them, from a key kept beside the journal
        persistence.legacy_ids_seed = persistence.journal.legacy_ids_seed()
        ids.use_key(persistence.journal.ids_key())
    try:
        app[RUNTIME].tokens.use_key(persistence.journal.kept(SIGNING_KEY, new_private_pem))
    except ValueError as exc:
        raise ValueError(f"{directory / SIGNING_KEY} is not a usable signing key ({exc}). Remove it and a new one "
                         "is made at start; tokens signed with the old one then stop working.") from exc
    landing = persistence.journal.kept(LANDING_KEY, lambda: secrets.token_hex(32)).strip()
    if len(landing) < 32:
        raise ValueError(f"{directory / LANDING_KEY} is too short to be a landing-token key. Remove it and a new one "
                         "is made at start; landing links made before then stop working.")
    app[RUNTIME].landing_key = landing.encode()
    app[PERSISTENCE] = persistence
    app.on_cleanup.append(_close_journal)
    return persistence


async def _close_journal(app: web.Application) -> None:
    app[PERSISTENCE].journal.close()
    app[PERSISTENCE].close_marks()
