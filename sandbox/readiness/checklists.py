"""The official go-live checklists as data: each item in the checklist's own words, and how it is judged.

Three kinds of item (the reference's "Auto" column):
- `endpoint`: met when a successful request to that method and path was seen; the proof is the newest one;
- `auto`: judged from the evidence by the named check in sandbox/readiness/checks.py;
- `manual`: traffic cannot prove it (showing errors to users, design, support): "to confirm yourself", never met.

An item may carry an exercise: one control-plane call that makes the item's situation happen against the
integration (a fault on the next capture, a payment left to expire), so "not yet exercised" can be turned
into met or not met. Sources: the checklists reference (ePayment §2, Recurring §3, Login §5, Order
Management §6, Webhooks §7, partner §9, and the common rules §1 they link to).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    """A control-plane call (method, path, JSON body) that makes an item's situation happen; `{msn}` is filled."""

    label: str
    method: str
    path: str
    body: dict | None = None


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    kind: str  # "endpoint", "auto" or "manual"
    method: str = ""
    path: str = ""
    check: str = ""  # the name of the check in checks.CHECKS, for "auto" items
    advice: str = ""  # what to do when it is not met, in plain words
    exercise: Exercise | None = None
    #: For an endpoint the checklist wants used in more than one way ("full and partial"): every mode must be seen.
    modes: tuple[str, ...] = ()


def endpoint(item_id: str, text: str, method: str, path: str, modes: tuple[str, ...] = ()) -> Item:
    advice = f"Call {method} {path} from the integration at least once, successfully."
    if modes:
        advice = f"Call {method} {path} successfully, once for the whole amount and once for a part of it."
    return Item(item_id, text, "endpoint", method=method, path=path, advice=advice, modes=modes)


def auto(item_id: str, text: str, check: str, advice: str, exercise: Exercise | None = None) -> Item:
    return Item(item_id, text, "auto", check=check, advice=advice, exercise=exercise)


def manual(item_id: str, text: str) -> Item:
    return Item(item_id, text, "manual")


def capture_fault(path: str) -> Exercise:
    return Exercise("Fail the next capture with a 503", "POST", "/_sandbox/faults",
                    {"method": "POST", "path": path, "msn": "{msn}", "status": 503, "count": 1})


EXPIRE = Exercise("Move the clock 11 minutes (CREATED payments expire)", "POST", "/_sandbox/clock",
                  {"advanceSeconds": 660})
#: "Make the user reject": the sales unit's newest CREATED payment is rejected as its user would (-> ABORTED).
#: The newest, not the next: the exercise acts on what the integration already did, like the clock exercise.
REJECT = Exercise("Make the user reject the newest CREATED payment", "POST",
                  "/_sandbox/payments/{msn}/newest-created/reject")
#: "Move the clock past a due date": a month and two days, past the due date of any charge of a monthly agreement.
PAST_DUE = Exercise("Move the clock 32 days (charges fall due and are charged)", "POST", "/_sandbox/clock",
                    {"advanceSeconds": 32 * 86400})
HEADERS = ("Send Vipps-System-Name, Vipps-System-Version, Vipps-System-Plugin-Name and "
           "Vipps-System-Plugin-Version on every request, each at most 30 characters.")

#: The common rules (checklists §1) every product checklist links to. They are judged on all of the sales unit's
#: traffic, whatever the API, so they read the same under every checklist (the report says so in each item).
COMMON = (
    auto("G-H1", "HTTP headers: the four Vipps-System-* headers on all API requests (mandatory for partners).",
         "system_headers", HEADERS),
    auto("G-H3", "Merchant-Serial-Number on every request made with partner keys.", "partner_msn",
         "Send Merchant-Serial-Number with the sales unit's MSN on every call made with partner keys."),
    auto("G-H5", "Get the access token once and reuse it for its whole life; do not fetch one per request.",
         "token_reuse", "Cache the access token until shortly before `expires_in` runs out."),
    auto("G-I1", "Send Idempotency-Key on every request that creates or changes state.", "idempotency_keys",
         "Add an Idempotency-Key header (at most 50 characters) to every POST, PUT, PATCH and DELETE."),
    auto("G-I4", "A 4xx answer is final for its key: fix the request instead of resending it unchanged.",
         "no_resend_after_4xx", "Do not resend a request with the same Idempotency-Key after a 4xx; retry only "
         "network errors and 5xx."),
)

EPAYMENT = (
    endpoint("EP-E1", "Create payment", "POST", "/epayment/v1/payments"),
    endpoint("EP-E2", "Get payment", "GET", "/epayment/v1/payments/{reference}"),
    endpoint("EP-E3", "Get payment event log", "GET", "/epayment/v1/payments/{reference}/events"),
    endpoint("EP-E4", "Cancel payment", "POST", "/epayment/v1/payments/{reference}/cancel"),
    endpoint("EP-E5", "Capture payment (full and partial)", "POST", "/epayment/v1/payments/{reference}/capture",
             ("capture-full", "capture-partial")),
    endpoint("EP-E6", "Refund payment (full and partial)", "POST", "/epayment/v1/payments/{reference}/refund",
             ("refund-full", "refund-partial")),
    auto("EP-1", "Webhooks and polling: implement both; polling is the fallback.", "webhooks_and_polling_epayment",
         "Register a webhook for the epayments.payment.*.v1 events of this sales unit, and also poll get payment."),
    auto("EP-2", "Handle all states: CREATED, AUTHORIZED, ABORTED, EXPIRED, TERMINATED, and the events "
         "CANCELLED, CAPTURED, REFUNDED.", "states_read_epayment",
         "Drive payments into each state (the landing page, the control plane, the clock) and read each one back.",
         EXPIRE),
    *COMMON,
    auto("G-I2", "A failure may be retried safely with the same Idempotency-Key, without a duplicate.",
         "retry_same_key", "After a 5xx or a dropped connection, send the same request again with the same key.",
         capture_fault("/epayment/v1/payments/*/capture")),
    auto("G-P1", "Polling: start after 5 seconds, then every 2 seconds.", "polling_pace",
         "Wait about 5 seconds after create before the first get payment, then poll every 2 seconds."),
    auto("EP-6", "Send a useful reference: unique per sales unit, not digits only, no leading zeros, 8 to 64 "
         "characters of a-z, A-Z, 0-9 and -.", "reference_quality",
         "Use a readable reference such as acme-shop-123-order123abc."),
    auto("G-T3", "Capture only after the customer approved (AUTHORIZED); capturing before gives error 6080.",
         "capture_after_authorization", "Capture only once the payment is AUTHORIZED: read it (or its webhook) first."),
    auto("EP-14", "Test insufficient funds, an expired card, an aborted payment and an expired payment.",
         "failure_cases_epayment", "Create payments with the magic amounts (for example 151 and 186) and let one "
         "be rejected and one expire.", REJECT),
    auto("EP-5", "Add information to the payment history: receipts through the Order Management API.",
         "receipts", "Post a receipt for each captured payment (Order Management API)."),
    manual("EP-3", "Handle errors: log them and show them so that customers and staff understand them."),
    manual("EP-8", "Handle redirects: the returnUrl may open in the default browser, without the session."),
    manual("EP-9", "Follow the design guidelines for buttons and branding."),
    manual("EP-10", "Educate customer support: staff find what they need in your own system."),
)

RECURRING = (
    endpoint("REC-E1", "Create agreement", "POST", "/recurring/v3/agreements"),
    endpoint("REC-E2", "Retrieve agreement", "GET", "/recurring/v3/agreements/{agreementId}"),
    endpoint("REC-E3", "Update agreement", "PATCH", "/recurring/v3/agreements/{agreementId}"),
    endpoint("REC-E4", "List charges", "GET", "/recurring/v3/agreements/{agreementId}/charges"),
    endpoint("REC-E5", "Create charge", "POST", "/recurring/v3/agreements/{agreementId}/charges"),
    endpoint("REC-E6", "Retrieve charge", "GET", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}"),
    endpoint("REC-E7", "Cancel charge", "DELETE", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}"),
    endpoint("REC-E8", "Refund charge", "POST", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/refund"),
    endpoint("REC-E9", "Capture reserved charge", "POST",
             "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/capture"),
    *COMMON,
    auto("REC-3", "Poll the agreement until ACTIVE, STOPPED or EXPIRED; don't rely on merchantRedirectUrl.",
         "polling_agreement", "Poll GET agreement after the draft until it reaches a final state."),
    auto("REC-4", "Webhooks and polling: subscribe to the agreement and charge events, recurring.agreement-"
         "stopped.v1 above all.", "webhooks_recurring",
         "Register a webhook for recurring.agreement-stopped.v1 (and the other agreement and charge events)."),
    auto("REC-15", "Go-live evidence: an agreement ACTIVE, an agreement STOPPED, a charge CHARGED, a charge "
         "REFUNDED.", "evidence_recurring", "Run an agreement to ACTIVE, stop one, charge one and refund one.",
         PAST_DUE),
    auto("G-I2", "A failure may be retried safely with the same Idempotency-Key, without a duplicate.",
         "retry_same_key", "After a 5xx or a dropped connection, send the same request again with the same key.",
         capture_fault("/recurring/v3/agreements/*/charges/*/capture")),
    manual("REC-1", "Handle errors: monitor the errors the APIs return and fix them quickly."),
    manual("REC-5", "Provide subscription tools: merchantAgreementUrl opens a page where the user manages "
           "this agreement."),
    manual("REC-13", "Follow the design guidelines."),
    manual("REC-14", "Educate customer support."),
)

WEBHOOKS = (
    endpoint("WH-E1", "Register a webhook", "POST", "/webhooks/v1/webhooks"),
    endpoint("WH-E2", "List webhooks", "GET", "/webhooks/v1/webhooks"),
    auto("WH-1", "Register once per sales unit (at most 25 registrations per event), not per payment.",
         "webhook_registrations", "Register each event once for the sales unit and keep the secret."),
    auto("WH-2", "The webhook endpoint is public HTTPS.", "webhook_https", "Register an https:// URL."),
    auto("WH-3", "Answer HTTP 200 within 10 seconds; do the work afterwards.", "webhook_answers",
         "Answer every delivery with a 2xx at once, then process it."),
    manual("WH-4", "Verify each delivery: the body's SHA-256 and the HMAC signature."),
)

LOGIN = (
    endpoint("L-E1", "OIDC discovery", "GET", "/access-management-1.0/access/.well-known/openid-configuration"),
    endpoint("L-E2", "JWKS", "GET", "/access-management-1.0/access/.well-known/jwks.json"),
    endpoint("L-E3", "Authorize (browser flow)", "GET", "/access-management-1.0/access/oauth2/auth"),
    endpoint("L-E4", "Token", "POST", "/access-management-1.0/access/oauth2/token"),
    endpoint("L-E5", "CIBA authentication (merchant-initiated flow only)", "POST",
             "/vipps-login-ciba/api/backchannel/authentication"),
    auto("L-4", "Redirect URIs registered exactly; HTTPS or an app scheme, not HTTP; the same value on /token.",
         "login_redirect_uris", "Send /oauth2/auth a redirect_uri registered character for character (https, "
         "an app scheme, or http on 127.0.0.1/localhost only), and the same value again on /oauth2/token."),
    auto("L-7", "Security: a unique state per /auth request (at least 8 characters, fresh, verified on return).",
         "login_unique_state", "Make a fresh random state of at least 8 characters for every login, and check it "
         "when the user comes back."),
    auto("L-9", "Use PKCE with S256 where used (the default is plain).", "login_pkce_s256",
         "Send code_challenge_method=S256 with every code_challenge."),
    auto("L-11", "Cache the discovery document (Cache-Control: max-age=3600); don't fetch it per login.",
         "login_discovery_cached", "Fetch the discovery document once and keep it for an hour, not per login."),
    auto("L-16", "CIBA: poll the token endpoint no faster than the interval (or use the ping webhook).",
         "login_ciba_pace", "Wait the authentication answer's interval (seconds) between token polls."),
    manual("L-2", "No embedded iframes or web views; redirect-based only."),
    manual("L-6", "Terms and conditions; collect the consents you need."),
    manual("L-12", "Works in non-default browsers."),
    manual("L-13", "Link to existing accounts correctly (store sub)."),
)

PARTNER = (
    auto("PA-2", "Provide concrete reference examples and the HTTP headers actually sent.", "system_headers",
         HEADERS),
    auto("PA-4", "Partner keys: Merchant-Serial-Number on every call; production only.", "partner_msn",
         "Send Merchant-Serial-Number on every call made with partner keys."),
    auto("PA-5", "Use the Management API to manage merchants (product orders, sales-unit lookups).",
         "management_used", "Prefill product orders with POST /management/v1/product-orders and read their status."),
    auto("PA-3", "Request examples in the checklist are at most one month old.", "recent_examples",
         "Run the endpoint calls again: the newest request of each endpoint must be at most 30 days old."),
    manual("PA-7", "Provide merchant documentation, a pilot customer and a solution description."),
)

CHECKOUT = (
    endpoint("CO-E1", "Create session", "POST", "/checkout/v3/session"),
    endpoint("CO-E2", "Session details", "GET", "/checkout/v3/session/{reference}"),
    endpoint("CO-E3", "Get payment (ePayment)", "GET", "/epayment/v1/payments/{reference}"),
    endpoint("CO-E4", "Capture payment, full and partial (ePayment)", "POST",
             "/epayment/v1/payments/{reference}/capture", ("capture-full", "capture-partial")),
    endpoint("CO-E5", "Refund payment, full and partial (ePayment)", "POST",
             "/epayment/v1/payments/{reference}/refund", ("refund-full", "refund-partial")),
    endpoint("CO-E6", "Cancel payment (ePayment)", "POST", "/epayment/v1/payments/{reference}/cancel"),
    auto("CO-1", "Handle callbacks for successful and unsuccessful payments: answer them with a 2xx.",
         "checkout_callbacks", "Answer the payment-completed callback at merchantInfo.callbackUrl with a 2xx at once."),
    auto("CO-3", "HTTP headers on all requests.", "system_headers", HEADERS),
    auto("CO-4", "Payment history: receipts through the Order Management API.", "receipts",
         "Post a receipt for each captured payment (Order Management API)."),
    auto("CO-5", "Send a useful reference.", "reference_quality",
         "Use a readable reference such as acme-shop-123-order123abc."),
    auto("CO-6", "Poll for payment details: do not rely on the callback alone; follow the polling guidelines.",
         "polling_pace", "Poll get payment (or the session) about every 2 seconds until a final state."),
    manual("CO-2", "Handle errors: log them and show them so that users understand them."),
    manual("CO-7", "Handle redirects: the return URL may open in the default browser."),
    manual("CO-8", "Follow the design guidelines; educate customer support."),
)

ORDER_MANAGEMENT = (
    endpoint("OM-E1", "Add image", "POST", "/order-management/v1/images"),
    endpoint("OM-E2", "Add category", "PUT", "/order-management/v2/{paymentType}/categories/{orderId}"),
    endpoint("OM-E3", "Add order details (receipt)", "POST", "/order-management/v2/{paymentType}/receipts/{orderId}"),
    endpoint("OM-E4", "Get order", "GET", "/order-management/v2/{paymentType}/{orderId}"),
    auto("OM-2", "HTTP headers (mandatory for partners and platforms).", "system_headers", HEADERS),
    manual("OM-1", "Handle errors: log them and show them."),
    manual("OM-3", "Follow the design guidelines; educate customer support."),
)

CHECKLISTS: dict[str, tuple[str, tuple[Item, ...]]] = {
    "epayment": ("ePayment", EPAYMENT),
    "recurring": ("Recurring", RECURRING),
    "webhooks": ("Webhooks", WEBHOOKS),
    "login": ("Login", LOGIN),
    "checkout": ("Checkout", CHECKOUT),
    "ordermanagement": ("Order Management", ORDER_MANAGEMENT),
    "partner": ("Partner", PARTNER),
}
