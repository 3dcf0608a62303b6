"""The Webhooks API: registrations, the key-type policy, and signed deliveries checked independently."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket

import pytest
from aiohttp import web

from sandbox.apis.webhooks.backend import authorization, content_sha256, string_to_sign
from sandbox.apis.webhooks.routes import WEBHOOKS
from sandbox.core.spec import SpecSchemas

PATH = "/webhooks/v1/webhooks"
CAPTURED = "epayments.payment.captured.v1"
CREATED = "epayments.payment.created.v1"
SPEC = SpecSchemas("webhooks.yaml")


def merchant(sandbox, role: str = "premium-shop-1", env: str = "test") -> tuple[dict, str]:
    msn = sandbox.msn_role(role)
    return sandbox.key("merchant", env, msn=msn), msn


def partner(sandbox, role: str = "premium") -> dict:
    return sandbox.key("partner", "production", owner=sandbox.partner_role(role))


def event(msn: str, reference: str = "order-1001", kind: str = "captured", env: str = "test", **extra) -> dict:
    payload = {"env": env, "msn": msn, "reference": reference, "pspReference": f"psp-{reference}-{kind}",
               "name": kind.upper(), "amount": {"currency": "NOK", "value": 1000}, "timestamp": 1767225600.25,
               "idempotencyKey": f"idem-{reference}", "success": True, "paymentDescription": "Shoes",
               "phoneNumber": "4791234567"}
    payload.update(extra)
    return payload


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


async def inbox(sandbox, name: str, env: str = "test") -> list[dict]:
    reply = await sandbox.request("GET", f"/_sandbox/inbox/{name}", env)
    assert reply.status == 200, reply.text
    return reply.json["deliveries"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- register / list / delete ---------------------------------------------------------------------


async def test_register_list_delete(sandbox):
    keys, msn = merchant(sandbox)
    reply = await sandbox.request("POST", PATH, "test", keyset=keys,
                                  json_body={"url": "https://example.com/hook", "events": [CAPTURED, CREATED]})
    assert reply.status == 201, reply.text
    assert SPEC.errors("RegisterResponse", reply.json) == []
    hook_id = reply.json["id"]
    assert len(base64.b64decode(reply.json["secret"])) == 64

    listed = await sandbox.request("GET", PATH, "test", keyset=keys)
    assert listed.status == 200
    assert SPEC.errors("QueryResponse", listed.json) == []
    assert listed.json == {"webhooks": [{"id": hook_id, "url": "https://example.com/hook",
                                         "events": [CAPTURED, CREATED]}]}
    assert "secret" not in listed.text

    # Other sales units and the other environment see nothing of it.
    other_keys, _ = merchant(sandbox, "independent-1")
    assert (await sandbox.request("GET", PATH, "test", keyset=other_keys)).json == {"webhooks": []}
    prod_keys, _ = merchant(sandbox, env="production")
    assert (await sandbox.request("GET", PATH, "production", keyset=prod_keys)).json == {"webhooks": []}
    assert (await sandbox.request("DELETE", f"{PATH}/{hook_id}", "test", keyset=other_keys)).status == 404

    deleted = await sandbox.request("DELETE", f"{PATH}/{hook_id}", "test", keyset=keys)
    assert deleted.status == 204 and deleted.text == ""
    assert (await sandbox.request("GET", PATH, "test", keyset=keys)).json == {"webhooks": []}
    again = await sandbox.request("DELETE", f"{PATH}/{hook_id}", "test", keyset=keys)
    assert again.status == 404
    assert again.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("body, field", [
    ({"events": [CAPTURED]}, "url"),
    ({"url": "https://example.com/hook"}, "events"),
    ({"url": "https://example.com/hook", "events": [CAPTURED], "extra": 1}, "body"),
    ({"url": "https://example.com/hook", "events": "epayments.payment.captured.v1"}, "events"),
    ({"url": "https://example.com/hook", "events": []}, "events"),
    ({"url": "https://example.com/hook", "events": ["epayments.payment.nonsense.v1"]}, "events[0]"),
    ({"url": 42, "events": [CAPTURED]}, "url"),
])
async def test_invalid_registration_is_a_400_naming_the_field(sandbox, body, field):
    keys, _ = merchant(sandbox)
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, json_body=body)
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    problem = reply.json
    assert SPEC.errors("ProblemDetails", problem) == []
    assert problem["instance"] == "/v1/webhooks"
    assert field in [d["name"] for d in problem["extraDetails"]], problem


async def test_malformed_json_and_bad_id_are_400(sandbox):
    keys, _ = merchant(sandbox)
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, data="{nope",
                                  headers={"Content-Type": "application/json"})
    assert reply.status == 400
    reply = await sandbox.request("DELETE", f"{PATH}/not-a-uuid", "test", keyset=keys)
    assert reply.status == 400
    assert reply.json["extraDetails"][0]["name"] == "id"


@pytest.mark.parametrize("url, ok", [
    ("https://example.com/hook", True),
    ("https://example.com:8443/hook?x=1", True),
    ("http://127.0.0.1:9/hook", True),
    ("http://localhost:8080/hook", True),
    ("http://[::1]:8080/hook", True),
    ("http://example.com/hook", False),
    ("http://10.0.0.5/hook", False),
    ("ftp://example.com/hook", False),
    ("https:///nohost", False),
    ("https://user:pw@example.com/hook", False),
    ("not a url", False),
])
async def test_url_rules(sandbox, url, ok):
    keys, _ = merchant(sandbox)
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    assert reply.status == (201 if ok else 400), reply.text
    if not ok:
        assert reply.json["extraDetails"][0]["name"] == "url"


async def test_at_most_25_registrations_per_event_type_per_sales_unit(sandbox):
    keys, _ = merchant(sandbox)
    ids = []
    for n in range(25):
        reply = await sandbox.request("POST", PATH, "test", keyset=keys,
                                      json_body={"url": f"https://example.com/{n}", "events": [CAPTURED]})
        assert reply.status == 201, reply.text
        ids.append(reply.json["id"])
    full = await sandbox.request("POST", PATH, "test", keyset=keys,
                                 json_body={"url": "https://example.com/26", "events": [CREATED, CAPTURED]})
    assert full.status == 400
    assert "25" in full.json["detail"]
    # Another event type, and another sales unit, still have room.
    assert (await sandbox.request("POST", PATH, "test", keyset=keys,
                                  json_body={"url": "https://example.com/c", "events": [CREATED]})).status == 201
    other, _ = merchant(sandbox, "independent-1")
    assert (await sandbox.request("POST", PATH, "test", keyset=other,
                                  json_body={"url": "https://example.com/o", "events": [CAPTURED]})).status == 201
    # Deleting one frees a slot.
    assert (await sandbox.request("DELETE", f"{PATH}/{ids[0]}", "test", keyset=keys)).status == 204
    assert (await sandbox.request("POST", PATH, "test", keyset=keys,
                                  json_body={"url": "https://example.com/26", "events": [CAPTURED]})).status == 201


# -- the key-type policy ----------------------------------------------------------------------------


@pytest.mark.parametrize("key_type, owner_role", [("management", "basic"), ("accounting", "accountant")])
async def test_management_and_accounting_keys_are_refused(sandbox, key_type, owner_role):
    keys = sandbox.key(key_type, "production", owner=sandbox.partner_role(owner_role))
    for method, path, body in (("POST", PATH, {"url": "https://example.com/h", "events": [CAPTURED]}),
                               ("GET", PATH, None)):
        reply = await sandbox.request(method, path, "production", keyset=keys, json_body=body)
        assert reply.status == 403, reply.text
        assert reply.headers["Vipps-Sandbox-Rule"] in ("management-keys-never-act-on-behalf",
                                                        "accounting-keys-report-only")


async def test_partner_keys_with_and_without_msn(sandbox):
    keys = partner(sandbox)
    msn = sandbox.msn_role("premium-shop-1")
    wide = await sandbox.request("POST", PATH, "production", keyset=keys,
                                 json_body={"url": "https://example.com/all", "events": [CAPTURED]})
    assert wide.status == 201, wide.text
    one = await sandbox.request("POST", PATH, "production", keyset=keys, msn=msn,
                                json_body={"url": "https://example.com/one", "events": [CAPTURED]})
    assert one.status == 201
    listed_wide = (await sandbox.request("GET", PATH, "production", keyset=keys)).json["webhooks"]
    listed_one = (await sandbox.request("GET", PATH, "production", keyset=keys, msn=msn)).json["webhooks"]
    assert [w["id"] for w in listed_wide] == [wide.json["id"]]
    assert [w["id"] for w in listed_one] == [one.json["id"]]
    unconnected = sandbox.msn_role("independent-1")
    denied = await sandbox.request("POST", PATH, "production", keyset=keys, msn=unconnected,
                                   json_body={"url": "https://example.com/x", "events": [CAPTURED]})
    assert denied.status == 403
    assert denied.headers["Vipps-Sandbox-Rule"] == "partner-keys-connected-sales-units-only"


async def test_merchant_keys_cannot_register_for_another_sales_unit(sandbox):
    keys, _ = merchant(sandbox)
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, msn=sandbox.msn_role("independent-1"),
                                  json_body={"url": "https://example.com/h", "events": [CAPTURED]})
    assert reply.status == 403
    assert reply.headers["Vipps-Sandbox-Rule"] == "merchant-keys-own-sales-unit-only"


# -- deliveries ---------------------------------------------------------------------------------------


def independent_signature_check(delivery: dict, secret: str) -> None:
    """Verifies a received request from its raw parts only, the way a merchant's server would."""
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    raw = delivery["body"].encode("utf-8")
    digest = base64.b64encode(hashlib.sha256(raw).digest()).decode()
    assert headers["x-ms-content-sha256"] == digest
    message = f"POST\n{delivery['path']}\n{headers['x-ms-date']};{headers['host']};{digest}"
    expected = base64.b64encode(hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()).decode()
    assert headers["authorization"] == \
        f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={expected}"


async def test_delivery_into_the_inbox_is_signed(sandbox):
    keys, msn = merchant(sandbox)
    url = f"{sandbox.running.test_url}/_sandbox/inbox/shop?src=vipps"
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    secret = reply.json["secret"]
    sandbox.runtime.publish("epayment.captured", event(msn))
    sandbox.runtime.publish("epayment.created", event(msn))  # not subscribed
    sandbox.runtime.publish("epayment.captured", event(msn, env="production"))  # other environment

    [delivery] = await eventually(lambda: inbox(sandbox, "shop"))
    await asyncio.sleep(0.1)
    assert len(await inbox(sandbox, "shop")) == 1
    assert delivery["method"] == "POST"
    assert delivery["path"] == "/_sandbox/inbox/shop?src=vipps"
    assert json.loads(delivery["body"]) == {
        "msn": msn, "reference": "order-1001", "pspReference": "psp-order-1001-captured", "name": "CAPTURED",
        "amount": {"currency": "NOK", "value": 1000}, "timestamp": "2026-01-01T00:00:00.250000Z",
        "idempotencyKey": "idem-order-1001", "success": True}
    headers = {k.lower(): v for k, v in delivery["headers"].items()}
    assert headers["host"] == f"127.0.0.1:{sandbox.running.test_port}"
    assert headers["x-ms-date"].endswith(" GMT")
    independent_signature_check(delivery, secret)
    # A wrong secret does not verify: the check can fail.
    with pytest.raises(AssertionError):
        independent_signature_check(delivery, secret[:-4] + "AAA=")

    attempts = (await sandbox.request("GET", "/_sandbox/webhooks/deliveries", "test")).json["attempts"]
    assert len(attempts) == 1
    attempt = attempts[0]
    assert attempt["status"] == 200 and attempt["outcome"] == "delivered" and attempt["attempt"] == 1
    assert attempt["latencyMs"] >= 0
    assert attempt["signature"]["xMsContentSha256"] == headers["x-ms-content-sha256"]
    assert attempt["signature"]["host"] == headers["host"]
    assert secret not in json.dumps(attempts)


async def test_partner_wide_registration_covers_connected_sales_units_only(sandbox):
    keys = partner(sandbox)
    url = f"{sandbox.running.prod_url}/_sandbox/inbox/partner"
    await sandbox.request("POST", PATH, "production", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    connected = sandbox.msn_role("premium-shop-1")
    sandbox.runtime.publish("epayment.captured", event(sandbox.msn_role("independent-1"), "other-0001",
                                                       env="production"))
    sandbox.runtime.publish("epayment.captured", event(connected, "mine-0001", env="production"))
    [delivery] = await eventually(lambda: inbox(sandbox, "partner", "production"))
    assert json.loads(delivery["body"])["msn"] == connected


async def test_deliveries_keep_their_order_per_registration(sandbox):
    keys, msn = merchant(sandbox)
    url = f"{sandbox.running.test_url}/_sandbox/inbox/ordered"
    await sandbox.request("POST", PATH, "test", keyset=keys,
                          json_body={"url": url, "events": [CREATED, "epayments.payment.authorized.v1", CAPTURED]})
    for kind in ("created", "authorized", "captured"):
        sandbox.runtime.publish(f"epayment.{kind}", event(msn, kind=kind))
    received = await eventually(lambda: _at_least(inbox(sandbox, "ordered"), 3))
    assert [json.loads(d["body"])["name"] for d in received] == ["CREATED", "AUTHORIZED", "CAPTURED"]


async def _at_least(coro, n: int):
    items = await coro
    return items if len(items) >= n else None


@pytest.fixture
async def flaky_receiver():
    """A merchant's server that fails the first request, then accepts: records what it saw."""
    seen: list[int] = []
    state = {"fail": 1, "sleep": 0.0}

    async def handle(request: web.Request) -> web.Response:
        seen.append(len(seen) + 1)
        await request.read()
        if state["sleep"]:
            await asyncio.sleep(state["sleep"])
        if state["fail"]:
            state["fail"] -= 1
            return web.Response(status=500)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook", seen, state
    await runner.cleanup()


async def test_failed_delivery_is_retried_on_the_virtual_clock(sandbox, flaky_receiver):
    url, seen, _ = flaky_receiver
    keys, msn = merchant(sandbox)
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    sandbox.runtime.publish("epayment.captured", event(msn))
    await eventually(lambda: len(seen) == 1)
    await asyncio.sleep(0.2)
    assert len(seen) == 1  # the clock is frozen: no retry yet
    attempts = (await sandbox.request("GET", "/_sandbox/webhooks/deliveries", "test")).json["attempts"]
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [(1, 500, "failed")]
    assert attempts[0]["nextAttemptAt"] is not None

    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 5})
    await eventually(lambda: len(seen) == 2)
    attempts = await eventually(lambda: _attempts_done(sandbox, 2))
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [(1, 500, "failed"),
                                                                            (2, 200, "delivered")]
    assert attempts[0]["deliveryId"] == attempts[1]["deliveryId"]
    assert attempts[1]["signature"]["xMsDate"] != attempts[0]["signature"]["xMsDate"]  # signed anew


async def _attempts_done(sandbox, n: int):
    attempts = (await sandbox.request("GET", "/_sandbox/webhooks/deliveries", "test")).json["attempts"]
    return attempts if len(attempts) >= n else None


async def test_no_answer_in_time_is_a_timeout(sandbox, flaky_receiver):
    url, seen, state = flaky_receiver
    state.update(fail=0, sleep=1.0)
    sandbox.running.app[WEBHOOKS].timeout_seconds = 0.2  # the real limit is 10 s
    keys, msn = merchant(sandbox)
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    sandbox.runtime.publish("epayment.captured", event(msn))
    [attempt] = await eventually(lambda: _attempts_done(sandbox, 1))
    # Coarse on purpose: the same failure as a closed port (see test_webhook_security.py).
    assert attempt["outcome"] == "failed" and attempt["status"] is None
    assert attempt["error"] == "no 2xx response within 0.2 s"
    assert attempt["nextAttemptAt"] is not None


async def test_reset_forgets_registrations_and_inboxes(sandbox):
    keys, msn = merchant(sandbox)
    url = f"{sandbox.running.test_url}/_sandbox/inbox/r"
    await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [CAPTURED]})
    sandbox.runtime.publish("epayment.captured", event(msn))
    await eventually(lambda: inbox(sandbox, "r"))
    sandbox.runtime.reset()
    assert (await sandbox.request("GET", PATH, "test", keyset=keys)).json == {"webhooks": []}
    assert await inbox(sandbox, "r") == []
    assert (await sandbox.request("GET", "/_sandbox/webhooks/deliveries", "test")).json == {"attempts": []}


async def test_bad_inbox_name_is_400(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/inbox/" + "x" * 65, "test")
    assert reply.status == 400


def test_signing_matches_the_documented_example():
    """The request-authentication guide's worked example, byte for byte."""
    body = json.dumps({"some-unique-content": "ee6e441b-cc4a-46f8-895d-a5af79bcc233/hello-world"},
                      separators=(",", ":")).encode()
    digest = content_sha256(body)
    assert digest == "lNlsp1XA03N34HrQsVzPgJKtC+r7l/RBF4V3JQUWMj4="
    signed = string_to_sign("/e2cee29b-012e-4f1d-8ef4-e95fd74a7a63", "Thu, 30 Mar 2023 08:38:32 GMT",
                            "webhook.site", digest)
    secret = "A0+AeKBRG2KRGvnNwJpQlb6IJFk48CKXCIcrLoHncVJKDILsQSxS6NWCccwWm6r6FhGKhiHTBsG2wo/xU6FY/A=="
    assert authorization(secret, signed) == ("HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
                                             "&Signature=agAiSyogQbDHpeucoNwYz+yAr5nJ+v+zasdkSbqzv+U=")


async def test_a_real_payment_flow_delivers_its_events(sandbox):
    """End to end: create, approve as the user, capture; the inbox gets each event, signed."""
    keys, msn = merchant(sandbox)
    url = f"{sandbox.running.test_url}/_sandbox/inbox/flow"
    reply = await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": [
        CREATED, "epayments.payment.authorized.v1", CAPTURED]})
    secret = reply.json["secret"]
    body = {"amount": {"currency": "NOK", "value": 2500}, "paymentMethod": {"type": "WALLET"},
            "reference": "hook-flow-0001", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r",
            "paymentDescription": "Webhook flow"}
    created = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=keys, json_body=body,
                                    headers={"Idempotency-Key": "hook-flow-create"})
    assert created.status == 201, created.text
    approved = await sandbox.request("POST", f"/_sandbox/payments/{msn}/hook-flow-0001/approve", "test")
    assert approved.status == 200, approved.text
    captured = await sandbox.request("POST", "/epayment/v1/payments/hook-flow-0001/capture", "test", keyset=keys,
                                     json_body={"modificationAmount": {"currency": "NOK", "value": 2500}},
                                     headers={"Idempotency-Key": "hook-flow-capture"})
    assert captured.status == 200, captured.text

    received = await eventually(lambda: _at_least(inbox(sandbox, "flow"), 3))
    bodies = [json.loads(d["body"]) for d in received]
    assert [b["name"] for b in bodies] == ["CREATED", "AUTHORIZED", "CAPTURED"]
    assert all(b["msn"] == msn and b["reference"] == "hook-flow-0001" for b in bodies)
    assert bodies[2]["amount"] == {"currency": "NOK", "value": 2500}
    assert bodies[2]["idempotencyKey"] == "hook-flow-capture"
    assert set(bodies[0]) == {"msn", "reference", "pspReference", "name", "amount", "timestamp",
                              "idempotencyKey", "success"}
    for delivery in received:
        independent_signature_check(delivery, secret)


async def test_ids_and_secrets_are_random_unless_seeded(sandbox):
    """Without --id-seed a reset never hands the same secret out twice."""
    keys, _ = merchant(sandbox)
    hook = {"url": "https://example.com/hook", "events": [CAPTURED]}
    first = (await sandbox.request("POST", PATH, "test", keyset=keys, json_body=hook)).json
    sandbox.runtime.reset()
    again = (await sandbox.request("POST", PATH, "test", keyset=keys, json_body=hook)).json
    assert again["id"] != first["id"] and again["secret"] != first["secret"]


async def test_ids_and_secrets_are_reproducible_after_a_reset_with_an_id_seed(settings):
    """With --id-seed they come from a seeded generator, which a reset rewinds."""
    from sandbox.testing import started

    settings.id_seed = 5
    async with started(settings) as sandbox:
        keys, _ = merchant(sandbox)
        hook = {"url": "https://example.com/hook", "events": [CAPTURED]}
        first = (await sandbox.request("POST", PATH, "test", keyset=keys, json_body=hook)).json
        second = (await sandbox.request("POST", PATH, "test", keyset=keys, json_body=hook)).json
        assert first["id"] != second["id"] and first["secret"] != second["secret"]
        sandbox.runtime.reset()
        again = (await sandbox.request("POST", PATH, "test", keyset=keys, json_body=hook)).json
        assert again == first
