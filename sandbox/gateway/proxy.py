"""The proxy port: `HTTPS_PROXY=http://127.0.0.1:N`, and any client reaches the sandbox on the real host names.

A client that honours HTTPS_PROXY sends `CONNECT apitest.vipps.no:443` here, then speaks TLS inside the
tunnel. The sandbox answers the CONNECT itself, terminates the TLS with a certificate of its own CA
(sandbox/core/ca.py) and hands the decrypted stream to the same aiohttp app as the other ports: the
connection's protocol becomes a GatewayRequestHandler, exactly as on the TLS port, so the front door, the
gateway's checks and the request log see the calls like any other. Plain `http://apitest.vipps.no/...`
proxy requests (absolute form) are served the same way, without TLS.

It is never an open proxy: it serves only apitest.vipps.no and api.vipps.no (CONNECT on port 443, http:// on
port 80), answers every other host with the gateway's JSON 403 naming the hosts it serves, and makes no
outbound connection at all (there is no code here that could: nothing opens a socket).

Why start_tls on the accepted transport rather than a loopback connection to the TLS port: no second socket
and no copy loop per byte; a fresh proxied request costs the CONNECT round trip and one TLS handshake (see
bench/tls_proxy_bench.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.core import errors
from sandbox.core.errors import GatewayError, RenderContext, clip
from sandbox.core.model import Env
from sandbox.gateway.checks import HOST_ENVS
from sandbox.gateway.hosts import split_host
from sandbox.gateway.lowlevel import GatewayRequestHandler, Throttled, head_timeout_response
from sandbox.ops.requestlog import REQUEST_LOG, RequestLog

log = logging.getLogger("sandbox")

SERVED = tuple(HOST_ENVS)  # apitest.vipps.no, api.vipps.no
CONNECT = b"CONNECT "
MAX_HEAD = 16 * 1024  # a CONNECT's head: its line and a few headers (Proxy-Authorization, User-Agent)
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def refusal_reason(named: str) -> str:
    return (f"Forbidden: this is the vipps-sandbox proxy. It serves {SERVED[0]} and {SERVED[1]} itself (CONNECT to "
            f"port 443, or http:// on port 80) and never connects anywhere else, so {clip(named, 80)!r} is refused. "
            "Leave other hosts out with NO_PROXY.")


def refusal(named: str, path: str) -> web.Response:
    """The gateway's JSON 403 for a host the proxy does not serve."""
    return errors.render(GatewayError(refusal_reason(named), status=403, rule="proxy-host-refused"),
                         RenderContext(api="gateway", path=path))


def raw_response(response: web.Response) -> bytes:
    """A rendered response as bytes, for a connection no HTTP server owns yet (a refused CONNECT); it closes."""
    body = response.body if isinstance(response.body, bytes) else b""
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items() if name.lower() != "content-length"]
    lines += [f"Content-Length: {len(body)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Tunnels:
    """What every proxy connection shares: the app's HTTP server (for the handlers it hands connections to),
    the TLS context, the request log and the timeouts."""

    def __init__(self, runner: web.AppRunner, context: ssl.SSLContext) -> None:
        server = runner.server
        assert server is not None, "the runner is set up before the proxy starts"
        self.server = server
        self.context = context
        self.ring: RequestLog | None = runner.app.get(REQUEST_LOG)
        self.head_timeout: float = getattr(server, "head_timeout", None) or 10.0
        self.throttled = Throttled()
        self.pending: set[ProxyProtocol] = set()  # connections not handed to the app yet (closed at stop)

    def close_pending(self) -> None:
        """Closes the connections still sending their first head (the app closes the ones it was handed)."""
        for protocol in list(self.pending):
            protocol._finish()
            if protocol.transport is not None:
                protocol.transport.close()

    def handler(self, tunnel: str | None) -> ProxiedRequestHandler:
        """A new protocol for one connection of the app (as the server would make for an accepted one)."""
        server = self.server
        return ProxiedRequestHandler(server, self, tunnel, loop=server._loop,  # type: ignore[attr-defined]
                                     **server._kwargs)  # type: ignore[attr-defined]

    def record(self, method: str, target: str, status: int, reason: str, rule: str, host: str | None = None) -> None:
        """A refusal's entry in the request log (the CONNECT target, or the http:// URL, and the host it named)."""
        if self.ring is None:
            return
        try:
            self.ring.record_refused(Env.TEST, status, reason, method=method, path=target, rule=rule,
                                     host=host or target, proxied=True)
        except Exception:  # the log must never break an answer
            log.exception("could not record a refused proxy request in the request log")


class ProxyProtocol(asyncio.Protocol):
    """One accepted proxy connection until it is handed on: reads the first request's head, just far enough
    to see whether it is a CONNECT. A CONNECT to a served host gets its 200 and TLS; anything else goes to the
    app's HTTP handler as it is (which refuses hosts it does not serve, request by request)."""

    def __init__(self, tunnels: Tunnels) -> None:
        self.tunnels = tunnels
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.timer: asyncio.TimerHandle | None = None
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.tunnels.pending.add(self)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.tunnels.head_timeout, self._timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._finish()

    def _finish(self) -> None:
        self.done = True
        self.tunnels.pending.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        head = bytes(self.buffer[:len(CONNECT)])
        if not CONNECT.startswith(head) and not head.startswith(CONNECT):
            self._hand_over()  # not a CONNECT: an http:// proxy request (or nonsense) for the app's parser
            return
        if len(head) < len(CONNECT):
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._refuse(431, "Request Header Fields Too Large: the CONNECT request's head is longer than "
                             f"{MAX_HEAD // 1024} kB.", "proxy-head-too-large", "?")
            return
        line = bytes(self.buffer[:self.buffer.find(b"\r\n")])
        rest = bytes(self.buffer[end + 4:])
        self._connect(line, rest)

    def _connect(self, line: bytes, rest: bytes) -> None:
        parts = line.split(b" ")
        target = parts[1].decode("ascii", "replace") if len(parts) == 3 else ""
        shown = target.translate(errors.CONTROL_CHARACTERS)
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._refuse(400, "Bad Request: the CONNECT request line is malformed.", "proxy-connect-malformed",
                         clip(shown, 80) or "?")
            return
        named = split_host(target)
        if named is None or named[0] not in HOST_ENVS or named[1] != "443":
            self._refuse(403, refusal_reason(target), "proxy-host-refused", clip(shown, 200))
            return
        if rest:  # the client sent its TLS hello before our 200: none of the clients in use does
            self._refuse(400, "Bad Request: data arrived after the CONNECT request before the proxy answered it.",
                         "proxy-connect-early-data", clip(shown, 200))
            return
        self._finish()
        transport = self.transport
        assert transport is not None
        transport.pause_reading()  # nothing is read until TLS owns the connection (start_tls resumes it)
        transport.write(ESTABLISHED)
        asyncio.get_running_loop().create_task(self._start_tls(transport, named[0]))

    async def _start_tls(self, transport: asyncio.Transport, host: str) -> None:
        tunnels = self.tunnels
        handler = tunnels.handler(host)
        try:
            secure = await asyncio.get_running_loop().start_tls(
                transport, handler, tunnels.context, server_side=True, ssl_handshake_timeout=tunnels.head_timeout)
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError) as exc:
            tunnels.throttled("the TLS handshake in a CONNECT tunnel to %s failed (%s): does the client trust the "
                              "sandbox's CA? `vipps-sandbox ca` says how", host,
                              getattr(exc, "reason", None) or type(exc).__name__)
            transport.close()
            return
        if secure is None:  # the transport closed during the handshake
            return
        handler.connection_made(secure)

    def _hand_over(self) -> None:
        """The connection becomes the app's, with what was read so far (the app parses it)."""
        self._finish()
        transport = self.transport
        assert transport is not None
        handler = self.tunnels.handler(None)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(bytes(self.buffer))
        self.buffer.clear()

    def _refuse(self, status: int, reason: str, rule: str, target: str) -> None:
        self._finish()
        log.info("the proxy refused CONNECT %s (%s): %s", target, status, rule)
        self.tunnels.record("CONNECT", target, status, reason, rule)
        response = errors.render(GatewayError(reason, status=status, rule=rule),
                                 RenderContext(api="gateway", path="/"))
        if self.transport is not None:
            self.transport.write(raw_response(response))
            self.transport.close()

    def _timed_out(self) -> None:
        self.timer = None
        if self.done or self.transport is None:
            return
        self.done = True
        self.tunnels.throttled("closed a proxy connection that sent no whole CONNECT request within %g s",
                               self.tunnels.head_timeout)
        self.transport.write(head_timeout_response(self.tunnels.head_timeout))
        self.transport.close()


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


class ProxiedRequestHandler(GatewayRequestHandler):
    """The app's protocol for a proxy connection: a CONNECT tunnel's decrypted stream (`tunnel` is the host it
    named), or plain http:// proxy requests, each refused unless it names a served host. The request log marks
    its requests as proxied."""

    def __init__(self, manager, tunnels: Tunnels, tunnel: str | None, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self.tunnels = tunnels
        self.tunnel = tunnel

    proxied = True  # read by the request log (sandbox/ops/requestlog.py), as request.protocol.proxied

    def _handle_request(self, request, start_time, request_handler):
        if self.tunnel is None:
            refused = self._plain_refusal(request)
            if refused is not None:
                request_handler = refused
        return super()._handle_request(request, start_time, request_handler)

    def _plain_refusal(self, request: web.BaseRequest) -> Handler | None:
        """None when a plain proxy request names a served host (http://, port 80), else the handler refusing it."""
        raw = request.raw_path.split("?", 1)[0]  # the request log keeps no query strings
        absolute = not raw.startswith("/")
        try:
            url = request.url
            host, port, scheme = url.host or "", url.explicit_port, url.scheme
        except ValueError:
            host, port, scheme = "", None, ""
        named = f"{host}:{port}" if port is not None else host
        if absolute:
            header = split_host(request.headers.get("Host", "") or named)
            if header is not None and header[0] != host.lower():
                return self._refusing(400, "Bad Request: the Host header names another host than the request "
                                      "target.", "proxy-host-mismatch", named, raw)
        if scheme == "http" and host.lower() in HOST_ENVS and port in (None, 80) and request.method != "CONNECT":
            return None
        return self._refusing(403, refusal_reason(named or "(no host)"), "proxy-host-refused", named, raw)

    def _refusing(self, status: int, reason: str, rule: str, named: str, raw: str) -> Handler:
        tunnels = self.tunnels

        async def refuse(request: web.BaseRequest) -> web.StreamResponse:
            method = clip(request.method, 20)
            log.info("the proxy refused %s for %s (%s)", method, clip(named, 80), rule)
            tunnels.record(method, clip(raw, 200), status, reason, rule, host=clip(named, 200))
            response = errors.render(GatewayError(reason, status=status, rule=rule),
                                     RenderContext(api="gateway", path="/"))
            response.force_close()
            return response

        return refuse
