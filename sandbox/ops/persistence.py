"""Opt-in crash safety (`--state DIR`): every acknowledged change is on disk before its response.

The front door appends each successful state-changing request to the journal (sandbox/ops/journal.py)
and fsyncs it before the response goes out. At start the last snapshot is loaded and the journal
is replayed through the app itself, on private loopback ports, with the virtual clock frozen at
each request's moment and ids from the same seeded generator, so the state comes back as it was.
Now and then the whole state is compacted into a TinyDB snapshot and the journal starts afresh.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Awaitable
from pathlib import Path

from aiohttp import web

from sandbox.core.model import MIAMI_KEY_TYPES, Env
from sandbox.core.runtime import Runtime
from sandbox.gateway.context import RUNTIME, CallContext
from sandbox.gateway.tokens import new_private_pem
from sandbox.ops.journal import LANDING_KEY, SIGNING_KEY, Journal, fsync_dir, fsync_file
from sandbox.ops.snapshots import read_snapshot, write_snapshot

log = logging.getLogger("sandbox.persistence")

REPLAY_HEADER = "Vipps-Sandbox-Replay"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Requests that change nothing worth keeping, or that are captured by compacting at once.
NOT_JOURNALED = frozenset({"token.accesstoken", "token.miami", "sandbox.snapshot", "sandbox.requests.clear",
                           "sandbox.faults.create", "sandbox.faults.clear", "sandbox.faults.delete",
                           "sandbox.inbox.post"})
COMPACT_AT_ONCE = frozenset({"sandbox.reset", "sandbox.restore"})
KEPT_HEADERS = ("Content-Type", "Idempotency-Key", "Merchant-Serial-Number", "Host", "Vipps-System-Name",
                "Vipps-System-Version", "Vipps-System-Plugin-Name", "Vipps-System-Plugin-Version")


class Persistence:
    def __init__(self, runtime: Runtime, directory: Path) -> None:
        self.runtime = runtime
        self.journal = Journal(directory)
        self.nonce = secrets.token_hex(16)  # marks our own replayed requests
        self.replayed = 0

    # -- writing --------------------------------------------------------------------------------
    def record(self, request: web.Request, ctx: CallContext, started_at: float, body: bytes) -> None:
        entry = {
            "t": started_at, "env": str(ctx.env), "method": request.method, "path": request.path_qs,
            "clientId": ctx.keyset.client_id if ctx.keyset is not None else None,
            "headers": {name: request.headers[name] for name in KEPT_HEADERS if name in request.headers},
            "body": base64.b64encode(body).decode("ascii"), "clock": self.runtime.clock.state(),
        }
        self.journal.append(entry)
        if self.journal.wants_compaction():
            self.compact()

    def compact(self) -> None:
        """The whole state into snapshot.json (with the last entry it holds), then an empty journal."""
        state = self.runtime.dump_state()
        state["journal"] = {"seq": self.journal.seq}
        path = self.journal.snapshot_path
        write_snapshot(state, path, self.runtime.clock.iso())
        fsync_file(path)
        fsync_dir(path.parent)
        self.journal.rotate()

    # -- reading --------------------------------------------------------------------------------
    def load_snapshot(self) -> int:
        if not self.journal.snapshot_path.exists():
            return 0
        state = read_snapshot(self.journal.snapshot_path)
        meta = state.pop("journal", None)
        self.runtime.load_state(state)
        return int(meta["seq"]) if isinstance(meta, dict) else 0

    async def recover(self, runner: web.AppRunner) -> None:
        """Snapshot, then the journal replayed through private loopback sites; then ready to append."""
        last = self.load_snapshot()
        entries = list(self.journal.entries(after=last))
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
            try:
                async with aiohttp.ClientSession() as session:
                    for entry in entries:
                        await self._replay(session, sites[Env(entry["env"])][1], entry)
                        last = entry["seq"]
            finally:
                self.runtime.rate_limiter = limiter
                for site, port in sites.values():
                    self.runtime.port_env.pop(port, None)
                    await site.stop()
        self.journal.open(last)

    async def _replay(self, session, port: int, entry: dict) -> None:
        runtime = self.runtime
        runtime.clock.load_state({"offset": 0.0, "frozen_at": entry["t"]})
        headers = dict(entry.get("headers") or {})
        headers.pop("Host", None)
        headers[REPLAY_HEADER] = self.nonce
        env = Env(entry["env"])
        if entry.get("clientId"):
            keyset = runtime.world.keys.get(entry["clientId"])
            if keyset is None:
                log.warning("journal entry %s: keys %s are gone; skipped", entry["seq"], entry["clientId"])
                return
            flow = "miami" if keyset.type in MIAMI_KEY_TYPES else "standard"
            token, _, _ = runtime.tokens.issue(keyset, env, 3600, flow)
            headers["Authorization"] = f"Bearer {token}"
            if flow == "standard" and keyset.subscription_key_primary:
                headers["Ocp-Apim-Subscription-Key"] = keyset.subscription_key_primary
        elif runtime.settings.admin_token:
            headers["Authorization"] = f"Bearer {runtime.settings.admin_token}"
        body = base64.b64decode(entry.get("body") or "")
        async with session.request(entry["method"], f"http://127.0.0.1:{port}{entry['path']}", data=body,
                                   headers=headers, allow_redirects=False) as resp:
            await resp.read()
            if not 200 <= resp.status < 400:
                log.warning("journal entry %s (%s %s) replayed with status %s", entry["seq"], entry["method"],
                            entry["path"], resp.status)
        runtime.clock.load_state(entry["clock"])
        self.replayed += 1


PERSISTENCE = web.AppKey("persistence", Persistence)


async def journaled(persistence: Persistence, request: web.Request, ctx: CallContext, started_at: float,
                    respond: Awaitable[web.StreamResponse]) -> web.StreamResponse:
    """Awaits the response, then journals the change (fsynced) before it goes out. Called by the front door
    for state-changing methods only, with --state on."""
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
    if route.name in COMPACT_AT_ONCE:
        persistence.compact()
    else:
        persistence.record(request, ctx, started_at, await request.read())
    return response


def enable(app: web.Application, directory: Path) -> Persistence:
    persistence = Persistence(app[RUNTIME], directory)
    ids = app[RUNTIME].ids
    if not ids.seeded:  # a replay must hand out the same ids: seed them, from a seed kept beside the journal
        ids.reseed(persistence.journal.ids_seed())
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
