"""ProductOrderRequest validation: the bundled management.yaml (1.1.6) schema, adjusted where it is stale.

The schema is taken from the spec file, not restated; only these differences are patched in:
- productType: 1.1.6 lists VIPPS_PA_NETT, VIPPS_LOGG_INN, VIPPS_CHECKOUT, VIPPS_I_KASSA, while the live
  2.0.9 API (reference §3) takes PAYMENT_INTEGRATION, CASHIER, CHECKOUT, LOGIN, DONATIONS. We accept
  BOTH sets (UNCERTAIN: the live API may refuse the old names) and report orders with the 2.0.9 name.
- businessIdentifier.id: 1.1.6 allows nine digits only ("only Norwegian ... for now, but this format
  supports all countries"); we accept NO, DK and FI identifiers and check them per scheme in the backend.
- salesUnitName: the spec's pattern uses \\p{L}, which Python's `re` cannot compile; an equivalent
  Unicode-aware pattern replaces it, and its length is 1..40 as in 2.0.9 (1.1.6 says 30).
- the 2.0.9 fields hasRecurring, annualTurnoverPercentage, merchantCategoryCode and app are type-checked.
- the body must be a JSON object (1.1.6 forgets to say `type: object`).
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import TYPE_CHECKING

from sandbox.core.errors import Detail, ValidationProblem
from sandbox.core.spec import SpecSchemas, _error_key, _message

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SPEC = "management.yaml"
#: 1.1.6 name -> 2.0.9 name.
PRODUCT_TYPE_V2 = {"VIPPS_PA_NETT": "PAYMENT_INTEGRATION", "VIPPS_I_KASSA": "CASHIER",
                   "VIPPS_CHECKOUT": "CHECKOUT", "VIPPS_LOGG_INN": "LOGIN"}
PRODUCT_TYPES_2_0_9 = ["PAYMENT_INTEGRATION", "CASHIER", "CHECKOUT", "LOGIN", "DONATIONS"]
SALES_UNIT_NAME_PATTERN = r"^[\w\s\(\)-_\+\.\u0300-\u036f]+$"
ADDED_2_0_9 = {
    "hasRecurring": {"type": "boolean", "nullable": True},
    "annualTurnoverPercentage": {"type": "string", "nullable": True, "pattern": r"^(10|[1-9])0$"},
    "merchantCategoryCode": {"type": "string", "nullable": True, "maxLength": 10},
    "app": {"type": "object", "nullable": True, "properties": {"appName": {"type": "string", "maxLength": 100}}},
}


@cache
def schemas() -> SpecSchemas:
    return SpecSchemas(SPEC)


@cache
def product_order_schema() -> dict:
    components = schemas().spec["components"]["schemas"]
    schema = copy.deepcopy(components["ProductOrderRequest"])
    schema["type"] = "object"
    props = schema["properties"]
    props["productType"]["enum"] = props["productType"]["enum"] + PRODUCT_TYPES_2_0_9
    props["productType"].pop("x-enum-varnames", None)
    bid = copy.deepcopy(components["businessIdentifier"])
    bid["properties"]["id"].pop("pattern", None)
    bid["properties"]["id"].update({"minLength": 1, "maxLength": 20})
    props["businessIdentifier"] = bid
    props["salesUnitName"]["pattern"] = SALES_UNIT_NAME_PATTERN
    props["salesUnitName"].update({"minLength": 1, "maxLength": 40})
    props.update(copy.deepcopy(ADDED_2_0_9))
    return schema


@cache
def _validator():
    return schemas().schema_for(product_order_schema())


REQUIRED = re.compile(r"^'(.+)' is a required property$")


def _field_name(error: ValidationError) -> str:
    """The dotted field path; for a missing property, the property itself (one error per property)."""
    path = [str(p) for p in error.absolute_path]
    missing = REQUIRED.match(error.message) if error.validator == "required" else None
    if missing:
        path.append(missing.group(1))
    return ".".join(path) or "body"


def product_order_errors(body: object) -> list[tuple[str, str]]:
    return [(_field_name(e), _message(e)) for e in sorted(_validator().iter_errors(body), key=_error_key)]


def validate_product_order(body: object) -> None:
    """Raises a 400 ValidationProblem naming each field that breaks the (adjusted) schema."""
    if body is None:
        raise ValidationProblem([Detail("body", "A JSON body (ProductOrderRequest) is required.")])
    problems = product_order_errors(body)
    if problems:
        raise ValidationProblem([Detail(name, reason) for name, reason in problems])
