"""The connections themselves: errors aiohttp answers before the app sees a request, and slow clients.

A request line or header the HTTP parser cannot accept (NUL bytes, invalid UTF-8 in the path,
a duplicated Content-Length) never reaches the app, so aiohttp would answer in plain text and log
a traceback. The real gateway (Azure APIM) answers such requests with its own JSON body; so do we,
and one line in the log is enough for a client's mistake.

Slow clients (slowloris) would otherwise hold a connection, and a file descriptor, for as long as they
like. A request's line and headers must arrive within settings.head_timeout of the connection's start or
the head's first byte (else a 408, and the connection is closed); a body the sandbox is reading may pause
for at most settings.body_timeout (else the API's 408); an idle keep-alive connection is closed after
settings.keepalive_timeout. When descriptors run out anyway, the event loop's accept error ("Too many open
files") is logged at most once per THROTTLE seconds, with a count, not once a second with a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import re
import time
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler

from sandbox.core import errors
from sandbox.core.errors import GatewayError, Problem, RenderContext, clip
from sandbox.core.model import Env
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.front_door import CONNECT_HANDLER
from sandbox.gateway.page_security import add_page_headers, covers
from sandbox.ops.requestlog import REQUEST_LOG

log = logging.getLogger("sandbox")


#: What each kind of parser error means, in fixed words: the parser's own messages quote the bytes
#: it refused (a header value, the request line), which may hold a secret and must not be logged.
PARSER_ERRORS = {
    "LineTooLong": "a line is longer than 128 kB",
    "InvalidHeader": "a header is malformed",
    "BadStatusLine": "the request line is malformed",
    "BadHttpMethod": "the method is malformed",
    "InvalidURLError": "the request target is malformed",
    "ContentLengthError": "the body does not match its Content-Length",
    "TransferEncodingError": "the chunked body is malformed",
    "ContentEncodingError": "the body's Content-Encoding cannot be decoded",
}
QUOTING = re.compile(r"[:'\"\d\\(\[{<]")  # where a message starts quoting what it refused
SAFE_WORDS = re.compile(r"[A-Za-z ,-]*")


def parser_reason(exc: BaseException | None, message: str | None) -> str:
    """Why the parser refused a request, never quoting the request: a fixed text by the error's class, else
    the leading words of its message (up to the first quote, colon or digit)."""
    for cls in type(exc).__mro__ if exc is not None else ():
        if cls.__name__ in PARSER_ERRORS:
            return PARSER_ERRORS[cls.__name__]
    first = (message or "").strip().splitlines()
    words = QUOTING.split(first[0], maxsplit=1)[0] if first else ""
    words = re.sub(r"(^|\s)b$", "", words.strip()).strip(" ,-")  # the b of a b'...' literal
    return clip(words, 80) if SAFE_WORDS.fullmatch(words) else ""


def gateway_message(status: int, reason: str) -> str:
    """The message of the gateway's JSON answer to a request the parser refused."""
    if status >= 500:
        return "The sandbox failed unexpectedly."
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return f"{phrase}: the request could not be parsed ({reason})." if reason else phrase + "."


THROTTLE = 10.0  # seconds between two log lines about the same kind of connection trouble
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Throttled:
    """A warning logged at most once per `interval` seconds; the next one says how many were held back."""

    def __init__(self, interval: float = THROTTLE) -> None:
        self.interval = interval
        self.last = -math.inf
        self.held_back = 0

    def __call__(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.held_back += 1
            return
        if self.held_back:
            message += f" ({self.held_back} more since the last such message, not logged)"
        log.warning(message, *args)
        self.last, self.held_back = now, 0


def head_timeout_response(timeout: float) -> bytes:
    """The gateway's 408, written straight to a connection whose request head never arrived whole."""
    body = json.dumps({"statusCode": 408, "message": f"Request Timeout: the request line and headers did not "
                       f"arrive within {timeout:g} seconds."}).encode()
    return (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def body_timeout_problem(timeout: float) -> Problem:
    return Problem(408, "Request Timeout", f"The request body stopped arriving: no byte for {timeout:g} seconds.",
                   rule="body-timeout")


class GatewayRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with handle_error answering in the gateway's format, and the head
    and body timeouts (their values on the GatewayServer that made it).

    The head timeout costs a keep-alive request no timer of its own: a connection has at most one head timer,
    armed when a head begins and none is armed, and left running when the head completes. When it fires it
    looks at the head being received now, if any: past its deadline, the 408; before it, the timer is armed
    again for that head's deadline; none, the timer stops (the next head arms one). So a busy connection
    schedules one timer per head_timeout seconds, not one per request, and every head still has its deadline.
    A request without a body (a GET) gets no body timer, and no extra coroutine either."""

    proxied = False  # a proxy connection's handler says True (sandbox/gateway/proxy.py): the request log shows it
    connection_env: Env | None = None  # set by the first request that asks (sandbox/gateway/checks.py resolve_env)
    _head_timer: asyncio.TimerHandle | None = None
    _head_since: float | None = None  # when the head being received began; None between requests
    _body_timer: asyncio.TimerHandle | None = None
    _body_timeout: float | None = None
    _last_data = 0.0  # when the body being timed last sent a byte (or its timing began)

    # -- the head: from the connection's start, or the first byte after the last request ------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._body_timeout = getattr(self._manager, "body_timeout", None)
        self._head_since = self._loop.time()
        self._arm_head()

    def _arm_head(self) -> None:
        timeout = getattr(self._manager, "head_timeout", None)
        if timeout and self._head_timer is None and self._head_since is not None:
            self._head_timer = self._loop.call_at(self._head_since + timeout, self._head_timed_out, timeout)

    def _disarm(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._head_since = None

    def data_received(self, data: bytes) -> None:
        if self._body_timer is not None:  # a body being timed: a byte of it came
            self._last_data = self._loop.time()
        elif self._head_since is None and data and not self._request_in_progress and not self._messages:
            self._head_since = self._loop.time()  # a new request's head begins
            if self._head_timer is None:
                self._arm_head()
        parsed = self._request_count
        RequestHandler.data_received(self, data)
        if self._request_count != parsed:  # a whole head (or a parse error): its timer may stay armed
            self._head_since = None

    def _head_timed_out(self, timeout: float) -> None:
        self._head_timer = None
        since = self._head_since
        if since is None or self.transport is None or self._force_close:
            return  # no head is being received: the next one arms the timer again
        if self._loop.time() + 0.001 < since + timeout:  # a later head than the one the timer was armed for
            self._arm_head()
            return
        if self._request_in_progress or self._messages:
            return
        manager = self._manager
        throttled = getattr(manager, "throttled", None)
        if throttled is not None:
            throttled("closed a connection that sent no whole request head within %g s", timeout)
        self.transport.write(head_timeout_response(timeout))
        self.force_close()  # transport.close() still sends what was written

    # -- the body: it may pause for at most body_timeout while a handler waits for it -----------------------
    def _handle_request(self, request, start_time, request_handler):
        """The coroutine aiohttp runs as the request's task: its own when the request has no body (or it has
        arrived), else one that times the body's pauses while the handler runs."""
        if request.method == "CONNECT" and request_handler is self._request_handler:  # not a proxy port
            request_handler = getattr(self._manager, "connect_handler", None) or request_handler
        payload = request.content
        timeout = self._body_timeout
        if timeout and payload is not EMPTY_PAYLOAD and not payload.is_eof():
            self._last_data = self._loop.time()
            self._body_timer = self._loop.call_later(timeout, self._check_body, payload, timeout)
            return self._timed_request(request, start_time, request_handler)
        return RequestHandler._handle_request(self, request, start_time, request_handler)

    async def _timed_request(self, request, start_time, request_handler):
        try:
            return await super()._handle_request(request, start_time, request_handler)
        finally:
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None

    def _check_body(self, payload, timeout: float) -> None:
        self._body_timer = None
        if payload.is_eof() or payload.exception() is not None or self.transport is None:
            return
        idle = self._loop.time() - self._last_data
        # Only while someone waits for the body: unread, it stops arriving because the sandbox paused reading.
        if idle >= timeout and getattr(payload, "_waiter", None) is not None:
            throttled = getattr(self._manager, "throttled", None)
            if throttled is not None:
                throttled("gave up on a request body that stopped arriving for %g s", timeout)
            payload.set_exception(body_timeout_problem(timeout))  # the handler's read raises it: the API's 408
            payload.feed_eof()  # nothing more is read from this connection...
            self.close()  # ...which closes once the 408 is sent
            return
        self._body_timer = self._loop.call_later(max(timeout - idle, 0.05), self._check_body, payload, timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        reason = parser_reason(exc, message)
        if status >= 500:
            self.log_exception("Error handling request", exc_info=exc)
        else:
            log.info("refused an unparsable request (%s): %s", status, reason)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        text = gateway_message(status, reason)
        response = errors.render(GatewayError(text, status=status), RenderContext(api="gateway", path="/"))
        response.force_close()
        if covers(request.path):  # what the front door adds to every other answer under /_sandbox/
            add_page_headers(response.headers)
        refused = getattr(self._manager, "refused", None)
        if status < 500 and refused is not None:  # the request log shows what the parser refused, and why
            sockname = self.transport.get_extra_info("sockname") if self.transport is not None else None
            try:
                refused(sockname[1] if sockname and len(sockname) >= 2 else None, status, text)
            except Exception:  # the log must never break an answer
                log.exception("could not record a refused request in the request log")
        return response


class GatewayServer(web.Server):
    #: Told (port, status, reason) of each request the HTTP parser refused; set by SandboxRunner.
    refused: Callable[[int | None, int, str], None] | None = None
    head_timeout: float | None = None
    body_timeout: float | None = None
    throttled: Throttled | None = None
    #: The app's answer to CONNECT (sandbox/gateway/front_door.py): the router finds no route for its target.
    connect_handler: Callable | None = None

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class SandboxRunner(web.AppRunner):
    """An AppRunner whose connections use GatewayRequestHandler."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GatewayServer  # same state, one overridden method
        app = self.app
        ring, runtime = app.get(REQUEST_LOG), app[RUNTIME]
        server.head_timeout = runtime.settings.head_timeout  # type: ignore[attr-defined]
        server.body_timeout = runtime.settings.body_timeout  # type: ignore[attr-defined]
        server.throttled = Throttled()  # type: ignore[attr-defined]
        server.connect_handler = app.get(CONNECT_HANDLER)  # type: ignore[attr-defined]
        if ring is not None:
            def refused(port: int | None, status: int, reason: str) -> None:
                ring.record_refused(runtime.port_env.get(port, Env.TEST) if port is not None else Env.TEST, status,
                                    reason)
            server.refused = refused  # type: ignore[attr-defined]
        return server


class AcceptErrors:
    """An event-loop exception handler that logs running out of descriptors on accept() throttled, with a
    count (asyncio logs it with a traceback every second and retries), and hands everything else on."""

    def __init__(self, previous: Callable | None) -> None:
        self.previous = previous
        self.throttled = Throttled()

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in OUT_OF_RESOURCES and "accept" in str(context.get("message")):
            self.throttled("cannot accept new connections for now: %s (errno %s); retrying",
                           exc.strerror or exc, errno.errorcode.get(exc.errno or 0, exc.errno))
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class TLSSite(web.TCPSite):
    """The TLS port's site: aiohttp's TCPSite, with a TLS handshake timeout (asyncio's default is 60 s). A client
    that opens a connection and never finishes its handshake is dropped after `handshake_timeout` seconds (the
    head timeout), as one that never sends its request's head is."""

    def __init__(self, *args, handshake_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port,
            ssl_handshake_timeout=self.handshake_timeout)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
