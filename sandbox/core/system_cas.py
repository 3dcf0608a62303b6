"""The system's CA certificates, loaded once `vipps-sandbox serve` listens rather than while it starts.

Importing aiohttp makes its two default client TLS contexts (aiohttp.connector: verified and not), and each
loads the system CA bundle (`SSLContext.set_default_verify_paths`, ~150 certificates parsed by OpenSSL): about
35 ms, a tenth of the start, for contexts that only the sandbox's outgoing HTTPS requests (webhooks, Express
and Checkout callbacks) use, and never before a request has come in.

`deferred()` wraps the import of aiohttp: a context that asks for the system CAs meanwhile gets them later,
from `load()`: the server calls it first thing in its warm-up thread, once it listens. Until then each such
context loads them itself on first use (its `wrap_bio` and `wrap_socket`, what asyncio and the ssl module call
to start a TLS connection), so no connection is ever made with a context that lacks them: the same
verification as ever, only later. Without `deferred()` (tests, other commands) nothing changes.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pending: list[ssl.SSLContext] = []
#: The method deferred, as the ssl module has it (SSLContext inherits it from the C type).
_LOAD = ssl.SSLContext.set_default_verify_paths
_STARTS = ("wrap_bio", "wrap_socket")  # how a context starts a connection: both load first while pending


def pending() -> int:
    """How many contexts still wait for the system CAs."""
    with _lock:
        return len(_pending)


def load() -> None:
    """Gives every context made under `deferred()` the system CAs (and its own wrap_bio/wrap_socket back)."""
    with _lock:
        while _pending:
            context = _pending.pop()
            _LOAD(context)
            for name in _STARTS:
                context.__dict__.pop(name, None)


def _record(context: ssl.SSLContext) -> None:
    """set_default_verify_paths while deferred: remembered, and done before the context's first connection."""
    def starting(name: str):
        def start(*args, **kwargs):
            load()
            return getattr(ssl.SSLContext, name)(context, *args, **kwargs)
        return start

    with _lock:
        for name in _STARTS:
            setattr(context, name, starting(name))
        _pending.append(context)


@contextmanager
def deferred() -> Iterator[None]:
    """While inside, SSL contexts that ask for the system CAs (aiohttp's, made as it imports) get them from
    `load()` or on their first connection, whichever comes first."""
    own = ssl.SSLContext.__dict__.get("set_default_verify_paths")
    ssl.SSLContext.set_default_verify_paths = _record  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own is None:
            del ssl.SSLContext.set_default_verify_paths
        else:
            ssl.SSLContext.set_default_verify_paths = own  # type: ignore[method-assign]
