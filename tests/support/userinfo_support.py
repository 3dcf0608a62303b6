"""Shared helpers for the Userinfo tests: a payment or an agreement that shares a profile, the read, error checks."""

from __future__ import annotations

from epayment_support import Merchant, create_body

from sandbox.core.spec import SpecSchemas
from sandbox.testing import Reply

SPEC = SpecSchemas("userinfo-2.0.3.yaml")
BASE = "/vipps-userinfo-api/userinfo"
WEEK = 168 * 3600


async def read(caller, sub: str, drop: tuple[str, ...] = (), headers: dict | None = None) -> Reply:
    """GET /vipps-userinfo-api/userinfo/{sub} with the caller's token (and MSN), minus the headers in `drop`."""
    sent = {k: v for k, v in (await caller.headers()).items() if k not in drop}
    sent.update(headers or {})
    return await caller.sandbox.request("GET", f"{BASE}/{sub}", caller.env, headers=sent)


async def shared_payment(shop: Merchant, reference: str, phone: str, scope: str) -> str:
    """A payment that asks for `scope`, approved by the user `phone` (control plane); returns its profile.sub."""
    reply = await shop.create(create_body(reference, profile={"scope": scope}))
    assert reply.status == 201, reply.text
    reply = await shop.sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/{reference}/approve", shop.env,
                                       json_body={"phoneNumber": phone})
    assert reply.status == 200, reply.text
    payment = (await shop.get(reference)).json
    assert payment["state"] == "AUTHORIZED"
    return payment["profile"]["sub"]


def assert_error(reply: Reply, status: int, rule: str | None = None) -> dict:
    """A UserinfoError (the spec's: status as a string, extraInfo an object) with this status."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json"), reply.headers
    body = reply.json
    assert not SPEC.errors("UserinfoError", body), SPEC.errors("UserinfoError", body)
    assert set(body) == {"type", "title", "status", "detail", "instance", "extraInfo"}, body
    assert body["status"] == str(status)
    if rule is not None:
        assert reply.headers["Vipps-Sandbox-Rule"] == rule, reply.headers
    return body


async def advance(sandbox, seconds: float, env: str = "test") -> None:
    reply = await sandbox.request("POST", "/_sandbox/clock", env, json_body={"advanceSeconds": seconds})
    assert reply.status == 200, reply.text
