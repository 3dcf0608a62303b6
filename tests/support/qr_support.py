"""Shared helpers for the QR and Order Management tests: keys, one-line calls, polling an inbox."""

from __future__ import annotations

import asyncio

from sandbox.testing import Reply, SandboxClient

QR = "/qr/v1"
OM = "/order-management"
CHECKED_IN = "user.checked-in.v1"


def merchant(sandbox: SandboxClient, env: str = "test", role: str = "premium-shop-1") -> tuple[dict, str]:
    msn = sandbox.msn_role(role)
    return sandbox.key("merchant", env, msn=msn), msn


def partner(sandbox: SandboxClient, role: str = "premium") -> dict:
    return sandbox.key("partner", "production", owner=sandbox.partner_role(role))


async def call(sandbox: SandboxClient, method: str, path: str, keys: dict, msn: str | None, env: str = "test",
               body: object = None, headers: dict | None = None) -> Reply:
    all_headers = await sandbox.auth_headers(keys, msn, env=env)
    all_headers.update(headers or {})
    return await sandbox.request(method, path, env, json_body=body, headers=all_headers)


async def eventually(check, timeout: float = 5.0):
    """Polls `check` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def inbox(sandbox: SandboxClient, name: str, env: str = "test") -> list[dict]:
    reply = await sandbox.request("GET", f"/_sandbox/inbox/{name}", env)
    assert reply.status == 200, reply.text
    return reply.json["deliveries"]


async def register_check_in(sandbox: SandboxClient, keys: dict, msn: str | None, name: str, env: str = "test") -> None:
    url = f"{sandbox.url(env)}/_sandbox/inbox/{name}"
    reply = await call(sandbox, "POST", "/webhooks/v1/webhooks", keys, msn, env,
                       body={"url": url, "events": [CHECKED_IN]})
    assert reply.status == 201, reply.text
