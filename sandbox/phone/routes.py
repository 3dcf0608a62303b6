"""/_sandbox/phone/{phoneNumber}: the virtual phone page.

The real test environment needs a physical phone with the test app; here every API registers what it would
show (sandbox/gateway/phone_cards.py) and this page lists it, live, in the request's environment. Each card's
Approve and Reject post to its own API's simulated-user routes and come back here.
"""

from __future__ import annotations

import html

from aiohttp import web

from sandbox.gateway import user_picker
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_shell import page
from sandbox.gateway.phone_cards import card_html, cards_for

CSS = ".request{border:1px solid #ddd;border-radius:10px;margin:1rem 0;padding:.5rem 1rem}" \
      ".field{display:block;margin:.5rem 0}.field input{display:block;width:100%}"


def phone_html(request: web.Request, number: str) -> str:
    esc = html.escape
    user = request.app[RUNTIME].world.user(number)
    who = (f"<strong data-user-role=\"{esc(user.role)}\">{esc(user.name)}</strong> ({esc(number)}, {esc(user.market)})"
           if user else f"<strong>{esc(number)}</strong> (not a test user)")
    parts = [f"<h1>Phone</h1><p class=\"who\">{who}</p>",
             f"<p><small>{esc(str(call(request).env))} environment; reload to see new requests.</small></p>"]
    cards = cards_for(request, number)
    if not cards:
        parts.append("<p class=\"empty\" data-empty>No pending payment requests, agreements, "
                     "login requests or consents.</p>")
    parts.extend(card_html(card) for card in cards)
    return "".join(parts)


async def phone(request: web.Request) -> web.Response:
    number = user_picker.check_msisdn(request.match_info["phoneNumber"], "phone-number-invalid")
    return page(f"Vipps MobilePay sandbox: phone {number}", phone_html(request, number), css=CSS)


def setup(app: web.Application) -> None:
    routes(app).add_get("/_sandbox/phone/{phoneNumber}", phone, name="sandbox.phone")
