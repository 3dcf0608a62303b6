"""The frame every simulated-user page shares: the same look, the sandbox's icon, and the SANDBOX marker.

API packages never import one another, so the landing page (ePayment) and the confirmation page (Recurring)
take their frame from here instead of repeating it. Each page adds only its own CSS. The frame carries no
script: every /_sandbox/ page is served under a CSP that allows only the sandbox's own files
(sandbox/gateway/page_security.py).
"""

from __future__ import annotations

import html

from aiohttp import web

PAGE_CSS = ("body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
            ".card{border:1px solid #ddd;border-radius:12px;padding:1.5rem}.amount{font-size:2rem;font-weight:600}"
            ".why{background:#fdecea;border:1px solid #f5c2c0;border-radius:8px;padding:.75rem;margin:1rem 0}"
            "button{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:0;margin-right:.5rem;cursor:pointer}"
            ".approve{background:#ff5b24;color:#fff}.reject{background:#eee}button[disabled]{opacity:.4}"
            ".sandbox-marker{background:#1d1d24;color:#fff;border-radius:8px;padding:.5rem .75rem;margin:0 0 1rem;"
            "font-size:.95rem}.sandbox-marker strong{color:#ffd23f;letter-spacing:.08em;margin-right:.4rem}")
#: The sandbox's icon (served by the dashboard), so a browser never asks for /favicon.ico.
ICON_LINK = '<link rel="icon" href="/_sandbox/dashboard/favicon.svg" type="image/svg+xml">'
#: Said on every page a user's browser opens, so a screenshot of it is never taken for the real thing.
SANDBOX_MARKER = ('<p class="sandbox-marker" data-sandbox-marker role="note"><strong>SANDBOX</strong>'
                  "A simulated Vipps MobilePay page: no real money moves and no real app is involved.</p>")


def page(title: str, body: str, status: int = 200, css: str = "") -> web.Response:
    """A whole HTML page: `body` (already escaped) in the shared frame, with the page's own `css` added."""
    text = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{ICON_LINK}"
            f"<style>{PAGE_CSS}{css}</style></head><body>{SANDBOX_MARKER}"
            f"<div class=\"card\">{body}</div></body></html>")
    return web.Response(status=status, text=text, content_type="text/html")


def money(value: int, currency: str) -> str:
    """An amount in minor units as the app shows it: 1234 NOK is "12.34 NOK"."""
    return f"{value // 100}.{value % 100:02d} {currency}"
