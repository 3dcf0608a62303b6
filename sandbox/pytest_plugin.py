"""The pytest plugin (a `pytest11` entry point): a `vipps_sandbox` fixture with no conftest needed.

The server runs in a thread of its own with its own event loop, so the fixture works the same in
plain synchronous tests and in async tests (whatever loop those use). Its helpers block the thread
that calls them; async tests use their twins under `vipps_sandbox.aio` (`await
vipps_sandbox.aio.token(keys)`), which run the same helper in a worker thread so the test's event
loop keeps running meanwhile (under pytest-asyncio, or anyio with its asyncio backend). The server
starts once per test session (under pytest-xdist: once per worker process, each on its own free ports) and is reset
before every test. `@pytest.mark.vipps_sandbox(fixture=..., seed=..., faults=[...])` picks another
fixture or seed (a separate server, also started once and reset between its tests) and injects
faults. A relative `fixture=` path is taken from pytest's rootdir, so it works whatever directory
pytest is started from.

Imports of the sandbox happen lazily: the plugin loads in every pytest run of an environment that
has vipps-sandbox installed, and must cost nothing when unused.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sandbox.core.runtime import Runtime
    from sandbox.server import RunningSandbox
    from sandbox.testing import Reply

MARKER = "vipps_sandbox"
START_TIMEOUT = 30.0
CALL_TIMEOUT = 30.0

ServerKey = tuple[str | None, int | None, bool]  # (fixture path, seed, rate limits); (None, None, False): the default


class ServerThread:
    """One sandbox (both environments) serving on free loopback ports from a background thread."""

    def __init__(self, fixture: str | None = None, seed: int | None = None, rate_limits: bool = False) -> None:
        from sandbox.core.settings import Settings

        self.settings = Settings(host="127.0.0.1", port=0, prod_port=0,
                                 fixture=Path(fixture) if fixture else None, seed=seed, rate_limits=rate_limits)
        self.loop = asyncio.new_event_loop()
        self.running: RunningSandbox | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vipps-sandbox", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("vipps-sandbox did not start in time")
        if self._error is not None:
            raise RuntimeError(f"vipps-sandbox failed to start: {self._error}") from self._error
        return self

    def _run(self) -> None:
        from sandbox.server import RunningSandbox

        asyncio.set_event_loop(self.loop)
        try:
            self.running = RunningSandbox(self.settings)
            self.loop.run_until_complete(self.running.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.running.stop())
        self.loop.close()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Runs `fn` on the server's loop thread (the only thread that touches its state)."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(CALL_TIMEOUT)

    @property
    def runtime(self) -> Runtime:
        from sandbox.gateway.context import RUNTIME

        assert self.running is not None
        return self.running.app[RUNTIME]

    def reset(self) -> None:
        """Runs on the loop thread: the runtime's reset, then the request log (which the runtime keeps)."""
        self.runtime.reset()
        try:
            from sandbox.ops.requestlog import REQUEST_LOG
        except ImportError:  # pragma: no cover - a sandbox without a request log
            return
        assert self.running is not None
        if REQUEST_LOG in self.running.app:
            self.running.app[REQUEST_LOG].clear()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(START_TIMEOUT)


class SandboxClock:
    """The sandbox's virtual clock, driven from the test's thread."""

    def __init__(self, server: ServerThread) -> None:
        self._server = server

    def now(self) -> datetime:
        return self._server.call(lambda: self._server.runtime.clock.now())

    def time(self) -> float:
        return self._server.call(lambda: self._server.runtime.clock.time())

    def advance(self, seconds: float) -> datetime:
        self._server.call(lambda: self._server.runtime.clock.advance(seconds))
        return self.now()

    def freeze(self) -> datetime:
        self._server.call(lambda: self._server.runtime.clock.freeze())
        return self.now()

    def unfreeze(self) -> None:
        self._server.call(lambda: self._server.runtime.clock.unfreeze())


class VippsSandbox:
    """What a test gets: URLs, keys, tokens, the clock, the simulated user and the request log.

    Every helper blocks the calling thread until the sandbox answers; `.aio` has the same helpers as
    coroutines for async tests."""

    def __init__(self, server: ServerThread) -> None:
        self._server = server
        self.clock = SandboxClock(server)
        self.aio = AsyncVippsSandbox(self)

    @property
    def test_url(self) -> str:
        assert self._server.running is not None
        return self._server.running.test_url

    @property
    def prod_url(self) -> str:
        assert self._server.running is not None
        return self._server.running.prod_url

    def url(self, env: str = "production") -> str:
        return self.test_url if env == "test" else self.prod_url

    # -- keys and tokens -----------------------------------------------------------------------
    def keys(self, type: str | None = None, env: str | None = None, msn: str | None = None) -> list[dict]:
        """Key sets as plain dicts, the same fields as `vipps-sandbox keys --json`."""
        from sandbox.core.keys_listing import keyset_rows
        from sandbox.core.model import Env, KeyType

        key_type, environment = KeyType(type) if type else None, Env(env) if env else None
        return self._server.call(lambda: keyset_rows(self._server.runtime.world, key_type, environment, msn))

    def key(self, type: str, env: str = "production", msn: str | None = None) -> dict:
        """The first key set of this type (and environment, and reaching this MSN)."""
        rows = self.keys(type, env, msn)
        if not rows:
            raise LookupError(f"no {type} keys in {env}" + (f" for MSN {msn}" if msn else ""))
        return rows[0]

    def msn(self, role: str) -> str:
        """The MSN of a fixture sales unit by role, e.g. "premium-shop-1" or "independent-1"."""
        units = self._server.call(lambda: list(self._server.runtime.world.sales_units.values()))
        for unit in units:
            if unit.role == role:
                return unit.msn
        raise LookupError(f"no sales unit with role {role!r}")

    def token(self, keyset: dict) -> str:
        """An access token for these keys, from the endpoint their key type uses."""
        env = keyset["environment"]
        if keyset["type"] in ("management", "accounting"):
            basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
            reply = self.request("POST", "/miami/v1/token", env, data=b"grant_type=client_credentials",
                                 headers={"Authorization": f"Basic {basic}",
                                          "Content-Type": "application/x-www-form-urlencoded"})
        else:
            reply = self.request("POST", "/accesstoken/get", env, headers={
                "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
        if reply.status != 200:
            why = reply.headers.get("Vipps-Sandbox-Reason")  # the body is the real API's; this says why
            raise AssertionError(f"token request failed: {reply.status} {reply.text}" + (f" ({why})" if why else ""))
        return reply.json["access_token"]

    def headers(self, keyset: dict, msn: str | None = None) -> dict[str, str]:
        """Authorization, Ocp-Apim-Subscription-Key and (when given) Merchant-Serial-Number."""
        headers = {"Authorization": f"Bearer {self.token(keyset)}"}
        if keyset.get("subscription_key_primary"):
            headers["Ocp-Apim-Subscription-Key"] = keyset["subscription_key_primary"]
        if msn is not None:
            headers["Merchant-Serial-Number"] = msn
        return headers

    def request(self, method: str, path: str, env: str = "production", *, keyset: dict | None = None,
                msn: str | None = None, json_body: object = None, data: bytes | None = None,
                headers: dict | None = None) -> Reply:
        """One blocking HTTP call to the sandbox (stdlib only), with the keys' headers when given."""
        from sandbox.testing import Reply

        all_headers = self.headers(keyset, msn) if keyset is not None else {}
        all_headers.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            all_headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url(env) + path, data=data, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=CALL_TIMEOUT) as resp:
                return Reply(resp.status, dict(resp.headers), resp.read().decode())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, dict(exc.headers), exc.read().decode())

    # -- the control plane ---------------------------------------------------------------------------
    def approve(self, msn: str, reference: str, env: str | None = None) -> dict:
        """The user approves the payment. Without `env`, the test environment first, then production."""
        for candidate in ((env,) if env else ("test", "production")):
            reply = self.request("POST", f"/_sandbox/payments/{msn}/{reference}/approve", candidate)
            if reply.status == 200:
                return reply.json
            if reply.status != 404 or env:
                break
        raise AssertionError(f"approve {msn}/{reference} failed: {reply.status} {reply.text}")

    def requests(self, **query: str | int) -> list[dict]:
        """The request log of this test (GET /_sandbox/requests), newest first. Filters: limit, keyType,
        decision ("allow" or "deny"), msn, since."""
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        reply = self.request("GET", "/_sandbox/requests" + suffix, "test")
        if reply.status != 200:
            raise AssertionError(f"GET /_sandbox/requests failed: {reply.status} {reply.text}")
        return reply.json["entries"]

    def add_fault(self, rule: dict) -> dict:
        reply = self.request("POST", "/_sandbox/faults", "test", json_body=rule)
        if reply.status not in (200, 201):
            raise AssertionError(f"POST /_sandbox/faults failed: {reply.status} {reply.text}")
        return reply.json

    def inbox(self, name: str) -> list[dict]:
        """What the webhook inbox /_sandbox/inbox/{name} received."""
        return self.request("GET", f"/_sandbox/inbox/{name}", "test").json["deliveries"]

    def reset(self) -> None:
        """Back to the fixture: directory, payments, webhooks, clock, faults; and an empty request log."""
        self._server.call(self._server.reset)


async def _off_the_loop(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Runs a blocking helper in a worker thread and awaits it, so the caller's event loop keeps running.

    The helper's HTTP call (to the server's own loop, on the server's thread) and its cross-thread calls
    block only that worker thread. Nothing here is bound to one loop: any asyncio loop may await it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "vipps_sandbox.aio needs a running asyncio event loop (pytest-asyncio, or anyio with its asyncio "
            "backend); elsewhere call the blocking helpers on vipps_sandbox itself from a worker thread") from None
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


class AsyncSandboxClock:
    """`vipps_sandbox.aio.clock`: the virtual clock's helpers as coroutines."""

    def __init__(self, clock: SandboxClock) -> None:
        self._clock = clock

    async def now(self) -> datetime:
        return await _off_the_loop(self._clock.now)

    async def time(self) -> float:
        return await _off_the_loop(self._clock.time)

    async def advance(self, seconds: float) -> datetime:
        return await _off_the_loop(self._clock.advance, seconds)

    async def freeze(self) -> datetime:
        return await _off_the_loop(self._clock.freeze)

    async def unfreeze(self) -> None:
        await _off_the_loop(self._clock.unfreeze)


class AsyncVippsSandbox:
    """`vipps_sandbox.aio`: every helper of the fixture as a coroutine that never blocks the test's event loop.

    Same names, arguments and results as the blocking helpers (`await vipps_sandbox.aio.token(keys)` is
    `vipps_sandbox.token(keys)`); each runs in a worker thread, so several may run at once (`asyncio.gather`)."""

    def __init__(self, sandbox: VippsSandbox) -> None:
        self._sandbox = sandbox
        self.clock = AsyncSandboxClock(sandbox.clock)

    @property
    def test_url(self) -> str:
        return self._sandbox.test_url

    @property
    def prod_url(self) -> str:
        return self._sandbox.prod_url

    def url(self, env: str = "production") -> str:
        return self._sandbox.url(env)

    async def keys(self, type: str | None = None, env: str | None = None, msn: str | None = None) -> list[dict]:
        return await _off_the_loop(self._sandbox.keys, type, env, msn)

    async def key(self, type: str, env: str = "production", msn: str | None = None) -> dict:
        return await _off_the_loop(self._sandbox.key, type, env, msn)

    async def msn(self, role: str) -> str:
        return await _off_the_loop(self._sandbox.msn, role)

    async def token(self, keyset: dict) -> str:
        return await _off_the_loop(self._sandbox.token, keyset)

    async def headers(self, keyset: dict, msn: str | None = None) -> dict[str, str]:
        return await _off_the_loop(self._sandbox.headers, keyset, msn)

    async def request(self, method: str, path: str, env: str = "production", *, keyset: dict | None = None,
                      msn: str | None = None, json_body: object = None, data: bytes | None = None,
                      headers: dict | None = None) -> Reply:
        return await _off_the_loop(self._sandbox.request, method, path, env, keyset=keyset, msn=msn,
                                   json_body=json_body, data=data, headers=headers)

    async def approve(self, msn: str, reference: str, env: str | None = None) -> dict:
        return await _off_the_loop(self._sandbox.approve, msn, reference, env)

    async def requests(self, **query: str | int) -> list[dict]:
        return await _off_the_loop(self._sandbox.requests, **query)

    async def add_fault(self, rule: dict) -> dict:
        return await _off_the_loop(self._sandbox.add_fault, rule)

    async def inbox(self, name: str) -> list[dict]:
        return await _off_the_loop(self._sandbox.inbox, name)

    async def reset(self) -> None:
        await _off_the_loop(self._sandbox.reset)


class _Servers:
    """The servers of this session (of this xdist worker), started on first use."""

    def __init__(self) -> None:
        self.servers: dict[ServerKey, ServerThread] = {}

    def get(self, key: ServerKey) -> ServerThread:
        server = self.servers.get(key)
        if server is None:
            server = self.servers[key] = ServerThread(*key).start()
        return server

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()
        self.servers.clear()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(fixture=None, seed=None, faults=None, rate_limits=False): configure the "
        "vipps_sandbox fixture for this test: another fixture file or generator seed, or the documented rate limits "
        "(each a separate server), and fault rules for /_sandbox/faults.")


@pytest.fixture(scope="session")
def _vipps_sandbox_servers() -> Iterator[_Servers]:
    servers = _Servers()
    yield servers
    servers.stop()


@pytest.fixture
def vipps_sandbox(request: pytest.FixtureRequest, _vipps_sandbox_servers: _Servers) -> VippsSandbox:
    """A running Vipps MobilePay sandbox, reset to its fixture for this test."""
    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker else {}
    unknown = sorted(set(options) - {"fixture", "seed", "faults", "rate_limits"})
    if unknown or (marker and marker.args):
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes fixture=, seed=, faults= and rate_limits= only")
    fixture = options.get("fixture")
    if fixture:  # relative to the project (pytest's rootdir), not to wherever pytest was started from
        fixture = Path(fixture) if Path(fixture).is_absolute() else request.config.rootpath / fixture
    server = _vipps_sandbox_servers.get((str(fixture) if fixture else None, options.get("seed"),
                                         bool(options.get("rate_limits"))))
    sandbox = VippsSandbox(server)
    sandbox.reset()
    for rule in options.get("faults") or ():
        sandbox.add_fault(rule)
    return sandbox
