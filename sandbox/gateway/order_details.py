"""What the app shows about an order: its receipt and its category link, for any page that shows the order.

The Order Management API holds them (sandbox/apis/ordermanagement/); the ePayment landing page shows them. API
packages never import one another, so they meet here, as the phone cards do (sandbox/gateway/phone_cards.py):
Order Management's setup calls `add_order_source(app, source)`, and a page asks `order_details(request, ...)` and
renders the answer with `order_details_html`.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.core.model import Env
from sandbox.core.urls import is_safe_link


@dataclass(frozen=True)
class OrderDetails:
    """An order as the app shows it: the receipt (Order Management's Receipt) and the latest category."""

    receipt: dict | None = None
    category: str | None = None  # GENERAL, RECEIPT, ORDER_CONFIRMATION, DELIVERY, TICKET, BOOKING
    url: str | None = None  # the category's link back to the merchant (orderDetailsUrl)


#: (env, msn, payment type "ecom" | "recurring", order id) -> the order's details, or None.
OrderSource = Callable[[Env, str, str, str], OrderDetails | None]
ORDER_SOURCES: web.AppKey[list[OrderSource]] = web.AppKey("order_sources", list)
CATEGORY_WORDS = {"GENERAL": "Order details", "RECEIPT": "Receipt", "ORDER_CONFIRMATION": "Order confirmation",
                  "DELIVERY": "Delivery", "TICKET": "Ticket", "BOOKING": "Booking"}


def add_order_source(app: web.Application, source: OrderSource) -> None:
    if ORDER_SOURCES not in app:
        app[ORDER_SOURCES] = []
    app[ORDER_SOURCES].append(source)


def order_details(request: web.Request, env: Env, msn: str, payment_type: str, order_id: str) -> OrderDetails | None:
    for source in request.app.get(ORDER_SOURCES, []):
        found = source(env, msn, payment_type, order_id)
        if found is not None:
            return found
    return None


def minor(value: object, currency: str) -> str:
    return f"{value / 100:.2f} {currency}" if isinstance(value, int) and not isinstance(value, bool) else "?"


def receipt_lines(receipt: dict) -> list[str]:
    """The receipt as plain lines: one per order line ("2 x socks: 10.00 NOK"), then the total."""
    bottom = receipt.get("bottomLine") if isinstance(receipt.get("bottomLine"), dict) else {}
    currency = str(bottom.get("currency") or "NOK")
    lines, total = [], 0
    for line in receipt.get("orderLines") or []:
        if not isinstance(line, dict):
            continue
        unit = line.get("unitInfo") if isinstance(line.get("unitInfo"), dict) else {}
        quantity = f"{unit['quantity']} x " if unit.get("quantity") else ""
        amount = line.get("totalAmount") if isinstance(line.get("totalAmount"), int) else 0
        sign = -1 if line.get("isReturn") else 1
        total += sign * amount
        lines.append(f"{quantity}{line.get('name', '')}: {minor(sign * amount, currency)}")
    lines.append(f"Total: {minor(total, currency)}")
    return lines


def order_details_html(details: OrderDetails) -> str:
    """The receipt and the category link, escaped, for a page (the class names are what tests look for)."""
    esc = html.escape
    parts = []
    if details.receipt:
        items = "".join(f"<li>{esc(line)}</li>" for line in receipt_lines(details.receipt))
        parts.append(f"<div class=\"receipt\" data-receipt><strong>Receipt</strong><ul>{items}</ul></div>")
    if details.url and is_safe_link(details.url):
        words = CATEGORY_WORDS.get(details.category or "", "Order details")
        parts.append(f"<p class=\"category\" data-category=\"{esc(details.category or '')}\">"
                     f"<a href=\"{esc(details.url)}\">{esc(words)}</a></p>")
    return "".join(parts)
