"""Every webhook delivery a test client sees is checked against the official spec and the signing guide.

The test client (sandbox/testing.py) calls `violations()` on each reply, as it does for ePayment's responses
(sandbox/apis/epayment/response_schemas.py). A delivery an inbox received (GET /_sandbox/inbox/{name}) or the
attempt log shows (GET /_sandbox/webhooks/deliveries) must have a body its event's schema allows, with no
field the schema does not name, and an inbox delivery must carry the documented headers. So every webhook
test is evidence about the bodies, whatever it asserts itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from sandbox.core.spec import SpecSchemas
from sandbox.gateway.delivery_guard import DELIVERY_HEADER

#: Event type prefix -> (spec file, the schema of its body).
SCHEMAS = {"epayments.payment.": ("epayment-1.8.1.yaml", "WebhookEvent")}
#: The event kind of a delivery in an inbox, which records no event type: an ePayment one unless its body names a
#: Recurring eventType (`inbox_event`).
INBOX_EVENT = "epayments.payment."
#: The Recurring events' bodies. No spec has a schema for them; this one is the sandbox's reading of the Recurring
#: webhooks documentation (UNCERTAIN), so a body that drifts from what the docs describe fails every test.
_TEXT, _NULLABLE_TEXT = {"type": "string", "minLength": 1}, {"type": ["string", "null"]}
RECURRING_AGREEMENT = {"type": "object", "additionalProperties": False,
                       "required": ["agreementId", "eventType", "occurred", "msn"],
                       "properties": {"agreementId": _TEXT, "agreementExternalId": _NULLABLE_TEXT,
                                      "eventType": {"type": "string", "pattern": r"^recurring\.agreement-"
                                                    r"(activated|rejected|stopped|expired)\.v1$"},
                                      "occurred": {"type": "string", "format": "date-time"},
                                      "msn": {"type": "string", "pattern": "^[0-9]{4,10}$"},
                                      "actor": {"enum": ["MERCHANT", "USER"]}}}
RECURRING_CHARGE = {"type": "object", "additionalProperties": False,
                    "required": ["agreementId", "chargeId", "amount", "chargeType", "currency", "eventType",
                                 "occurred", "msn"],
                    "properties": {"agreementId": _TEXT, "agreementExternalId": _NULLABLE_TEXT, "chargeId": _TEXT,
                                   "chargeExternalId": _NULLABLE_TEXT, "amount": {"type": "integer", "minimum": 0},
                                   "chargeType": {"enum": ["INITIAL", "RECURRING", "UNSCHEDULED"]},
                                   "currency": {"enum": ["NOK", "DKK", "EUR"]},
                                   "eventType": {"type": "string", "pattern": r"^recurring\.charge-(reserved|captured|"
                                                 r"canceled|refunded|failed|creation-failed)\.v1$"},
                                   "occurred": {"type": "string", "format": "date-time"},
                                   "msn": {"type": "string", "pattern": "^[0-9]{4,10}$"},
                                   "failureReason": {"enum": ["user_action_required", "charge_amount_too_high",
                                                              "non_technical_error", "technical_error"]},
                                   "failureDescription": {"type": "string"}}}

#: The QR check-in (user.checked-in.v1, issue 18). No spec has a schema; this is the QR API guide's payload as the
#: reference (section 7) gives it: {customerToken, merchantQrId, msn, initiatedAt} (UNCERTAIN: the time's format).
CHECKED_IN = "user.checked-in.v1"
QR_CHECKED_IN = {"type": "object", "additionalProperties": False,
                 "required": ["customerToken", "merchantQrId", "msn", "initiatedAt"],
                 "properties": {"customerToken": _TEXT, "merchantQrId": _TEXT,
                                "msn": {"type": "string", "pattern": "^[0-9]{4,10}$"},
                                "initiatedAt": {"type": "string", "format": "date-time"}}}


#: The Donations events' bodies (donations.agreement.*.v1). The documentation names the events, not their body:
#: this is the sandbox's guess (UNCERTAIN, docs/reference/fidelity.md), held to so that it cannot drift.
DONATIONS_AGREEMENT = {"type": "object", "additionalProperties": False,
                       "required": ["agreementId", "recipientHandle", "eventType", "occurred", "msn"],
                       "properties": {"agreementId": _TEXT, "recipientHandle": {"type": "string",
                                                                                "pattern": "^(api|NO|DK|FI):[0-9]+$"},
                                      "eventType": {"type": "string", "pattern": r"^donations\.agreement\.(started|"
                                                    r"stopped|withdrawal-day-changed|amount-changed)\.v1$"},
                                      "occurred": {"type": "string", "format": "date-time"},
                                      "msn": {"type": "string", "pattern": "^[0-9]{4,10}$"}}}


def inbox_event(body: str) -> str:
    """The event kind of an inbox delivery: a Recurring or Donations one names itself in eventType, a check-in
    carries a customerToken; else ePayment's."""
    try:
        document = json.loads(body)
        event = document.get("eventType")
    except (ValueError, AttributeError):
        return INBOX_EVENT
    if "customerToken" in document and "merchantQrId" in document:
        return CHECKED_IN
    return event if isinstance(event, str) and event.startswith(("recurring.", "donations.")) else INBOX_EVENT


def recurring_violations(event: str, body: str) -> list[str]:
    from jsonschema import Draft7Validator, FormatChecker

    try:
        instance = json.loads(body)
    except ValueError:
        return [f"the body is not JSON: {body[:80]!r}"]
    schema = RECURRING_AGREEMENT if event.startswith("recurring.agreement-") else \
        DONATIONS_AGREEMENT if event.startswith("donations.") else RECURRING_CHARGE
    found = [f"{event}.{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
             for e in Draft7Validator(schema, format_checker=FormatChecker()).iter_errors(instance)]
    if isinstance(instance, dict) and instance.get("eventType") != event:
        found.append(f"eventType {instance.get('eventType')!r} on a {event} delivery")
    return found
INBOX = re.compile(r"^/_sandbox/inbox/[^/]+$")
ATTEMPTS = "/_sandbox/webhooks/deliveries"
#: The request-authentication guide: the Authorization header, and x-ms-date as an RFC 1123 date in GMT.
AUTHORIZATION = re.compile(r"^HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
                           r"&Signature=[A-Za-z0-9+/]{43}=$")
HTTP_DATE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       r"\d{4} \d{2}:\d{2}:\d{2} GMT$")
_SPECS: dict[str, SpecSchemas] = {}


def violations(method: str, path: str, status: int, text: str) -> list[str]:
    """What is wrong with the webhook deliveries in a reply; empty when they conform or the route has none."""
    if method != "GET" or not 200 <= status < 300 or not text:
        return []
    path = path.split("?", 1)[0]
    if INBOX.match(path):
        found = []
        for index, entry in enumerate(json.loads(text).get("deliveries", [])):
            headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
            if DELIVERY_HEADER.lower() not in headers:
                continue  # posted by something else than a sandbox's delivery: nothing to check
            where = f"deliveries[{index}]"
            found += [f"{where}: {why}" for why in header_violations(headers, entry.get("body", ""))]
            found += [f"{where}: {why}" for why in body_violations(inbox_event(entry.get("body", "")),
                                                                   entry.get("body", ""))]
        return found
    if path == ATTEMPTS:
        found = []
        for index, attempt in enumerate(json.loads(text).get("attempts", [])):
            found += [f"attempts[{index}]: {why}" for why in body_violations(attempt.get("event", ""),
                                                                             attempt.get("body", ""))]
        return found
    return []


def header_violations(headers: dict[str, str], body: str) -> list[str]:
    """The headers of a delivery (names lower-cased) against the request-authentication guide."""
    found = []
    if headers.get("content-type") != "application/json":
        found.append(f"Content-Type is {headers.get('content-type')!r}, not 'application/json'")
    if not HTTP_DATE.match(headers.get("x-ms-date", "")):
        found.append(f"x-ms-date {headers.get('x-ms-date')!r} is not an RFC 1123 date in GMT")
    digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
    if headers.get("x-ms-content-sha256") != digest:
        found.append("x-ms-content-sha256 is not the base64 SHA-256 of the body")
    if not AUTHORIZATION.match(headers.get("authorization", "")):
        found.append(f"Authorization {headers.get('authorization')!r} is not the documented HMAC-SHA256 form")
    if not headers.get("host"):
        found.append("no Host header")
    return found


def checked_in_violations(body: str) -> list[str]:
    from jsonschema import Draft7Validator, FormatChecker

    try:
        instance = json.loads(body)
    except ValueError:
        return [f"the body is not JSON: {body[:80]!r}"]
    return [f"{CHECKED_IN}.{'.'.join(map(str, e.absolute_path)) or 'body'}: {e.message}"
            for e in Draft7Validator(QR_CHECKED_IN, format_checker=FormatChecker()).iter_errors(instance)]


def body_violations(event: str, body: str) -> list[str]:
    """A delivered body against the schema of its event type: the spec's rules, and no field the schema lacks."""
    if event.startswith(("recurring.", "donations.")):
        return recurring_violations(event, body)
    if event == CHECKED_IN:
        return checked_in_violations(body)
    prefix = next((p for p in SCHEMAS if event.startswith(p)), None)
    if prefix is None:
        return [f"no schema is known for the event {event!r}"]
    spec_name, schema = SCHEMAS[prefix]
    spec = _SPECS.get(spec_name)
    if spec is None:
        spec = _SPECS[spec_name] = SpecSchemas(spec_name, formats=True)
    try:
        instance = json.loads(body)
    except ValueError:
        return [f"the body is not JSON: {body[:80]!r}"]
    if not isinstance(instance, dict):
        return [f"{schema}: expected an object"]
    found = [f"{schema}.{field}: {why}" for field, why in spec.errors(schema, instance)]
    named = spec.spec["components"]["schemas"][schema].get("properties", {})
    found += [f"{schema}.{field}: not a field of the spec's {schema}" for field in instance if field not in named]
    kind = event[len(prefix):].split(".", 1)[0]
    if kind and instance.get("name") != kind.upper():
        found.append(f"{schema}.name: {instance.get('name')!r} on a {event} event")
    return found
