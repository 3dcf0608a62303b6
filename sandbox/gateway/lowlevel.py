"""Errors aiohttp answers before the app sees the request, rendered as the gateway's JSON.

A request line or header the HTTP parser cannot accept (NUL bytes, invalid UTF-8 in the path,
a duplicated Content-Length) never reaches the app, so aiohttp would answer in plain text and log
a traceback. The real gateway (Azure APIM) answers such requests with its own JSON body; so do we,
and one line in the log is enough for a client's mistake.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from sandbox.core import errors
from sandbox.core.errors import GatewayError, RenderContext, clip
from sandbox.core.model import Env
from sandbox.gateway.context import RUNTIME
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


class GatewayRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with handle_error answering in the gateway's format."""

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

    def __call__(self) -> RequestHandler:
        return GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class SandboxRunner(web.AppRunner):
    """An AppRunner whose connections use GatewayRequestHandler."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GatewayServer  # same state, one overridden method
        app = self.app
        ring, runtime = app.get(REQUEST_LOG), app[RUNTIME]
        if ring is not None:
            def refused(port: int | None, status: int, reason: str) -> None:
                ring.record_refused(runtime.port_env.get(port, Env.TEST) if port is not None else Env.TEST, status,
                                    reason)
            server.refused = refused  # type: ignore[attr-defined]
        return server
