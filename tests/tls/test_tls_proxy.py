"""serve --proxy-port: unmodified clients with HTTPS_PROXY and their CA variable reach the sandbox on the real host
names (curl, requests, httpx); every other host gets a JSON 403 and the proxy connects nowhere; the request log
shows proxied calls with the host they named."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from epayment_support import merchant
from raw_http import send
from tls_support import CURL, ca_file, client_env, log_entries, needs_curl, proxy_url, run

from sandbox.core.settings import Settings
from sandbox.testing import SandboxClient

FLOW_CLIENT = Path(__file__).resolve().parent / "flow_client.py"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(port=0, prod_port=0, tls_port=0, proxy_port=0, ca_dir=tmp_path / "ca")


def proxy_port(sandbox: SandboxClient) -> int:
    assert sandbox.running.proxy_port is not None
    return sandbox.running.proxy_port


def merchant_env(sandbox: SandboxClient) -> dict[str, str]:
    shop = merchant(sandbox)
    return {"VIPPS_CLIENT_ID": shop.keyset["client_id"], "VIPPS_CLIENT_SECRET": shop.keyset["client_secret"],
            "VIPPS_SUBSCRIPTION_KEY": shop.keyset["subscription_key_primary"], "VIPPS_MSN": shop.msn or "",
            "VIPPS_CURRENCY": sandbox.runtime.world.sales_units[shop.msn].currency}


@needs_curl
async def test_curl_gets_a_token_from_apitest_through_the_proxy(sandbox: SandboxClient) -> None:
    keys = merchant_env(sandbox)
    code, out, err = await run(
        CURL, "-sS", "-x", proxy_url(sandbox), "--cacert", str(ca_file(sandbox)), "-X", "POST",
        "https://apitest.vipps.no/accesstoken/get", "-H", f"client_id: {keys['VIPPS_CLIENT_ID']}",
        "-H", f"client_secret: {keys['VIPPS_CLIENT_SECRET']}",
        "-H", f"Ocp-Apim-Subscription-Key: {keys['VIPPS_SUBSCRIPTION_KEY']}", env=client_env())
    assert code == 0, err
    token = json.loads(out)
    assert token["token_type"] == "Bearer" and token["access_token"]
    entry = (await log_entries(sandbox))[0]
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/accesstoken/get", 200)
    assert (entry["host"], entry["scheme"], entry["proxied"], entry["environment"]) == \
        ("apitest.vipps.no", "https", True, "test")
    assert keys["VIPPS_CLIENT_SECRET"] not in json.dumps(entry)


@needs_curl
async def test_plain_http_proxy_requests_to_the_vipps_hosts_are_served(sandbox: SandboxClient) -> None:
    code, out, err = await run(CURL, "-sS", "-x", proxy_url(sandbox), "http://api.vipps.no/_sandbox/health",
                               env=client_env())
    assert code == 0, err
    assert json.loads(out)["environment"] == "production"


@pytest.mark.parametrize(("library", "ca_variable"), [("requests", "REQUESTS_CA_BUNDLE"), ("httpx", "SSL_CERT_FILE")])
async def test_an_unmodified_python_client_makes_the_whole_epayment_flow(sandbox: SandboxClient, library: str,
                                                                         ca_variable: str) -> None:
    pytest.importorskip(library)
    env = client_env(HTTPS_PROXY=proxy_url(sandbox), **{ca_variable: str(ca_file(sandbox))}, **merchant_env(sandbox),
                     VIPPS_REFERENCE=f"proxy-{library}-1")
    code, out, err = await run(sys.executable, str(FLOW_CLIENT), library, env=env)
    assert code == 0, err
    steps = {line["step"]: line for line in map(json.loads, out.splitlines())}
    assert [steps[s]["status"] for s in ("token", "create", "approve", "capture", "get")] == \
        [200, 201, 200, 200, 200], out
    assert steps["create"]["body"]["redirectUrl"].startswith("https://apitest.vipps.no/_sandbox/landing?token=")
    payment = steps["get"]["body"]
    assert payment["state"] == "AUTHORIZED" and payment["aggregate"]["capturedAmount"]["value"] == 10000
    entries = [e for e in await log_entries(sandbox) if e["path"].startswith("/epayment/")]
    assert entries and all(e["proxied"] and e["host"] == "apitest.vipps.no" and e["scheme"] == "https"
                           for e in entries)


class Decoy:
    """A listener on loopback that counts connections: the proxy must never open one."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("request_bytes", [
    b"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n",
    b"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"CONNECT apitest.vipps.no:{port} HTTP/1.1\r\nHost: apitest.vipps.no:{port}\r\n\r\n",  # a served name, not 443
    b"GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n",
    b"GET http://example.com/?code=hush HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    b"GET http://apitest.vipps.no:{port}/ HTTP/1.1\r\nHost: apitest.vipps.no:{port}\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n",  # not a proxy request at all
], ids=["connect-ip", "connect-localhost", "connect-example", "connect-vipps-other-port", "get-ip", "get-example",
        "get-vipps-other-port", "origin-form"])
async def test_every_other_host_gets_a_403_and_no_connection_is_made(sandbox: SandboxClient,
                                                                     request_bytes: bytes) -> None:
    decoy = Decoy()
    async with decoy as port:
        reply = await send(proxy_port(sandbox), request_bytes.replace(b"{port}", str(port).encode()))
        await asyncio.sleep(0.05)
    assert reply.status == 403 and reply.content_type == "application/json", reply.body
    body = reply.json
    assert body["statusCode"] == 403
    assert "apitest.vipps.no" in body["message"] and "api.vipps.no" in body["message"], body
    assert reply.headers["vipps-sandbox-rule"] == "proxy-host-refused"
    assert decoy.connections == 0
    entry = (await log_entries(sandbox))[0]
    assert entry["status"] == 403 and entry["proxied"] is True and entry["decision"]["rule"] == "proxy-host-refused"
    assert "hush" not in json.dumps(entry), "the request log keeps no query strings"


@needs_curl
async def test_curl_through_the_proxy_to_another_site_is_refused(sandbox: SandboxClient) -> None:
    decoy = Decoy()
    async with decoy as port:
        code, _, err = await run(CURL, "-sS", "-x", proxy_url(sandbox), f"https://127.0.0.1:{port}/",
                                 env=client_env())
    assert code != 0 and "403" in err, err
    assert decoy.connections == 0


async def test_a_tunnel_whose_client_does_not_trust_the_ca_fails_and_is_said_so(
        sandbox: SandboxClient, caplog: pytest.LogCaptureFixture) -> None:
    import ssl

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port(sandbox))
    writer.write(b"CONNECT apitest.vipps.no:443 HTTP/1.1\r\nHost: apitest.vipps.no:443\r\n\r\n")
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 200 Connection established\r\n\r\n"
    with pytest.raises(ssl.SSLCertVerificationError):
        await writer.start_tls(ssl.create_default_context(), server_hostname="apitest.vipps.no")
    writer.close()
    await asyncio.sleep(0.1)
    assert any("trust the sandbox's CA" in record.getMessage() for record in caplog.records)


async def test_stopping_closes_proxy_connections_that_sent_nothing_yet(tmp_path: Path) -> None:
    import time

    from sandbox.server import RunningSandbox

    running = RunningSandbox(Settings(port=0, prod_port=0, proxy_port=0, ca_dir=tmp_path / "ca"))
    await running.start()
    assert running.proxy_port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", running.proxy_port)
    writer.write(b"CONN")  # half a CONNECT: the proxy still waits for its head
    await asyncio.sleep(0.1)
    began = time.monotonic()
    await asyncio.wait_for(running.stop(), 5)
    assert time.monotonic() - began < 2
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
