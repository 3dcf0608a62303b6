"""The ePayment API's rules as data: error codes and their statuses, magic amounts, and request checks.

Kept apart from the backend (sandbox.apis.epayment.backend) so the UNCERTAIN choices sit in one short file.
Validation uses the bundled spec; a fast path with every $ref inlined answers the common, valid
case, and only an invalid body goes through the slower validator that names each field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache

from sandbox.core.errors import Detail, Problem, ValidationProblem
from sandbox.core.spec import SpecSchemas, compile_pattern, validator_class
from sandbox.core.urls import return_url_problem
from sandbox.gateway.rate_limits import Limit

SPEC = SpecSchemas("epayment-1.8.1.yaml")
MINIMUM_AMOUNT = {"NOK": 100, "DKK": 1, "EUR": 1}  # reference §2: NOK 100 øre, DKK 1 øre, EUR 1 cent

# ---------------------------------------------------------------------------------------------
# Error codes. The docs give the codes and their titles, not the HTTP status of each.
# UNCERTAIN (reference §6a, derived): 404 for 5090, 409 for the "exists"/idempotency conflicts,
# 400 for every other code. Change it here and nowhere else.
# ---------------------------------------------------------------------------------------------
CODE_STATUS: dict[str, int] = {"5090": 404, "4150": 409, "4020": 409, "4010": 409}
CODE_TITLES: dict[str, str] = {
    "4020": "Idempotency-Key exists",
    "4040": "Invalid amount",
    "4140": "Missing required parameter",
    "4150": "Reference exists",
    "4160": "Invalid payment method type",
    "5040": "Invalid currency for merchant",
    "5090": "Reference not found",
    "5100": "Refund not possible",
    "6010": "Amount below minimum",
    "6020": "Cannot refund before capture",
    "6040": "Cannot cancel a captured payment",
    "6050": "Payment not reserved",
    "6060": "Payment already authorized",
    "6070": "Cannot capture a cancelled payment",
    "6080": "Cannot capture before reservation",
    "6090": "Not enough capturable",
    "6150": "Not enough refundable",
    "6200": "Payment cannot be captured",
    "6220": "Refund period expired",
    "10010": "Approve failed",
    "10020": "Approve not allowed",
    "10030": "Identification required",
    "10040": "Invalid payment source",
    "10070": "Payment limit exceeded",
}
#: The code answered when an Idempotency-Key comes back with a different body, per route.
#: UNCERTAIN: issue 3 says 4020 everywhere; the reference also mentions 4010 (capture) and 4150 (refund).
IDEMPOTENCY_CONFLICT_CODE = {"create": "4020", "capture": "4020", "refund": "4020", "cancel": "4020"}

#: Test-environment magic amounts (reference §2): such a payment cannot be approved.
#: The 10010-range code for each is UNCERTAIN (the docs list the codes, not the mapping).
MAGIC_AMOUNTS: dict[int, tuple[str, str]] = {
    151: ("10010", "Insufficient funds on the card (test amount 151)."),
    182: ("10010", "The card was refused by the issuer (test amount 182)."),
    183: ("10020", "The payment was refused as suspected fraud (test amount 183)."),
    184: ("10070", "The card's withdrawal amount limit is exceeded (test amount 184)."),
    186: ("10040", "The card has expired (test amount 186)."),
    187: ("10040", "The card is invalid (test amount 187)."),
    197: ("10030", "3-D Secure authentication was denied (test amount 197)."),
    201: ("10010", "The card issuer gave no answer; the result stays unknown for an hour (test amount 201)."),
    202: ("10030", "Strong customer authentication (SCA) is required (test amount 202)."),
}
#: Test-environment magic refund amounts: a refund of exactly this value fails.
MAGIC_REFUND_AMOUNTS: dict[int, tuple[str, str]] = {
    123: ("5100", "The refund is not possible (test refund amount 123)."),
    124: ("6220", "The refund period has expired (test refund amount 124)."),
}


def problem(code: str, detail: str, *, details: list[Detail] | None = None) -> Problem:
    """A domain error with its ErrorCode, status and title from the tables above."""
    return Problem(CODE_STATUS.get(code, 400), CODE_TITLES.get(code, "Bad Request"), detail, code=code,
                   details=details, rule=f"epayment-error-{code}")


CUSTOMER_KINDS = {"phoneNumber": "CustomerPhoneNumber", "personalQr": "PersonalQrCode",
                  "customerToken": "CustomerToken"}


def validate(schema: str, body: object) -> None:
    """SPEC.validate, except `customer`: the spec's Customer is a oneOf of three schemas that require
    nothing, so every object matches all three and the spec's own examples fail. It is checked here as
    what the docs say: exactly one of phoneNumber, personalQr or customerToken."""
    customer = body.get("customer") if isinstance(body, dict) else None
    if customer is None:
        if not _fast_valid(schema, body):
            SPEC.validate(schema, body)
        return
    rest = {k: v for k, v in body.items() if k != "customer"}  # type: ignore[union-attr]
    problems = [] if _fast_valid(schema, rest) else SPEC.errors(schema, rest)
    kinds = [k for k in CUSTOMER_KINDS if isinstance(customer, dict) and k in customer]
    if not isinstance(customer, dict) or len(kinds) != 1 or len(customer) != 1:
        problems.append(("customer", "Specify exactly one of phoneNumber, personalQr or customerToken."))
    else:
        problems += [(f"customer.{name}" if name != "body" else "customer", why)
                     for name, why in SPEC.errors(CUSTOMER_KINDS[kinds[0]], customer)]
    if problems:
        raise ValidationProblem([Detail(name, why) for name, why in problems])


def check_return_url(body: dict) -> None:
    """returnUrl as a browser would read it: https(s) with a host, or an app's custom scheme (the spec says
    "https:// or a custom URL scheme"; http is allowed too, for merchants on localhost). Never javascript:,
    data:, file: and the like, however they are spelled: the user's browser follows it from a sandbox page."""
    if "returnUrl" not in body:
        return
    why = return_url_problem(body["returnUrl"])
    if why is not None:
        raise Problem(400, "Bad Request", "See extraDetails for further details",
                      details=[Detail("returnUrl", why)], rule="return-url-refused",
                      reason=f"returnUrl is refused: {why} A browser would read it as a link the user must "
                      "not follow from the sandbox's pages.")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00").replace("t", "T")).timestamp()


# -- the fast path --------------------------------------------------------------------------------
_FAST: dict[str, object] = {}  # spec.validator_class() by schema name, made on first use


def _inline(node: object, schemas: dict) -> object:
    """The schema with every local $ref replaced by its target (the ePayment spec has no cycles)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(schemas[ref.rsplit("/", 1)[1]], schemas)
        return {key: _inline(value, schemas) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, schemas) for value in node]
    return node


def _fast_valid(schema: str, instance: object) -> bool:
    validator = _FAST.get(schema)
    if validator is None:
        schemas = SPEC.spec["components"]["schemas"]
        validator = _FAST[schema] = validator_class()(_inline(schemas[schema], schemas))
    return validator.is_valid(instance)  # type: ignore[attr-defined]


@lru_cache(maxsize=1)
def _reference_rule() -> tuple[int, int, re.Pattern]:
    rule = SPEC.spec["components"]["schemas"]["Reference"]
    return rule["minLength"], rule["maxLength"], compile_pattern(rule["pattern"])


def reference_is_valid(reference: str) -> bool:
    shortest, longest, pattern = _reference_rule()
    return shortest <= len(reference) <= longest and pattern.search(reference) is not None


def check_reference(reference: str) -> None:
    """A path reference must match the spec's Reference pattern (a regex here: GETs are hot)."""
    if reference_is_valid(reference):
        return
    errors = SPEC.errors("Reference", reference)
    raise Problem(400, "Bad Request", "See extraDetails for further details",
                  details=[Detail("reference", errors[0][1] if errors else "Invalid reference.")])


#: The documented rate limits (reference section 2), applied by the gateway when --rate-limits is on:
#: create, capture, cancel and refund 5 a minute per reference + MSN; GET payment and events 120 a minute
#: per reference + subscription key.
RATE_LIMITS: dict[str, Limit] = {
    "epayment.create": Limit(5, "msn", reference_is_valid, reference_in_body=True),
    "epayment.capture": Limit(5, "msn", reference_is_valid),
    "epayment.cancel": Limit(5, "msn", reference_is_valid),
    "epayment.refund": Limit(5, "msn", reference_is_valid),
    "epayment.get": Limit(120, "subscription-key", reference_is_valid),
    "epayment.events": Limit(120, "subscription-key", reference_is_valid),
}
