"""The Order Management backend: images, categories and receipts of orders, knowing nothing of HTTP.

An order is (env, msn, payment type, order id); the API "does not check that the order exists", so every write
to an unknown order id succeeds and creates the record. What the rules need:

- A receipt posts once: a second POST is a 409 (also when the receipt came with the ePayment create body,
  through the `order.receipt` domain event: sandbox/core/events.py).
- A category PUT replaces the one before; only the latest is shown. The v3 categories are their own records
  (ids from the runtime's journaled ids, so a --state replay makes the same ones), and the latest of an order
  is what the v2 GET shows when no v2 category was put.
- Images cannot be overwritten (409), and a category naming an image never uploaded is a 404 (UNCERTAIN).
- ePayment's events tell which phone number paid which order, so the virtual phone can show its receipts.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections import deque
from dataclasses import dataclass, field

from sandbox.apis.ordermanagement import rules
from sandbox.core.errors import Detail, Problem
from sandbox.core.events import ORDER_RECEIPT
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime

OrderKey = tuple[Env, str, str, str]  # env, msn, payment type ("ecom" | "recurring"), order id
ORDERS_PER_PHONE = 5  # the phone shows the last few orders with a receipt or a category


@dataclass(slots=True)
class Order:
    category: dict | None = None  # the spec's Order: {category, orderDetailsUrl, imageId?}
    receipt: dict | None = None
    v3: list[str] = field(default_factory=list)  # v3 category ids, oldest first
    changed_at: float = 0.0


@dataclass
class OrderManagementBackend:
    runtime: Runtime
    orders: dict[OrderKey, Order] = field(default_factory=dict)
    images: dict[tuple[Env, str, str], bytes] = field(default_factory=dict)  # (env, msn, imageId) -> the image
    categories: dict[str, dict] = field(default_factory=dict)  # categoryId -> {env, msn, Category fields}
    payers: dict[tuple[Env, str, str], str] = field(default_factory=dict)  # (env, msn, reference) -> phone
    by_phone: dict[tuple[Env, str], deque[OrderKey]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.runtime.listeners.append(self.on_event)

    def now(self) -> float:
        return self.runtime.clock.time()

    def clear(self) -> None:
        for table in (self.orders, self.images, self.categories, self.payers, self.by_phone):
            table.clear()

    def _order(self, key: OrderKey) -> Order:
        order = self.orders.get(key)
        if order is None:
            order = self.orders[key] = Order()
        order.changed_at = self.now()
        self._remember_for_phone(key)
        return order

    def _check_image(self, env: Env, msn: str, image_id: str | None, status: int = 404) -> None:
        """A category naming an image never uploaded: 404 on v2 (UNCERTAIN: the only documented 404 there), 400 on
        v3 (which documents no 404)."""
        if image_id is not None and (env, msn, image_id) not in self.images:
            raise Problem(status, "Not Found" if status == 404 else rules.VALIDATION_TITLE,
                          f"No image {image_id[:128]!r} was uploaded for this sales unit.",
                          details=[Detail("imageId", "Upload it with POST /order-management/v1/images first.")],
                          rule="order-management-image-unknown")

    # -- images ------------------------------------------------------------------------------------
    def add_image(self, env: Env, msn: str, body: object) -> dict:
        image_id, data = rules.check_image(body)
        key = (env, msn, image_id)
        if key in self.images:
            raise Problem(409, "Conflict", f"An image with imageId {image_id!r} exists already: images cannot be "
                          "overwritten.", rule="order-management-image-exists")
        self.images[key] = data
        return {"imageId": image_id}

    # -- categories (v2, and v1's ecom-only form) ----------------------------------------------------
    def put_category(self, env: Env, msn: str, payment_type: str, order_id: str, body: object,
                     check_image: bool = True) -> str:
        valid = rules.validate("Order", body)
        if check_image:  # the deprecated v1 documents only 200: it takes any imageId
            self._check_image(env, msn, valid.get("imageId"))
        order = self._order((env, msn, payment_type, order_id))
        order.category = {k: valid[k] for k in ("category", "orderDetailsUrl", "imageId") if valid.get(k) is not None}
        return self.runtime.ids.uuid4()

    def get_category(self, env: Env, msn: str, payment_type: str, order_id: str) -> dict:
        order = self.orders.get((env, msn, payment_type, order_id))
        category = self._latest_category(order) if order else None
        if category is None:
            raise not_found(f"Order {order_id} has no category.")
        return category

    def _latest_category(self, order: Order) -> dict | None:
        if order.category is not None:
            return order.category
        if order.v3:
            latest = self.categories[order.v3[-1]]
            found = {"category": latest["type"], "orderDetailsUrl": latest["url"]}
            if latest.get("imageId"):
                found["imageId"] = latest["imageId"]
            return found
        return None

    # -- receipts --------------------------------------------------------------------------------------
    def post_receipt(self, env: Env, msn: str, payment_type: str, order_id: str, body: object,
                     once: bool = True) -> str:
        """v2: once (409 after). The deprecated v1 documents no 409: there a new receipt replaces the old one."""
        receipt = rules.check_receipt(body)
        key = (env, msn, payment_type, order_id)
        existing = self.orders.get(key)
        if once and existing is not None and existing.receipt is not None:
            raise Problem(409, "Conflict", f"Order {order_id} has a receipt already: a receipt can be sent once.",
                          rule="order-management-receipt-exists")
        self._order(key).receipt = copy.deepcopy(receipt)
        return self.runtime.ids.uuid4()

    def get_receipt(self, env: Env, msn: str, payment_type: str, order_id: str) -> dict:
        order = self.orders.get((env, msn, payment_type, order_id))
        if order is None or order.receipt is None:
            raise not_found(f"Order {order_id} has no receipt.")
        return order.receipt

    def get_order(self, env: Env, msn: str, payment_type: str, order_id: str) -> dict:
        order = self.orders.get((env, msn, payment_type, order_id))
        category = self._latest_category(order) if order else None
        if order is None or (category is None and order.receipt is None):
            raise not_found(f"Order {order_id} has neither a category nor a receipt.")
        body: dict = {}
        if category is not None:
            body["category"] = category
        if order.receipt is not None:
            body["receipt"] = order.receipt
        return body

    # -- v3 categories ----------------------------------------------------------------------------------
    def add_category_v3(self, env: Env, msn: str, body: object) -> dict:
        valid = rules.validate("AddCategoryRequest", body)
        rules.order_id(valid["orderId"])
        self._check_image(env, msn, valid.get("imageId"), 400)
        category_id = self.runtime.ids.uuid4()
        record = {"categoryId": category_id, "orderId": valid["orderId"], "paymentType": valid["paymentType"],
                  "type": valid["type"], "url": valid["url"]}
        if valid.get("imageId"):
            record["imageId"] = valid["imageId"]
        self.categories[category_id] = {"env": env, "msn": msn, **record}
        payment_type = rules.V3_PAYMENT_TYPE[valid["paymentType"]]
        self._order((env, msn, payment_type, valid["orderId"])).v3.append(category_id)
        return {"categoryId": category_id}

    @staticmethod
    def _public(record: dict) -> dict:
        return {k: v for k, v in record.items() if k not in ("env", "msn")}

    def query_categories_v3(self, env: Env, msn: str, order_id: str | None) -> dict:
        if order_id is not None:
            rules.order_id(order_id)
            ids = [i for payment_type in ("ecom", "recurring")
                   for i in (self.orders.get((env, msn, payment_type, order_id)) or Order()).v3]
        else:
            ids = [i for (e, m, _, _), order in self.orders.items() if e is env and m == msn for i in order.v3]
        return {"categories": [self._public(self.categories[i]) for i in ids]}

    def _category_v3(self, env: Env, msn: str, category_id: str) -> dict:
        record = self.categories.get(rules.category_id(category_id) or "")
        if record is None or record["env"] is not env or record["msn"] != msn:
            raise not_found(f"No category {category_id} exists for this sales unit.")
        return record

    def get_category_v3(self, env: Env, msn: str, category_id: str) -> dict:
        return self._public(self._category_v3(env, msn, category_id))

    def delete_category_v3(self, env: Env, msn: str, category_id: str) -> None:
        record = self._category_v3(env, msn, category_id)
        del self.categories[record["categoryId"]]
        order = self.orders.get((env, msn, rules.V3_PAYMENT_TYPE[record["paymentType"]], record["orderId"]))
        if order is not None and record["categoryId"] in order.v3:
            order.v3.remove(record["categoryId"])

    # -- what other APIs tell (runtime listener) ---------------------------------------------------------
    def on_event(self, kind: str, payload: dict) -> None:
        """Receipts sent with an ePayment create; who paid which ePayment order (for the phone). Never raises."""
        try:
            if kind == ORDER_RECEIPT:
                key = (Env(payload["env"]), str(payload["msn"]), str(payload["paymentType"]), str(payload["orderId"]))
                order = self._order(key)
                if order.receipt is None:
                    order.receipt = copy.deepcopy(payload["receipt"])
            elif kind.startswith("epayment.") and payload.get("phoneNumber"):
                env, msn, reference = Env(payload["env"]), str(payload["msn"]), str(payload["reference"])
                if (env, msn, reference) not in self.payers:
                    self.payers[(env, msn, reference)] = str(payload["phoneNumber"])
                    self._remember_for_phone((env, msn, "ecom", reference))
        except (KeyError, TypeError, ValueError):
            return

    def _remember_for_phone(self, key: OrderKey) -> None:
        env, msn, payment_type, order_id = key
        phone = self.payers.get((env, msn, order_id)) if payment_type == "ecom" else None
        if phone is None:
            return
        shown = self.by_phone.setdefault((env, phone), deque(maxlen=ORDERS_PER_PHONE))
        if key not in shown:
            shown.append(key)

    def orders_for_phone(self, env: Env, phone: str) -> list[tuple[OrderKey, Order]]:
        """The phone's recent orders that have a receipt or a category, oldest first."""
        found = []
        for key in self.by_phone.get((env, phone), ()):
            order = self.orders.get(key)
            if order is not None and (order.receipt is not None or self._latest_category(order) is not None):
                found.append((key, order))
        return found

    # -- snapshots -----------------------------------------------------------------------------------------
    def dump(self) -> dict:
        return {
            "orders": [{"env": str(k[0]), "msn": k[1], "paymentType": k[2], "orderId": k[3], "category": o.category,
                        "receipt": o.receipt, "v3": list(o.v3), "changedAt": o.changed_at}
                       for k, o in self.orders.items()],
            "images": [{"env": str(k[0]), "msn": k[1], "imageId": k[2], "src": base64.b64encode(v).decode("ascii"),
                        "sha256": hashlib.sha256(v).hexdigest()} for k, v in self.images.items()],
            "categories": [{**record, "env": str(record["env"])} for record in self.categories.values()],
            "payers": [{"env": str(k[0]), "msn": k[1], "reference": k[2], "phoneNumber": v}
                       for k, v in self.payers.items()],
        }

    def load(self, data: object) -> None:
        if not isinstance(data, dict):
            raise ValueError("the Order Management state must be an object")
        try:  # all parsed first: a bad dump changes nothing
            orders = {(Env(o["env"]), str(o["msn"]), str(o["paymentType"]), str(o["orderId"])):
                      Order(o.get("category"), o.get("receipt"), [str(i) for i in o.get("v3", [])],
                            float(o.get("changedAt", 0.0))) for o in data.get("orders", [])}
            images = {(Env(i["env"]), str(i["msn"]), str(i["imageId"])): base64.b64decode(i["src"])
                      for i in data.get("images", [])}
            categories = {str(c["categoryId"]): {**c, "env": Env(c["env"])} for c in data.get("categories", [])}
            payers = {(Env(p["env"]), str(p["msn"]), str(p["reference"])): str(p["phoneNumber"])
                      for p in data.get("payers", [])}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"an order in the snapshot is malformed: {exc}") from exc
        self.clear()
        self.orders.update(orders)
        self.images.update(images)
        self.categories.update(categories)
        self.payers.update(payers)
        for key in orders:
            self._remember_for_phone(key)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not Found", detail, rule="order-management-not-found")
