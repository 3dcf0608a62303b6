"""JSON the dashboard reads: the building (directory + keys on their rings) and live listings.

The building is the World seen as a house: each sales unit is a door, merchant keys open one
door, partner keys every connected door, management keys the mailroom (the Management API),
accounting keys the ledger room of merchants that consented, and merchant-level keys (hanging on a
merchant's ring, not a door's) the merchant's donations office. Secrets are masked (last 4 only).
"""

from __future__ import annotations

from collections import defaultdict

from aiohttp import web

from sandbox.core.clock import iso_utc
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World
from sandbox.gateway.context import RUNTIME


def mask(secret: str | None) -> str | None:
    """At most the last 4 characters of a secret: enough to tell keys apart, not to use them."""
    if not secret:
        return None
    return "••••" + secret[-4:]


def _opens(world: World, keyset: KeySet) -> str:
    if keyset.type is KeyType.MERCHANT:
        return "one door: its own sales unit"
    if keyset.type is KeyType.PARTNER:
        partner = world.partners.get(keyset.owner)
        if partner is not None and not partner.act_on_behalf_approved:
            return "the mailroom of every connected door (not approved to act on behalf)"
        return "every connected door"
    if keyset.type is KeyType.MANAGEMENT:
        return "the mailroom (Management API) of the sales units it manages"
    if keyset.type is KeyType.MERCHANT_LEVEL:
        return "the donations office of its own merchant (Donations API, its ledgers, donations.* webhooks)"
    return "the ledger room of merchants that consented"


def ring_key(world: World, keyset: KeySet) -> dict:
    return {
        "type": str(keyset.type), "environment": str(keyset.environment), "clientId": keyset.client_id,
        "clientSecret": mask(keyset.client_secret),
        "subscriptionKeyPrimary": mask(keyset.subscription_key_primary),
        "subscriptionKeySecondary": mask(keyset.subscription_key_secondary),
        "owner": keyset.owner, "opens": _opens(world, keyset), "doors": world.reach(keyset),
        "description": world.describe(keyset),
    }


def _merchant_node(world: World, merchant_key: str, msns: list[str], rings: dict[str, list[dict]]) -> dict:
    merchant = world.merchants[merchant_key]
    units = [world.sales_units[msn] for msn in msns]
    return {
        "key": merchant.key, "name": merchant.name, "role": merchant.role, "status": merchant.status,
        "country": merchant.country, "ring": rings.get(merchant.key, []),
        "salesUnits": [{"msn": u.msn, "name": u.name, "role": u.role, "market": u.market, "currency": u.currency,
                        "active": merchant.active, "ring": rings.get(u.msn, [])} for u in units],
    }


def _merchants(world: World, msns: list[str], rings: dict[str, list[dict]]) -> list[dict]:
    by_merchant: dict[str, list[str]] = defaultdict(list)
    for msn in msns:
        by_merchant[world.sales_units[msn].merchant].append(msn)
    return [_merchant_node(world, key, units, rings) for key, units in by_merchant.items()]


def building(world: World) -> dict:
    """Partners -> merchants -> sales units, each with the keys hanging on its ring."""
    rings: dict[str, list[dict]] = defaultdict(list)
    order = {"test": 0, "production": 1}
    for keyset in sorted(world.keys.values(), key=lambda k: (str(k.type), order[str(k.environment)])):
        rings[keyset.owner].append(ring_key(world, keyset))
    ledger_rooms: dict[str, list[str]] = defaultdict(list)
    for partner_id, merchant in sorted(world.consents):
        ledger_rooms[partner_id].append(merchant)
    partners = []
    for partner in world.partners.values():
        partners.append({
            "id": partner.id, "name": partner.name, "level": partner.level, "role": partner.role,
            "actOnBehalfApproved": partner.act_on_behalf_approved, "accounting": partner.accounting,
            "ring": rings.get(partner.id, []),
            "ledgerRoom": [{"merchant": m, "name": world.merchants[m].name} for m in ledger_rooms.get(partner.id, [])
                           if m in world.merchants],
            "merchants": _merchants(world, world.partner_msns.get(partner.id, []), rings),
        })
    independent = [u.msn for u in world.sales_units.values() if not u.partner_id]
    return {"partners": partners, "independent": _merchants(world, independent, rings),
            "roles": roles(world)}


def roles(world: World) -> dict:
    """Role nicknames -> ids, so scenarios and people can say "premium-shop-1" instead of an MSN."""
    return {
        "partners": {p.role: p.id for p in world.partners.values() if p.role},
        "merchants": {m.role: m.key for m in world.merchants.values() if m.role},
        "salesUnits": {u.role: u.msn for u in world.sales_units.values() if u.role},
    }


# ---------------------------------------------------------------------------------------------
# Live listings from other APIs' backends: the only coupling is these read-only functions and
# payment_action, which calls the same backend method as /_sandbox/payments/{msn}/{reference}/{action}.
# ---------------------------------------------------------------------------------------------

PAYMENT_ACTIONS = ("approve", "reject", "expire")


def _payments(app: web.Application):
    from sandbox.apis.epayment.routes import PAYMENTS

    return app.get(PAYMENTS)


#: Payments per page of the feed when none is asked for, and the most one page may hold.
PAGE_DEFAULT, PAGE_MAX = 100, 1000


def payment_page(app: web.Application, limit: int = PAGE_DEFAULT, before: int | None = None) -> dict:
    """A page of the payments of both environments, newest first, each with a link to its landing page.

    {"payments": [...], "total": every payment, "next": the `before` of the next (older) page, or None}. The
    work is O(page): rows are made only for the page, so a sandbox with many payments never blocks the loop."""
    backend = _payments(app)
    if backend is None:
        return {"payments": [], "total": 0, "next": None}
    backend.sweep()  # payments due to expire on the virtual clock show as EXPIRED
    page, cursor = backend.newest(limit, before)
    rows = []
    for payment in page:
        created = payment.events[0].timestamp if payment.events else None
        refused = backend.refusal(payment)  # a test-environment magic amount: the landing page refuses it too
        rows.append({
            "environment": str(payment.env), "msn": payment.msn, "reference": payment.reference,
            "state": str(payment.state), "amount": payment.amount(payment.value),
            "aggregate": payment.aggregate(), "description": payment.description, "userFlow": payment.user_flow,
            "createdAt": iso_utc(created) if created is not None else None,
            "landingUrl": f"/_sandbox/landing?token={backend.landing_token(payment)}",
            "approveRefusal": {"code": refused[0], "reason": refused[1]} if refused is not None else None,
        })
    return {"payments": rows, "total": len(backend.payments), "next": None if cursor is None else str(cursor)}


def payment_action(app: web.Application, env: str, msn: str, reference: str, action: str) -> dict:
    """approve, reject or expire a payment of either environment (the dashboard lives on one port)."""
    backend = _payments(app)
    if backend is None:
        raise Problem(404, "Not Found", "The ePayment API is not part of this sandbox.")
    try:
        environment = Env(env)
    except ValueError as exc:
        raise Problem(400, "Bad Request", "env must be test or production.",
                      details=[Detail("env", "Must be test or production.")]) from exc
    payment = backend.find(environment, msn, reference)
    getattr(backend, action)(payment)
    return payment.view()


def product_order_rows(app: web.Application) -> list[dict]:
    """Every product order, newest first, as the control plane shows it."""
    from sandbox.apis.management.routes import BACKEND

    backend = app.get(BACKEND)
    if backend is None:
        return []
    book = getattr(backend, "book", backend)  # the orders live in its ProductOrderBook
    rows = []
    for order_id in reversed(list(book.orders)):
        view = book.sandbox_view(book.order(order_id))
        partner = app[RUNTIME].world.partners.get(view["partnerId"])
        bid = view.get("businessIdentifier") or {}
        rows.append({"id": view["productOrderId"], "status": view["status"], "partnerId": view["partnerId"],
                     "partner": partner.name if partner else view["partnerId"],
                     "merchant": f"{bid.get('scheme', '')}/{bid.get('id', '')}", "createdAt": view["createdAt"],
                     "expiresAt": view["expiresAt"], "salesUnit": view.get("salesUnit"),
                     "page": f"/_sandbox/product-orders/{view['productOrderId']}"})
    return rows


# -- Recurring agreements and their charges -----------------------------------------------------------------------
#: The newest charges shown with each agreement (its `chargeCount` says how many it has).
CHARGES_SHOWN = 12


def _recurring(app: web.Application):
    from sandbox.apis.recurring.routes import RECURRING

    return app.get(RECURRING)


def agreement_page(app: web.Application, limit: int = PAGE_DEFAULT, before: int | None = None) -> dict:
    """A page of the Recurring agreements of both environments, newest first, each with its newest charges.

    {"agreements": [...], "total": every agreement, "next": the `before` of the next (older) page, or None}, as
    the payments feed. O(page + the charges shown)."""
    backend = _recurring(app)
    if backend is None:
        return {"agreements": [], "total": 0, "next": None}
    page, cursor = backend.newest(limit, before)
    rows = []
    for agreement in page:
        pricing = agreement.pricing
        price = pricing.get("amount", pricing.get("maxAmount", pricing.get("suggestedMaxAmount")))
        charges = []
        for charge_id in reversed(agreement.charges[-CHARGES_SHOWN:]):
            charge = backend.charges.get((agreement.env, agreement.msn, charge_id))
            if charge is None:
                continue
            charges.append({"id": charge.id, "amount": {"value": charge.amount, "currency": charge.currency},
                            "due": charge.due.isoformat(), "status": charge.status, "type": charge.type,
                            "transactionType": charge.transaction_type, "description": charge.description,
                            "failureReason": charge.failure_reason})
        confirmation = None
        if agreement.status == "PENDING":
            confirmation = f"/_sandbox/recurring/confirm?token={backend.token(agreement)}"
        rows.append({
            "environment": str(agreement.env), "msn": agreement.msn, "id": agreement.id, "status": agreement.status,
            "productName": agreement.product_name, "pricingType": pricing["type"],
            "price": None if price is None else {"value": price, "currency": pricing["currency"]},
            "interval": interval_text(agreement.interval), "createdAt": iso_utc(agreement.created),
            "confirmationUrl": confirmation, "charges": charges, "chargeCount": len(agreement.charges),
        })
    return {"agreements": rows, "total": len(backend.order), "next": None if cursor is None else str(cursor)}


def interval_text(interval: dict | None) -> str:
    if interval is None:
        return "pay per use"
    unit, count = str(interval["unit"]).lower(), interval["count"]
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"
