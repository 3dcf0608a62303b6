"""Checkout v3's request validation: the bundled spec (checkout-swagger-id.yaml) through sandbox/core/spec.py.

The session's reference is also the reference of the ePayment payment it makes, so it is checked against the
ePayment spec's own Reference schema (read from that spec, not restated), before any session exists.
"""

from __future__ import annotations

from sandbox.core.errors import Detail, Problem
from sandbox.core.spec import SpecSchemas

SPEC_NAME = "checkout-swagger-id.yaml"
PAYMENT, SUBSCRIPTION = "InitiatePaymentSessionRequest", "InitiateSubscriptionSessionRequest"
_SPECS: dict[str, SpecSchemas] = {}


def spec(name: str = SPEC_NAME) -> SpecSchemas:
    """The spec's validators, parsed on first use (startup stays fast)."""
    found = _SPECS.get(name)
    if found is None:
        found = _SPECS[name] = SpecSchemas(name)
    return found


def problem(status: int, detail: str, code: str, field: str | None = None, rule: str | None = None) -> Problem:
    """A Checkout problem: `code` is its errorCode, `field` (when one is to blame) its `errors` key."""
    titles = {400: "Bad Request", 404: "Not Found", 409: "Conflict"}
    details = [Detail(field, detail)] if field else []
    return Problem(status, titles.get(status, "Error"), detail, code=code, details=details, rule=rule)


def check_create(body: object) -> str:
    """The create body against the spec's oneOf, picked by `type`; returns PAYMENT or SUBSCRIPTION's schema."""
    if not isinstance(body, dict):
        raise problem(400, "The body must be a JSON object.", "ValidationError", "body")
    schema = SUBSCRIPTION if body.get("type") == "SUBSCRIPTION" else PAYMENT
    spec().validate(schema, body)
    return schema


def check_update(body: object) -> dict:
    spec().validate("UpdateSessionRequest", body)
    assert isinstance(body, dict)
    return body


def check_options(options: object) -> str:
    """What is wrong with logistics options by the spec (UpdateSessionRequest.logisticOptions' item schemas), or ""."""
    errors = spec().errors("UpdateSessionRequest", {"logisticOptions": options})
    return "; ".join(f"{field}: {why}" for field, why in errors[:3])


def check_reference(reference: object, field: str = "reference") -> str:
    """A reference the ePayment payment can take (the ePayment spec's Reference schema), or 400."""
    if not isinstance(reference, str):
        raise problem(400, "The reference must be a string.", "ValidationError", field)
    errors = spec("epayment-1.8.1.yaml").errors("Reference", reference)
    if errors:
        raise problem(400, f"The reference is not one a payment can have: {errors[0][1]}", "ValidationError", field,
                      rule="checkout-reference-invalid")
    return reference
