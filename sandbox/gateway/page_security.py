"""The browser-facing headers of every sandbox page, set in one place: a response hook for /_sandbox/ and /favicon.ico.

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

`install(app)` registers the hook (called by sandbox/app.py `create_app`). A page whose form redirects on to
another origin (the landing page's Approve goes to the merchant's returnUrl) widens only form-action, with
`policy(form_targets)`; the hook fills in whatever a response did not set itself.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

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


async def add_page_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    if not covers(request.path):
        return
    headers = response.headers
    for name, value in HEADERS.items():
        if name not in headers:
            headers[name] = value


def install(app: web.Application) -> None:
    app.on_response_prepare.append(add_page_headers)
