"""The admin token: bound off loopback, the control plane needs it; users' pages and the APIs do not."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

import aiohttp
import pytest

from sandbox.core.settings import Settings
from sandbox.gateway.admin import ADMIN_TOKEN_GENERATED
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient


@pytest.fixture
async def exposed(request):
    """A sandbox bound to every address (as in Docker), called on 127.0.0.1."""
    token = getattr(request, "param", None)
    running = RunningSandbox(Settings(host="0.0.0.0", port=0, prod_port=0, admin_token=token))
    await running.start()
    async with aiohttp.ClientSession() as session:
        yield SandboxClient(running, session)
    await running.stop()


async def test_a_generated_token_guards_the_control_plane(exposed):
    token = exposed.running.settings.admin_token
    assert token and len(token) >= 32 and exposed.running.app[ADMIN_TOKEN_GENERATED] is True
    reply = await exposed.request("GET", "/_sandbox/keys", "test")
    assert reply.status == 401 and reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.headers["Vipps-Sandbox-Rule"] == "admin-token-required"
    assert "admin token" in reply.json["detail"] and reply.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = await exposed.request("POST", "/_sandbox/reset", "production", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.headers["Vipps-Sandbox-Rule"] == "admin-token-wrong"
    for method, path in (("GET", "/_sandbox/keys"), ("POST", "/_sandbox/reset"), ("GET", "/_sandbox/requests"),
                         ("GET", "/_sandbox/faults")):
        reply = await exposed.request(method, path, "test", headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 200, (path, reply.text)


async def test_health_user_pages_and_the_apis_need_no_admin_token(exposed):
    assert (await exposed.request("GET", "/_sandbox/health", "test")).status == 200
    for path in ("/_sandbox/landing", "/_sandbox/qr", "/_sandbox/product-orders/nope"):
        assert (await exposed.request("GET", path, "test")).status != 401, path
    merchant = exposed.key("merchant", "test")
    assert (await exposed.request("GET", "/webhooks/v1/webhooks", "test", keyset=merchant)).status == 200


@pytest.mark.parametrize("exposed", ["a-chosen-admin-token-0123456789"], indirect=True)
async def test_a_given_token_is_used_and_never_logged(exposed):
    assert exposed.running.app[ADMIN_TOKEN_GENERATED] is False
    auth = {"Authorization": "Bearer a-chosen-admin-token-0123456789"}
    assert (await exposed.request("POST", "/_sandbox/faults", "test", headers=auth,
                                  json_body={"path": "/x", "status": 500})).status == 201
    assert (await exposed.request("GET", "/_sandbox/faults", "test", headers={"Authorization": "Bearer x"})).status \
        == 401
    log = await exposed.request("GET", "/_sandbox/requests", "test", headers=auth)
    assert "a-chosen-admin-token" not in log.text
    denied = [e for e in log.json["entries"] if e["status"] == 401]
    assert denied[0]["decision"]["allowed"] is False and denied[0]["decision"]["rule"] == "admin-token-wrong"
    assert denied[0]["route"] == "sandbox.faults.list" and denied[0]["credentials"] == {"adminToken": "…"}
    assert log.json["entries"][-1]["decision"]["rule"] == "admin-token-accepted"


async def test_loopback_needs_no_token(sandbox):
    assert sandbox.running.settings.admin_token is None
    assert sandbox.running.app[ADMIN_TOKEN_GENERATED] is False
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200


async def test_serve_prints_a_generated_token_and_accepts_the_flag():
    env = dict(os.environ)
    env.pop("VIPPS_SANDBOX_ADMIN_TOKEN", None)

    async def first_lines(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", "serve", "--host", "0.0.0.0", "--port", "0", "--prod-port", "0", *args,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        try:
            lines = []
            while not lines or not lines[-1].startswith("Press Ctrl-C"):
                line = await asyncio.wait_for(proc.stdout.readline(), 20)
                assert line, "serve exited early"
                lines.append(line.decode().strip())
            return "\n".join(lines)
        finally:
            proc.terminate()
            await proc.wait()

    generated = await first_lines()
    assert re.search(r"Authorization: Bearer [A-Za-z0-9_-]{32,}' \(generated", generated), generated
    given = await first_lines("--admin-token", "my-own-admin-token-123456")
    assert "my-own-admin-token" not in given and "the admin token you gave" in given
