"""Every successful Order Management response a test client sees is checked against order-management.yaml.

The test client (sandbox/testing.py) calls `violations()` on each reply. Nothing is patched: the 201 of a receipt
and the 200 of a v2 category are JSON strings (the spec's `type: string`), the rest objects of the spec's schemas.
"""

from __future__ import annotations

import re
from functools import cache

from sandbox.core.response_check import body_errors, checker
from sandbox.core.spec import SpecSchemas

BASE = "/order-management"
#: (method, path) -> the schema of a 2xx body. `_string` is the spec's inline `type: string` responses.
RESPONSES = [
    ("POST", re.compile(rf"^{BASE}/v1/images$"), "ImageResponse"),
    ("PUT", re.compile(rf"^{BASE}/v2/[^/]+/categories/[^/]+$"), "_string"),
    ("POST", re.compile(rf"^{BASE}/v2/[^/]+/receipts/[^/]+$"), "_string"),
    ("GET", re.compile(rf"^{BASE}/v2/[^/]+/[^/]+$"), "OrderV2Response"),
    ("POST", re.compile(rf"^{BASE}/v3/categories$"), "AddCategoryResponse"),
    ("GET", re.compile(rf"^{BASE}/v3/categories$"), "GetCategoriesResponse"),
    ("GET", re.compile(rf"^{BASE}/v3/categories/[^/]+$"), "Category"),
    ("GET", re.compile(rf"^{BASE}/v1/orders/[^/]+$"), "Order"),
    ("GET", re.compile(rf"^{BASE}/v1/receipts/[^/]+$"), "Receipt"),
]


@cache
def schemas() -> SpecSchemas:
    return SpecSchemas("order-management.yaml", formats=True)


def item_errors(name: str, item: object) -> list[str]:
    if name == "_string":
        return [] if isinstance(item, str) else [f"expected a JSON string, got {type(item).__name__}"]
    return [f"{name}.{field}: {why}" for field, why in schemas().errors(name, item)]


def errors(schema: str, body: object) -> list[str]:
    return body_errors(schema, body, item_errors)


#: What is wrong with an Order Management response; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_errors)
