"""The browser-facing headers of every sandbox page, set in one place for every response to /_sandbox/ and /favicon.ico.

The landing, QR, product-order and dashboard pages share the origin of the control plane, which on loopback
needs no token (/_sandbox/keys lists every secret). So no page may run a script it did not ship, be framed,
post forms elsewhere, or leak its URL (landing tokens are in query strings) through the Referer:

- Content-Security-Policy: scripts only from the sandbox's own files (the dashboard's dashboard.js; no page
  has inline script), no plugins, no <base>, no framing, forms post only to the sandbox. Inline styles are
  allowed (the pages carry their CSS in a <style> element; every value in them is escaped), and data:
  images (a QR code may be one).
- X-Frame-Options: DENY (older browsers), X-Content-Type-Options: nosniff, Referrer-Policy: same-origin: no
  Referer leaves the sandbox, and the pages' own form posts keep a real Origin (with no-referrer a browser
  sends `Origin: null`, which the control plane's cross-origin rule refuses, sandbox/gateway/hosts.py).

The front door (sandbox/gateway/front_door.py), which every route is behind, calls `add_page_headers` on each
response to a covered path, and on the redirects handlers raise; the connection's error answer
(sandbox/gateway/lowlevel.py handle_error) does too. Not an aiohttp on_response_prepare hook: that would cost
every API response (a GET payment) two coroutines to find out it is not a page. A page whose form redirects on
to another origin (the landing page's Approve goes to the merchant's returnUrl) widens only form-action, with
`policy(form_targets)`; `add_page_headers` fills in whatever a response did not set itself.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping

#: The policy's directives, in the order they are sent.
DIRECTIVES: tuple[tuple[str, str], ...] = (
    ("default-src", "'self'"),
    ("script-src", "'self'"),
    ("style-src", "'self' 'unsafe-inline'"),
    ("img-src", "'self' data:"),
    ("object-src", "'none'"),
    ("base-uri", "'none'"),
    ("frame-ancestors", "'none'"),
    ("form-action", "'self'"),
)


def policy(form_targets: Iterable[str] = ()) -> str:
    """The Content-Security-Policy, with form-action widened by `form_targets` (source expressions such as
    "https:" or "myapp:"; each must be one token, so nothing can be appended to the policy)."""
    extra = [target for target in form_targets if target and not any(c in target for c in " ;,'\"\r\n\t")]
    parts = [f"{name} {value}{''.join(' ' + t for t in extra) if name == 'form-action' else ''}"
             for name, value in DIRECTIVES]
    return "; ".join(parts)


CSP = policy()
#: What every response under /_sandbox/ (and /favicon.ico) carries, unless it set the header itself.
HEADERS: dict[str, str] = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def covers(path: str) -> bool:
    """The paths whose responses get the headers: the control plane and its pages, and the icon."""
    return path.startswith("/_sandbox") or path == "/favicon.ico"


def add_page_headers(headers: MutableMapping[str, str]) -> None:
    """The headers of a response to a covered path (before it is sent), those it did not set itself."""
    for name, value in HEADERS.items():
        if name not in headers:
            headers[name] = value
