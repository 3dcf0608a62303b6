"""Helpers for the HTTPS and proxy tests (tests/tls/): a sandbox with both on, clients' environments, raw
TLS requests with a chosen SNI name."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
from pathlib import Path

import pytest

from sandbox.testing import SandboxClient

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")
#: Variables that would send a client elsewhere (a proxy of the machine) or keep it from our proxy.
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "no_proxy", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
                   "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS")


def client_env(**extra: str) -> dict[str, str]:
    """This process's environment without any proxy or CA variable, plus `extra`: what a client gets."""
    env = {name: value for name, value in os.environ.items() if name not in PROXY_VARIABLES}
    env.update(extra)
    return env


def ca_file(sandbox: SandboxClient) -> Path:
    assert sandbox.running.ca_cert is not None, "the sandbox serves TLS or the proxy"
    return sandbox.running.ca_cert


def proxy_url(sandbox: SandboxClient) -> str:
    url = sandbox.running.proxy_url
    assert url is not None
    return url


def client_context(sandbox: SandboxClient) -> ssl.SSLContext:
    """A client TLS context that trusts the sandbox's CA only."""
    return ssl.create_default_context(cafile=str(ca_file(sandbox)))


async def run(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """A subprocess, awaited (the sandbox serves from this process's loop meanwhile)."""
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")


async def tls_request(port: int, server_name: str | None, host: str, path: str, context: ssl.SSLContext,
                      method: str = "GET") -> tuple[int, dict, str]:
    """One request over TLS to 127.0.0.1:port, with this SNI name (None: none) and this Host header."""
    if server_name is None:
        context.check_hostname = False  # an IP address: no SNI is sent, the certificate still names 127.0.0.1
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                   server_hostname=server_name or "")
    try:
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    return int(lines[0].split(" ")[1]), headers, body.decode()


async def log_entries(sandbox: SandboxClient, limit: int = 50) -> list[dict]:
    reply = await sandbox.request("GET", f"/_sandbox/requests?limit={limit}", "test")
    return json.loads(reply.text)["entries"]
