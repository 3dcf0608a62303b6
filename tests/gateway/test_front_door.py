"""Every request goes through the front door (sandbox/gateway/front_door.py): no request target, late route or
oversized body gets past the gateway, the admin token, the journal or the request log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiohttp import web
from raw_http import build, send

from sandbox.app import create_app
from sandbox.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.testing import started

WEBHOOKS = "/webhooks/v1/webhooks"


@pytest.mark.parametrize("method,target,status", [
    ("GET", b"/nope%0A", 404),  # a decoded newline: no path pattern with `.` matches it
    ("PUT", b"/epayment/v1/payments/abcdefgh%0A", 405),
    ("PUT", b"/epayment/v1/payments/abcdefgh", 405),  # a served path, another method
    ("OPTIONS", b"*", 404),  # the asterisk form
])
async def test_odd_targets_get_the_gateway_json_and_a_log_entry(sandbox, method, target, status):
    reply = await send(sandbox.running.test_port, build(method, target, []))
    assert reply.status == status, reply.body
    assert reply.content_type in ("application/json", "application/problem+json"), (reply.status, reply.body)
    assert reply.headers.get("vipps-sandbox-rule") in ("unknown-path", "method-not-allowed")
    entries = (await sandbox.request("GET", "/_sandbox/requests", "test")).json["entries"]
    assert [entry["status"] for entry in entries if entry["method"] == method] == [status], entries


async def test_off_loopback_an_odd_control_plane_target_still_needs_the_admin_token():
    async with started(Settings(host="0.0.0.0", port=0, prod_port=0, admin_token="a" * 32)) as sandbox:
        for target in (b"/_sandbox/reset%0A", b"/_sandbox/nothing-here"):
            reply = await send(sandbox.running.test_port, build("POST", target, []))
            assert reply.status == 401, (target, reply.status, reply.body)
            assert reply.headers.get("vipps-sandbox-rule") == "admin-token-required"


async def test_a_route_added_after_create_app_stops_the_server_from_starting():
    """create_app refuses such routes; one added to its app afterwards is refused when the server starts."""
    settings = Settings(host="0.0.0.0", port=0, prod_port=0, admin_token="t" * 32)
    app = create_app(settings)

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({"secret": True})

    app.router.add_get("/_sandbox/extra", extra, name="sandbox.extra")
    running = RunningSandbox(settings, app)
    with pytest.raises(RuntimeError, match="bypasses the gateway"):
        await running.start()
    await running.stop()


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(port=0, prod_port=0, snapshot_dir=tmp_path / "snapshots")


async def test_get_payment_checks_the_reference_of_a_hand_edited_snapshot(sandbox):
    msn = sandbox.msn_role("premium-shop-1")
    keys = sandbox.key("merchant", "test", msn)
    currency = sandbox.runtime.world.sales_units[msn].currency
    body = {"amount": {"currency": currency, "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": "order-0000001", "userFlow": "WEB_REDIRECT", "returnUrl": "https://s.example.com/r"}
    created = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=keys, msn=msn, json_body=body,
                                    headers={"Idempotency-Key": "k"})
    assert created.status == 201, created.text
    snapshot = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "s"})
    path = Path(snapshot.json["path"])
    path.write_text(path.read_text().replace("order-0000001", "bad.ref"))
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "s"})).status == 200
    events = await sandbox.request("GET", "/epayment/v1/payments/bad.ref/events", "test", keyset=keys, msn=msn)
    payment = await sandbox.request("GET", "/epayment/v1/payments/bad.ref", "test", keyset=keys, msn=msn)
    assert payment.status == events.status == 400, (payment.status, payment.text)


async def test_a_bad_clock_change_changes_nothing(sandbox):
    before = (await sandbox.request("GET", "/_sandbox/clock", "test")).json
    assert before["frozen"] is False
    reply = await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True, "advanceSeconds": "x"})
    assert reply.status == 400
    after = (await sandbox.request("GET", "/_sandbox/clock", "test")).json
    assert after["frozen"] is False


async def test_with_state_a_body_too_large_to_journal_is_refused_before_anything_changes(tmp_path):
    """DELETE never reads its body; with --state the front door reads it first, so a 2 MB chunked body is a
    413 in the API's format and the webhook stays registered (before, it was deleted and never journaled)."""
    async def chunks():
        for _ in range(32):
            yield b"x" * 65536

    async with started(Settings(port=0, prod_port=0, state=tmp_path / "state")) as sandbox:
        msn = sandbox.msn_role("premium-shop-1")
        keys = sandbox.key("merchant", "test", msn)
        registered = await sandbox.request("POST", WEBHOOKS, "test", keyset=keys, msn=msn, json_body={
            "url": "https://example.com/hook", "events": ["epayments.payment.created.v1"]})
        assert registered.status == 201, registered.text
        headers = await sandbox.auth_headers(keys, msn)
        async with sandbox.session.delete(sandbox.url("test") + f"{WEBHOOKS}/{registered.json['id']}",
                                          data=chunks(), headers=headers) as resp:
            assert resp.status == 413, await resp.text()
            assert resp.content_type == "application/problem+json"
        listed = await sandbox.request("GET", WEBHOOKS, "test", keyset=keys, msn=msn)
        assert [hook["id"] for hook in listed.json["webhooks"]] == [registered.json["id"]]
        journal = "".join(path.read_text() for path in (tmp_path / "state").rglob("*journal*") if path.is_file())
        assert all(json.loads(line)["method"] != "DELETE" for line in journal.splitlines() if line.startswith("{"))


async def test_requests_still_reach_the_log_in_order_with_latency(sandbox):
    keys = sandbox.key("merchant", "test")
    await sandbox.request("GET", WEBHOOKS, "test", keyset=keys)
    entries = (await sandbox.request("GET", "/_sandbox/requests", "test")).json["entries"]
    ids = [entry["id"] for entry in entries]
    assert ids == sorted(ids, reverse=True)
    assert all(entry["latencyMs"] >= 0 for entry in entries)
    listed = next(entry for entry in entries if entry["path"] == WEBHOOKS)
    assert listed["decision"]["allowed"] is True and listed["credentials"]["token"].startswith("…")



async def test_what_the_http_parser_refuses_is_in_the_request_log(sandbox):
    """A request aiohttp cannot parse never reaches the app; its refusal is still logged, with the reason."""
    for port in (sandbox.running.test_port, sandbox.running.prod_port):
        reply = await send(port, build("GET", b"/_sandbox/health", [(b"X-Evil", b"a\x00b")]))
        assert reply.status == 400
    entries = (await sandbox.request("GET", "/_sandbox/requests", "test")).json["entries"]
    refused = [entry for entry in entries if entry["path"] == "(unparsable request)"]
    assert [entry["environment"] for entry in refused] == ["production", "test"]  # newest first
    for entry in refused:
        assert entry["status"] == 400 and entry["decision"]["allowed"] is False
        assert entry["decision"]["rule"] == "unparsable-request"
        assert "could not be parsed" in entry["decision"]["reason"]


@pytest.mark.parametrize("name", [b"client_secret", b"Ocp-Apim-Subscription-Key", b"Authorization"])
async def test_a_refused_line_never_puts_its_secret_in_the_log_or_the_answer(sandbox, name):
    """The parser's own message quotes the bytes of a line too long; the sandbox says why in fixed words."""
    secret = b"Bearer SECRETSECRET123456" if name == b"Authorization" else b"SECRETSECRET123456"
    reply = await send(sandbox.running.test_port, build("GET", b"/epayment/v1/payments/x",
                                                        [(name, secret + b" " + b"A" * 140_000)]))
    assert reply.status == 400 and b"SECRETSECRET" not in reply.body
    assert "a line is longer than 128 kB" in reply.json["message"]
    log_text = (await sandbox.request("GET", "/_sandbox/requests", "test")).text
    assert "SECRETSECRET" not in log_text and "a line is longer than 128 kB" in log_text


def test_parser_reasons_never_quote_the_request():
    from aiohttp.http_exceptions import BadStatusLine, InvalidHeader, LineTooLong

    from sandbox.gateway.lowlevel import parser_reason

    for exc in (LineTooLong(b"Bearer SECRET", 10), InvalidHeader(b"Bearer SECRET\x00"),
                BadStatusLine("GET /x?token=SECRET HTTP/1.1")):
        assert "SECRET" not in parser_reason(exc, str(exc))
    assert parser_reason(None, "Invalid header value char: b'SECRET'") == "Invalid header value char"
    assert parser_reason(None, "b'SECRET'") == ""
