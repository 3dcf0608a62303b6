"""Serving one app on two ports: test ("apitest") and production ("api")."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys

from aiohttp import web

from sandbox.app import create_app
from sandbox.core import spec
from sandbox.core.model import Env
from sandbox.core.settings import Settings
from sandbox.gateway import tokens
from sandbox.gateway.admin import ADMIN_TOKEN_GENERATED, admin_required
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.lowlevel import AcceptErrors, SandboxRunner
from sandbox.ops.persistence import PERSISTENCE

MAX_LINE = 128 * 1024
log = logging.getLogger("sandbox")


def release_free_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc's malloc_trim), once the specs are parsed: parsing
    leaves ~1.5 MB of freed blocks that glibc would otherwise keep mapped, a part of the idle RSS. A no-op where
    there is no glibc."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: libc's, without ctypes.util's ldconfig run
    except (OSError, AttributeError):  # not glibc (musl): nothing to trim
        pass


def warm() -> None:
    """What the first requests would otherwise load: PyJWT and cryptography (first token), the validators and
    the parsed specs (first validated body)."""
    tokens.warm()
    spec.warm()


def settle_heap() -> None:
    """Called once the server listens (`vipps-sandbox serve` starts with the garbage collector off): what starting
    made (modules, the fixture's directory, the routes) lives as long as the process, so one collection frees what
    little of it is garbage, the rest is frozen out of the collector's later passes (gc.freeze: a full collection
    then walks only what requests made), and collection is switched back on. Starting costs ~65M instructions less
    (the collector's passes over the growing heap while modules import)."""
    gc.collect()
    gc.freeze()
    gc.enable()


class RunningSandbox:
    """Both environments bound and serving; ports are known after `start()` (0 picks free ones)."""

    def __init__(self, settings: Settings, app: web.Application | None = None) -> None:
        self.settings = settings
        self.app = app or create_app(settings)
        # Real clients send long headers (JWTs of 1000+ characters) and people send silly ones: parse
        # up to 128 kB per line so oversize values reach our own checks and get a proper error body.
        # SandboxRunner answers what the HTTP parser refuses (NUL bytes, bad UTF-8) in the gateway's JSON.
        # Slow clients: see sandbox/gateway/lowlevel.py (the head and body timeouts are read from the settings).
        self.runner = SandboxRunner(self.app, access_log=None, handle_signals=False,
                                    max_line_size=MAX_LINE, max_field_size=MAX_LINE,
                                    keepalive_timeout=settings.keepalive_timeout)
        self.test_port = self.prod_port = 0
        self._accept_errors: AcceptErrors | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._accept_errors is None:
            self._accept_errors = AcceptErrors(loop.get_exception_handler())
            loop.set_exception_handler(self._accept_errors)
        await self.runner.setup()
        runtime = self.app[RUNTIME]
        recovering = self.app.get(PERSISTENCE)
        if recovering is not None:  # --state: load the snapshot and replay the journal before serving
            await recovering.recover(self.runner)
        for env, port in ((Env.TEST, self.settings.port), (Env.PRODUCTION, self.settings.prod_port)):
            site = web.TCPSite(self.runner, self.settings.host, port, reuse_address=True)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            runtime.port_env[bound] = env
            if env is Env.TEST:
                self.test_port = bound
            else:
                self.prod_port = bound

    @property
    def display_host(self) -> str:
        return "127.0.0.1" if self.settings.host in ("0.0.0.0", "", "::") else self.settings.host

    @property
    def test_url(self) -> str:
        return f"http://{self.display_host}:{self.test_port}"

    @property
    def prod_url(self) -> str:
        return f"http://{self.display_host}:{self.prod_port}"

    async def stop(self) -> None:
        await self.runner.cleanup()
        accept_errors, self._accept_errors = self._accept_errors, None
        if accept_errors is not None:
            loop = asyncio.get_running_loop()
            if loop.get_exception_handler() is accept_errors:
                loop.set_exception_handler(accept_errors.previous)


async def serve_forever(settings: Settings) -> None:
    sandbox = RunningSandbox(settings)
    try:
        await sandbox.start()
    except BaseException:
        await sandbox.stop()  # e.g. a port in use: close what was opened before saying so
        raise
    finally:
        settle_heap()
    bound = "" if sandbox.display_host == settings.host else f" (listening on {settings.host or '*'})"
    print(f"vipps-sandbox serving the test environment (apitest.vipps.no) on {sandbox.test_url}{bound}", flush=True)
    print(f"vipps-sandbox serving the production environment (api.vipps.no) on {sandbox.prod_url}{bound}",
          flush=True)
    same = f" --seed {settings.seed}" if settings.seed is not None else \
        f" --fixture {settings.fixture}" if settings.fixture is not None else ""
    print(f"List the keys with `vipps-sandbox keys{same}` or GET {sandbox.test_url}/_sandbox/keys", flush=True)
    if sandbox.app[ADMIN_TOKEN_GENERATED]:
        print(f"The control plane (/_sandbox/) needs 'Authorization: Bearer {settings.admin_token}' "
              "(generated; choose one with --admin-token or VIPPS_SANDBOX_ADMIN_TOKEN).", flush=True)
    elif admin_required(settings):
        print("The control plane (/_sandbox/) needs 'Authorization: Bearer <the admin token you gave>'.", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    # Parse the specs and import the validators (and PyJWT) now, in a thread, rather than on the first request.
    warming = asyncio.get_running_loop().run_in_executor(None, warm)
    warming.add_done_callback(lambda _: release_free_memory())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
            pass
    try:
        await stop.wait()
    finally:
        try:
            await warming
        except Exception as exc:  # only a head start (out of descriptors, say): the specs load on first use anyway
            log.warning("could not parse the specs ahead of the first request: %s", exc)
        await sandbox.stop()
        print("vipps-sandbox stopped.", file=sys.stderr, flush=True)
