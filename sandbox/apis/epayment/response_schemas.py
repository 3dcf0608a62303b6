"""Every successful ePayment response a test client sees is checked against the official spec.

The test client (sandbox/testing.py) calls `check()` on each reply, so no test can receive a body
that breaks the spec's response schemas without failing, whatever that test asserts itself.
"""

from __future__ import annotations

import json
import re

from sandbox.core.spec import SpecSchemas

#: (method, path) -> the ePayment 1.8.1 schema of a 2xx body ("[X]" is an array of X).
RESPONSES = [
    ("POST", re.compile(r"^/epayment/v1/payments$"), "CreatePaymentResponse"),
    ("GET", re.compile(r"^/epayment/v1/payments/[^/]+$"), "GetPaymentResponse"),
    ("GET", re.compile(r"^/epayment/v1/payments/[^/]+/events$"), "[PaymentEvent]"),
    ("POST", re.compile(r"^/epayment/v1/payments/[^/]+/(capture|refund|cancel)$"), "ModificationResponse"),
]
#: Known bugs of the official spec (reference §2): PaymentEvent requires `paymentAction`, but the field is `name`.
SPEC_BUGS = ("'paymentAction' is a required property",)
_SPEC: SpecSchemas | None = None


def violations(method: str, path: str, status: int, text: str) -> list[str]:
    """What is wrong with a response, by the spec; empty when it conforms or no schema applies."""
    global _SPEC
    if not 200 <= status < 300 or not text:
        return []
    path = path.split("?", 1)[0]
    schema = next((name for verb, pattern, name in RESPONSES if verb == method and pattern.fullmatch(path)), None)
    if schema is None:
        return []
    _SPEC = _SPEC or SpecSchemas("epayment-1.8.1.yaml")
    body = json.loads(text)
    items, name = (body, schema[1:-1]) if schema.startswith("[") else ([body], schema)
    if not isinstance(items, list):
        return [f"{schema}: expected an array"]
    found = []
    for item in items:
        found += [f"{name}.{field}: {why}" for field, why in _SPEC.errors(name, item) if why not in SPEC_BUGS]
    return found
