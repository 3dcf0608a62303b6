"""The key-type policy: the ONE place that says who may call what, where, and for which MSN.

Every named route of the app has an entry in ROUTES; `create_app` refuses to start otherwise.
The dashboard's permission matrix and the permission tests are generated from this table.

The rules come from the Vipps MobilePay documentation on API keys and partner keys:
- merchant keys act for their own sales unit only;
- partner keys act for the sales units connected to their partner, always with the
  Merchant-Serial-Number header, only in production, and only if the partner is approved to
  act on behalf of merchants (otherwise they manage only);
- management keys manage sales units but never make payments or read reports;
- accounting keys read reports only, and only for merchants that consented;
- merchant-level keys (Donations) belong to a merchant, not a sales unit: they reach the Donations API, the
  Report API for their merchant's ledgers and Webhooks for donations.* events only (reference section 1b);
- keys never work in the other environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World

BOTH = frozenset({Env.TEST, Env.PRODUCTION})
PRODUCTION = frozenset({Env.PRODUCTION})
TEST = frozenset({Env.TEST})
ALL_KEYS = frozenset(KeyType)


class Api(StrEnum):
    TOKEN = "token"
    EPAYMENT = "epayment"
    MANAGEMENT = "management"
    REPORT = "report"
    WEBHOOKS = "webhooks"
    RECURRING = "recurring"
    LOGIN = "login"
    DONATIONS = "donations"
    CHECKOUT = "checkout"
    SANDBOX = "sandbox"
    USERINFO = "userinfo"
    # issue 18 (reference section 1b): QR and Order Management
    QR = "qr"
    ORDER_MANAGEMENT = "ordermanagement"


class Auth(StrEnum):
    NONE = "none"  # token endpoints and the control plane: no bearer token
    BEARER = "bearer"  # an access token, plus the subscription key for standard-flow tokens
    #: Login's token and CIBA endpoints: OAuth client credentials (Basic or in the form body), or a partner's
    #: access token plus Merchant-Serial-Number; checked by the Login backend against `decide`, not the gateway.
    CLIENT = "client"
    #: Login's userinfo: the end user's access token from the login flow, nothing else (checked by the backend).
    USER = "user"
    #: The keys themselves as headers, no access token: client_id, client_secret, Ocp-Apim-Subscription-Key (and the
    #: Merchant-Serial-Number). Checkout v3 takes these; an Authorization header is ignored there.
    CLIENT_HEADERS = "client-headers"


class MsnRule(StrEnum):
    ACT_FOR = "act-for"  # acting on behalf: partner keys must send the MSN; it must be in reach
    OPTIONAL = "optional"  # managing: an MSN is optional, but must be in reach when sent
    IGNORED = "ignored"  # the header plays no part


@dataclass(frozen=True)
class ApiRule:
    """What holds for every route of one API."""

    environments: frozenset[Env]
    key_types: frozenset[KeyType]
    msn: MsnRule
    auth: Auth
    title: str
    package: str  # the package under sandbox/apis/ (or sandbox/) that serves its routes
    #: The Ocp-Apim-Subscription-Key may be left out (checked when sent); with the strict switch
    #: (Settings.userinfo_strict_subscription_key), sending it is a 401 (the sources disagree: fidelity notes).
    subscription_key_optional: bool = False


APIS: dict[Api, ApiRule] = {
    Api.TOKEN: ApiRule(BOTH, ALL_KEYS, MsnRule.IGNORED, Auth.NONE, "Access token API", "token"),
    Api.EPAYMENT: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR, Auth.BEARER,
                          "ePayment API", "epayment"),
    Api.MANAGEMENT: ApiRule(PRODUCTION, frozenset({KeyType.MERCHANT, KeyType.PARTNER, KeyType.MANAGEMENT}),
                            MsnRule.OPTIONAL, Auth.BEARER, "Management API", "management"),
    Api.REPORT: ApiRule(PRODUCTION, frozenset({KeyType.MERCHANT, KeyType.ACCOUNTING}), MsnRule.IGNORED,
                        Auth.BEARER, "Report API", "report"),
    Api.WEBHOOKS: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.OPTIONAL, Auth.BEARER,
                          "Webhooks API", "webhooks"),
    # Recurring v3: merchant keys and (production only, with the MSN, if approved) partner keys; never
    # management or accounting keys (reference section 1b).
    Api.RECURRING: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR, Auth.BEARER,
                           "Recurring API", "recurring"),
    # Login (OIDC and CIBA): the sales unit's own client_id/client_secret as OAuth client credentials, or (in
    # production) partner keys' access token plus the MSN; never management or accounting keys (reference 1b).
    Api.LOGIN: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR, Auth.CLIENT,
                       "Login API", "login"),
    Api.SANDBOX: ApiRule(BOTH, ALL_KEYS, MsnRule.IGNORED, Auth.NONE, "Sandbox control plane", "control"),
    # Userinfo (profile sharing, reference section 4): a merchant token of the sales unit the sub belongs to, or (in
    # production, with the MSN) partner keys; never management or accounting keys (reference section 1b).
    Api.USERINFO: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR, Auth.BEARER,
                          "Userinfo API", "userinfo", subscription_key_optional=True),
    # QR and Order Management (reference section 1b): merchant keys in both environments, partner keys (production
    # only, approved partners, always with the MSN); never management or accounting keys. Order Management's test
    # availability is UNCERTAIN: served in both, and Settings.order_management_test switches test off.
    Api.QR: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR, Auth.BEARER, "QR API",
                    "qr"),
    Api.ORDER_MANAGEMENT: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR,
                                  Auth.BEARER, "Order Management API", "ordermanagement"),
    # Checkout v3: sales unit keys, and (production only, with the MSN, if approved) partner keys, sent as raw
    # headers with no access token; never management or accounting keys (reference section 1b).
    Api.CHECKOUT: ApiRule(BOTH, frozenset({KeyType.MERCHANT, KeyType.PARTNER}), MsnRule.ACT_FOR,
                          Auth.CLIENT_HEADERS, "Checkout API", "checkout"),
}

# -- Merchant-level keys and the Donations API (issue 18) ---------------------------------------------
# Reference section 1b: merchant-level keys reach the Donations API, the Report API (their merchant's ledgers)
# and Webhooks (donations.* events only: see merchant_level_webhook_denial); every other API refuses them
# (merchant_level_denial names the key type). The Donations API: merchant-level keys and partner keys (the
# standard flow, since May 2026), production only; sales unit keys only for legacy "Recurring donations" units,
# which the sandbox has none of (UNCERTAIN, docs/reference/fidelity.md). The MSN is optional for partner keys
# (it narrows to one connected sales unit) and plays no part for merchant-level keys.
# A new API: leave KeyType.MERCHANT_LEVEL out of its key_types (decide() then refuses it with the reason).
APIS[Api.REPORT] = replace(APIS[Api.REPORT], key_types=APIS[Api.REPORT].key_types | {KeyType.MERCHANT_LEVEL})
APIS[Api.WEBHOOKS] = replace(APIS[Api.WEBHOOKS], key_types=APIS[Api.WEBHOOKS].key_types | {KeyType.MERCHANT_LEVEL})
APIS[Api.DONATIONS] = ApiRule(PRODUCTION, frozenset({KeyType.MERCHANT_LEVEL, KeyType.PARTNER}), MsnRule.OPTIONAL,
                              Auth.BEARER, "Donations API", "donations")


@dataclass(frozen=True)
class RoutePolicy:
    name: str
    method: str
    path: str
    api: Api
    environments: frozenset[Env] | None = None  # None: the API's environments
    summary: str = ""
    partners_only: bool = False  # things that belong to partners (price packages, product orders)
    #: The package that serves the route (sandbox/apis/<package>/ or sandbox/<package>/); None: its API's.
    #: The app refuses to start if another package registers it.
    package: str | None = None
    #: The credentials this route takes when they differ from its API's (Login's discovery: none).
    credentials: Auth | None = None
    #: Worked out once (the gateway asks on every request): the environments and the auth of this route.
    envs: frozenset[Env] = field(init=False, repr=False, compare=False)
    auth: Auth = field(init=False, repr=False, compare=False)
    key_optional: bool = field(init=False, repr=False, compare=False)  # its API's subscription_key_optional

    def __post_init__(self) -> None:
        object.__setattr__(self, "envs", self.environments if self.environments is not None
                           else APIS[self.api].environments)
        object.__setattr__(self, "auth", self.credentials or APIS[self.api].auth)
        object.__setattr__(self, "key_optional", APIS[self.api].subscription_key_optional)
        if self.package is None:
            object.__setattr__(self, "package", APIS[self.api].package)

    @property
    def rule(self) -> ApiRule:
        return APIS[self.api]

    @property
    def allowed_envs(self) -> frozenset[Env]:
        return self.envs


def _routes(*entries: RoutePolicy) -> dict[str, RoutePolicy]:
    table: dict[str, RoutePolicy] = {}
    for entry in entries:
        if entry.name in table:
            raise ValueError(f"duplicate policy entry {entry.name}")
        table[entry.name] = entry
    return table


def served_by(package: str, *entries: RoutePolicy) -> tuple[RoutePolicy, ...]:
    """Control-plane routes that an API's own package serves (its simulated-user pages, its test helpers)."""
    return tuple(replace(entry, package=package) for entry in entries)


R = RoutePolicy
TEST_ONLY = TEST

TOKEN_ROUTES = (
    R("token.accesstoken", "POST", "/accesstoken/get", Api.TOKEN, summary="standard token (merchant, partner keys)"),
    R("token.miami", "POST", "/miami/v1/token", Api.TOKEN,
      summary="specialized token (management, accounting, merchant-level keys)"),
)
EPAYMENT_ROUTES = (
    R("epayment.create", "POST", "/epayment/v1/payments", Api.EPAYMENT, summary="create a payment"),
    R("epayment.get", "GET", "/epayment/v1/payments/{reference}", Api.EPAYMENT, summary="get a payment"),
    R("epayment.events", "GET", "/epayment/v1/payments/{reference}/events", Api.EPAYMENT, summary="event log"),
    R("epayment.capture", "POST", "/epayment/v1/payments/{reference}/capture", Api.EPAYMENT, summary="capture"),
    R("epayment.refund", "POST", "/epayment/v1/payments/{reference}/refund", Api.EPAYMENT, summary="refund"),
    R("epayment.cancel", "POST", "/epayment/v1/payments/{reference}/cancel", Api.EPAYMENT, summary="cancel"),
    R("epayment.force_approve", "POST", "/epayment/v1/test/payments/{reference}/approve", Api.EPAYMENT,
      environments=TEST_ONLY, summary="force approve (test only)"),
)
MANAGEMENT_ROUTES = (
    R("management.sales_units.list", "GET", "/management/v1/sales-units", Api.MANAGEMENT, summary="list sales units"),
    R("management.sales_units.get", "GET", "/management/v1/sales-units/{msn}", Api.MANAGEMENT,
      summary="sales unit details"),
    R("management.merchants.get", "GET", "/management/v1/merchants/{scheme}/{id}", Api.MANAGEMENT,
      summary="merchant details"),
    R("management.merchants.sales_units", "GET", "/management/v1/merchants/{scheme}/{id}/sales-units",
      Api.MANAGEMENT, summary="a merchant's sales units"),
    R("management.price_packages", "GET", "/management/v1/partners/price-packages", Api.MANAGEMENT,
      partners_only=True, summary="the partner's price packages"),
    R("management.product_orders.create", "POST", "/management/v1/product-orders", Api.MANAGEMENT,
      partners_only=True, summary="prefill a product order"),
    R("management.product_orders.delete", "DELETE", "/management/v1/product-orders/{productOrderId}", Api.MANAGEMENT,
      partners_only=True, summary="delete a product order"),
    R("management.product_orders.list", "GET", "/management/v2/product-orders", Api.MANAGEMENT,
      partners_only=True, summary="list product orders"),
    R("management.product_orders.details", "GET", "/management/v2/product-orders/{productOrderId}/details",
      Api.MANAGEMENT, partners_only=True, summary="product order details"),
)
REPORT_ROUTES = (
    R("report.ledgers", "GET", "/settlement/v1/ledgers", Api.REPORT, summary="list ledgers"),
    R("report.dates", "GET", "/report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate}", Api.REPORT,
      summary="report for one ledger date"),
    R("report.feed", "GET", "/report/v2/ledgers/{ledgerId}/{topic}/feed", Api.REPORT, summary="endless feed"),
)
WEBHOOKS_ROUTES = (
    R("webhooks.register", "POST", "/webhooks/v1/webhooks", Api.WEBHOOKS, summary="register a webhook"),
    R("webhooks.list", "GET", "/webhooks/v1/webhooks", Api.WEBHOOKS, summary="list webhooks"),
    R("webhooks.delete", "DELETE", "/webhooks/v1/webhooks/{id}", Api.WEBHOOKS, summary="delete a webhook"),
)
RECURRING_ROUTES = (
    R("recurring.agreements.list", "GET", "/recurring/v3/agreements", Api.RECURRING, summary="list agreements"),
    R("recurring.agreements.draft", "POST", "/recurring/v3/agreements", Api.RECURRING, summary="draft an agreement"),
    R("recurring.agreements.get", "GET", "/recurring/v3/agreements/{agreementId}", Api.RECURRING,
      summary="fetch an agreement"),
    R("recurring.agreements.update", "PATCH", "/recurring/v3/agreements/{agreementId}", Api.RECURRING,
      summary="update or stop an agreement"),
    R("recurring.agreements.accept", "PATCH", "/recurring/v3/agreements/{agreementId}/accept", Api.RECURRING,
      environments=TEST_ONLY, summary="force accept (test only)"),
    R("recurring.charges.list", "GET", "/recurring/v3/agreements/{agreementId}/charges", Api.RECURRING,
      summary="list an agreement's charges"),
    R("recurring.charges.create", "POST", "/recurring/v3/agreements/{agreementId}/charges", Api.RECURRING,
      summary="create a charge"),
    R("recurring.charges.batch", "POST", "/recurring/v3/agreements/charges", Api.RECURRING,
      summary="create up to 2,000 charges"),
    R("recurring.charges.get", "GET", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}", Api.RECURRING,
      summary="fetch a charge"),
    R("recurring.charges.cancel", "DELETE", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}",
      Api.RECURRING, summary="cancel a charge"),
    R("recurring.charges.get_by_id", "GET", "/recurring/v3/charges/{chargeId}", Api.RECURRING,
      summary="fetch a charge by its id alone"),
    R("recurring.charges.capture", "POST", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/capture",
      Api.RECURRING, summary="capture a reserved charge"),
    R("recurring.charges.refund", "POST", "/recurring/v3/agreements/{agreementId}/charges/{chargeId}/refund",
      Api.RECURRING, summary="refund a charge"),
)
USERINFO_ROUTES = (
    R("userinfo.get", "GET", "/vipps-userinfo-api/userinfo/{sub}", Api.USERINFO,
      summary="the profile a user shared (the sub of a payment or agreement)"),
)
# Login (issue 16): discovery, JWKS and the browser's /oauth2/auth take no credentials; token, CIBA and
# user-exists take client credentials (Auth.CLIENT); Login's userinfo only the user's access token (Auth.USER).
LOGIN_PREFIX = "/access-management-1.0/access"
LOGIN_ROUTES = (
    R("login.discovery", "GET", LOGIN_PREFIX + "/.well-known/openid-configuration", Api.LOGIN,
      credentials=Auth.NONE, summary="OpenID Connect discovery"),
    R("login.jwks", "GET", LOGIN_PREFIX + "/.well-known/jwks.json", Api.LOGIN, credentials=Auth.NONE,
      summary="the id_token signing key (JWKS)"),
    R("login.auth", "GET", LOGIN_PREFIX + "/oauth2/auth", Api.LOGIN, credentials=Auth.NONE,
      summary="authorize: the user's browser starts a login"),
    R("login.token", "POST", LOGIN_PREFIX + "/oauth2/token", Api.LOGIN,
      summary="token: a code or a CIBA auth_req_id for tokens (client credentials or partner Bearer + MSN)"),
    R("login.userinfo", "GET", "/vipps-userinfo-api/userinfo/", Api.LOGIN, credentials=Auth.USER,
      summary="Login's userinfo (the user's access token only)"),
    R("login.userinfo_no_slash", "GET", "/vipps-userinfo-api/userinfo", Api.LOGIN, credentials=Auth.USER,
      summary="Login's userinfo, as the discovery document spells it"),
    R("login.ciba", "POST", "/vipps-login-ciba/api/backchannel/authentication", Api.LOGIN,
      summary="CIBA: start a login on the user's phone"),
    R("login.user_exists", "POST", "/vipps-login-ciba/api/v1/user-exists", Api.LOGIN,
      summary="CIBA: does a user with this phone number exist"),
)
SANDBOX_ROUTES = (
    R("sandbox.health", "GET", "/_sandbox/health", Api.SANDBOX, summary="health check"),
    R("sandbox.clock.get", "GET", "/_sandbox/clock", Api.SANDBOX, summary="read the virtual clock"),
    R("sandbox.clock.set", "POST", "/_sandbox/clock", Api.SANDBOX, summary="move or freeze the virtual clock"),
    R("sandbox.keys", "GET", "/_sandbox/keys", Api.SANDBOX, summary="list key sets"),
    R("sandbox.users", "GET", "/_sandbox/users", Api.SANDBOX, summary="list test users (`?market=NO|DK|FI`)"),
)
# The simulated user and the control plane of the ePayment API (issue 3).
SANDBOX_EPAYMENT_ROUTES = served_by(
    "epayment",
    R("sandbox.landing", "GET", "/_sandbox/landing", Api.SANDBOX, summary="the simulated user's landing page"),
    R("sandbox.landing.approve", "POST", "/_sandbox/landing/approve", Api.SANDBOX, summary="landing page: approve"),
    R("sandbox.landing.reject", "POST", "/_sandbox/landing/reject", Api.SANDBOX, summary="landing page: reject"),
    R("sandbox.qr", "GET", "/_sandbox/qr", Api.SANDBOX, summary="QR code of a landing URL"),
    R("sandbox.payments.approve", "POST", "/_sandbox/payments/{msn}/{reference}/approve", Api.SANDBOX,
      summary="approve a payment as the user"),
    R("sandbox.payments.reject", "POST", "/_sandbox/payments/{msn}/{reference}/reject", Api.SANDBOX,
      summary="reject a payment as the user"),
    R("sandbox.payments.expire", "POST", "/_sandbox/payments/{msn}/{reference}/expire", Api.SANDBOX,
      summary="let a payment expire"),
)
# The virtual phone: every API's cards for one user (sandbox/phone/, fed through gateway/phone_cards.py).
SANDBOX_PHONE_ROUTES = served_by(
    "phone",
    R("sandbox.phone", "GET", "/_sandbox/phone/{phoneNumber}", Api.SANDBOX,
      summary="the virtual phone: what the app shows a user (payments, agreements, logins), with Approve and Reject"),
)
# The simulated user and the control plane of the Recurring API (issue 15).
SANDBOX_RECURRING_ROUTES = served_by(
    "recurring",
    R("sandbox.recurring.confirm", "GET", "/_sandbox/recurring/confirm", Api.SANDBOX,
      summary="the simulated user's agreement confirmation page"),
    R("sandbox.recurring.confirm.approve", "POST", "/_sandbox/recurring/confirm/approve", Api.SANDBOX,
      summary="confirmation page: approve"),
    R("sandbox.recurring.confirm.reject", "POST", "/_sandbox/recurring/confirm/reject", Api.SANDBOX,
      summary="confirmation page: reject"),
    R("sandbox.recurring.agreements.approve", "POST", "/_sandbox/recurring/{msn}/agreements/{agreementId}/approve",
      Api.SANDBOX, summary="approve an agreement as the user"),
    R("sandbox.recurring.agreements.reject", "POST", "/_sandbox/recurring/{msn}/agreements/{agreementId}/reject",
      Api.SANDBOX, summary="reject an agreement as the user"),
    R("sandbox.recurring.agreements.expire", "POST", "/_sandbox/recurring/{msn}/agreements/{agreementId}/expire",
      Api.SANDBOX, summary="let an agreement expire"),
    R("sandbox.recurring.agreements.stop", "POST", "/_sandbox/recurring/{msn}/agreements/{agreementId}/stop",
      Api.SANDBOX, summary="stop an agreement as the user"),
    R("sandbox.recurring.charges.outcome", "POST",
      "/_sandbox/recurring/{msn}/agreements/{agreementId}/charges/{chargeId}/outcome", Api.SANDBOX,
      summary="force a charge's outcome"),
)
# The merchant's side of product orders (issue 4).
SANDBOX_MANAGEMENT_ROUTES = served_by(
    "management",
    R("sandbox.product_orders.page", "GET", "/_sandbox/product-orders/{id}", Api.SANDBOX,
      summary="the merchant's product order page"),
    R("sandbox.product_orders.view", "POST", "/_sandbox/product-orders/{id}/view", Api.SANDBOX,
      summary="the merchant opens the order"),
    R("sandbox.product_orders.submit", "POST", "/_sandbox/product-orders/{id}/submit", Api.SANDBOX,
      summary="the merchant submits the order"),
    R("sandbox.product_orders.complete", "POST", "/_sandbox/product-orders/{id}/complete", Api.SANDBOX,
      summary="Vipps MobilePay completes the order"),
    R("sandbox.product_orders.reject", "POST", "/_sandbox/product-orders/{id}/reject", Api.SANDBOX,
      summary="Vipps MobilePay rejects the order"),
)
# Accounting consent, granted and revoked live (issue 5).
SANDBOX_REPORT_ROUTES = served_by(
    "report",
    R("sandbox.consents.list", "GET", "/_sandbox/consents", Api.SANDBOX, summary="list consents"),
    R("sandbox.consents.grant", "POST", "/_sandbox/consents", Api.SANDBOX, summary="grant accounting consent"),
    R("sandbox.consents.revoke", "DELETE", "/_sandbox/consents/{accountingPartnerId}/{merchantId}", Api.SANDBOX,
      summary="revoke accounting consent"),
)
# The dashboard at /_sandbox/ and the feeds only it reads (issue 6).
SANDBOX_DASHBOARD_ROUTES = served_by(
    "dashboard",
    R("sandbox.dashboard", "GET", "/_sandbox/", Api.SANDBOX, summary="the dashboard"),
    R("sandbox.dashboard.bare", "GET", "/_sandbox", Api.SANDBOX, summary="the dashboard without its slash: a redirect"),
    R("sandbox.dashboard.asset", "GET", "/_sandbox/dashboard/{name}", Api.SANDBOX, summary="the dashboard's files"),
    R("sandbox.building", "GET", "/_sandbox/building", Api.SANDBOX,
      summary="partners, merchants and sales units with their keys (secrets masked)"),
    R("sandbox.matrix", "GET", "/_sandbox/matrix", Api.SANDBOX, summary="key type x API x environment matrix"),
    R("sandbox.payments.list", "GET", "/_sandbox/payments", Api.SANDBOX, summary="every payment, both environments"),
    R("sandbox.product_orders.list", "GET", "/_sandbox/product-orders", Api.SANDBOX,
      summary="every product order"),
    R("sandbox.recurring.agreements.list", "GET", "/_sandbox/recurring/agreements", Api.SANDBOX,
      summary="Recurring agreements with their charges, both environments"),
    R("sandbox.dashboard.payment_action", "POST", "/_sandbox/dashboard/payments/{env}/{msn}/{reference}/{action}",
      Api.SANDBOX, summary="approve, reject or expire a payment of either environment from the dashboard"),
    R("sandbox.favicon", "GET", "/favicon.ico", Api.SANDBOX,
      summary="the sandbox's icon, for a browser that opens a page naming none (a QR code)"),
)

# The request log and the control plane: reset, snapshots, key regeneration, faults (issue 6).
SANDBOX_CONTROL_ROUTES = (
    R("sandbox.requests.list", "GET", "/_sandbox/requests", Api.SANDBOX, summary="the request log, newest first"),
    R("sandbox.requests.clear", "DELETE", "/_sandbox/requests", Api.SANDBOX, summary="empty the request log"),
    R("sandbox.reset", "POST", "/_sandbox/reset", Api.SANDBOX, summary="back to the fixture"),
    R("sandbox.snapshot", "POST", "/_sandbox/snapshot", Api.SANDBOX, summary="save the live state to a file"),
    R("sandbox.restore", "POST", "/_sandbox/restore", Api.SANDBOX, summary="load the live state from a file"),
    R("sandbox.keys.regenerate", "POST", "/_sandbox/keys/{client_id}/regenerate", Api.SANDBOX,
      summary="issue a new client_secret"),
    R("sandbox.keys.regenerate_subscription_key", "POST", "/_sandbox/keys/{client_id}/regenerate-subscription-key",
      Api.SANDBOX, summary="replace the primary or secondary subscription key"),
    R("sandbox.faults.create", "POST", "/_sandbox/faults", Api.SANDBOX, summary="add a fault injection rule"),
    R("sandbox.faults.list", "GET", "/_sandbox/faults", Api.SANDBOX, summary="list fault injection rules"),
    R("sandbox.faults.clear", "DELETE", "/_sandbox/faults", Api.SANDBOX, summary="delete every fault rule"),
    R("sandbox.faults.delete", "DELETE", "/_sandbox/faults/{id}", Api.SANDBOX, summary="delete one fault rule"),
)
# Webhook delivery attempts and the built-in receiver (issue 7).
SANDBOX_WEBHOOKS_ROUTES = served_by(
    "webhooks",
    R("sandbox.webhooks.deliveries", "GET", "/_sandbox/webhooks/deliveries", Api.SANDBOX,
      summary="every webhook delivery attempt"),
    R("sandbox.inbox.post", "POST", "/_sandbox/inbox/{name}", Api.SANDBOX, summary="an inbox collects a delivery"),
    R("sandbox.inbox.get", "GET", "/_sandbox/inbox/{name}", Api.SANDBOX, summary="what an inbox received"),
)

# The readiness report: the go-live checklists filled in from the evidence (issue 19).
SANDBOX_READINESS_ROUTES = served_by(
    "readiness",
    R("sandbox.readiness", "GET", "/_sandbox/readiness", Api.SANDBOX,
      summary="the go-live checklists filled in from what the integration did (`?msn=`, `api=`, `format=`)"),
    R("sandbox.readiness.exercise", "POST", "/_sandbox/readiness/exercises", Api.SANDBOX,
      summary="make a checklist item's situation happen (a fault on the next call, the clock)"),
)
# The QR API (issue 18, reference section 7).
QR_ROUTES = (
    R("qr.one_time", "POST", "/qr/v1", Api.QR, summary="one-time payment QR for a landing page URL"),
    R("qr.redirect.create", "POST", "/qr/v1/merchant-redirect", Api.QR, summary="create a merchant redirect QR"),
    R("qr.redirect.list", "GET", "/qr/v1/merchant-redirect", Api.QR, summary="list merchant redirect QRs"),
    R("qr.redirect.get", "GET", "/qr/v1/merchant-redirect/{id}", Api.QR, summary="get a merchant redirect QR"),
    R("qr.redirect.update", "PUT", "/qr/v1/merchant-redirect/{id}", Api.QR, summary="change its redirectUrl"),
    R("qr.redirect.delete", "DELETE", "/qr/v1/merchant-redirect/{id}", Api.QR,
      summary="delete a merchant redirect QR (for good)"),
    R("qr.callback.list", "GET", "/qr/v1/merchant-callback", Api.QR, summary="list merchant callback QRs"),
    R("qr.callback.get", "GET", "/qr/v1/merchant-callback/{merchantQrId}", Api.QR,
      summary="get a merchant callback QR"),
    R("qr.callback.put", "PUT", "/qr/v1/merchant-callback/{merchantQrId}", Api.QR,
      summary="create or update a merchant callback QR"),
    R("qr.callback.delete", "DELETE", "/qr/v1/merchant-callback/{merchantQrId}", Api.QR,
      summary="delete a merchant callback QR"),
    R("qr.callback.mobilepay", "PUT", "/qr/v1/merchant-callback/mobilepay/{beaconId}", Api.QR,
      summary="migrate a MobilePay PoS QR (beacon)"),
    R("qr.exchange", "POST", "/qr/v1/exchange", Api.QR, summary="exchange a user's personal QR for the MSISDN"),
    R("qr.exchange.customer", "POST", "/qr/v1/exchange/customer", Api.QR,
      summary="exchange a check-in's customerToken for the MSISDN"),
)
# The QR images (no auth, as the real image URLs), the codes' own URLs, and the scan (phone or CI).
SANDBOX_QR_ROUTES = served_by(
    "qr",
    R("sandbox.qr.image", "GET", "/_sandbox/qr/generate/{file}", Api.SANDBOX,
      summary="a QR image (qr.png or qr.svg; `code`, `size`, `whiteBorder`), without auth"),
    R("sandbox.qr.target", "GET", "/_sandbox/qr/r/{code}", Api.SANDBOX,
      summary="what a scanned QR code opens: a redirect QR's redirectUrl, a callback QR's check-in page"),
    R("sandbox.qr.scan", "POST", "/_sandbox/qr/scan", Api.SANDBOX,
      summary="scan a QR code as a test user (`phoneNumber`, `qrContent`): a check-in sends user.checked-in.v1"),
)
# The Order Management API (issue 18, reference section 8).
ORDER_MANAGEMENT_ROUTES = (
    R("ordermanagement.images.add", "POST", "/order-management/v1/images", Api.ORDER_MANAGEMENT,
      summary="upload an image"),
    R("ordermanagement.v2.category", "PUT", "/order-management/v2/{paymentType}/categories/{orderId}",
      Api.ORDER_MANAGEMENT, summary="add or replace an order's category"),
    R("ordermanagement.v2.receipt", "POST", "/order-management/v2/{paymentType}/receipts/{orderId}",
      Api.ORDER_MANAGEMENT, summary="add an order's receipt (once)"),
    R("ordermanagement.v2.order", "GET", "/order-management/v2/{paymentType}/{orderId}", Api.ORDER_MANAGEMENT,
      summary="an order's category and receipt"),
    R("ordermanagement.v3.categories.add", "POST", "/order-management/v3/categories", Api.ORDER_MANAGEMENT,
      summary="add a category (v3)"),
    R("ordermanagement.v3.categories.query", "GET", "/order-management/v3/categories", Api.ORDER_MANAGEMENT,
      summary="an order's categories (v3)"),
    R("ordermanagement.v3.category.get", "GET", "/order-management/v3/categories/{categoryId}",
      Api.ORDER_MANAGEMENT, summary="a category (v3)"),
    R("ordermanagement.v3.category.delete", "DELETE", "/order-management/v3/categories/{categoryId}",
      Api.ORDER_MANAGEMENT, summary="delete a category (v3)"),
    R("ordermanagement.v1.order.put", "PUT", "/order-management/v1/orders/{transactionId}", Api.ORDER_MANAGEMENT,
      summary="deprecated: an ecom order's category"),
    R("ordermanagement.v1.order.get", "GET", "/order-management/v1/orders/{transactionId}", Api.ORDER_MANAGEMENT,
      summary="deprecated: an ecom order's category"),
    R("ordermanagement.v1.receipt.post", "POST", "/order-management/v1/receipts/{transactionId}",
      Api.ORDER_MANAGEMENT, summary="deprecated: an ecom order's receipt"),
    R("ordermanagement.v1.receipt.get", "GET", "/order-management/v1/receipts/{transactionId}",
      Api.ORDER_MANAGEMENT, summary="deprecated: an ecom order's receipt"),
)
# The simulated user and the control plane of the Login API (issue 16).
SANDBOX_LOGIN_ROUTES = served_by(
    "login",
    R("sandbox.login.page", "GET", "/_sandbox/login", Api.SANDBOX,
      summary="the login page: choose a test user, see the scopes, consent or cancel"),
    R("sandbox.login.consent", "POST", "/_sandbox/login/consent", Api.SANDBOX, summary="login page: consent"),
    R("sandbox.login.cancel", "POST", "/_sandbox/login/cancel", Api.SANDBOX, summary="login page: cancel"),
    R("sandbox.login.approve", "POST", "/_sandbox/login/approve", Api.SANDBOX,
      summary="CI consents as a user to a pending /oauth2/auth login (body: loginId from the page URL)"),
    R("sandbox.login.ciba.approve", "POST", "/_sandbox/login/ciba/approve", Api.SANDBOX,
      summary="approve a CIBA login on the user's phone (body: auth_req_id)"),
    R("sandbox.login.ciba.reject", "POST", "/_sandbox/login/ciba/reject", Api.SANDBOX,
      summary="reject a CIBA login on the user's phone (body: auth_req_id)"),
    R("sandbox.login.clients.get", "GET", "/_sandbox/login/clients/{client_id}", Api.SANDBOX,
      summary="a Login client's redirect URIs and token endpoint auth methods"),
    R("sandbox.login.clients.update", "POST", "/_sandbox/login/clients/{client_id}", Api.SANDBOX,
      summary="register redirect URIs, switch a client to client_secret_basic only"),
)
# The Donations API (issue 18; production only) and its control plane (seeding agreements and payments).
DONATIONS_ROUTES = (
    R("donations.payments", "GET", "/donations/v1/reports/payments", Api.DONATIONS,
      summary="donation payments captured between from and to (paged by timestamp)"),
    R("donations.agreements.get", "GET", "/donations/v1/agreements/{agreementId}", Api.DONATIONS,
      summary="a donation agreement"),
    R("donations.agreements.stop", "POST", "/donations/v1/agreements/{agreementId}/stop", Api.DONATIONS,
      summary="stop a donation agreement (idempotent)"),
)
SANDBOX_DONATIONS_ROUTES = served_by(
    "donations",
    R("sandbox.donations.agreements.list", "GET", "/_sandbox/donations/agreements", Api.SANDBOX,
      summary="every donation agreement"),
    R("sandbox.donations.agreements.create", "POST", "/_sandbox/donations/agreements", Api.SANDBOX,
      summary="a donor starts a monthly donation agreement"),
    R("sandbox.donations.agreements.change", "POST", "/_sandbox/donations/agreements/{agreementId}/change",
      Api.SANDBOX, summary="the donor changes the amount or the withdrawal day"),
    R("sandbox.donations.payments.create", "POST", "/_sandbox/donations/payments", Api.SANDBOX,
      summary="seed one-off donations (captured now, or spread back in time)"),
)

# The Checkout API v3 (issue 18) and its simulated user, the hosted checkout page.
CHECKOUT_ROUTES = (
    R("checkout.session.create", "POST", "/checkout/v3/session", Api.CHECKOUT, summary="create a checkout session"),
    R("checkout.session.get", "GET", "/checkout/v3/session/{reference}", Api.CHECKOUT, summary="get a session"),
    R("checkout.session.update", "PATCH", "/checkout/v3/session/{reference}", Api.CHECKOUT,
      summary="update a session's transaction or logistics options"),
    R("checkout.session.expire", "POST", "/checkout/v3/session/{reference}/expire", Api.CHECKOUT,
      summary="expire a session"),
)
SANDBOX_CHECKOUT_ROUTES = served_by(
    "checkout",
    R("sandbox.checkout.page", "GET", "/_sandbox/checkout/session", Api.SANDBOX,
      summary="the hosted checkout page (checkoutFrontendUrl)"),
    R("sandbox.checkout.approve", "POST", "/_sandbox/checkout/session/approve", Api.SANDBOX,
      summary="checkout page: pay"),
    R("sandbox.checkout.cancel", "POST", "/_sandbox/checkout/session/cancel", Api.SANDBOX,
      summary="checkout page: cancel"),
    R("sandbox.checkout.callbacks", "GET", "/_sandbox/checkout/callbacks", Api.SANDBOX,
      summary="every payment-completed callback attempt"),
)
ROUTES: dict[str, RoutePolicy] = _routes(
    *TOKEN_ROUTES, *EPAYMENT_ROUTES, *MANAGEMENT_ROUTES, *REPORT_ROUTES, *WEBHOOKS_ROUTES, *RECURRING_ROUTES,
    *USERINFO_ROUTES,
    *SANDBOX_ROUTES, *SANDBOX_EPAYMENT_ROUTES, *SANDBOX_PHONE_ROUTES, *SANDBOX_RECURRING_ROUTES,
    *SANDBOX_MANAGEMENT_ROUTES,
    *SANDBOX_REPORT_ROUTES,
    *SANDBOX_DASHBOARD_ROUTES,
    *SANDBOX_CONTROL_ROUTES, *SANDBOX_WEBHOOKS_ROUTES, *SANDBOX_READINESS_ROUTES,
    *QR_ROUTES, *SANDBOX_QR_ROUTES, *ORDER_MANAGEMENT_ROUTES,
    *LOGIN_ROUTES, *SANDBOX_LOGIN_ROUTES,
    *DONATIONS_ROUTES, *SANDBOX_DONATIONS_ROUTES,
    *CHECKOUT_ROUTES, *SANDBOX_CHECKOUT_ROUTES,
)

# ---------------------------------------------------------------------------------------------
# Reasons: every denial names its rule and says why in plain words.
# ---------------------------------------------------------------------------------------------

KEY_TYPE_NAMES = {KeyType.MERCHANT: "Merchant keys", KeyType.PARTNER: "Partner keys",
                  KeyType.MANAGEMENT: "Management keys", KeyType.ACCOUNTING: "Accounting keys",
                  KeyType.MERCHANT_LEVEL: "Merchant-level keys"}

#: (key type, API) -> (rule id, reason) for key types an API refuses outright.
KEY_TYPE_DENIALS: dict[tuple[KeyType, Api], tuple[str, str]] = {
    (KeyType.MANAGEMENT, Api.EPAYMENT): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only."),
    (KeyType.MANAGEMENT, Api.WEBHOOKS): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only."),
    (KeyType.MANAGEMENT, Api.REPORT): (
        "report-needs-accounting-keys",
        "Management keys do not reach the Report API: it needs accounting keys and the merchant's consent, "
        "because prices and fees are regulated by GDPR."),
    (KeyType.PARTNER, Api.REPORT): (
        "report-needs-accounting-keys",
        "Partner keys do not reach the Report API: it needs accounting keys and the merchant's consent, "
        "because prices and fees are regulated by GDPR."),
    (KeyType.ACCOUNTING, Api.EPAYMENT): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot make payments or manage sales units."),
    (KeyType.ACCOUNTING, Api.WEBHOOKS): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot make payments or manage sales units."),
    (KeyType.MANAGEMENT, Api.RECURRING): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only, not the "
        "Recurring API. Use the sales unit's own keys, or partner keys in production."),
    (KeyType.ACCOUNTING, Api.RECURRING): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot draft agreements or charge them."),
    (KeyType.MANAGEMENT, Api.LOGIN): (
        "management-keys-never-act-on-behalf",
        "Management keys are not Login clients: Login takes the sales unit's own client_id and client_secret, "
        "or partner keys' access token with the Merchant-Serial-Number (production only)."),
    (KeyType.ACCOUNTING, Api.LOGIN): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they are not Login clients."),
    (KeyType.ACCOUNTING, Api.MANAGEMENT): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot use the Management API. Manage sales units "
        "with partner keys or management keys."),
    (KeyType.MANAGEMENT, Api.USERINFO): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot read what users shared with a sales unit: the Userinfo API takes the sales unit's "
        "own merchant token, or partner keys with the Merchant-Serial-Number in production."),
    (KeyType.ACCOUNTING, Api.USERINFO): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot read users' profiles (the Userinfo API)."),
    # issue 18: QR and Order Management act for a sales unit, like ePayment.
    (KeyType.MANAGEMENT, Api.QR): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only, not the QR API. "
        "Use the sales unit's own keys, or partner keys in production."),
    (KeyType.ACCOUNTING, Api.QR): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot make QR codes."),
    (KeyType.MANAGEMENT, Api.ORDER_MANAGEMENT): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only, not the Order "
        "Management API. Use the sales unit's own keys, or partner keys in production."),
    (KeyType.ACCOUNTING, Api.ORDER_MANAGEMENT): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot add receipts or categories to orders."),
    # The Donations API (reference section 1b).
    (KeyType.MERCHANT, Api.DONATIONS): (
        "donations-needs-merchant-level-keys",
        "Merchant keys (sales unit keys) do not reach the Donations API: only legacy \"Recurring donations\" sales "
        "units did, and the sandbox has none. Use the merchant's merchant-level keys (POST /miami/v1/token), or "
        "partner keys."),
    (KeyType.MANAGEMENT, Api.DONATIONS): (
        "donations-needs-merchant-level-keys",
        "Management keys do not reach the Donations API: it needs the merchant's merchant-level keys "
        "(POST /miami/v1/token, scope=donations:read), or partner keys."),
    (KeyType.ACCOUNTING, Api.DONATIONS): (
        "donations-needs-merchant-level-keys",
        "Accounting keys reach the Report API only, not the Donations API: it needs the merchant's merchant-level "
        "keys (POST /miami/v1/token, scope=donations:read), or partner keys."),
    (KeyType.MANAGEMENT, Api.CHECKOUT): (
        "management-keys-never-act-on-behalf",
        "Management keys cannot act on behalf of merchants: they reach the Management API only, not the "
        "Checkout API. Use the sales unit's own keys, or partner keys in production."),
    (KeyType.ACCOUNTING, Api.CHECKOUT): (
        "accounting-keys-report-only",
        "Accounting keys reach the Report API only: they cannot create checkout sessions."),
}

#: The matrix's cell for an API that refuses merchant-level keys (the full reason is merchant_level_denial's).
MERCHANT_LEVEL_MATRIX = "Merchant-level keys reach Donations, their merchant's ledgers and donations.* webhooks only."
MERCHANT_LEVEL_REACH = ("the Donations API, the Report API for their own merchant's ledgers, and the Webhooks API "
                        "for donations.* events")


def merchant_level_denial(rule: ApiRule) -> tuple[str, str]:
    """Why merchant-level keys may not call an API (every API but Donations, Report and Webhooks, new ones too)."""
    return ("merchant-level-keys-donations-only",
            f"Merchant-level keys (Donations) do not reach the {rule.title}: they reach {MERCHANT_LEVEL_REACH} only.")


def merchant_level_webhook_denial(keyset: KeySet, events: list) -> Decision | None:
    """Merchant-level keys register webhooks for donations.* events only (reference section 1b); None: they may."""
    if keyset.type is not KeyType.MERCHANT_LEVEL:
        return None
    others = [str(event) for event in events if not str(event).startswith("donations.")]
    if not others:
        return None
    return deny("merchant-level-keys-donations-webhooks-only",
                f"Merchant-level keys register webhooks for donations.* events only, not {others[0][:60]!r}: "
                f"they reach {MERCHANT_LEVEL_REACH} only.")


def merchant_level_decision(rule: ApiRule, keyset: KeySet, world: World) -> Decision:
    """Merchant-level keys act for their own merchant (an organisation) and all its sales units; they carry no
    MSN, and one sent anyway is ignored (a real Donations client sends it: reference section 1a)."""
    merchant = world.merchants.get(keyset.owner)
    if merchant is None or not merchant.active:
        return deny("merchant-not-active", f"Merchant {keyset.owner}, whose merchant-level keys these are, is "
                    "deactivated.")
    return allow("merchant-level-keys-own-merchant",
                 f"Merchant-level keys act for their own merchant {merchant.name} ({merchant.key}) in the "
                 f"{rule.title}; the Merchant-Serial-Number header plays no part.")


#: APIs where keys act on behalf of a sales unit (partners must be approved for it, and send the MSN).
ACTING_APIS = frozenset({Api.EPAYMENT, Api.WEBHOOKS, Api.RECURRING, Api.USERINFO, Api.LOGIN, Api.QR,
                         Api.ORDER_MANAGEMENT, Api.CHECKOUT})


#: One answer for a sales unit that is missing, deactivated or not the caller's (the Management API's 404):
#: the caller's body never tells them apart; the rule and reason (the sandbox's headers and log) do.
MANAGEMENT_NOT_FOUND = "The sales unit does not exist, is not active, or is not available to the caller."
SALES_UNIT_UNKNOWN = "sales-unit-unknown"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str
    reason: str
    status: int = 200
    msn: str | None = None  # the sales unit the call acts for, when there is one
    #: What the caller's body says when it must say less than `reason` (an opaque 404); None: the reason.
    detail: str | None = None


def allow(rule: str, reason: str, msn: str | None = None) -> Decision:
    return Decision(True, rule, reason, 200, msn)


def deny(rule: str, reason: str, status: int = 403, detail: str | None = None) -> Decision:
    return Decision(False, rule, reason, status, detail=detail)


def partner_named(partner_id: str | None, world: World) -> str:
    """A partner in plain words for a reason: "partner Andersen ASA (partner-1003)", or "no partner"."""
    if not partner_id:
        return "no partner"
    partner = world.partners.get(partner_id)
    return f"partner {partner.name} ({partner_id})" if partner is not None else f"partner {partner_id}"


def out_of_reach(keyset: KeySet, subject: str, connected: str, world: World, plural: bool = False) -> tuple[str, str]:
    """The rule and plain reason why `subject` (a sales unit, or a merchant's sales units, connected to the
    partners `connected` names) is out of these keys' reach."""
    owner = keyset.owner
    are, they = ("are", "they are") if plural else ("is", "it is")
    if keyset.type is KeyType.MERCHANT:
        return ("merchant-keys-own-sales-unit-only",
                f"{subject} {are} not the merchant keys' own sales unit {owner}: merchant keys see only their own.")
    if keyset.type is KeyType.PARTNER:
        return ("partner-keys-connected-sales-units-only",
                f"{subject} {are} not connected to {partner_named(owner, world)}: {they} connected to {connected}.")
    if owner in world.partners:
        return ("management-keys-own-sales-units-only",
                f"{subject} {are} not connected to {partner_named(owner, world)}, whose management keys these are: "
                f"{they} connected to {connected}.")
    return ("management-keys-own-sales-units-only",
            f"{subject} {are} not merchant {owner}'s, whose management keys these are.")


def sales_unit_out_of_sight(keyset: KeySet, msn: str, world: World) -> Decision | None:
    """Why these keys may not see sales unit `msn` in the Management API (None: they may). The caller always
    gets the same 404 (MANAGEMENT_NOT_FOUND: a foreign or deactivated sales unit looks like a missing one);
    the rule and reason say which it was, for the sandbox's headers and request log only."""
    unit = world.sales_units.get(msn)
    if unit is None:
        return deny(SALES_UNIT_UNKNOWN, f"No sales unit has MSN {msn}.", 404, MANAGEMENT_NOT_FOUND)
    if not world.can_reach(keyset, msn):
        rule, reason = out_of_reach(keyset, f"Sales unit {msn}", partner_named(unit.partner_id, world), world)
        return deny(rule, reason + " The caller gets the 404 of a sales unit that does not exist.", 404,
                    MANAGEMENT_NOT_FOUND)
    if not world.is_active(msn):
        merchant = world.merchants[unit.merchant]
        return deny("sales-unit-not-active", f"Sales unit {msn} belongs to merchant {merchant.name} "
                    f"({merchant.key}), which is deactivated. The caller gets the 404 of a sales unit that does "
                    "not exist.", 404, MANAGEMENT_NOT_FOUND)
    return None


def environment_decision(route: RoutePolicy, env: Env) -> Decision | None:
    """A route that does not exist in this environment: the gateway answers 404."""
    if env in route.allowed_envs:
        return None
    if route.environments is not None and route.api is Api.EPAYMENT:
        return deny("force-approve-test-only",
                    "Force approve exists only in the test environment (apitest.vipps.no); in production "
                    "the user approves in the app, or on the sandbox's landing page.", 404)
    if route.environments is not None and route.api is Api.RECURRING:
        return deny("force-accept-test-only",
                    "Force accept exists only in the test environment (apitest.vipps.no); in production the "
                    "user approves the agreement in the app, or on the sandbox's confirmation page "
                    "(vippsConfirmationUrl).", 404)
    return deny(f"{route.api}-production-only",
                f"The {route.rule.title} exists only in the production environment (api.vipps.no), "
                "not in the test environment.", 404)


def decide(route: RoutePolicy, keyset: KeySet, env: Env, msn: str | None, world: World) -> Decision:
    """May these keys call this route in this environment, with this Merchant-Serial-Number?"""
    rule = route.rule
    who = KEY_TYPE_NAMES[keyset.type]
    if keyset.environment is not env:
        return deny("keys-stay-in-their-environment",
                    f"{who} of the {keyset.environment} environment never work in the {env} environment.", 401)
    if keyset.type not in rule.key_types:
        fallback = merchant_level_denial(rule) if keyset.type is KeyType.MERCHANT_LEVEL else (
            "key-type-not-allowed", f"{who} do not reach the {rule.title}.")
        rule_id, reason = KEY_TYPE_DENIALS.get((keyset.type, route.api), fallback)
        return deny(rule_id, reason)
    if keyset.type is KeyType.MERCHANT_LEVEL:
        return merchant_level_decision(rule, keyset, world)

    if route.partners_only and keyset.owner not in world.partners:
        mine = "Merchant keys" if keyset.type is KeyType.MERCHANT else "A merchant's own management keys"
        return deny("partners-only", f"{mine} cannot use price packages or product orders: they belong to "
                    "partners. Use the partner's partner keys or management keys.")
    if rule.msn is MsnRule.IGNORED:
        return allow("key-type-allowed", f"{who} may use the {rule.title}.",
                     keyset.owner if keyset.type is KeyType.MERCHANT else None)

    acting = route.api in ACTING_APIS
    dead_keys = keyset.type is KeyType.MERCHANT and not world.is_active(keyset.owner)  # refused just below
    if route.api is Api.MANAGEMENT and msn is not None and not dead_keys:
        # The Management API's 404 means "not active or not yours": the body must not tell them apart.
        hidden = sales_unit_out_of_sight(keyset, msn, world)
        if hidden is not None:
            return hidden
    if keyset.type is KeyType.MERCHANT:
        if msn is not None and msn != keyset.owner:
            return deny("merchant-keys-own-sales-unit-only",
                        f"Merchant keys act for their own sales unit only: these keys belong to MSN "
                        f"{keyset.owner}, not {msn}.")
        if not world.is_active(keyset.owner):
            return deny("sales-unit-not-active", f"Sales unit {keyset.owner} belongs to a deactivated merchant.")
        return allow("merchant-keys-own-sales-unit", f"Merchant keys act for their own sales unit {keyset.owner}.",
                     keyset.owner)

    if keyset.type is KeyType.PARTNER and acting:
        partner = world.partners[keyset.owner]
        if not partner.act_on_behalf_approved:
            return deny("partner-not-approved-to-act-on-behalf",
                        f"{partner.name} ({partner.level}) is not approved to act on behalf of merchants: "
                        "its partner keys can manage sales units, not make payments.")
        if msn is None and not (route.api is Api.WEBHOOKS and rule.msn is MsnRule.OPTIONAL):
            return deny("partner-keys-need-msn",
                        "Partner keys must send the Merchant-Serial-Number header to say which sales unit "
                        "they act on behalf of.")

    if msn is None:
        return allow("managing-without-msn", f"{who} act for all the sales units they reach.")
    if not world.can_reach(keyset, msn):
        if keyset.type is KeyType.PARTNER:
            return deny("partner-keys-connected-sales-units-only",
                        f"Sales unit {msn} is not connected to partner {keyset.owner}: partner keys open only "
                        "the doors of the partner's own sales units.")
        return deny("management-keys-own-sales-units-only",
                    f"Sales unit {msn} is not one of the sales units these management keys manage.")
    if not world.is_active(msn):
        return deny("sales-unit-not-active", f"Sales unit {msn} belongs to a deactivated merchant.")
    verb = "act on behalf of" if acting else "manage"
    return allow(f"{keyset.type}-keys-connected-sales-unit", f"{who} {verb} connected sales unit {msn}.", msn)


#: Who reads ledgers: merchant keys (their own), accounting keys (with consent), merchant-level keys (their merchant's).
LEDGER_READERS = frozenset({KeyType.MERCHANT, KeyType.ACCOUNTING, KeyType.MERCHANT_LEVEL})


def can_read_ledger(keyset: KeySet, msn: str, world: World) -> bool:
    """Report API visibility, asked on every request so consent changes count at once: merchant keys
    read their own sales unit's ledger; accounting keys the ledgers of merchants that consented."""
    if keyset.type not in LEDGER_READERS:
        return False
    return world.can_reach(keyset, msn)


def readable_ledger_msns(keyset: KeySet, world: World) -> list[str]:
    """The sales units whose ledgers these keys may list (see can_read_ledger)."""
    if keyset.type not in LEDGER_READERS:
        return []
    return [msn for msn in world.reach(keyset) if msn in world.sales_units]


# ---------------------------------------------------------------------------------------------
# The token endpoints' own rules (they run before any token exists).
# ---------------------------------------------------------------------------------------------

TOKEN_ENDPOINT_KEY_TYPES = {"token.accesstoken": frozenset({KeyType.MERCHANT, KeyType.PARTNER}),
                            "token.miami": frozenset({KeyType.MANAGEMENT, KeyType.ACCOUNTING,
                                                      KeyType.MERCHANT_LEVEL})}


def token_decision(route_name: str, keyset: KeySet, env: Env) -> Decision:
    """May these keys get a token from this endpoint in this environment?"""
    who = KEY_TYPE_NAMES[keyset.type]
    if keyset.type not in TOKEN_ENDPOINT_KEY_TYPES[route_name]:
        if route_name == "token.accesstoken":
            return deny("miami-keys-use-miami-token",
                        f"{who} get their access token from POST /miami/v1/token "
                        "(Basic auth, grant_type=client_credentials), not from /accesstoken/get.", 401)
        return deny("standard-keys-use-accesstoken",
                    f"{who} get their access token from POST /accesstoken/get "
                    "(client_id, client_secret and Ocp-Apim-Subscription-Key headers), not from /miami/v1/token.",
                    401)
    if keyset.type is KeyType.PARTNER and env is Env.TEST:
        return deny("partner-keys-production-only",
                    "Partner keys only work in the production environment. In the test environment, use the "
                    "merchant's own test keys (merchant keys) instead.", 401)
    if keyset.environment is not env:
        return deny("keys-stay-in-their-environment",
                    f"These are {keyset.environment} keys; keys never work in the other environment "
                    f"({env}).", 401)
    return allow("token-endpoint-allowed", f"{who} get tokens from this endpoint in {env}.")


def matrix() -> list[dict]:
    """Key type x API x environment: allowed or not, with the reason. Feeds the dashboard."""
    rows = []
    for api, rule in APIS.items():
        if api in (Api.TOKEN, Api.SANDBOX):
            continue
        for key_type in KeyType:
            for env in Env:
                if env not in rule.environments:
                    rows.append({"keyType": str(key_type), "api": rule.title, "environment": str(env),
                                 "allowed": False,
                                 "reason": f"The {rule.title} exists only in production."})
                elif key_type not in rule.key_types:
                    fallback = ("", MERCHANT_LEVEL_MATRIX) if key_type is KeyType.MERCHANT_LEVEL else (
                        "", f"Not for {key_type} keys.")
                    reason = KEY_TYPE_DENIALS.get((key_type, api), fallback)[1]
                    rows.append({"keyType": str(key_type), "api": rule.title, "environment": str(env),
                                 "allowed": False, "reason": reason})
                elif key_type is KeyType.PARTNER and env is Env.TEST:
                    rows.append({"keyType": str(key_type), "api": rule.title, "environment": str(env),
                                 "allowed": False, "reason": "Partner keys only work in production."})
                elif key_type is KeyType.MERCHANT_LEVEL and env is Env.TEST:
                    rows.append({"keyType": str(key_type), "api": rule.title, "environment": str(env),
                                 "allowed": False, "reason": "Merchant-level keys exist only in production."})
                else:
                    rows.append({"keyType": str(key_type), "api": rule.title, "environment": str(env),
                                 "allowed": True, "reason": _allowed_reason(key_type, api)})
    return rows


def _allowed_reason(key_type: KeyType, api: Api) -> str:
    if key_type is KeyType.MERCHANT:
        return "For their own sales unit."
    if key_type is KeyType.PARTNER:
        if api is Api.MANAGEMENT:
            return "For every connected sales unit."
        if api is Api.DONATIONS:
            return "For connected sales units (all, or the one the optional Merchant-Serial-Number names)."
        return "For connected sales units, with Merchant-Serial-Number, if the partner is approved."
    if key_type is KeyType.MANAGEMENT:
        return "For the sales units they manage."
    if key_type is KeyType.MERCHANT_LEVEL:
        if api is Api.WEBHOOKS:
            return "For donations.* events of their own merchant only."
        return "For their own merchant (an organisation) and all its sales units."
    return "For merchants that consented."
