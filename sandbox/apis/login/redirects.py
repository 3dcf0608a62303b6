"""Which redirect_uri a login may go back to, and the URL it goes back with.

A redirect_uri must equal a registered one exactly (trailing slash, encoding, case, query: the Vipps rule),
with one exception from RFC 8252 section 7.3: on the loopback hosts `127.0.0.1` and `localhost` over http,
any port matches (a native app or a test listens on whatever port it got). An unregistered redirect_uri is
never redirected to: the user gets an error page (vippsas/vipps-login-api issue #68).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

LOOPBACK_NETLOC = re.compile(r"(127\.0\.0\.1|localhost)(?::([0-9]{1,5}))?")


def _portless(uri: str) -> str | None:
    """A loopback http URI without its port (the form RFC 8252 compares), or None for any other URI."""
    if not uri.startswith("http://"):
        return None
    parts = urlsplit(uri)
    match = LOOPBACK_NETLOC.fullmatch(parts.netloc)
    if match is None:
        return None
    rest = uri[len("http://") + len(parts.netloc):]
    return f"http://{match.group(1)}{rest}"


def matches(uri: str, registered: list[str]) -> bool:
    if uri in registered:
        return True
    portless = _portless(uri)
    return portless is not None and any(_portless(known) == portless for known in registered)


def with_params(uri: str, params: dict[str, str]) -> str:
    """`uri` with the response parameters added to its query (a registered query is kept, RFC 6749 3.1.2)."""
    query = urlencode({name: value for name, value in params.items() if value is not None})
    head = uri.split("#", 1)[0]  # a fragment is not allowed in a redirect_uri; never keep one
    return f"{head}{'&' if '?' in head else '?'}{query}"


def form_target(uri: str) -> str:
    """The CSP source a consent form may redirect on to: the redirect URI's origin (or its scheme, for an app's)."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}:"
