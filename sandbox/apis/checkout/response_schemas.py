"""Every successful Checkout response a test client sees is checked against checkout-swagger-id.yaml.

The test client (sandbox/testing.py) calls `violations()` on each reply, as for the other APIs. PATCH and expire
answer 200 with no body (the spec gives them no content).
"""

from __future__ import annotations

import re

from sandbox.apis.checkout.rules import spec
from sandbox.core.response_check import checker

RESPONSES = [
    ("POST", re.compile(r"^/checkout/v3/session$"), "InitiateSessionResponse"),
    ("GET", re.compile(r"^/checkout/v3/session/[^/]+$"), "SessionResponse"),
]


def item_violations(name: str, item: object) -> list[str]:
    return [f"{name}.{field}: {why}" for field, why in spec().errors(name, item)]


#: What is wrong with a response, by the spec; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_violations)
