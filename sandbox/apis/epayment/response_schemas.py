"""Every successful ePayment response a test client sees is checked against the official spec.

The test client (sandbox/testing.py) calls `check()` on each reply, so no test can receive a body
that breaks the spec's response schemas without failing, whatever that test asserts itself.
"""

from __future__ import annotations

import re

from sandbox.core.response_check import checker
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


def item_errors(name: str, item: object) -> list[str]:
    """The spec's complaints about one ePayment body, minus the proven spec bugs."""
    global _SPEC
    _SPEC = _SPEC or SpecSchemas("epayment-1.8.1.yaml")
    return [f"{name}.{field}: {why}" for field, why in _SPEC.errors(name, item) if why not in SPEC_BUGS]


#: What is wrong with a response, by the spec; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_errors)
