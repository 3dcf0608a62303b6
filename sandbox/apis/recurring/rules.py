"""The Recurring API's rules as data: problem identifiers, limits, magic amounts, rate limits and request checks.

Kept apart from the backend (sandbox.apis.recurring.backend) so the UNCERTAIN choices sit in one short file.
Validation uses the bundled spec (recurring-3.1.2.yaml) through sandbox.core.spec, except where the spec
cannot validate anything (its `pricing` and `campaign` oneOfs, see `validate`).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from sandbox.core.errors import RECURRING_PROBLEMS, Detail, Problem, ValidationProblem
from sandbox.core.spec import SpecSchemas
from sandbox.gateway.rate_limits import Limit

SPEC = SpecSchemas("recurring-3.1.2.yaml")
#: Every problem's `type` is this plus `#<identifier>` (the problems page, reference section 2).
PROBLEM_BASE = RECURRING_PROBLEMS
#: The identifiers of the problems page, with the HTTP status each is answered with here.
#: UNCERTAIN: the page gives identifiers, not statuses; 400 unless the spec's responses say otherwise.
PROBLEMS: dict[str, tuple[int, str]] = {
    "validation-error": (400, "Bad Request"),
    "invalid-agreement-id": (400, "Bad Request"),
    "invalid-json": (400, "Bad Request"),
    "unsupported-media-type": (415, "Unsupported Media Type"),
    "not-authorized": (403, "Forbidden"),
    "idempotency-key-header": (400, "Bad Request"),
    "charge-amount-too-high": (400, "Bad Request"),
    "charge-due-too-soon": (400, "Bad Request"),
    "charge-due-in-too-long": (400, "Bad Request"),
    "unsupported-feature": (400, "Bad Request"),
    "illegal-agreement-update": (400, "Bad Request"),
    "invalid-suggested-max-amount": (400, "Bad Request"),
    "cancel-charge-failed": (400, "Bad Request"),
    "charge-creation-failed": (400, "Bad Request"),
    "charge-capture-failed": (400, "Bad Request"),
    "missing-request-header": (400, "Bad Request"),
    "invalid-sale-unit": (403, "Forbidden"),
    "resource-not-found": (404, "Not Found"),
    "operation-failed": (400, "Bad Request"),
    "conflict": (409, "Conflict"),
    "idempotency-conflict": (409, "Conflict"),
}


def problem(identifier: str, detail: str, *, details: list[Detail] | None = None, status: int | None = None,
            rule: str | None = None, reason: str | None = None) -> Problem:
    """A Recurring problem: its identifier rides in `code` and becomes the `type` URL (sandbox/core/errors.py)."""
    default_status, title = PROBLEMS[identifier]
    return Problem(status or default_status, title, detail, code=identifier, details=details,
                   rule=rule or f"recurring-{identifier}", reason=reason)


# ---------------------------------------------------------------------------------------------
# Amounts, dates and limits (reference section 2)
# ---------------------------------------------------------------------------------------------
#: The largest price or charge per currency, in minor units: NOK 20 000, DKK 300 000, EUR 2 000.
MAX_AMOUNT = {"NOK": 2_000_000, "DKK": 30_000_000, "EUR": 200_000}
INT32_MAX = 2**31 - 1
#: LEGACY: the charges of one interval may total at most this many times the price.
LEGACY_INTERVAL_FACTOR = 5
#: A charge is PENDING until its due date is less than this many days away, then DUE.
DUE_NOTICE_DAYS = 30
MAX_DUE_DAYS = 730  # "a maximum of 2 years in the future"
#: The minimum days between today and `due`. UNCERTAIN (reference section 2): the 3.1.2 spec says 2 in
#: production and 1 in test, the problems page 2, the 2026 docs 1 in both. Settings.recurring_due_min_days
#: overrides both.
MIN_DUE_DAYS = {"test": 1, "production": 2}
PENDING_AGREEMENT_SECONDS = 600  # a PENDING agreement expires after 10 minutes without an answer
REFUND_WINDOW_DAYS = 365
BATCH_MAX = 2000
LIST_PAGE_SIZE_DEFAULT = 500
#: Charges per page of ListCharges before a Continuation-Token is given. UNCERTAIN: the docs give no number.
CHARGES_PAGE_SIZE = 100
DEFAULT_TEST_PHONE = "4712345678"

#: Test-environment magic amounts (as for ePayment, reference section 2): a charge of exactly this amount fails on
#: its due date (and keeps failing through its retry days), with this failureReason. UNCERTAIN: which reason each
#: amount gives is the sandbox's choice; the amounts are ePayment's.
MAGIC_AMOUNTS: dict[int, tuple[str, str]] = {
    151: ("user_action_required", "Insufficient funds on the card (test amount 151)."),
    182: ("non_technical_error", "The card was refused by the issuer (test amount 182)."),
    183: ("non_technical_error", "The charge was refused as suspected fraud (test amount 183)."),
    184: ("charge_amount_too_high", "The card's withdrawal amount limit is exceeded (test amount 184)."),
    186: ("user_action_required", "The card has expired (test amount 186)."),
    187: ("user_action_required", "The card is invalid (test amount 187)."),
    201: ("technical_error", "The card issuer gave no answer (test amount 201)."),
}
FAILURE_REASONS = ("user_action_required", "charge_amount_too_high", "non_technical_error", "technical_error")

AGREEMENT_ID = re.compile(r"^agr_[A-Za-z0-9]{1,32}$")
CHARGE_ID = re.compile(r"^[a-zA-Z0-9-]{1,64}$")
DUE_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PHONE = re.compile(r"^\d{8,15}$")
#: The spec's Idempotency-Key: 1 to 40 characters, none of '#', '?', '/', '\'.
IDEMPOTENCY_KEY = re.compile(r"^[^#?/\\]{1,40}$")


def check_agreement_id(agreement_id: str) -> None:
    if not AGREEMENT_ID.match(agreement_id):
        raise problem("invalid-agreement-id", f"The agreement ID {agreement_id[:40]!r} is not in the correct format "
                      "(agr_ followed by letters and digits).", details=[Detail("agreementId", "Invalid format")])


def check_charge_id(charge_id: str) -> None:
    if not CHARGE_ID.match(charge_id):
        raise problem("validation-error", "The charge ID must be 1 to 64 letters, digits or dashes.",
                      details=[Detail("chargeId", "Invalid format")])


def check_idempotency_key(key: str | None) -> str:
    if key is None or key == "":
        raise problem("idempotency-key-header", "The Idempotency-Key header is required on this request.",
                      details=[Detail("Idempotency-Key", "Required")])
    if not IDEMPOTENCY_KEY.match(key):
        raise problem("idempotency-key-header", "The Idempotency-Key header must be 1 to 40 characters, without "
                      "'#', '?', '/' or '\\'.", details=[Detail("Idempotency-Key", "Invalid")])
    return key


def parse_due(text: object, field: str = "due") -> date:
    if not isinstance(text, str) or not DUE_DATE.match(text):
        raise problem("validation-error", "The due date must be a date: yyyy-MM-dd.",
                      details=[Detail(field, "Must be a date on the form yyyy-MM-dd")])
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise problem("validation-error", f"{text} is not a date.",
                      details=[Detail(field, "Not a calendar date")]) from exc


def parse_datetime(text: object, field: str) -> float:
    """An ISO 8601 date-time (the spec's examples also write the date with slashes); epoch seconds."""
    if isinstance(text, str) and len(text) <= 40:
        candidate = text.replace("/", "-").replace("z", "Z").replace("Z", "+00:00")
        try:
            moment = datetime.fromisoformat(candidate)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
        except ValueError:
            pass
    raise problem("validation-error", f"{field} must be an ISO 8601 date-time.",
                  details=[Detail(field, "Must be a date-time")])


def check_amount(value: object, currency: str, field: str, identifier: str = "charge-amount-too-high") -> int:
    """A positive amount in minor units, at most the currency's maximum (and an int32)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise problem("validation-error", f"{field} must be an integer.", details=[Detail(field, "Must be an integer")])
    if value < 1:
        raise problem("validation-error", f"{field} must be at least 1.", details=[Detail(field, "Must be positive")])
    limit = MAX_AMOUNT.get(currency, MAX_AMOUNT["NOK"])
    if value > limit or value > INT32_MAX:
        raise problem(identifier, f"{field} {value if value < 10**15 else 'given'} is higher than the maximum "
                      f"{limit} for {currency}.", details=[Detail(field, "Too high")])
    return value


# ---------------------------------------------------------------------------------------------
# Validation against the spec
# ---------------------------------------------------------------------------------------------
#: The spec's PricingRequestV3 is a oneOf of three schemas without a discriminator mapping, and
#: FlexiblePricingRequestV3 requires only type and currency: every LEGACY or VARIABLE pricing matches two of
#: them, so the oneOf refuses every valid body (a spec bug). It is checked here by its `type` instead; so is
#: `campaign` (its `type` names the schema), for clear messages.
PRICING_SCHEMAS = {"LEGACY": "LegacyPricingRequestV3", "VARIABLE": "VariablePricingRequestV3",
                   "FLEXIBLE": "FlexiblePricingRequestV3"}
CAMPAIGN_SCHEMAS = {"PRICE_CAMPAIGN": "priceCampaignV3", "PERIOD_CAMPAIGN": "periodCampaignV3",
                    "EVENT_CAMPAIGN": "eventCampaignV3"}


def validate(schema: str, body: object) -> None:
    """SPEC.validate, with `pricing` and `campaign` checked by their type (see PRICING_SCHEMAS)."""
    if not isinstance(body, dict):
        SPEC.validate(schema, body)
        return
    rest = {k: v for k, v in body.items() if not (schema == "DraftAgreementV3" and k in ("pricing", "campaign"))}
    problems = [(name, why) for name, why in SPEC.errors(schema, rest)
                if not (schema == "DraftAgreementV3" and name == "pricing")]  # required: checked just below
    if schema == "DraftAgreementV3":
        if "pricing" not in body:
            problems.append(("pricing", "'pricing' is a required property"))
        else:
            problems += _typed("pricing", body["pricing"], PRICING_SCHEMAS, "LEGACY")
        if body.get("campaign") is not None:
            problems += _typed("campaign", body["campaign"], CAMPAIGN_SCHEMAS, None)
    if problems:
        raise ValidationProblem([Detail(name, why) for name, why in problems])


def _typed(field: str, value: object, schemas: dict[str, str], default: str | None) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        return [(field, f"{field} must be an object")]
    kind = value.get("type", default)
    if kind not in schemas:
        return [(f"{field}.type", f"must be one of {', '.join(schemas)}")]
    return [(f"{field}.{name}" if name != "body" else field, why)
            for name, why in SPEC.errors(schemas[kind], dict(value, type=kind))]


def invalid(detail: str, field: str, why: str, identifier: str = "validation-error") -> Problem:
    return problem(identifier, detail, details=[Detail(field, why)])


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(day: date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


#: The documented rate limits (reference section 2), applied by the gateway when --rate-limits is on. Counted per
#: the path's agreementId and chargeId (those the operation has) and the sales unit: "per merchant" for list and
#: draft, which have no id in the path. UNCERTAIN: the docs give no key for the reads; the path's ids here.
RATE_LIMITS: dict[str, Limit] = {
    # Per agreementId + chargeId: a create names its charge by orderId (without one, every create is a new charge).
    "recurring.charges.create": Limit(2, "msn", params=("agreementId",), body_field="orderId"),
    "recurring.charges.cancel": Limit(5, "msn", params=("agreementId", "chargeId")),
    "recurring.charges.capture": Limit(5, "msn", params=("agreementId", "chargeId")),
    "recurring.charges.refund": Limit(5, "msn", params=("agreementId", "chargeId")),
    "recurring.agreements.list": Limit(5, "msn", params=()),
    "recurring.agreements.update": Limit(5, "msn", params=("agreementId",)),
    "recurring.charges.get": Limit(10, "msn", params=("agreementId", "chargeId")),
    "recurring.charges.get_by_id": Limit(100, "msn", params=("chargeId",)),
    "recurring.charges.list": Limit(10, "msn", params=("agreementId",)),
    "recurring.agreements.get": Limit(120, "msn", params=("agreementId",)),
    "recurring.agreements.draft": Limit(300, "msn", params=()),
}
