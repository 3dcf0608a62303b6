"""The Webhooks API's opaque 404 on delete, explained by the sandbox (issue 12, point 2).

Deleting another owner's webhook (another sales unit's, or one of the other environment) gets the very 404
of an id that was never registered; the sandbox's own headers and log say deny, and whose it is.
"""

from __future__ import annotations

import uuid

from opaque_support import assert_absent, assert_explained, caller_view

PATH = "/webhooks/v1/webhooks"
EVENTS = ["epayments.payment.captured.v1"]


def merchant(sandbox, role: str = "premium-shop-1", env: str = "test") -> tuple[dict, str]:
    msn = sandbox.msn_role(role)
    return sandbox.key("merchant", env, msn=msn), msn


async def register(sandbox, keys: dict, env: str = "test") -> str:
    reply = await sandbox.request("POST", PATH, env, keyset=keys,
                                  json_body={"url": "https://example.com/hook", "events": EVENTS})
    assert reply.status == 201, reply.text
    return reply.json["id"]


async def test_an_unknown_webhook_is_a_not_found(sandbox):
    keys, _ = merchant(sandbox)
    hook_id = str(uuid.uuid4())
    reply = await sandbox.request("DELETE", f"{PATH}/{hook_id}", "test", keyset=keys)
    await assert_absent(sandbox, reply, "webhook-not-found", hook_id)


async def test_another_sales_units_webhook_looks_unknown_but_is_explained(sandbox):
    owner_keys, owner_msn = merchant(sandbox, "premium-shop-1")
    other_keys, other_msn = merchant(sandbox, "premium-shop-2")
    hook_id = str(uuid.uuid4())
    before = await sandbox.request("DELETE", f"{PATH}/{hook_id}", "test", keyset=other_keys)
    real_id = await register(sandbox, owner_keys)
    reply = await sandbox.request("DELETE", f"{PATH}/{real_id}", "test", keyset=other_keys)
    assert reply.status == 404
    await assert_explained(sandbox, reply, "webhook-of-another-owner", real_id, owner_msn, other_msn)
    # Byte for byte: the same id, asked before it existed and after another unit registered it.
    status, headers, body = caller_view(before)
    assert caller_view(reply) == (status, headers, body.replace(hook_id, real_id))
    still = await sandbox.request("GET", PATH, "test", keyset=owner_keys)
    assert [w["id"] for w in still.json["webhooks"]] == [real_id]  # nothing was deleted


async def test_the_other_environments_webhook_looks_unknown_but_is_explained(sandbox):
    test_keys, _ = merchant(sandbox, env="test")
    prod_keys, _ = merchant(sandbox, env="production")
    real_id = await register(sandbox, test_keys)
    reply = await sandbox.request("DELETE", f"{PATH}/{real_id}", "production", keyset=prod_keys)
    assert reply.status == 404
    await assert_explained(sandbox, reply, "webhook-of-another-owner", real_id, "test environment")
