"""Serving one app on two ports: test ("apitest") and production ("api"); optionally HTTPS on a third port for
both, and a proxy for HTTPS_PROXY (sandbox/core/ca.py, sandbox/gateway/proxy.py)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.app import create_app
from sandbox.core import spec, system_cas
from sandbox.core.model import Env
from sandbox.core.settings import Settings
from sandbox.gateway import tokens
from sandbox.gateway.admin import ADMIN_TOKEN_GENERATED, admin_required
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.lowlevel import AcceptErrors, SandboxRunner, TLSSite
from sandbox.ops.persistence import PERSISTENCE

if TYPE_CHECKING:
    from sandbox.gateway.proxy import Tunnels

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
    the parsed specs (first validated body), then the system CAs of aiohttp's client TLS contexts (first outgoing
    HTTPS request, which loads them itself if it comes first: sandbox/core/system_cas.py) and zoneinfo (first
    ledger, sandbox/apis/report/ledger.py). The imports come first, as soon as the server listens: a first request
    that imports a module itself then rarely does so while this thread imports it too."""
    tokens.warm()
    spec.warm()
    system_cas.load()
    import zoneinfo  # noqa: F401


def settle_heap() -> None:
    """Called once the warm-up is done (`vipps-sandbox serve` starts with the garbage collector off, and leaves it
    off while it starts and warms up): what starting and warming made (modules, the fixture's directory, the
    routes, the parsed specs) lives as long as the process, so one collection frees what little of it is garbage
    (~1,800 objects, ~0.4 MB), the rest is frozen out of the collector's later passes (gc.freeze: a full
    collection then walks only what requests made), and collection is switched back on. Starting costs ~65M
    instructions less (the collector's passes over the growing heap while modules import); the collection itself
    (20-60 ms over ~80,000 objects) runs after the server listens, not before its first answer. What requests
    made before the warm-up ended and still hold is frozen with it (a few objects: the warm-up takes ~0.1 s)."""
    gc.collect()
    gc.freeze()
    gc.enable()


def settle() -> None:
    """Once warm: the heap settled (settle_heap), then glibc's free pages handed back (release_free_memory)."""
    settle_heap()
    release_free_memory()


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
        self.tls_port: int | None = None  # bound ports of --tls-port and --proxy-port, when given
        self.proxy_port: int | None = None
        self.ca_cert: Path | None = None  # the CA certificate clients trust, when either is on
        self.new_ca = False  # the CA was made by this start: say so
        self._proxy: asyncio.Server | None = None
        self._tunnels: Tunnels | None = None
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
        if self.settings.tls_port is not None or self.settings.proxy_port is not None:
            await self._start_tls()

    async def _start_tls(self) -> None:
        """The TLS port and the proxy (both need the CA, made on first use)."""
        from sandbox.core.ca import Authority, ca_directory
        from sandbox.gateway.proxy import ProxyProtocol, Tunnels

        settings = self.settings
        authority = Authority(ca_directory(settings.ca_dir, settings.state))
        loop = asyncio.get_running_loop()
        self.new_ca = await loop.run_in_executor(None, authority.ensure)
        self.ca_cert = authority.cert_path
        context = authority.server_context()
        if settings.tls_port is not None:
            site = TLSSite(self.runner, settings.host, settings.tls_port, ssl_context=context, reuse_address=True,
                           handshake_timeout=settings.head_timeout)
            await site.start()
            self.tls_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if settings.proxy_port is not None:
            tunnels = self._tunnels = Tunnels(self.runner, context)
            self._proxy = await loop.create_server(lambda: ProxyProtocol(tunnels), settings.host, settings.proxy_port,
                                                   reuse_address=True)
            self.proxy_port = self._proxy.sockets[0].getsockname()[1]

    @property
    def display_host(self) -> str:
        return "127.0.0.1" if self.settings.host in ("0.0.0.0", "", "::") else self.settings.host

    @property
    def test_url(self) -> str:
        return f"http://{self.display_host}:{self.test_port}"

    @property
    def prod_url(self) -> str:
        return f"http://{self.display_host}:{self.prod_port}"

    @property
    def tls_url(self) -> str | None:
        return None if self.tls_port is None else f"https://{self.display_host}:{self.tls_port}"

    @property
    def proxy_url(self) -> str | None:
        return None if self.proxy_port is None else f"http://{self.display_host}:{self.proxy_port}"

    async def stop(self) -> None:
        proxy, self._proxy = self._proxy, None
        if proxy is not None:  # no new proxy connections; those handed to the app close with it
            proxy.close()
            if self._tunnels is not None:
                self._tunnels.close_pending()
        await self.runner.cleanup()
        if proxy is not None:  # since 3.12 this waits for its connections too: a tunnel's TLS shutdown is bounded
            try:
                await asyncio.wait_for(proxy.wait_closed(), 2)
            except TimeoutError:
                log.warning("stopped with proxy connections still closing")
        accept_errors, self._accept_errors = self._accept_errors, None
        if accept_errors is not None:
            loop = asyncio.get_running_loop()
            if loop.get_exception_handler() is accept_errors:
                loop.set_exception_handler(accept_errors.previous)


def print_tls(sandbox: RunningSandbox, bound: str) -> None:
    """The lines about the TLS port and the proxy, when on. They never match testing.SERVING's pattern."""
    if sandbox.ca_cert is None:
        return
    if sandbox.tls_url is not None:
        print(f"vipps-sandbox serving HTTPS for both environments on {sandbox.tls_url}{bound} (apitest.vipps.no: test, "
              "api.vipps.no: production, chosen by the Host header or the TLS server name; other names: test)",
              flush=True)
    if sandbox.proxy_url is not None:
        print(f"vipps-sandbox proxy for apitest.vipps.no and api.vipps.no on {sandbox.proxy_url}{bound}: "
              f"HTTPS_PROXY={sandbox.proxy_url} (every other host is refused)", flush=True)
    made = "made now; " if sandbox.new_ca else ""
    print(f"The sandbox's CA certificate ({made}trust it in your client; `vipps-sandbox ca` says how): "
          f"{sandbox.ca_cert}", flush=True)


async def serve_forever(settings: Settings) -> None:
    sandbox = RunningSandbox(settings)
    try:
        await sandbox.start()
    except BaseException:
        settle_heap()
        await sandbox.stop()  # e.g. a port in use: close what was opened before saying so
        raise
    bound = "" if sandbox.display_host == settings.host else f" (listening on {settings.host or '*'})"
    print(f"vipps-sandbox serving the test environment (apitest.vipps.no) on {sandbox.test_url}{bound}", flush=True)
    print(f"vipps-sandbox serving the production environment (api.vipps.no) on {sandbox.prod_url}{bound}",
          flush=True)
    same = f" --seed {settings.seed}" if settings.seed is not None else \
        f" --fixture {settings.fixture}" if settings.fixture is not None else ""
    print_tls(sandbox, bound)
    print(f"List the keys with `vipps-sandbox keys{same}` or GET {sandbox.test_url}/_sandbox/keys", flush=True)
    print(f"The dashboard: {sandbox.test_url}/_sandbox/ (the virtual phone: /_sandbox/phone/<phone number>; "
          "the go-live readiness report: /_sandbox/readiness?msn=<MSN>)", flush=True)
    if sandbox.app[ADMIN_TOKEN_GENERATED]:
        print(f"The control plane (/_sandbox/) needs 'Authorization: Bearer {settings.admin_token}' "
              "(generated; choose one with --admin-token or VIPPS_SANDBOX_ADMIN_TOKEN).", flush=True)
    elif admin_required(settings):
        print("The control plane (/_sandbox/) needs 'Authorization: Bearer <the admin token you gave>'.", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    # Parse the specs and import the validators (and PyJWT) now, in a thread, rather than on the first request;
    # then, on the loop's thread, the heap's one collection and freeze, and the free pages back to the system.
    warming = asyncio.get_running_loop().run_in_executor(None, warm)
    warming.add_done_callback(lambda _: settle())
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
