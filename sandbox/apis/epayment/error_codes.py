"""Every documented ePayment error code, as data: title, HTTP status, condition, source, emulation status.

This module holds facts from the documentation and nothing else. It imports nothing from the sandbox;
`rules.CODE_TITLES` / `rules.CODE_STATUS` are made from it, and tests/epayment/test_error_code_table.py checks
that the rows marked emulated are exactly the codes the backend raises. tests/epayment/test_error_codes_reached.py
reaches every emulated row with a request; the others are listed, with their reason, in
docs/reference/fidelity.md (a test keeps that list in step).

Columns:

- ``code``: the string sent in ``extraDetails[{"name": "ErrorCode", "reason": code}]``.
- ``title``: the documented title (the docs say titles change over time; clients key on code + status).
- ``status``: the HTTP status. The error page gives no status per code, so most are the most plausible
  choice, marked ``UNCERTAIN:`` in ``condition``. Documented ones: the domain example (6080 -> 400),
  "409 Conflict: Idempotency-Key reused with a different body", "capture/cancel after the deadline
  returns HTTP 400", and 404 for an unknown reference.
- ``condition``: when the real API answers it, with the documented limits.
- ``source``: where the row comes from (repository + path, or a URL).
- ``emulated``: True = the sandbox raises this code; False = it does not, though it could be;
  None = it cannot be emulated faithfully. ``not_emulated_reason`` says why, for both.

Sources (short names used below):

- ERRORS: vippsas/agent-toolkit plugins/vipps/skills/epayment/references/errors.md (2026-08 skills,
  summarising https://developer.vippsmobilepay.com/docs/APIs/epayment-api/api-guide/errors.md)
- FEATURES: vippsas/agent-toolkit plugins/vipps/skills/epayment/references/features.md
- OPERATIONS: vippsas/agent-toolkit plugins/vipps/skills/epayment/references/operations.md
- LIFECYCLE: vippsas/agent-toolkit plugins/vipps/skills/payment-lifecycle/SKILL.md
- SPEC: the bundled epayment-1.8.1.yaml (coretrekas/vipps .specs/epayment-swagger-id.yaml)
- CHANGELOG: https://developer.vippsmobilepay.com/docs/APIs/epayment-api/CHANGELOG.md (August 2026)
"""

from __future__ import annotations

from dataclasses import dataclass

ERRORS = ("vippsas/agent-toolkit plugins/vipps/skills/epayment/references/errors.md; "
          "https://developer.vippsmobilepay.com/docs/APIs/epayment-api/api-guide/errors.md")
FEATURES = "vippsas/agent-toolkit plugins/vipps/skills/epayment/references/features.md"
OPERATIONS = "vippsas/agent-toolkit plugins/vipps/skills/epayment/references/operations.md"
LIFECYCLE = "vippsas/agent-toolkit plugins/vipps/skills/payment-lifecycle/SKILL.md"
SPEC = "epayment-1.8.1.yaml (coretrekas/vipps .specs/epayment-swagger-id.yaml)"
CHANGELOG = "https://developer.vippsmobilepay.com/docs/APIs/epayment-api/CHANGELOG.md (August 2026)"
STATUSES = "errors.md 'HTTP statuses worth handling explicitly' (409 = Idempotency-Key reused with another body)"


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    title: str
    status: int
    condition: str
    source: str
    emulated: bool | None
    not_emulated_reason: str = ""


_U400 = "UNCERTAIN: the docs give no status per code; 400 like the documented domain-error example."
_U400_403 = ("UNCERTAIN: no status per code; 400 chosen (the spec also lists 403 on create, and the docs say "
             "403 = 'the sales unit lacks the product or permission'; make it configurable).")

ERROR_CODES: tuple[ErrorCode, ...] = (
    # -- internal ---------------------------------------------------------------------------------
    ErrorCode("3010", "Internal error", 500,
              "An internal error; the docs add 'often a malformed request'. UNCERTAIN: status 500 assumed.",
              ERRORS, False,
              "The sandbox has no internal failure to report; a 500 can be injected with a fault rule (POST "
              "/_sandbox/faults)."),
    # -- invalid request (4xxx) ---------------------------------------------------------------------
    ErrorCode("4010", "Capture idempotency conflict", 409,
              "Capture retried with the same Idempotency-Key but a different body ('an idempotent retry must "
              "repeat the body exactly').", f"{ERRORS}; {OPERATIONS} (Capture); {STATUSES}", True),
    ErrorCode("4020", "Idempotency error", 409,
              "'That Idempotency-Key already exists': create retried with the same key and another body. "
              "UNCERTAIN: whether cancel conflicts also answer 4020 (cancel has no documented code).",
              f"{ERRORS}; {STATUSES}", True),
    ErrorCode("4040", "Invalid amount", 400,
              "Amount not an integer in minor units (decimals, rounding bugs). " + _U400, ERRORS, True),
    ErrorCode("4050", "Invalid CustomerToken", 400,
              "customer.customerToken (from a scanned personal QR) is not valid. " + _U400, ERRORS, True),
    ErrorCode("4060", "Invalid PersonalQr", 400,
              "customer.personalQr is not a valid personal QR (e.g. https://qr.vipps.no/p/<msisdn>). " + _U400,
              ERRORS, True),
    ErrorCode("4070", "Invalid phone number", 400,
              "customer.phoneNumber not an MSISDN (country code + number, no '+', no spaces). " + _U400,
              ERRORS, True),
    ErrorCode("4080", "Invalid scope", 400,
              "profile.scope holds a value outside name, address, email, phoneNumber, birthDate (+ nin in the "
              "1.8.1 spec), space separated. " + _U400, f"{ERRORS}; {FEATURES}; {SPEC} ProfileRequest", True),
    ErrorCode("4090", "Invalid URL", 400,
              "returnUrl (https:// or a custom scheme, <= 2500 chars), receiptUrl or a callback URL is not a "
              "valid URL; dynamicOptions.callbackUrl must be HTTPS on a common port (80, 443, 8080). " + _U400,
              f"{ERRORS}; {SPEC} CreatePaymentRequest.returnUrl, DynamicOptions.callbackUrl", True),
    ErrorCode("4100", "Metadata capacity exceeded", 400,
              "metadata has more than 5 key-value pairs (spec: 'Max capacity is 5'). " + _U400
              + " Note the spec's maxProperties: 5 makes a schema 400 win unless the rule runs first.",
              f"{ERRORS}; {SPEC} Metadata", True),
    ErrorCode("4110", "Metadata duplicate keys not allowed", 400,
              "metadata repeats a key in the raw JSON (a parsed dict cannot show it). " + _U400,
              f"{ERRORS}; {FEATURES} (Metadata)", True),
    ErrorCode("4120", "Metadata key length exceeded", 400,
              "A metadata key is longer than 100 characters. " + _U400, f"{ERRORS}; {SPEC} Metadata", True),
    ErrorCode("4130", "Metadata value length exceeded", 400,
              "A metadata value is longer than 500 characters. " + _U400, f"{ERRORS}; {SPEC} Metadata", True),
    ErrorCode("4140", "Missing required parameter", 400,
              "A field required for this flow is missing: returnUrl for WEB_REDIRECT, customer for "
              "PUSH_MESSAGE (and per SKILL.md for NATIVE_REDIRECT). " + _U400,
              f"{ERRORS}; {SPEC} CreatePaymentRequest.userFlow", True),
    ErrorCode("4150", "Reference exists, or refund idempotency conflict", 409,
              "Create with a reference the sales unit already used, OR a refund retried with the same "
              "Idempotency-Key and another body. UNCERTAIN: 409 for both (create lists 409 in the spec).",
              f"{ERRORS}; {SPEC} createPayment responses", True),
    ErrorCode("4160", "Invalid payment method type", 400,
              "paymentMethod.type not valid here (CARD only with WEB_REDIRECT and not in test; "
              "CARD_PASSTHROUGH only for PSPs). " + _U400, f"{ERRORS}; {OPERATIONS}", True),
    # -- merchant configuration (5xxx) ---------------------------------------------------------------
    ErrorCode("5010", "Blocking sources not applicable", 400,
              "paymentMethod.blockedSources sent for a Norwegian sales unit (Danish and Finnish WALLET "
              "payments only; enum COMMERCIAL_CARDS). " + _U400_403,
              f"{ERRORS}; {FEATURES} (Block payment sources); {SPEC} BlockedPaymentSources", True),
    ErrorCode("5020", "Express payment not allowed", 400,
              "shipping (Express) sent for a sales unit not enabled for Express. UNCERTAIN: no Management "
              "configuration flag exposes Express; the sandbox lets every unit use it except those named by "
              "`serve --express-disabled MSN` (Settings.express_disabled). " + _U400_403, ERRORS, True),
    ErrorCode("5030", "Illegal scope", 400,
              "profile.scope asks for nin (national identity number) or account number without permission. "
              + _U400_403, ERRORS, True),
    ErrorCode("5040", "Invalid currency for merchant", 400,
              "amount.currency does not match the sales unit's market (NOK/DKK/EUR). " + _U400_403, ERRORS, True),
    ErrorCode("5050", "Long-living payment not allowed", 400,
              "expiresAt sent for a sales unit with configuration.longLivingPaymentAllowed = false. "
              + _U400_403, f"{ERRORS}; {FEATURES} (Long-living payments)", True),
    ErrorCode("5060", "Merchant bank account not verified", 400,
              "The merchant has not verified its settlement bank account. " + _U400_403, ERRORS, False,
              "The fixture's sales units all have a settlement account, and the Management API exposes no verification"
              " status to make one unverified."),
    ErrorCode("5070", "Payment cannot be created", 400,
              "Generic: invalid state, missing precondition or incorrect setup. Plausible sandbox uses: "
              "configuration.paymentAllowed = false, captureType other than ReserveCapture (the 2.0.9 "
              "Management spec: ReserveCapture 'is the only method supported by the ePayment API'). "
              + _U400_403, ERRORS, True),
    ErrorCode("5080", "PUSH_MESSAGE not allowed", 400,
              "userFlow PUSH_MESSAGE for a sales unit with configuration.skipLandingPageAllowed = false "
              "('needs approval to skip the landing page'). " + _U400_403, ERRORS, True),
    ErrorCode("5090", "Reference not found", 404,
              "Unknown reference, or the right one with the wrong MSN. UNCERTAIN: 404 (the reference's §2).",
              ERRORS, True),
    ErrorCode("5100", "Refund not possible", 400,
              "A configuration problem on the sales unit stops refunds (test refund amount 123). " + _U400,
              ERRORS, True),
    # -- payment (6xxx) ------------------------------------------------------------------------------
    ErrorCode("6010", "Amount too small", 400,
              "amount.value below the minimum: NOK 100 øre, DKK 1 øre, EUR 1 cent. " + _U400,
              f"{ERRORS}; {SPEC} Amount", True),
    ErrorCode("6020", "Attempted refund before reservation", 400,
              "Refund when nothing can be refunded yet (no capture). " + _U400, ERRORS, True),
    ErrorCode("6030", "Cancel period expired", 400,
              "Cancel more than 180 days after the reservation, or after the capture deadline (DK/FI 14 days "
              "without late capture). Status documented: 'a cancel attempt ... past its deadline returns "
              "HTTP 400'.", f"{ERRORS}; {LIFECYCLE} (Cancel)", True),
    ErrorCode("6040", "Cannot cancel a captured payment", 400,
              "Cancel after the full amount was captured; refund instead. " + _U400, ERRORS, True),
    ErrorCode("6050", "Cannot cancel a non-reserved payment", 400,
              "Cancel of a payment that holds no reservation (e.g. ABORTED or EXPIRED). " + _U400, ERRORS, True),
    ErrorCode("6060", "Cannot cancel authorized payment", 400,
              "Cancel with cancelTransactionOnly: true after the customer authorized. " + _U400,
              f"{ERRORS}; {OPERATIONS} (Cancel)", True),
    ErrorCode("6070", "Cannot capture a cancelled payment", 400,
              "Capture after a cancel (TERMINATED, or cancelledAmount > 0). " + _U400, ERRORS, True),
    ErrorCode("6080", "Cannot capture before reservation", 400,
              "Capture while the payment is CREATED (the customer has not approved). Status documented by "
              "the error page's example.", ERRORS, True),
    ErrorCode("6090", "Capture amount too high", 400,
              "Total captures would exceed authorizedAmount (minus cancelled). " + _U400, ERRORS, True),
    ErrorCode("6100", "Capture period expired", 400,
              "Capture after the deadline: Norway 180 days; Denmark and Finland 14 days unless "
              "configuration.lateCaptureAllowed (then up to 180). Status documented: 'returns HTTP 400'.",
              f"{ERRORS}; {LIFECYCLE} (Capture attempt deadlines)", True),
    ErrorCode("6110", "Expiration date is too late", 400,
              "expiresAt 60 days or more ahead (spec: 'more than 10 minutes and less than 60 days'; the 2023 "
              "guide said 28 days). " + _U400, f"{ERRORS}; {SPEC} CreatePaymentRequest.expiresAt", True),
    ErrorCode("6120", "Expiration date is too soon", 400,
              "expiresAt 10 minutes or less ahead. " + _U400,
              f"{ERRORS}; {SPEC} CreatePaymentRequest.expiresAt", True),
    ErrorCode("6130", "Long living payments require a receipt", 400,
              "expiresAt without receipt ('If ExpiresAt is set, receipt also must be set'). " + _U400,
              f"{ERRORS}; {FEATURES}; {SPEC} CreatePaymentRequest.expiresAt", True),
    ErrorCode("6140", "Must capture full amount", 400,
              "A capture of less than the rest of the authorized amount on a Danish or Finnish sales unit "
              "with configuration.partialCaptureAllowed = false (all Norwegian units may capture partially, "
              "so the flag is not read for them). " + _U400,
              f"{ERRORS}; {OPERATIONS} (Capture); Management 2.0.9 spec partialCaptureAllowed", True),
    ErrorCode("6150", "Not enough refundable", 400,
              "Refund more than captured minus already refunded. " + _U400, ERRORS, True),
    ErrorCode("6160", "Order processing", 409,
              "Another operation holds the payment; retry shortly. UNCERTAIN: 409 chosen; the docs also "
              "describe HTTP 423 Locked for a concurrent operation.", f"{ERRORS}; {STATUSES}", False,
              "The backend is synchronous: two operations on one payment never overlap, so 'Order processing' cannot "
              "happen (a fault rule can inject a 409 or 423)."),
    ErrorCode("6170", "Payment already captured", 400,
              "UNCERTAIN condition: a capture on a payment whose authorized amount is fully captured "
              "(chosen; a capture of more than the rest of a partly captured payment is 6090). " + _U400, ERRORS, True),
    ErrorCode("6180", "Payment already refunded", 400,
              "UNCERTAIN condition: a refund when everything captured is already refunded (chosen; more "
              "than the rest of a partly refunded amount is 6150). " + _U400, ERRORS, True),
    ErrorCode("6190", "Payment cannot be cancelled", 400,
              "Cancel in a state that doesn't allow it ('wrong state'). UNCERTAIN: overlaps 6050; suggested "
              "for a TERMINATED/ABORTED/EXPIRED payment if 6050 is kept for 'never reserved'. " + _U400,
              ERRORS, False,
              "Overlaps 6050: a cancel of an ABORTED or EXPIRED payment answers 6050 (the documented 'non-reserved' "
              "case), a repeated cancel of a TERMINATED one 200 (cancel is irreversible and retried)."),
    ErrorCode("6200", "Payment cannot be captured", 400,
              "Capture in a wrong state (ABORTED, EXPIRED). " + _U400, ERRORS, True),
    ErrorCode("6210", "Payment cannot be refunded", 400,
              "Refund in a wrong state (CREATED, ABORTED, EXPIRED, TERMINATED). " + _U400, ERRORS, True),
    ErrorCode("6220", "Refund period expired", 400,
              "Refund more than 365 days after the reservation (test refund amount 124). " + _U400,
              f"{ERRORS}; {LIFECYCLE} (Refund)", True),
    ErrorCode("6230", "Payment is already reserved", 400,
              "The reference has already been authorized: force approve of an AUTHORIZED payment (the "
              "landing page and the control plane's approve stay idempotent). " + _U400, ERRORS, True),
    ErrorCode("6250", "Cannot cancel processing payment", 400,
              "Cancel while the customer is mid-authorization (3-D Secure, scheme processing). " + _U400,
              f"{ERRORS}; vippsas/vipps-epayment-api operations/cancel.md", False,
              "The simulated user approves at once: a payment is never mid-authorization (no 3-D Secure step) when a "
              "cancel comes."),
    ErrorCode("6260", "Funds unavailable", 400,
              "Capture after the bank or card network released the reservation early (after "
              "captureGuaranteedUntil). " + _U400, f"{ERRORS}; {CHANGELOG}", None,
              "Depends on the customer's bank or card network releasing the hold; the docs define no test "
              "trigger. Could be injected after captureGuaranteedUntil on the virtual clock if wanted."),
    ErrorCode("6280", "Capture failed, please try again later", 400,
              "A transient capture failure; retry with the same Idempotency-Key. UNCERTAIN: 400 (a 5xx is "
              "as plausible).", f"{ERRORS}; {CHANGELOG}", None,
              "A transient failure in the card network; the docs define no test trigger (a fault rule could "
              "inject it)."),
    # -- users (7xxx) --------------------------------------------------------------------------------
    ErrorCode("7010", "Customer not found", 400,
              "No user for the phone number, the user cannot pay businesses, or minimumUserAge blocks them. "
              + _U400, f"{ERRORS}; {FEATURES} (Minimum user age)", False,
              "The sandbox has no user directory: every well-formed phone number is a customer, and there is no user "
              "age for minimumUserAge to compare with."),
    # -- test environment only (force approve) --------------------------------------------------------
    ErrorCode("10010", "Approve failed", 400,
              "Force approve failed (sandbox: magic amounts 151, 182, 201). UNCERTAIN: the docs list the "
              "codes, not which magic amount gives which. " + _U400, ERRORS, True),
    ErrorCode("10020", "Approve not allowed", 400,
              "Force approve not allowed (sandbox: 183, a final state, another customer's phone). " + _U400,
              ERRORS, True),
    ErrorCode("10030", "Identification required", 400,
              "The test user must identify (sandbox: 197, 202). " + _U400, ERRORS, True),
    ErrorCode("10040", "Invalid payment source", 400,
              "The card cannot be used (sandbox: 186, 187). " + _U400, ERRORS, True),
    ErrorCode("10050", "No cards", 400,
              "The test user has no card in the app. " + _U400, ERRORS, False,
              "Every simulated test user has a card; the docs define no trigger for a user without one."),
    ErrorCode("10060", "Operation not supported", 400,
              "UNCERTAIN mapping: the best fit for force approve of an Express payment, which the spec says "
              "'is not supported for this endpoint'. " + _U400, f"{ERRORS}; {SPEC} forceApprove", True),
    ErrorCode("10070", "Payment limit exceeded", 400,
              "The test user's payment limit is exceeded (sandbox: 184). " + _U400, ERRORS, True),
)

BY_CODE: dict[str, ErrorCode] = {row.code: row for row in ERROR_CODES}

#: Where the sandbox's title (sandbox.apis.epayment.rules.CODE_TITLES) differs from the documented one, and why.
#: Empty: rules.py takes its titles and statuses from this table.
SANDBOX_TITLE_DIFFERENCES: dict[str, str] = {}
