"""serve --tls-port: HTTPS for both environments on one port, the environment chosen by the Host header and the
TLS server name (SNI); pages and URLs the sandbox hands out keep the scheme the client used; CONNECT on a port
that is not the proxy's gets the gateway's JSON answer and a request-log entry."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest
from epayment_support import create_body, merchant
from raw_http import send
from recurring_support import draft_body
from recurring_support import merchant as recurring_merchant
from tls_support import CURL, ca_file, client_context, client_env, log_entries, needs_curl, run, tls_request

from sandbox.core.settings import Settings
from sandbox.testing import SandboxClient


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(port=0, prod_port=0, tls_port=0, proxy_port=0, ca_dir=tmp_path / "ca")


def tls_port(sandbox: SandboxClient) -> int:
    assert sandbox.running.tls_port is not None
    return sandbox.running.tls_port


@pytest.mark.parametrize(("server_name", "host", "env"), [
    ("apitest.vipps.no", "apitest.vipps.no", "test"),
    ("api.vipps.no", "api.vipps.no", "production"),
    ("api.vipps.no", "127.0.0.1", "production"),  # the Host header names no Vipps host: SNI decides
    ("apitest.vipps.no", "api.vipps.no", "production"),  # the Host header decides when it names one
    ("localhost", "localhost", "test"),  # any other name: the test environment
    (None, "127.0.0.1", "test"),  # no SNI at all (an IP address)
])
async def test_sni_and_host_choose_the_environment(sandbox: SandboxClient, server_name: str | None, host: str,
                                                   env: str) -> None:
    status, _, body = await tls_request(tls_port(sandbox), server_name, host, "/_sandbox/health",
                                        client_context(sandbox))
    assert status == 200 and json.loads(body)["environment"] == env, body


@needs_curl
async def test_curl_calls_the_real_host_name_on_the_tls_port(sandbox: SandboxClient) -> None:
    """As with a hosts entry (curl --resolve): https://api.vipps.no is production, trusted with --cacert."""
    port = tls_port(sandbox)
    keys = sandbox.key("merchant", "test", sandbox.msn_role("premium-shop-1"))
    code, out, err = await run(CURL, "-sS", "--cacert", str(ca_file(sandbox)), "--resolve",
                               f"apitest.vipps.no:{port}:127.0.0.1", "-X", "POST",
                               f"https://apitest.vipps.no:{port}/accesstoken/get", "-H",
                               f"client_id: {keys['client_id']}", "-H", f"client_secret: {keys['client_secret']}",
                               "-H", f"Ocp-Apim-Subscription-Key: {keys['subscription_key_primary']}",
                               env=client_env())
    assert code == 0, err
    assert json.loads(out)["token_type"] == "Bearer"
    # Without the CA the client refuses the certificate: it is the sandbox's, not a public one.
    code, _, err = await run(CURL, "-sS", f"https://127.0.0.1:{port}/_sandbox/health", env=client_env())
    assert code != 0 and "certificate" in err.lower(), err


async def test_the_plain_ports_keep_working(sandbox: SandboxClient) -> None:
    assert (await sandbox.request("GET", "/_sandbox/health", "test")).json["environment"] == "test"
    assert (await sandbox.request("GET", "/_sandbox/health", "production")).json["environment"] == "production"


async def test_the_landing_url_keeps_https_and_the_host_the_client_used(sandbox: SandboxClient) -> None:
    port = tls_port(sandbox)
    shop = merchant(sandbox)
    headers = {**await shop.headers(), "Idempotency-Key": "tls-landing-1", "Host": f"apitest.vipps.no:{port}"}
    connector = aiohttp.TCPConnector(ssl=client_context(sandbox), resolver=LoopbackResolver())
    async with aiohttp.ClientSession(connector=connector) as session:
        base = f"https://apitest.vipps.no:{port}"
        async with session.post(f"{base}/epayment/v1/payments", json=create_body("tls-landing-1"),
                                headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            redirect = (await resp.json())["redirectUrl"]
        assert redirect.startswith(f"{base}/_sandbox/landing?token="), redirect
        async with session.get(redirect) as resp:  # the page itself, over the same HTTPS
            assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
            page = await resp.text()
        assert "http://" not in page.replace("http://www.w3.org", ""), "every link on the page stays on https"
        subscriber = recurring_merchant(sandbox)
        async with session.post(f"{base}/recurring/v3/agreements", json=draft_body(),
                                headers={**await subscriber.headers(), "Idempotency-Key": "tls-agreement-1"}) as resp:
            assert resp.status == 201, await resp.text()
            confirmation = (await resp.json())["vippsConfirmationUrl"]
        assert confirmation.startswith(f"{base}/"), confirmation
    # Over the plain port, the same call keeps http.
    reply = await shop.create(create_body("tls-landing-2"))
    assert reply.json["redirectUrl"].startswith(sandbox.running.test_url + "/_sandbox/landing?token=")


class LoopbackResolver(aiohttp.abc.AbstractResolver):
    """The two Vipps host names resolved to 127.0.0.1, as a hosts entry or docker compose aliases would."""

    async def resolve(self, host: str, port: int = 0, family: int = 0) -> list[dict]:
        assert host in ("apitest.vipps.no", "api.vipps.no", "localhost", "127.0.0.1"), host
        return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": 2, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("where", ["test", "production", "tls"])
async def test_connect_on_a_port_that_is_not_the_proxy_gets_the_gateway_answer_and_a_log_line(
        sandbox: SandboxClient, where: str) -> None:
    request = b"CONNECT apitest.vipps.no:443 HTTP/1.1\r\nHost: apitest.vipps.no:443\r\n\r\n"
    if where == "tls":
        import asyncio

        reader, writer = await asyncio.open_connection("127.0.0.1", tls_port(sandbox), ssl=client_context(sandbox),
                                                       server_hostname="apitest.vipps.no")
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 15)  # the connection closes after the answer
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status, content_type = int(head.split(b" ")[1]), "application/json"
        assert b"application/json" in head
    else:
        port = sandbox.running.test_port if where == "test" else sandbox.running.prod_port
        reply = await send(port, request)
        status, content_type, body = reply.status, reply.content_type, reply.body
    assert status == 404 and content_type == "application/json"
    message = json.loads(body)["result"]["message"]
    assert "--proxy-port" in message, message
    entry = (await log_entries(sandbox))[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("CONNECT", "apitest.vipps.no:443", 404)
    assert entry["decision"]["rule"] == "connect-not-a-proxy"


async def test_a_client_that_never_finishes_its_handshake_or_connect_is_dropped(tmp_path: Path) -> None:
    """Slow clients on the new ports: the TLS handshake and the CONNECT head have --head-timeout, as a request's
    head has (asyncio's own handshake timeout would be 60 s)."""
    import asyncio
    import time

    from sandbox.testing import started

    async def closed_after(port: int, send: bytes) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(send)
        began = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return time.monotonic() - began, data

    settings = Settings(port=0, prod_port=0, tls_port=0, proxy_port=0, ca_dir=tmp_path / "ca", head_timeout=0.5)
    async with started(settings) as sandbox:
        waited, data = await closed_after(tls_port(sandbox), b"")  # TCP open, no ClientHello
        assert 0.3 < waited < 3 and data == b""
        waited, data = await closed_after(sandbox.running.proxy_port, b"CONNECT apitest.vipps.no:443 HTTP/1.1\r\n")
        assert 0.3 < waited < 3 and data.startswith(b"HTTP/1.1 408"), data
        waited, data = await closed_after(sandbox.running.proxy_port,  # a tunnel, then no ClientHello
                                          b"CONNECT apitest.vipps.no:443 HTTP/1.1\r\nHost: apitest.vipps.no\r\n\r\n")
        assert 0.3 < waited < 3 and data == b"HTTP/1.1 200 Connection established\r\n\r\n", data
