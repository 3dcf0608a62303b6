"""What the app shows of Order Management: the receipt and the category link, on the virtual phone and (through
sandbox/gateway/order_details.py) on ePayment's landing page. No routes of its own."""

from __future__ import annotations

from aiohttp import web

from sandbox.apis.ordermanagement.backend import OrderManagementBackend
from sandbox.core.model import Env
from sandbox.core.urls import is_safe_link
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.order_details import CATEGORY_WORDS, OrderDetails, add_order_source, receipt_lines
from sandbox.gateway.phone_cards import PhoneAction, PhoneCard, add_phone_source


def details(orders: OrderManagementBackend, env: Env, msn: str, payment_type: str, order_id: str
            ) -> OrderDetails | None:
    order = orders.orders.get((env, msn, payment_type, order_id))
    if order is None:
        return None
    category = orders._latest_category(order)
    if category is None and order.receipt is None:
        return None
    return OrderDetails(order.receipt, category and category.get("category"), category and
                        category.get("orderDetailsUrl"))


def _phone_cards(request: web.Request, orders: OrderManagementBackend, number: str) -> list[PhoneCard]:
    """The user's recent orders with a receipt or a category: the receipt's lines, and the merchant's link."""
    env = call(request).env
    world = request.app[RUNTIME].world
    cards = []
    for (_, msn, payment_type, order_id), order in orders.orders_for_phone(env, number):
        found = details(orders, env, msn, payment_type, order_id)
        if found is None:
            continue
        unit = world.sales_units.get(msn)
        actions = ()
        if found.url and is_safe_link(found.url):
            actions = (PhoneAction(CATEGORY_WORDS.get(found.category or "", "Order details"), "open", href=found.url),)
        cards.append(PhoneCard("order", unit.name if unit else msn,
                               lines=tuple(receipt_lines(found.receipt)) if found.receipt else (),
                               actions=actions, data=(("reference", order_id), ("msn", msn),
                                                      ("category", found.category or "")),
                               order=order.changed_at))
    return cards


def setup(app: web.Application, key: web.AppKey[OrderManagementBackend]) -> None:
    orders = app[key]
    add_order_source(app, lambda env, msn, payment_type, order_id: details(orders, env, msn, payment_type, order_id))
    add_phone_source(app, lambda request, number: _phone_cards(request, request.app[key], number))
