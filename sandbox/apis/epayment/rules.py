"""The ePayment API's rules as data: error codes and their statuses, magic amounts, and request checks.

Kept apart from the backend (sandbox.apis.epayment.backend) so the UNCERTAIN choices sit in one short file.
Validation uses the bundled spec; a fast path with every $ref inlined answers the common, valid
case, and only an invalid body goes through the slower validator that names each field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

from sandbox.apis.epayment.error_codes import ERROR_CODES
from sandbox.core.errors import Detail, Problem, ValidationProblem
from sandbox.core.spec import SpecSchemas, compile_pattern, validator_class
from sandbox.core.urls import return_url_problem
from sandbox.gateway.rate_limits import Limit

SPEC = SpecSchemas("epayment-1.8.1.yaml")
MINIMUM_AMOUNT = {"NOK": 100, "DKK": 1, "EUR": 1}  # reference §2: NOK 100 øre, DKK 1 øre, EUR 1 cent

# ---------------------------------------------------------------------------------------------
# Error codes: titles and statuses come from the documented table (sandbox.apis.epayment.error_codes).
# The docs give the codes and their titles, not the HTTP status of each: the UNCERTAIN choices (404 for
# 5090, 409 for the idempotency and "exists" conflicts, 400 for the rest) are that table's `status` column.
# ---------------------------------------------------------------------------------------------
CODE_STATUS: dict[str, int] = {row.code: row.status for row in ERROR_CODES}
CODE_TITLES: dict[str, str] = {row.code: row.title for row in ERROR_CODES}
#: The code answered when an Idempotency-Key comes back with a different body, per route (the error page:
#: 4010 "Capture idempotency conflict", 4150 "... or refund idempotency conflict", 4020 "Idempotency error").
#: UNCERTAIN: cancel has no documented code; it answers 4020 like create.
IDEMPOTENCY_CONFLICT_CODE = {"create": "4020", "capture": "4010", "refund": "4150", "cancel": "4020"}

# -- time limits, in days on the virtual clock (the payment-lifecycle docs) ----------------------------
#: Capture deadline after the reservation, per market: Norway 180 days; Denmark and Finland 14 days unless the
#: sales unit has configuration.lateCaptureAllowed (then LATE_CAPTURE_DAYS). Past it: 6100.
CAPTURE_DAYS = {"NO": 180, "DK": 14, "FI": 14}
LATE_CAPTURE_DAYS = 180
#: Cancel: "within 180 days of reservation, and inside the capture deadline". Past it: 6030.
CANCEL_DAYS = 180
#: Refund: 365 days. UNCERTAIN where they start: the error page and the refund docs say "of the reservation",
#: the lifecycle page "after the capture". REFUND_PERIOD_FROM picks: "reservation" or "capture" (the first).
REFUND_DAYS = 365
REFUND_PERIOD_FROM = "reservation"

# -- create-time field limits (the spec and the error page) ------------------------------------------------
METADATA_MAX_PAIRS, METADATA_KEY_MAX, METADATA_VALUE_MAX = 5, 100, 500
RETURN_URL_MAX = 2500
#: profile.scope values (the spec's ProfileRequest); RESTRICTED_SCOPES need a permission no sandbox unit has.
PROFILE_SCOPES = frozenset({"name", "address", "email", "phoneNumber", "birthDate", "nin"})
RESTRICTED_SCOPES = frozenset({"nin"})

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


def problem(code: str, detail: str, *, details: list[Detail] | None = None, rule: str | None = None,
            reason: str | None = None) -> Problem:
    """A domain error with its ErrorCode, status and title from the tables above."""
    return Problem(CODE_STATUS.get(code, 400), CODE_TITLES.get(code, "Bad Request"), detail, code=code,
                   details=details, rule=rule or f"epayment-error-{code}", reason=reason)


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
    "https:// or a custom URL scheme"; http is allowed too, for merchants on localhost), at most 2500 characters.
    Never javascript:, data:, file: and the like, however they are spelled: the user's browser follows it from a
    sandbox page. 400 with ErrorCode 4090 "Invalid URL"."""
    if "returnUrl" not in body:
        return
    url = body["returnUrl"]
    why = return_url_problem(url)
    if why is None and len(url) > RETURN_URL_MAX:
        why = f"Must be at most {RETURN_URL_MAX} characters."
    if why is not None:
        raise problem("4090", "See extraDetails for further details", details=[Detail("returnUrl", why)],
                      rule="return-url-refused",
                      reason=f"returnUrl is refused: {why} A browser would read it as a link the user must "
                      "not follow from the sandbox's pages.")


def validate_create(body: object, duplicate_metadata_keys: list[str] | tuple = ()) -> None:
    """The create body, in the documented order: the schema (a 400 without an ErrorCode) for everything but the
    fields that have codes of their own, then those fields' rules (4xxx). The sales unit's configuration (5xxx)
    and the amount's minimum (6010) are the backend's, after these."""
    if not isinstance(body, dict):
        SPEC.validate("CreatePaymentRequest", body)
        return
    rest = dict(body)
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()):
        rest.pop("metadata")  # the spec's maxProperties would answer 4100 as a code-less 400
    for name in ("returnUrl", "receiptUrl"):
        if isinstance(body.get(name), str):
            rest.pop(name)  # returnUrl's maxLength: 4090, below
    amount = body.get("amount")
    fractional = isinstance(amount, dict) and isinstance(amount.get("value"), float)  # 100.5, and 100.0 too
    if fractional:
        rest["amount"] = dict(amount, value=0)
    customer = rest.pop("customer", None)
    validate("CreatePaymentRequest", rest)
    if customer is not None and (not isinstance(customer, dict) or len(customer) != 1
                                 or next(iter(customer)) not in CUSTOMER_KINDS):
        raise ValidationProblem([Detail("customer", "Specify exactly one of phoneNumber, personalQr or "
                                        "customerToken.")])
    if fractional:
        raise problem("4040", "The amount must be an integer in minor units (øre, cents), without decimals.",
                      details=[Detail("amount.value", "Invalid amount")])
    check_customer(customer)
    check_return_url(body)
    if isinstance(body.get("receiptUrl"), str):
        why = return_url_problem(body["receiptUrl"])
        if why is not None:
            raise problem("4090", "See extraDetails for further details", details=[Detail("receiptUrl", why)])
    check_callback_url(body.get("shipping"))
    check_metadata(metadata, duplicate_metadata_keys)
    check_scope(body.get("profile"))


#: A personal QR is the complete content of the QR code in the user's app: a URL (the spec's examples:
#: https://qr.vipps.no/28/2/01/031/4712345678?v=1, https://qr.vipps.no/p/4796844569).
_PERSONAL_QR = re.compile(r"https://[A-Za-z0-9.-]+(?::\d+)?/\S*", re.ASCII)
#: A customer token (from the user.checked-in.v1 event) is opaque; printable, no spaces (UNCERTAIN: no format
#: is documented, the spec's example is "ey%382jf8+qk3nnfdsao0i5jlalidugujnakgo9t8ghn").
_CUSTOMER_TOKEN = re.compile(r"[!-~]{1,255}", re.ASCII)


def check_customer(customer: object) -> None:
    """The customer's one identifier, in its format: 4070 phone number, 4060 personal QR, 4050 customer token.
    (`validate` has already made sure there is exactly one.)"""
    if not isinstance(customer, dict) or len(customer) != 1:
        return
    (kind, value), = customer.items()
    if kind == "phoneNumber":
        errors = SPEC.errors("CustomerPhoneNumber", customer)
        if errors:
            raise problem("4070", "customer.phoneNumber must be an MSISDN: the country code and the number, digits "
                          "only, no + or spaces (4712345678).", details=[Detail("customer.phoneNumber",
                                                                                 "Invalid phone number")])
    elif kind == "personalQr":
        if SPEC.errors("PersonalQrCode", customer) or not _PERSONAL_QR.fullmatch(value):
            raise problem("4060", "customer.personalQr must be the complete content of the user's personal QR code "
                          "(a https:// URL).", details=[Detail("customer.personalQr", "Invalid PersonalQr")])
    elif kind == "customerToken":
        if not isinstance(value, str) or not _CUSTOMER_TOKEN.fullmatch(value):
            raise problem("4050", "customer.customerToken must be the token from the user.checked-in.v1 event.",
                          details=[Detail("customer.customerToken", "Invalid CustomerToken")])


def check_callback_url(shipping: object) -> None:
    """shipping.dynamicOptions.callbackUrl: an absolute https URL with a host (4090). http is allowed on
    loopback hosts only, so a merchant on localhost can receive the callback."""
    options = shipping.get("dynamicOptions") if isinstance(shipping, dict) else None
    url = options.get("callbackUrl") if isinstance(options, dict) else None
    if not isinstance(url, str):
        return
    why = return_url_problem(url)
    if why is None:
        parts = urlsplit(url)
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            why = "Must be an https:// URL."
    if why is not None:
        raise problem("4090", "See extraDetails for further details",
                      details=[Detail("shipping.dynamicOptions.callbackUrl", why)])


def check_metadata(metadata: object, duplicates: list[str] | tuple = ()) -> None:
    """At most 5 pairs (4100), no key twice in the raw JSON (4110), keys up to 100 characters (4120), values up
    to 500 (4130). The values' type (strings) is the schema's, checked before."""
    if not isinstance(metadata, dict):
        return
    if len(metadata) > METADATA_MAX_PAIRS:
        raise problem("4100", f"metadata holds {len(metadata)} key-value pairs; at most {METADATA_MAX_PAIRS} are "
                      "allowed.", details=[Detail("metadata", "Metadata capacity exceeded")])
    if duplicates:
        raise problem("4110", f"metadata repeats the key {duplicates[0]!r}; duplicate keys are rejected.",
                      details=[Detail("metadata", "Metadata duplicate keys not allowed")])
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_MAX:
            raise problem("4120", f"A metadata key is {len(key)} characters; at most {METADATA_KEY_MAX} are allowed.",
                          details=[Detail("metadata", "Metadata key length exceeded")])
        if len(value) > METADATA_VALUE_MAX:
            raise problem("4130", f"The value of metadata key {key!r} is {len(value)} characters; at most "
                          f"{METADATA_VALUE_MAX} are allowed.", details=[Detail(f"metadata.{key}",
                                                                                "Metadata value length exceeded")])


def scope_values(profile: object) -> list[str]:
    scope = profile.get("scope") if isinstance(profile, dict) else None
    return scope.split(" ") if isinstance(scope, str) else []


def check_scope(profile: object) -> None:
    """profile.scope: space-separated values of the spec's list (4080 for anything else, or an empty scope)."""
    if not isinstance(profile, dict) or profile.get("scope") is None:
        return
    values = scope_values(profile)
    unknown = [value for value in values if value and value not in PROFILE_SCOPES]  # "a  b": two spaces pass
    if unknown or not any(values):
        shown = ", ".join(repr(value) for value in unknown) or "an empty scope"
        raise problem("4080", f"profile.scope holds {shown}; use space-separated values of "
                      f"{', '.join(sorted(PROFILE_SCOPES))}.", details=[Detail("profile.scope", "Invalid scope")])


class _Pairs(dict):
    """A parsed JSON object that remembers the keys its text repeated."""

    __slots__ = ("duplicates",)


def _pairs(pairs: list[tuple[str, object]]) -> _Pairs:
    obj = _Pairs(pairs)
    obj.duplicates = ()
    if len(obj) != len(pairs):
        seen: set[str] = set()
        obj.duplicates = tuple(key for key, _ in pairs if key in seen or seen.add(key))
    return obj


def duplicate_metadata_keys(raw: bytes) -> list[str]:
    """The keys that the raw create body's `metadata` object repeats (a parsed dict keeps only the last one)."""
    if b"metadata" not in raw and b"\\u" not in raw:
        return []
    try:
        top = json.loads(raw, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return []  # read_json has answered the 400 already
    metadata = top.get("metadata") if isinstance(top, dict) else None
    return list(metadata.duplicates) if isinstance(metadata, _Pairs) else []


def check_modification_amount(body: object) -> None:
    """modificationAmount.value with decimals: 4040 (before the schema, which would answer without a code)."""
    amount = body.get("modificationAmount") if isinstance(body, dict) else None
    if isinstance(amount, dict) and isinstance(amount.get("value"), float):
        raise problem("4040", "The amount must be an integer in minor units (øre, cents), without decimals.",
                      details=[Detail("modificationAmount.value", "Invalid amount")])


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
