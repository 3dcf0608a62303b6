"""Webhooks a hostile tenant registers: they never reach the sandbox's control plane, never starve another
tenant's deliveries, never fill memory through the inbox, and the attempt log tells nothing about ports.

Every test runs a real sandbox on loopback ports, with real receivers (aiohttp or raw asyncio servers).
The one stand-in is a DNS server (FakeDNS) where a test needs a name to resolve somewhere chosen.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Callable

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver

from sandbox.apis.webhooks.routes import WEBHOOKS
from sandbox.core.settings import Settings
from sandbox.gateway.delivery_guard import DELIVERY_HEADER, MARKER
from sandbox.testing import started

PATH = "/webhooks/v1/webhooks"
CAPTURED = "epayments.payment.captured.v1"
EPAYMENT_EVENTS = ("created", "aborted", "expired", "cancelled", "captured", "refunded", "authorized", "terminated")


def merchant(sandbox, role: str = "premium-shop-1") -> tuple[dict, str]:
    msn = sandbox.msn_role(role)
    return sandbox.key("merchant", "test", msn=msn), msn


def event(msn: str, reference: str = "order-1001", kind: str = "captured") -> dict:
    return {"env": "test", "msn": msn, "reference": reference, "pspReference": f"psp-{reference}-{kind}",
            "name": kind.upper(), "amount": {"currency": "NOK", "value": 1000}, "timestamp": 1767225600.25,
            "idempotencyKey": f"idem-{reference}", "success": True}


async def eventually(check: Callable, timeout: float = 5.0):
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def register(sandbox, url: str, keys: dict, events: list[str] | None = None):
    return await sandbox.request("POST", PATH, "test", keyset=keys, json_body={"url": url, "events": events or [
        CAPTURED]})


async def attempts(sandbox, webhook_id: str | None = None) -> list[dict]:
    query = f"?webhookId={webhook_id}" if webhook_id else ""
    return (await sandbox.request("GET", f"/_sandbox/webhooks/deliveries{query}", "test")).json["attempts"]


async def logged_paths(sandbox) -> list[str]:
    reply = await sandbox.request("GET", "/_sandbox/requests?limit=1000", "test")
    return [entry["path"] for entry in reply.json["entries"]]


class RawReceiver:
    """A TCP server that records raw requests; `answer=False` accepts and reads but never answers."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.requests: list[dict] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> RawReceiver:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"line": lines[0], "headers": headers, "body": body})
            if not self.answer:
                await asyncio.sleep(3600)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


class FakeDNS(AbstractResolver):
    """Stands in for the system's resolver: answers each lookup with the next list of addresses."""

    def __init__(self, answers: list[list[str]], log: list[str]) -> None:
        self.answers = answers
        self.log = log

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list:
        addresses = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        self.log.append(host)
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in addresses]

    async def close(self) -> None:
        pass


# -- 3. never the sandbox's own control plane ---------------------------------------------------------------


OWN_LISTENERS = [
    "http://127.0.0.1:{test}/hook",
    "http://localhost:{prod}/epayment/v1/payments",
    "http://127.0.0.2:{test}/hook",  # all of 127.0.0.0/8 is this machine
    "http://[::1]:{test}/hook",
    "http://[::ffff:127.0.0.1]:{prod}/hook",
    "http://0.0.0.0:{test}/hook",
    "https://127.0.0.1:{test}/hook",
    "http://LOCALHOST:{test}/hook",
    "http://127.0.0.1:{test}/_sandbox/keys",
    "http://127.0.0.1:{test}/_sandbox/reset",
    "http://127.0.0.1:{test}/_sandbox/inbox/..",
    "http://127.0.0.1:{test}/_sandbox/inbox/x/../../reset",
    "http://127.0.0.1:{test}/hook/../_sandbox/reset",
    "http://127.0.0.1:{test}/%5Fsandbox/reset",
    "http://127.0.0.1:{test}//_sandbox/reset",
    # Another sandbox's control plane is a control plane too, whatever the port.
    "http://127.0.0.1:9/_sandbox/keys/regenerate",
]


@pytest.mark.parametrize("template", OWN_LISTENERS)
async def test_urls_at_the_sandbox_itself_are_refused(sandbox, template):
    keys, _ = merchant(sandbox)
    url = template.format(test=sandbox.running.test_port, prod=sandbox.running.prod_port)
    reply = await register(sandbox, url, keys)
    assert reply.status == 400, reply.text
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert [d["name"] for d in reply.json["extraDetails"]] == ["url"]
    assert reply.headers["Vipps-Sandbox-Rule"] == "webhook-registration-invalid"


@pytest.mark.parametrize("template", [
    "http://127.0.0.1:{test}/_sandbox/inbox/shop",
    "http://localhost:{prod}/_sandbox/inbox/shop?src=vipps",
    "http://[::1]:{test}/_sandbox/inbox/a.b_c~d-e",
    "http://127.0.0.1:9/hook",  # loopback receivers on other ports work as before
    "https://localhost:8443/hook",
])
async def test_the_inbox_and_other_local_receivers_are_still_accepted(sandbox, template):
    keys, _ = merchant(sandbox)
    url = template.format(test=sandbox.running.test_port, prod=sandbox.running.prod_port)
    reply = await register(sandbox, url, keys)
    assert reply.status == 201, reply.text


async def test_the_control_plane_refuses_requests_from_the_delivery_client(sandbox):
    """The second wall: whatever reaches the control plane with the delivery header is refused, but the inbox."""
    keys, msn = merchant(sandbox)
    hook = await register(sandbox, f"{sandbox.running.test_url}/_sandbox/inbox/guard", keys)
    assert hook.status == 201
    # Real deliveries carry the header (so the guard applies to them) ...
    sandbox.runtime.publish("epayment.captured", event(msn))
    [delivery] = await eventually(lambda: _inbox(sandbox, "guard"))
    assert {k.lower(): v for k, v in delivery["headers"].items()}[DELIVERY_HEADER.lower()] == MARKER
    # ... and the control plane refuses what carries it, with any value (another instance's too).
    for method, path in (("POST", "/_sandbox/reset"), ("GET", "/_sandbox/keys"),
                         ("POST", "/_sandbox/keys/regenerate"), ("GET", "/_sandbox/nothing-here")):
        for value in (MARKER, "another-instance"):
            reply = await sandbox.request(method, path, "test", headers={DELIVERY_HEADER: value})
            assert reply.status == 403, (method, path, reply.text)
            assert reply.headers["Vipps-Sandbox-Rule"] == "webhook-delivery-never-reaches-control-plane"
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.json["status"] == 403
    # Nothing was reset: the registration is still there.
    assert [w["id"] for w in (await sandbox.request("GET", PATH, "test", keyset=keys)).json["webhooks"]] == \
        [hook.json["id"]]
    posted = await sandbox.request("POST", "/_sandbox/inbox/guard", "test", data=b"{}",
                                   headers={DELIVERY_HEADER: MARKER, "Content-Type": "application/json"})
    assert posted.status == 200


async def _inbox(sandbox, name: str) -> list[dict]:
    return (await sandbox.request("GET", f"/_sandbox/inbox/{name}", "test")).json["deliveries"]


async def test_the_own_port_check_is_made_again_at_delivery(tmp_path):
    """A URL accepted while its port was free is not delivered to once the sandbox serves that port."""
    port = free_port()
    first = Settings(port=0, prod_port=0, state=tmp_path / "state")
    async with started(first) as sandbox:
        keys, _ = merchant(sandbox)
        reply = await register(sandbox, f"http://127.0.0.1:{port}/hook", keys)
        assert reply.status == 201, reply.text
    again = Settings(port=port, prod_port=0, state=tmp_path / "state")
    async with started(again) as sandbox:
        assert sandbox.running.test_port == port
        _, msn = merchant(sandbox)
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
        sandbox.runtime.publish("epayment.captured", event(msn))
        [attempt] = await eventually(lambda: attempts(sandbox))
        assert attempt["outcome"] == "failed" and attempt["status"] is None
        assert "/hook" not in await logged_paths(sandbox)  # the delivery never reached the sandbox


async def test_redirects_are_never_followed(sandbox):
    """A receiver that redirects to the control plane gets its answer counted as a failure, nothing more."""
    keys, msn = merchant(sandbox)
    target = f"{sandbox.running.test_url}/_sandbox/reset"

    async def redirect(request):
        await request.read()
        return aiohttp.web.Response(status=307, headers={"Location": target})

    app = aiohttp.web.Application()
    app.router.add_post("/hook", redirect)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]
        hook = await register(sandbox, f"http://127.0.0.1:{port}/hook", keys)
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
        sandbox.runtime.publish("epayment.captured", event(msn))
        [attempt] = await eventually(lambda: attempts(sandbox))
        assert (attempt["status"], attempt["outcome"]) == (307, "failed")
        assert "/_sandbox/reset" not in await logged_paths(sandbox)
        assert [w["id"] for w in (await sandbox.request("GET", PATH, "test", keyset=keys)).json["webhooks"]] == \
            [hook.json["id"]]
    finally:
        await runner.cleanup()


# -- 11. URL rules --------------------------------------------------------------------------------------------


REFUSED_ADDRESSES = [
    "https://10.0.0.5/hook", "https://172.16.0.1/hook", "https://192.168.1.1/hook", "https://100.64.0.1/hook",
    "https://169.254.1.1/hook", "https://169.254.169.254/latest/meta-data", "https://[fe80::1]/hook",
    "https://[fd00:ec2::254]/hook", "https://[fc00::1]/hook", "https://[::ffff:10.0.0.1]/hook",
    "https://0.0.0.0/hook", "https://[::]/hook", "https://224.0.0.1/hook", "https://255.255.255.255/hook",
    "https://foo.localhost/hook", "https://a.b.localhost:8443/hook",
    # Numbers a resolver or browser reads as IPv4 addresses (2130706433 and 0x7f000001 are 127.0.0.1).
    "https://2130706433/hook", "https://0x7f000001/hook", "https://127.1/hook", "https://10.1/hook",
]


@pytest.mark.parametrize("url", REFUSED_ADDRESSES)
async def test_private_link_local_metadata_and_unspecified_hosts_are_refused(sandbox, url):
    keys, _ = merchant(sandbox)
    reply = await register(sandbox, url, keys)
    assert reply.status == 400, reply.text
    assert [d["name"] for d in reply.json["extraDetails"]] == ["url"]


@pytest.mark.parametrize("url, ok", [
    ("https://10.0.0.5/hook", True), ("http://192.168.1.1:8080/hook", True), ("https://[fd12::1]/hook", True),
    ("https://169.254.10.1/hook", True), ("https://foo.localhost/hook", True),
    ("https://169.254.169.254/latest/meta-data", False), ("https://[fd00:ec2::254]/", False),
    ("https://0.0.0.0/hook", False), ("https://224.0.0.1/hook", False),
    # Public receivers still need https (a name over http is resolved at delivery: public answers are refused).
    ("http://93.184.216.34/hook", False),
])
async def test_private_addresses_with_the_setting(settings, url, ok):
    settings.webhook_allow_private = True
    async with started(settings) as sandbox:
        keys, _ = merchant(sandbox)
        reply = await register(sandbox, url, keys)
        assert reply.status == (201 if ok else 400), reply.text


@pytest.mark.parametrize("url", [
    "https://example.com/a b", "https://example.com/a\tb", "https://example.com/a\nb", "https://example.com/\x00",
    "https://exa\rmple.com/hook", " https://example.com/hook", "https://example.com/hook ",
    "https://example.com/%zz", "https://example.com/%4", "https://example.com/100%",
    "https://exämple.com/hook", "https://example.com/ü", "https://example.com/\"quoted\"",
    "https://example.com/<script>", "https://example.com/a\\b", "https://example.com/{x}",
    "https://example.com/hook#fragment", "https://example.com/hook#",
    "https://user@example.com/hook", "https://user:pw@example.com/hook", "https://@example.com/hook",
    "https://example.com:0/hook", "https://example.com:99999/hook", "https://example.com:/hook",
    "https://example.com:80a/hook", "https://ex_ample.com/hook", "https://example.com./hook",
    "https://-example.com/hook", "https://example..com/hook", "https://example.com/[x]",
    "https:example.com/hook", "https:/example.com/hook", "//example.com/hook", "https://[::1%25eth0]/hook",
    "https://[example]/hook", "HTTPS://", "",
])
async def test_urls_are_validated_as_rfc_3986(sandbox, url):
    keys, _ = merchant(sandbox)
    reply = await register(sandbox, url, keys)
    assert reply.status == 400, (url, reply.text)
    assert [d["name"] for d in reply.json["extraDetails"]] == ["url"]


@pytest.mark.parametrize("url", [
    "https://example.com/a%7eb;v=1/%2F?q=a+b&r=%20&s=%7E", "https://EXAMPLE.com:8443/hook?x=1&y=",
    "https://example.com", "https://example.com/it's(ok)!*,$", "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
])
async def test_valid_urls_are_kept_as_given(sandbox, url):
    keys, _ = merchant(sandbox)
    reply = await register(sandbox, url, keys)
    assert reply.status == 201, reply.text
    listed = (await sandbox.request("GET", PATH, "test", keyset=keys)).json["webhooks"]
    assert [w["url"] for w in listed] == [url]


async def test_the_signature_covers_the_request_line_actually_sent(sandbox):
    """A URL with escapes the client could re-quote: the receiver verifies the HMAC over its raw request line."""
    keys, msn = merchant(sandbox)
    async with RawReceiver() as receiver:
        url = f"{receiver.url}/hook/a%7eb;v=1/%2f/%41?x=a+b&y=%7E&z=%20&w=%2B"
        reply = await register(sandbox, url, keys)
        assert reply.status == 201, reply.text
        secret = reply.json["secret"]
        sandbox.runtime.publish("epayment.captured", event(msn))
        [request] = await eventually(lambda: receiver.requests)
    method, target, version = request["line"].split(" ")
    assert (method, version) == ("POST", "HTTP/1.1")
    assert target == "/hook/a%7eb;v=1/%2f/%41?x=a+b&y=%7E&z=%20&w=%2B"  # byte for byte what was registered
    headers, body = request["headers"], request["body"]
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert headers["x-ms-content-sha256"] == digest
    assert headers["host"] == f"127.0.0.1:{receiver.port}"
    signed = f"POST\n{target}\n{headers['x-ms-date']};{headers['host']};{digest}"
    expected = base64.b64encode(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()).decode()
    assert headers["authorization"] == \
        f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={expected}"


async def test_closed_silent_and_refused_receivers_look_the_same_in_the_log(sandbox):
    keys, msn = merchant(sandbox)
    backend = sandbox.running.app[WEBHOOKS]
    backend.timeout_seconds = 0.3  # the real limit is 10 s
    lookups: list[str] = []
    backend.base_resolver = lambda: FakeDNS([["10.0.0.5"]], lookups)  # a name that resolves somewhere private
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    async with RawReceiver(answer=False) as silent:
        urls = [f"http://127.0.0.1:{free_port()}/hook", f"{silent.url}/hook", "https://hooks.example.net/hook"]
        ids = []
        for url in urls:
            reply = await register(sandbox, url, keys)
            assert reply.status == 201, reply.text
            ids.append(reply.json["id"])
        sandbox.runtime.publish("epayment.captured", event(msn))
        records = await eventually(lambda: _one_each(sandbox, ids), timeout=10)
        assert silent.connections == 1 and lookups  # each failed its own way
    seen = {(r["outcome"], r["status"], r["error"], r["latencyMs"]) for r in records}
    assert seen == {("failed", None, "no 2xx response within 0.3 s", None)}, records


async def _one_each(sandbox, ids: list[str]) -> list[dict] | None:
    records = [await attempts(sandbox, hook) for hook in ids]
    return [r[0] for r in records] if all(records) else None


async def test_a_host_name_is_resolved_and_checked_at_every_delivery(settings):
    """DNS rebinding: the name pointed at a receiver, then at 0.0.0.0 (which reaches this machine too)."""
    settings.webhook_allow_private = True  # http to a name: a receiver on the LAN
    async with started(settings) as sandbox, RawReceiver() as receiver:
        keys, msn = merchant(sandbox)
        backend = sandbox.running.app[WEBHOOKS]
        lookups: list[str] = []
        backend.base_resolver = lambda: FakeDNS([["127.0.0.1"], ["0.0.0.0"]], lookups)
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
        reply = await register(sandbox, f"http://receiver.lan.example:{receiver.port}/hook", keys)
        assert reply.status == 201, reply.text
        sandbox.runtime.publish("epayment.captured", event(msn, "order-0001"))
        await eventually(lambda: receiver.requests)
        await asyncio.sleep(0.3)  # the connection is closed by the receiver: the next one resolves again
        sandbox.runtime.publish("epayment.captured", event(msn, "order-0002"))
        records = await eventually(lambda: _at_least(attempts(sandbox), 2))
        assert [r["outcome"] for r in records] == ["delivered", "failed"]
        assert len(receiver.requests) == 1 and len(lookups) == 2


async def _at_least(coro, n: int):
    items = await coro
    return items if len(items) >= n else None


# -- 10. one tenant's silent receivers never starve another's deliveries --------------------------------------


async def test_silent_receivers_of_one_tenant_do_not_delay_another(sandbox):
    """Tenant A: 8 x 25 registrations on a receiver that accepts and never answers (more than any shared pool
    of 100); tenant B's delivery arrives while every one of A's attempts is still waiting (none has timed out:
    the attempt log has none of them), so B never waited for A."""
    keys_a, msn_a = merchant(sandbox)
    keys_b, msn_b = merchant(sandbox, "independent-1")
    backend = sandbox.running.app[WEBHOOKS]
    assert backend.timeout_seconds == 10.0  # the documented limit, kept
    async with RawReceiver(answer=False) as silent, RawReceiver() as receiver_b:
        ids_a = []
        for kind in EPAYMENT_EVENTS:
            for _ in range(25):
                reply = await register(sandbox, f"{silent.url}/a", keys_a, [f"epayments.payment.{kind}.v1"])
                assert reply.status == 201, reply.text
                ids_a.append(reply.json["id"])
        hook_b = await register(sandbox, f"{receiver_b.url}/b", keys_b)
        assert hook_b.status == 201
        await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
        for kind in EPAYMENT_EVENTS:
            sandbox.runtime.publish(f"epayment.{kind}", event(msn_a, kind=kind))
        await eventually(lambda: len(silent.requests) >= 100, timeout=8)  # a shared pool's worth is hanging
        sandbox.runtime.publish("epayment.captured", event(msn_b))
        await eventually(lambda: receiver_b.requests, timeout=8)
        [delivered] = await eventually(lambda: attempts(sandbox, hook_b.json["id"]))
        assert delivered["outcome"] == "delivered"
        log = await attempts(sandbox)
        assert not [a for a in log if a["webhookId"] in set(ids_a)], "one of A's attempts ended first"
        assert len(silent.requests) == len(ids_a)  # and A's every registration got its own connection


# -- 9. bounded inboxes ---------------------------------------------------------------------------------------


@pytest.fixture
def small_inboxes(settings):
    settings.inbox_count, settings.inbox_messages = 3, 5
    settings.inbox_bytes, settings.inbox_message_bytes = 6000, 1500
    return settings


async def post(sandbox, name: str, body: bytes, **kwargs):
    return await sandbox.request("POST", f"/_sandbox/inbox/{name}", "test", data=body, **kwargs)


async def test_inboxes_keep_at_most_so_many_messages_and_inboxes(small_inboxes):
    async with started(small_inboxes) as sandbox:
        for n in range(7):
            assert (await post(sandbox, "one", f'{{"n": {n}}}'.encode())).status == 200
        kept = await _inbox(sandbox, "one")
        assert [json.loads(m["body"])["n"] for m in kept] == [2, 3, 4, 5, 6]  # the oldest went first
        for name in ("two", "three", "four"):
            assert (await post(sandbox, name, b"{}")).status == 200
        assert await _inbox(sandbox, "one") == []  # the inbox written to least recently went
        assert [len(await _inbox(sandbox, name)) for name in ("two", "three", "four")] == [1, 1, 1]


async def test_inboxes_keep_at_most_so_many_bytes(small_inboxes):
    async with started(small_inboxes) as sandbox:
        for n in range(12):
            body = json.dumps({"n": n, "pad": "x" * 900}).encode()
            assert (await post(sandbox, f"box{n % 2}", body)).status == 200
        backend = sandbox.running.app[WEBHOOKS]
        assert backend.inbox_bytes <= small_inboxes.inbox_bytes
        messages = await _inbox(sandbox, "box0") + await _inbox(sandbox, "box1")
        kept = sorted(json.loads(m["body"])["n"] for m in messages)
        assert kept == list(range(12 - len(kept), 12)) and 3 <= len(kept) < 12  # the newest, the oldest gone


async def test_a_message_over_the_limit_is_a_413(small_inboxes):
    async with started(small_inboxes) as sandbox:
        announced = await post(sandbox, "big", b"x" * 2000)

        async def chunks():
            for _ in range(4):
                yield b"y" * 500

        chunked = await post(sandbox, "big", chunks())
        for reply in (announced, chunked):
            assert reply.status == 413, reply.text
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.headers["Vipps-Sandbox-Rule"] == "inbox-message-too-large"
            assert reply.json["status"] == 413 and "1500" in reply.json["detail"]
        assert await _inbox(sandbox, "big") == []
        assert (await post(sandbox, "big", b"x" * 1000)).status == 200


def test_the_inbox_limits_have_finite_defaults():
    settings = Settings()
    assert 0 < settings.inbox_count <= 1000 and 0 < settings.inbox_messages <= 10_000
    assert 0 < settings.inbox_message_bytes <= settings.inbox_bytes <= 64 * 1024 * 1024
