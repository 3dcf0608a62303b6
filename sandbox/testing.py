"""Helpers for driving a running sandbox over real HTTP from tests (ours and the pytest plugin's)."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import re
import sys
from dataclasses import dataclass

import aiohttp

from sandbox.apis.checkout import response_schemas as checkout_responses
from sandbox.apis.epayment import response_schemas as epayment_responses
from sandbox.apis.login import response_schemas as login_responses
from sandbox.apis.management import response_schemas as management_responses
from sandbox.apis.ordermanagement import response_schemas as ordermanagement_responses
from sandbox.apis.qr import response_schemas as qr_responses
from sandbox.apis.recurring import response_schemas as recurring_responses
from sandbox.apis.report import response_schemas as report_responses
from sandbox.apis.userinfo import response_schemas as userinfo_responses
from sandbox.apis.webhooks import event_schemas
from sandbox.core.keys_listing import keyset_rows
from sandbox.core.model import MIAMI_KEY_TYPES, Env, KeyType
from sandbox.core.runtime import Runtime
from sandbox.core.settings import Settings
from sandbox.gateway.context import RUNTIME
from sandbox.server import RunningSandbox


@dataclass
class Reply:
    status: int
    headers: dict
    text: str

    @property
    def json(self):
        return json.loads(self.text) if self.text else None


#: Each API's check of a successful response body against its spec (sandbox/apis/*/response_schemas.py).
RESPONSE_CHECKS = (epayment_responses.violations, management_responses.violations, report_responses.violations,
                   recurring_responses.violations, event_schemas.violations, userinfo_responses.violations,
                   qr_responses.violations, ordermanagement_responses.violations, login_responses.violations,
                   checkout_responses.violations)


class SandboxClient:
    """A running sandbox plus an HTTP session: keys, tokens and requests in one line each."""

    def __init__(self, running: RunningSandbox, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.session = session

    @property
    def runtime(self) -> Runtime:
        return self.running.app[RUNTIME]

    def url(self, env: Env | str) -> str:
        return self.running.test_url if Env(env) is Env.TEST else self.running.prod_url

    def keys(self, type: str | None = None, env: str | None = None, msn: str | None = None,
             owner: str | None = None) -> list[dict]:
        rows = keyset_rows(self.runtime.world, KeyType(type) if type else None, Env(env) if env else None, msn)
        return [r for r in rows if owner is None or r["owner"] == owner]

    def key(self, type: str, env: str = "production", msn: str | None = None, owner: str | None = None) -> dict:
        rows = self.keys(type, env, msn, owner)
        if not rows:
            raise LookupError(f"no {type} keys in {env} for msn={msn} owner={owner}")
        return rows[0]

    def partner_role(self, role: str) -> str:
        return next(p.id for p in self.runtime.world.partners.values() if p.role == role)

    def msn_role(self, role: str) -> str:
        return next(u.msn for u in self.runtime.world.sales_units.values() if u.role == role)

    async def token(self, keyset: dict, env: str | None = None) -> str:
        env = env or keyset["environment"]
        if keyset["type"] in MIAMI_KEY_TYPES:
            basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
            reply = await self.request("POST", "/miami/v1/token", env, data="grant_type=client_credentials",
                                       headers={"Authorization": f"Basic {basic}",
                                                "Content-Type": "application/x-www-form-urlencoded"})
        else:
            reply = await self.request("POST", "/accesstoken/get", env, headers={
                "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
        if reply.status != 200:
            why = reply.headers.get("Vipps-Sandbox-Reason")  # the body is the real API's; this says why
            raise AssertionError(f"token request failed: {reply.status} {reply.text}" + (f" ({why})" if why else ""))
        return reply.json["access_token"]

    async def auth_headers(self, keyset: dict, msn: str | None = None, env: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {await self.token(keyset, env)}"}
        if keyset.get("subscription_key_primary"):
            headers["Ocp-Apim-Subscription-Key"] = keyset["subscription_key_primary"]
        if msn is not None:
            headers["Merchant-Serial-Number"] = msn
        return headers

    async def request(self, method: str, path: str, env: str = "production", *, keyset: dict | None = None,
                      msn: str | None = None, json_body: object = None, data: str | bytes | None = None,
                      headers: dict | None = None) -> Reply:
        all_headers = await self.auth_headers(keyset, msn) if keyset is not None else {}
        all_headers.update(headers or {})
        if json_body is not None:
            data = json.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        async with self.session.request(method, self.url(env) + path, data=data, headers=all_headers) as resp:
            reply = Reply(resp.status, dict(resp.headers), await resp.text())
        problems = [problem for check in RESPONSE_CHECKS for problem in check(method, path, reply.status, reply.text)]
        if problems:
            raise AssertionError(f"{method} {path} answered {reply.status} with a body the spec does not allow: "
                                 f"{problems}")
        return reply


@contextlib.asynccontextmanager
async def started(settings: Settings):
    """A real sandbox on loopback with these settings, and a client for it; stopped afterwards."""
    running = RunningSandbox(settings)
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield SandboxClient(running, session)
    finally:
        await running.stop()


SERVING = re.compile(r"serving the (test|production) environment .* on (http://\S+)")


async def spawn(args: list[str], env: dict | None = None, cwd: str | None = None,
                timeout: float = 30.0) -> tuple[asyncio.subprocess.Process, str, str]:
    """`python -m sandbox serve ARGS --port 0 --prod-port 0` in its own process; returns it with the test and
    production URLs it printed. Free ports are picked by the server itself, so no other process can take
    them in between (a race that picking them first would have)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "serve", *args, "--port", "0", "--prod-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=cwd)
    urls: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout):
            while len(urls) < 2:
                line = await proc.stdout.readline()
                if not line:
                    raise AssertionError(f"the server exited at start (code {await proc.wait()})")
                match = SERVING.search(line.decode(errors="replace"))
                if match:
                    urls[match.group(1)] = match.group(2)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    asyncio.get_running_loop().create_task(_drain(proc))
    return proc, urls["test"], urls["production"]


#: The last lines each spawned server printed, so a failing test can show what the server said (a traceback).
OUTPUT_TAILS: dict[int, collections.deque[str]] = {}


def output_tail(proc: asyncio.subprocess.Process) -> str:
    """What a server started with `spawn` printed last (up to 200 lines)."""
    return "".join(OUTPUT_TAILS.get(proc.pid, ()))


async def _drain(proc: asyncio.subprocess.Process) -> None:
    """Keeps reading the server's output so a full pipe never blocks it, keeping the last lines."""
    assert proc.stdout is not None
    tail = OUTPUT_TAILS.setdefault(proc.pid, collections.deque(maxlen=200))
    while line := await proc.stdout.readline():
        tail.append(line.decode(errors="replace"))
