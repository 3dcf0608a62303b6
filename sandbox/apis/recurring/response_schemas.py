"""Every successful Recurring response a test client sees is checked against recurring-3.1.2.yaml.

The test client (sandbox/testing.py) calls `violations()` on each reply, as for ePayment. Three spec bugs are set
aside, each checked as what the spec means instead:
- PricingResponseV3 is a oneOf whose FlexiblePricingResponseV3 requires only type and currency, so every LEGACY or
  VARIABLE pricing matches two branches and fails the oneOf: `pricing` is checked against its type's schema.
- campaignResponseV3 is a oneOf where priceCampaignResponseV3 and legacyCampaignResponseV3 require the same fields
  (and periodCampaignResponseV3 a superset), so every price or period campaign fails it: `campaign` is checked
  against its type's schema.
- ChargeResponseV3 requires a string transactionId, which its own description says "contains null until the status
  has reached DUE": null is accepted on a PENDING or CANCELLED-before-DUE charge.
- ChargeReference.chargeId and ChargeResponseV3.id have maxLength 15, yet an orderId (up to 64 characters) becomes
  the charge id: a longer id is accepted up to 64 characters.
"""

from __future__ import annotations

import re

from sandbox.core.response_check import checker
from sandbox.core.spec import SpecSchemas

AGREEMENT, CHARGE = "AgreementResponseV3", "ChargeResponseV3"
RESPONSES = [
    ("GET", re.compile(r"^/recurring/v3/agreements$"), f"[{AGREEMENT}]"),
    ("POST", re.compile(r"^/recurring/v3/agreements$"), "DraftAgreementResponseV3"),
    ("GET", re.compile(r"^/recurring/v3/agreements/[^/]+$"), AGREEMENT),
    ("POST", re.compile(r"^/recurring/v3/agreements/charges$"), "AsyncChargeResponse"),
    ("GET", re.compile(r"^/recurring/v3/agreements/[^/]+/charges$"), f"[{CHARGE}]"),
    ("POST", re.compile(r"^/recurring/v3/agreements/[^/]+/charges$"), "ChargeReference"),
    ("GET", re.compile(r"^/recurring/v3/agreements/[^/]+/charges/[^/]+$"), CHARGE),
    ("GET", re.compile(r"^/recurring/v3/charges/[^/]+$"), CHARGE),
]
PRICING = {"LEGACY": "LegacyPricingResponseV3", "VARIABLE": "VariablePricingResponseV3",
           "FLEXIBLE": "FlexiblePricingResponseV3"}
CAMPAIGN = {"PRICE_CAMPAIGN": "priceCampaignResponseV3", "PERIOD_CAMPAIGN": "periodCampaignResponseV3",
            "EVENT_CAMPAIGN": "eventCampaignResponseV3", "LEGACY_CAMPAIGN": "legacyCampaignResponseV3"}
_SPEC: SpecSchemas | None = None


def spec() -> SpecSchemas:
    global _SPEC
    _SPEC = _SPEC or SpecSchemas("recurring-3.1.2.yaml", formats=True)
    return _SPEC


def item_violations(name: str, item: object) -> list[str]:
    schemas = spec()
    if name == AGREEMENT and isinstance(item, dict):
        rest = {k: v for k, v in item.items() if k not in ("pricing", "campaign")}
        found = [f"{name}.{f}: {why}" for f, why in schemas.errors(name, rest) if f != "pricing"]
        if "pricing" not in item:
            found.append(f"{name}.pricing: required")
        for field, table in (("pricing", PRICING), ("campaign", CAMPAIGN)):
            value = item.get(field)
            if value is None:
                continue
            kind = value.get("type") if isinstance(value, dict) else None
            if kind not in table:
                found.append(f"{name}.{field}.type: {kind!r} is not one the spec knows")
                continue
            found += [f"{name}.{field}.{f}: {why}" for f, why in schemas.errors(table[kind], value)]
        return found
    found = []
    for field, why in schemas.errors(name, item):
        if name == CHARGE and field == "transactionId" and isinstance(item, dict) and item.get("transactionId") is None:
            continue  # "null until the status has reached DUE" (see the module's docstring)
        if (name, field) in ((CHARGE, "id"), ("ChargeReference", "chargeId")) and isinstance(item, dict) \
                and isinstance(item.get(field), str) and 15 < len(item[field]) <= 64 and why.endswith("is too long"):
            continue  # an orderId of up to 64 characters is the charge id (see the module's docstring)
        found.append(f"{name}.{field}: {why}")
    return found


#: What is wrong with a response, by the spec; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_violations)
