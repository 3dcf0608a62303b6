"""Product orders: the lifecycle, expiry on the virtual clock, idempotency, and the sales unit made on completion.

No HTTP here. RECEIVED -> MERCHANT_VIEWED -> ORDER_SUBMITTED -> COMPLETED | REJECTED, or EXPIRED 14
virtual-clock days after creation (evaluated lazily, on access). Orders are indexed by id and by
partner; the directory (runtime.world) is read afresh each time, because a reset replaces it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from enum import StrEnum

from sandbox.apis.management.schema import PRODUCT_TYPE_V2, validate_product_order
from sandbox.core.clock import iso_utc
from sandbox.core.errors import Detail, OpaqueDenial, Problem, ValidationProblem, clip
from sandbox.core.model import MARKET_CURRENCY, Env, KeySet, KeyType, Merchant, SalesUnit
from sandbox.core.runtime import Runtime
from sandbox.fixture.bank_accounts import RAW_RANGE, account_for
from sandbox.fixture.business_ids import SCHEMES, is_valid
from sandbox.fixture.shape import CONFIG_DEFAULTS
from sandbox.gateway.policy import partner_named

EXPIRY_SECONDS = 14 * 86400  # "the URL expires after 14 days"
IDEMPOTENCY_KEY = re.compile(r"^[a-zA-Z0-9-]{1,50}$")
COUNTRY_OF_SCHEME = {scheme: country for country, scheme in SCHEMES.items()}
#: One text for an order that does not exist and another partner's: the real 404 must not reveal which.
NOT_FOUND = "The product order does not exist or was not made by the caller."


class Status(StrEnum):
    RECEIVED = "RECEIVED"
    MERCHANT_VIEWED = "MERCHANT_VIEWED"
    ORDER_SUBMITTED = "ORDER_SUBMITTED"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


#: Only an order the merchant has not submitted yet can expire or be deleted by the partner.
OPEN = frozenset({Status.RECEIVED, Status.MERCHANT_VIEWED})
#: action -> (the statuses it may start from, the status it leads to).
TRANSITIONS: dict[str, tuple[frozenset[Status], Status]] = {
    "view": (OPEN, Status.MERCHANT_VIEWED),  # opening the page twice is harmless
    "submit": (OPEN, Status.ORDER_SUBMITTED),  # submitting implies the merchant opened it
    "complete": (frozenset({Status.ORDER_SUBMITTED}), Status.COMPLETED),
    "reject": (OPEN | {Status.ORDER_SUBMITTED}, Status.REJECTED),  # the merchant declines, or Vipps rejects
}


@dataclass
class ProductOrder:
    id: str
    partner_id: str
    request: dict
    product_type: str  # always the 2.0.9 name
    created_at: float
    updated_at: float
    status: Status = Status.RECEIVED
    msn: str | None = None  # the sales unit made on completion
    history: list[tuple[str, float]] = field(default_factory=list)

    def url(self, origin: str) -> str:
        """The merchant's page, on the base URL (`scheme://host`) of the request being answered: built at
        response time, so it names the port and host its reader used (never a --state replay's port)."""
        return f"{origin}{PAGE_PATH.format(id=self.id)}"

    @property
    def business_identifier(self) -> dict:
        return dict(self.request["businessIdentifier"])

    @property
    def merchant_key(self) -> str:
        bid = self.request["businessIdentifier"]
        return f"{bid['scheme']}/{bid['id']}"


PAGE_PATH = "/_sandbox/product-orders/{id}"


def fingerprint(body: object) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class ProductOrderBook:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.orders: dict[str, ProductOrder] = {}
        self.partner_orders: dict[str, dict[str, None]] = {}  # partner id -> order ids, in creation order
        self.idempotency: dict[tuple[str, str], tuple[str, dict]] = {}  # (partner, key) -> (body, response)

    def reset(self) -> None:
        self.orders.clear()
        self.partner_orders.clear()
        self.idempotency.clear()

    # -- snapshots (runtime.state_providers["product_orders"]) ------------------------------------------
    def dump(self) -> dict:
        orders = [{"id": o.id, "partnerId": o.partner_id, "request": o.request, "productType": o.product_type,
                   "createdAt": o.created_at, "updatedAt": o.updated_at, "status": str(o.status),
                   "msn": o.msn, "history": [[str(s), t] for s, t in o.history]} for o in self.orders.values()]
        replays = [{"partnerId": p, "key": k, "body": body, "response": response}
                   for (p, k), (body, response) in self.idempotency.items()]
        return {"orders": orders, "idempotency": replays}

    def load(self, data: object) -> None:
        """Replaces the product orders with a dump's; raises (KeyError, ValueError, TypeError) on a bad one."""
        if not isinstance(data, dict):
            raise ValueError("the product orders' state must be an object")
        orders = [ProductOrder(str(o["id"]), str(o["partnerId"]), dict(o["request"]), str(o["productType"]),
                               float(o["createdAt"]), float(o["updatedAt"]), Status(o["status"]),
                               o["msn"], [(Status(s), float(t)) for s, t in o["history"]])
                  for o in data["orders"]]
        replays = {(str(r["partnerId"]), str(r["key"])): (str(r["body"]), dict(r["response"]))
                   for r in data["idempotency"]}
        self.reset()
        for order in orders:
            self.orders[order.id] = order
            self.partner_orders.setdefault(order.partner_id, {})[order.id] = None
        self.idempotency.update(replays)

    # -- the partner's side ------------------------------------------------------------------------
    def create(self, partner_id: str, idempotency_key: str | None, body: object, origin: str) -> dict:
        """`origin` is the base URL (`scheme://host`) of the request, for the prefillUrl."""
        check_idempotency_key(idempotency_key)
        assert idempotency_key is not None
        previous = self.idempotency.get((partner_id, idempotency_key))
        if previous is not None and previous[1]["prefilledOrderId"] not in self.orders:
            # The order it made was deleted since: replaying a link to nothing helps nobody, so the key is free.
            del self.idempotency[(partner_id, idempotency_key)]
            previous = None
        if previous is not None:
            if previous[0] != fingerprint(body):
                raise Problem(409, "Conflict", f"The Idempotency-Key {idempotency_key!r} was already used with "
                              "another request body. Use a new key for a new product order.",
                              details=[Detail("Idempotency-Key", "Already used with another request body.")],
                              rule="idempotency-key-reused")
            return self._created(previous[1]["prefilledOrderId"], origin)
        validate_product_order(body)
        assert isinstance(body, dict)
        self._check_order_content(partner_id, body)
        now = self.runtime.clock.time()
        order_id = self.runtime.ids.uuid4()
        order = ProductOrder(order_id, partner_id, json.loads(json.dumps(body)),
                             PRODUCT_TYPE_V2.get(body["productType"], body["productType"]),
                             now, now)
        order.history.append((Status.RECEIVED, now))
        self.orders[order_id] = order
        self.partner_orders.setdefault(partner_id, {})[order_id] = None
        self.idempotency[(partner_id, idempotency_key)] = (fingerprint(body), {"prefilledOrderId": order_id})
        return self._created(order_id, origin)

    def _created(self, order_id: str, origin: str) -> dict:
        return {"prefilledOrderId": order_id, "prefillUrl": self.orders[order_id].url(origin)}

    def _check_order_content(self, partner_id: str, body: dict) -> None:
        """What the schema cannot say: known schemes, valid check digits, the partner's own packages."""
        bid = body["businessIdentifier"]
        details = []
        if bid["scheme"] not in COUNTRY_OF_SCHEME:
            details.append(Detail("businessIdentifier.scheme", "Must be one of " + ", ".join(SCHEMES.values()) + "."))
        elif not is_valid(bid["scheme"], bid["id"]):
            details.append(Detail("businessIdentifier.id", f"Not a valid {bid['scheme']} number (check digit)."))
        package = body.get("pricePackageId")
        if package is not None and package not in {p.id for p in self.runtime.world.price_packages.get(partner_id, [])}:
            details.append(Detail("pricePackageId", "Not one of the partner's price packages "
                                  "(GET /management/v1/partners/price-packages)."))
        if details:
            raise ValidationProblem(details)

    def own(self, partner_id: str, order_id: str) -> ProductOrder:
        """The partner's order; another partner's is the same 404 as one that does not exist (only the sandbox's
        headers and request log tell them apart)."""
        order = self.orders.get(order_id)
        if order is None:
            raise Problem(404, "Not Found", NOT_FOUND, rule="product-order-unknown",
                          reason=f"No product order has the id {clip(order_id)} (deleted orders are gone).")
        if order.partner_id != partner_id:
            world = self.runtime.world
            raise OpaqueDenial(404, "Not Found", NOT_FOUND, rule="product-order-of-another-partner",
                               reason=f"Product order {order.id} was made by {partner_named(order.partner_id, world)}, "
                               f"not by {partner_named(partner_id, world)}: each partner sees only its own product "
                               "orders. The caller gets the 404 of a product order that does not exist.")
        return self._fresh(order)

    def delete(self, partner_id: str, order_id: str) -> None:
        order = self.own(partner_id, order_id)
        if order.status not in OPEN | {Status.EXPIRED}:
            raise Problem(409, "Conflict", f"The product order is {order.status}: only an order the merchant has "
                          "not submitted yet can be deleted.", rule="product-order-already-submitted")
        del self.orders[order_id]
        del self.partner_orders[order.partner_id][order_id]

    def list_for(self, partner_id: str, include_expired: bool, origin: str = "") -> list[dict]:
        views = [self.details_view(self._fresh(self.orders[oid]), origin)
                 for oid in self.partner_orders.get(partner_id, {})]
        return [v for v in views if include_expired or v["status"] != Status.EXPIRED]

    def details_view(self, order: ProductOrder, origin: str = "") -> dict:
        """ProductOrderDetailsResponseV2 (2.0.9); the URL on `origin` (without one, a path)."""
        view = {"productOrderType": "PREFILL", "productOrderId": order.id, "productType": order.product_type,
                "status": str(order.status), "businessIdentifier": order.business_identifier}
        if order.status in OPEN:
            view["productOrderUrl"] = order.url(origin)
        if order.status is Status.COMPLETED and order.msn in self.runtime.world.sales_units:
            unit = self.runtime.world.sales_units[order.msn]
            view["salesUnit"] = {"msn": unit.msn, "name": unit.name}
        return view

    # -- product orders, the merchant's and Vipps MobilePay's side (the control plane) -------------------
    def _fresh(self, order: ProductOrder) -> ProductOrder:
        """Expiry is evaluated lazily, against the virtual clock."""
        deadline = order.created_at + EXPIRY_SECONDS
        if order.status in OPEN and self.runtime.clock.time() >= deadline:
            order.status, order.updated_at = Status.EXPIRED, deadline
            order.history.append((Status.EXPIRED, deadline))
        return order

    def order(self, order_id: str) -> ProductOrder:
        order = self.orders.get(order_id)
        if order is None:
            raise Problem(404, "Not Found", f"No product order {order_id} (deleted orders are gone).",
                          rule="product-order-unknown")
        return self._fresh(order)

    def sandbox_view(self, order: ProductOrder, origin: str = "") -> dict:
        """What the control plane answers: the v2 details plus the sandbox's own bookkeeping."""
        view = self.details_view(order, origin)
        view.update({"partnerId": order.partner_id, "createdAt": iso_utc(order.created_at),
                     "updatedAt": iso_utc(order.updated_at), "expiresAt": iso_utc(order.created_at + EXPIRY_SECONDS),
                     "history": [{"status": str(s), "at": iso_utc(t)} for s, t in order.history],
                     "request": order.request})
        return view

    def move(self, order_id: str, action: str) -> ProductOrder:
        order = self.order(order_id)
        sources, target = TRANSITIONS[action]
        if order.status not in sources:
            raise Problem(409, "Conflict", f"Cannot {action} a product order that is {order.status}; {action} "
                          f"works from {' or '.join(sorted(sources))}.", rule="product-order-invalid-transition")
        if order.status is target:
            return order
        if target is Status.COMPLETED:
            order.msn = self._create_sales_unit(order)
        now = self.runtime.clock.time()
        order.status, order.updated_at = target, now
        order.history.append((target, now))
        return order

    def _create_sales_unit(self, order: ProductOrder) -> str:
        """Completion: a new sales unit, connected to the ordering partner, with merchant keys for both envs."""
        world = self.runtime.world
        bid, now_iso = order.request["businessIdentifier"], iso_utc(self.runtime.clock.time())
        country = COUNTRY_OF_SCHEME[bid["scheme"]]
        merchant = world.merchants.get(order.merchant_key)
        if merchant is not None and not merchant.active:
            raise Problem(409, "Conflict", f"Merchant {order.merchant_key} is deactivated, so the order cannot be "
                          "completed; reject it instead.", rule="merchant-deactivated")
        name = order.request.get("salesUnitName")
        if merchant is None:
            merchant = Merchant(bid["scheme"], bid["id"], (name or f"Merchant {bid['id']}")[:50], country,
                                "ACTIVE", now_iso, now_iso, {"lines": [], "countryCode": country})
            world.merchants[merchant.key] = merchant
        msn = self._new_msn()
        configuration = dict(CONFIG_DEFAULTS, recurringAllowed=bool(order.request.get("hasRecurring")),
                             paymentAllowed=order.product_type != "LOGIN")
        ids = self.runtime.ids  # seeded: a journal replay hands out the same MSN, keys and account again
        keys = [KeySet(KeyType.MERCHANT, env, ids.uuid4(), ids.b64(16), ids.hex(16), ids.hex(16), msn) for env in Env]
        account = order.request.get("settlementBankAccount")
        if not account:  # the merchant gives one on the order form: an account in the unit's own market
            account = account_for(country, RAW_RANGE[0] + ids.below(RAW_RANGE[1] - RAW_RANGE[0]))
        world.add_sales_unit(SalesUnit(msn, (name or merchant.name)[:50], merchant.key, order.partner_id, country,
                                       MARKET_CURRENCY[country], configuration, now_iso, dict(account)))
        for keyset in keys:
            world.add_keys(keyset)
        return msn

    def _new_msn(self) -> str:
        """Six digits, like the fixture's, never one the world already has."""
        world = self.runtime.world
        while True:
            candidate = str(100000 + self.runtime.ids.below(900000))
            if candidate not in world.sales_units:
                return candidate


def check_idempotency_key(value: str | None) -> None:
    if not value:
        raise ValidationProblem([Detail("Idempotency-Key", "The Idempotency-Key header is required.")])
    if not IDEMPOTENCY_KEY.fullmatch(value):
        raise ValidationProblem([Detail("Idempotency-Key", "The field must match '^[a-zA-Z0-9-]{1,50}$'.")])
