"""A JSON answer written to the connection in one step: the hot GETs' response path.

aiohttp's standard path for a `web.Response` goes through prepare, _start, _prepare_headers, the prepare
hook, _write_headers, write_headers and then write_eof, write_eof, _send_headers_with_payload, _writelines
and drain: about 30,000 instructions a request, an eighth of a whole authorized GET. `FastResponse` does
the same work for the common case in one method (the same bytes on the wire, Date aside): a bytes body,
HTTP/1.1, not HEAD, a status with a body, no cookies, compression or chunking, and no app with an
on_response_prepare signal. Anything else, or an aiohttp whose internals differ from what this relies on
(checked once, at import), takes the standard path, so nothing depends on the shortcut being taken.
tests/gateway/test_fast_reply.py compares the two on raw sockets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aiohttp import hdrs, web
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_writer import StreamWriter
from multidict import CIMultiDict

try:
    from aiohttp.compression_utils import MAX_SYNC_CHUNK_SIZE
    from aiohttp.helpers import rfc822_formatted_time
    from aiohttp.http_writer import _serialize_headers
    from aiohttp.web_response import REASON_PHRASES
except ImportError:  # pragma: no cover - an aiohttp without these: always the standard path
    rfc822_formatted_time = _serialize_headers = None
    MAX_SYNC_CHUNK_SIZE, REASON_PHRASES = 0, {}

JSON_UTF8 = "application/json; charset=utf-8"
NO_BODY = frozenset({204, 304})

#: Whether the installed aiohttp has the internals the shortcut writes through (else every answer is standard).
ENABLED = (_serialize_headers is not None and callable(getattr(StreamWriter, "_write", None))
           and hasattr(StreamWriter, "_eof") and hasattr(web.StreamResponse, "_eof_sent")
           and hasattr(web.Response, "_compressed_body"))


class FastResponse(web.Response):
    """A `web.Response` whose prepare writes status line, headers and body at once when it safely can."""

    #: Whether this answer went out through the shortcut (the tests read it).
    fast = False

    async def prepare(self, request: web.BaseRequest):  # type: ignore[override]
        if self._eof_sent:
            return None
        if self._payload_writer is not None:
            return self._payload_writer
        body, status, headers, writer = self._body, self._status, self._headers, request._payload_writer
        # The shortcut only where the standard path would write exactly this (see the module's docstring).
        if (not ENABLED or type(body) is not bytes or self._cookies or self._compression or self._chunked
                or request.version != HttpVersion11 or request.method == hdrs.METH_HEAD or status < 200
                or status in NO_BODY or hdrs.CONTENT_LENGTH in headers or type(writer) is not StreamWriter
                or writer.chunked or writer._compress is not None or writer._headers_buf is not None
                or writer._on_chunk_sent is not None or writer._on_headers_sent is not None
                or getattr(writer, "on_body_write", None) is not None):
            return await super().prepare(request)
        match_info = getattr(request, "_match_info", None)
        if match_info is not None:
            for app in match_info._apps:
                if app.on_response_prepare:
                    return await super().prepare(request)
        headers[hdrs.CONTENT_LENGTH] = str(len(body))
        headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        if not keep_alive and hdrs.CONNECTION not in headers:
            headers[hdrs.CONNECTION] = "close"
        head = _serialize_headers(f"HTTP/1.1 {status} {self._reason}", headers)
        self._req = request
        self._payload_writer = writer
        self._must_be_empty_body = False
        writer.length = len(body)
        writer._headers_written = True
        writer._write(head + body)  # a closed connection raises here, as the standard path's write does
        writer._eof = True
        self._eof_sent = True
        self._body_length = writer.output_size
        self.fast = True
        protocol = writer._protocol
        if protocol.transport is not None and protocol._paused:
            await protocol._drain_helper()
        return writer


def _lean(body: bytes, status: int, headers: CIMultiDict[str]) -> FastResponse:
    """A FastResponse with exactly the instance state `web.Response(body=..., status=..., headers=...)` gives,
    without its keyword handling (checked against the real constructor at import: LEAN)."""
    reply = object.__new__(FastResponse)
    reply._state = {}
    reply._headers = headers
    reply._status = status
    reply._reason = REASON_PHRASES.get(status, "")
    reply._body = body
    reply._compressed_body = None
    reply._zlib_executor_size = MAX_SYNC_CHUNK_SIZE
    reply._zlib_executor = None
    return reply


def _same_state(one: web.Response, other: web.Response) -> bool:
    mine, theirs = vars(one), vars(other)
    return mine.keys() == theirs.keys() and all(
        list(value.items()) == list(theirs[name].items()) if name == "_headers" else value == theirs[name]
        for name, value in mine.items())


def _lean_matches() -> bool:
    try:
        for status in (200, 201, 404, 299):
            sample = CIMultiDict({"Cache-Control": "no-store", hdrs.CONTENT_TYPE: JSON_UTF8})
            real = FastResponse(body=b"{}", status=status, headers=sample)
            if not _same_state(_lean(b"{}", status, sample.copy()), real):
                return False
        return True
    except Exception:  # pragma: no cover - an aiohttp whose Response differs: the real constructor
        return False


#: Whether json_bytes may build its answer without web.Response's constructor (same state, fewer steps).
LEAN = ENABLED and _lean_matches()
JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: JSON_UTF8})


def json_bytes(body: bytes, *, status: int = 200, headers: Mapping[str, str] | None = None,
               content_type: str = JSON_UTF8) -> FastResponse:
    """A JSON answer from prepared bytes (UTF-8): the headers given, then Content-Type."""
    if headers is None and content_type == JSON_UTF8:
        real = JSON_HEADERS.copy()
    else:
        real = CIMultiDict(headers or ())
        real[hdrs.CONTENT_TYPE] = content_type
    if LEAN:
        return _lean(body, status, real)
    return FastResponse(body=body, status=status, headers=real)


def json_reply(value: object, *, status: int = 200, headers: Mapping[str, str] | None = None) -> FastResponse:
    """A JSON answer from a value (`json.dumps`, as `web.json_response` does)."""
    return json_bytes(json.dumps(value).encode(), status=status, headers=headers)
