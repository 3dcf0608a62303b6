"""The one-step JSON answer (sandbox/gateway/fast_reply.py) puts the same bytes on the wire as aiohttp's
standard path, Date aside, and steps aside wherever it could differ. Real servers on loopback, raw sockets."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from aiohttp import web

from sandbox.gateway import fast_reply
from sandbox.gateway.fast_reply import FastResponse, json_bytes

BODY = json.dumps({"reference": "fast-1", "amount": {"currency": "NOK", "value": 1000}, "text": "blåbær"}).encode()
HEADERS = {"Cache-Control": "max-age=3600", "Vipps-Sandbox-Decision": "allow"}
DATE = re.compile(rb"\r\nDate: [^\r]*")
taken: list[bool] = []  # for each FastResponse sent: whether it took the shortcut


def standard(request: web.Request) -> web.Response:
    status = int(request.query.get("status", "200"))
    return web.Response(body=BODY, status=status, headers=HEADERS, content_type="application/json", charset="utf-8")


def fast(request: web.Request) -> web.Response:
    return json_bytes(BODY, status=int(request.query.get("status", "200")), headers=HEADERS)


def app_with(handler, *, signal: bool = False) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        if request.query.get("wait"):
            await asyncio.sleep(0.2)  # the client is gone by now
        reply = handler(request)
        if request.query.get("labelled"):
            reply.headers["Vipps-Sandbox-Warning"] = "added after the handler, as labelled() does"
        return reply

    app = web.Application()
    app.router.add_route("*", "/thing", handle)
    if signal:
        async def stamp(request, response):
            response.headers["X-Prepared"] = "yes"
        app.on_response_prepare.append(stamp)
    return app


@pytest.fixture
async def servers(monkeypatch):
    original = FastResponse.prepare

    async def counted(self, request):
        writer = await original(self, request)
        taken.append(self.fast)
        return writer

    monkeypatch.setattr(FastResponse, "prepare", counted)
    taken.clear()
    runners = []

    async def serve(app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return runner.addresses[0][1]

    yield serve
    for runner in runners:
        await runner.cleanup()


async def exchange(port: int, raw: bytes) -> bytes:
    """Everything the server sends back to these request bytes, until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return DATE.sub(b"", reply)


def requests(*lines: str) -> bytes:
    return "".join(lines).encode()


CASES = {
    "keep-alive then close": requests("GET /thing HTTP/1.1\r\nHost: x\r\n\r\n",
                                      "GET /thing?status=201 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    "an error status": requests("GET /thing?status=404 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    "headers added after the handler": requests("GET /thing?labelled=1 HTTP/1.1\r\nHost: x\r\n"
                                                "Connection: close\r\n\r\n"),
    "a POST": requests("POST /thing HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"),
    "HTTP/1.0": requests("GET /thing HTTP/1.0\r\nHost: x\r\n\r\n"),
    "HTTP/1.0 keep-alive": requests("GET /thing HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
                                    "GET /thing HTTP/1.0\r\nHost: x\r\n\r\n"),
    "HEAD": requests("HEAD /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    "204": requests("GET /thing?status=204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
}
SHORTCUT = {"keep-alive then close": [True, True], "an error status": [True], "headers added after the handler": [True],
            "a POST": [True], "HTTP/1.0": [False], "HTTP/1.0 keep-alive": [False, False], "HEAD": [False],
            "204": [False]}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_same_bytes_as_the_standard_path(servers, case):
    standard_port = await servers(app_with(standard))
    fast_port = await servers(app_with(fast))
    expected = await exchange(standard_port, CASES[case])
    assert expected.startswith(b"HTTP/1.")
    got = await exchange(fast_port, CASES[case])
    assert got == expected
    assert taken == SHORTCUT[case]


async def test_an_app_with_a_prepare_signal_gets_the_standard_path_and_its_signal(servers):
    raw = requests("GET /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    expected = await exchange(await servers(app_with(standard, signal=True)), raw)
    got = await exchange(await servers(app_with(fast, signal=True)), raw)
    assert b"X-Prepared: yes" in got and got == expected
    assert taken == [False]


async def test_without_the_internals_every_answer_is_standard(servers, monkeypatch):
    monkeypatch.setattr(fast_reply, "ENABLED", False)
    raw = CASES["keep-alive then close"]
    assert await exchange(await servers(app_with(fast)), raw) == await exchange(await servers(app_with(standard)), raw)
    assert taken == [False, False]


async def test_a_client_gone_before_the_answer_leaves_the_server_serving(servers):
    port = await servers(app_with(fast))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /thing?wait=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.4)
    got = await exchange(port, requests("GET /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(BODY)


async def test_a_big_body_arrives_whole(servers):
    big = json.dumps({"items": ["x" * 1000] * 3000}).encode()

    def handler(request):
        return json_bytes(big)

    closing = requests("GET /thing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = await exchange(await servers(app_with(handler)), closing)
    head, _, body = got.partition(b"\r\n\r\n")
    assert body == big and f"Content-Length: {len(big)}".encode() in head
    assert taken == [True]


async def test_the_sandboxs_hot_gets_take_the_shortcut(servers, sandbox):
    """Login discovery and JWKS through the whole gateway: answered in one step, with the gateway's labels."""
    for path in ("/access-management-1.0/access/.well-known/openid-configuration",
                 "/access-management-1.0/access/.well-known/jwks.json"):
        taken.clear()
        reply = await sandbox.request("GET", path, "test", keyset=None)
        assert reply.status == 200, reply.text
        assert reply.headers["Vipps-Sandbox-Decision"] == "allow"
        assert reply.headers["Cache-Control"] == "max-age=3600"
        assert taken == [True]


def test_the_installed_aiohttp_takes_both_shortcuts():
    """Checked at import against aiohttp itself; an upgrade that changes its internals shows here, not as a bug."""
    assert fast_reply.ENABLED and fast_reply.LEAN
    lean, real = json_bytes(BODY, status=201, headers=HEADERS), web.Response(
        body=BODY, status=201, headers=HEADERS, content_type="application/json", charset="utf-8")
    assert fast_reply._same_state(lean, real)
    assert not fast_reply._same_state(json_bytes(BODY, status=202), real)


async def test_the_real_constructor_gives_the_same_bytes(servers, monkeypatch):
    monkeypatch.setattr(fast_reply, "LEAN", False)
    raw = CASES["keep-alive then close"]
    assert await exchange(await servers(app_with(fast)), raw) == await exchange(await servers(app_with(standard)), raw)
    assert taken == [True, True]
