"""Schemathesis against the bundled official specs: a sandbox in a thread, credentials and real ids by hook.

Shared by tests/evidence/test_fuzz_schemathesis.py (bounded, in CI) and bench/fuzz_long.py (long runs).
Schemathesis speaks `requests` (blocking), so the sandbox runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
import schemathesis
import yaml
from api_formats import error_format_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.settings import Settings
from sandbox.core.world import World
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.policy import ROUTES, Api, RoutePolicy
from sandbox.server import RunningSandbox
from sandbox.testing import RESPONSE_CHECKS, keyset_rows

SPECS = Path(__file__).resolve().parents[2] / "sandbox" / "specs"
#: A well-formed Order Management receipt (one order line, NOK).
RECEIPT = {"orderLines": [{"name": "socks", "id": "1", "totalAmount": 1000, "totalAmountExcludingTax": 800,
                           "totalTaxAmount": 200, "taxRate": 2500}], "bottomLine": {"currency": "NOK"}}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class Target:
    """One implemented operation of one bundled spec, and where the sandbox serves it."""

    spec: str
    method: str
    path: str
    env: str  # "test" or "production"
    prefix: str = ""  # the spec's server path (/epayment, /webhooks)
    #: The share of the example budget: the second environment of an operation (same code, other keys) runs a
    #: quarter of it, so that both environments are fuzzed and CI time stays about the same.
    share: float = 1.0

    @property
    def route(self) -> RoutePolicy | None:
        """The policy table's entry for this operation (its path with the spec's server path); None: no route."""
        return route_for(self.method, self.prefix + self.path)

    @property
    def api(self) -> Api:
        return self.route.api

    @property
    def id(self) -> str:
        return f"{self.spec.split('.')[0]}:{self.method} {self.path}"

    def examples(self, full: int) -> int:
        return max(2, round(full * self.share)) if self.share < 1 else full


def path_template(path: str) -> str:
    """A path with its parameters unnamed: /a/{id}/b -> /a/{}/b (the specs and ROUTES name them differently)."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def route_for(method: str, path: str) -> RoutePolicy | None:
    """The ROUTES entry serving METHOD path, if any (parameter names ignored)."""
    template = path_template(path)
    return next((r for r in ROUTES.values() if r.method == method and path_template(r.path) == template), None)


def spec_prefix(raw: dict) -> str:
    """The path part of a spec's first server (`https://api.vipps.no/epayment` -> `/epayment`)."""
    servers = raw.get("servers") or [{"url": ""}]
    return urlsplit(servers[0]["url"]).path.rstrip("/")


def _both(spec: str, ops, main: str, prefix: str = "") -> list[Target]:
    """Each operation in its main environment (the full budget) and in the other one (a quarter of it)."""
    other = "test" if main == "production" else "production"
    return [Target(spec, m, p, env, prefix, 1.0 if env == main else 0.25) for m, p in ops for env in (main, other)]


def _targets() -> list[Target]:
    # ePayment: partner keys + Merchant-Serial-Number in production, merchant keys in test; force approve is test only.
    ep = _both("epayment-1.8.1.yaml", (
        ("POST", "/v1/payments"), ("GET", "/v1/payments/{Reference}"), ("GET", "/v1/payments/{Reference}/events"),
        ("POST", "/v1/payments/{Reference}/capture"), ("POST", "/v1/payments/{Reference}/refund"),
        ("POST", "/v1/payments/{Reference}/cancel")), "production", "/epayment")
    ep.append(Target("epayment-1.8.1.yaml", "POST", "/v1/test/payments/{Reference}/approve", "test", "/epayment"))
    # management.yaml is 1.1.6: only its live operations (the reference's 2.0.9 list) that the sandbox serves
    # (production only: the Management API has no test environment). NOT_SERVED lists the others.
    mg = [Target("management.yaml", m, p, "production") for m, p in (
        ("GET", "/management/v1/sales-units"), ("GET", "/management/v1/sales-units/{msn}"),
        ("GET", "/management/v1/merchants/{scheme}/{id}"),
        ("GET", "/management/v1/merchants/{scheme}/{id}/sales-units"),
        ("GET", "/management/v1/partners/price-packages"), ("POST", "/management/v1/product-orders"),
        ("DELETE", "/management/v1/product-orders/{product-order-id}"))]
    # report.yaml's deprecated v1 ledgertransactions is not served (the reference: replaced by the v2 endpoints).
    rp = [Target("report.yaml", "GET", p, "production") for p in (
        "/settlement/v1/ledgers", "/report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate}",
        "/report/v2/ledgers/{ledgerId}/{topic}/feed")]
    wh = _both("webhooks.yaml", (("GET", "/v1/webhooks"), ("POST", "/v1/webhooks"), ("DELETE", "/v1/webhooks/{id}")),
               "production", "/webhooks")
    tk = [Target("access-token-2024.yaml", "POST", p, env) for p in ("/accesstoken/get", "/miami/v1/token")
          for env in ("test", "production")]
    # Recurring v3: partner keys + Merchant-Serial-Number in production, merchant keys in test; the force accept is
    # test only, and the draft and the charge creation run the full budget in test as well.
    agreement, charge = "/recurring/v3/agreements/{agreementId}", "/recurring/v3/agreements/{agreementId}/charges"
    rc = _both("recurring-3.1.2.yaml", (
        ("GET", "/recurring/v3/agreements"), ("POST", "/recurring/v3/agreements"), ("GET", agreement),
        ("PATCH", agreement), ("GET", charge), ("POST", charge), ("POST", "/recurring/v3/agreements/charges"),
        ("GET", charge + "/{chargeId}"), ("DELETE", charge + "/{chargeId}"),
        ("GET", "/recurring/v3/charges/{chargeId}"),
        ("POST", charge + "/{chargeId}/capture"), ("POST", charge + "/{chargeId}/refund")), "production")
    rc = [replace(t, share=1.0) if t.env == "test" and t.method == "POST" and t.path in (
        "/recurring/v3/agreements", charge) else t for t in rc]
    rc.append(Target("recurring-3.1.2.yaml", "PATCH", agreement + "/accept", "test"))
    # QR (issue 18): every operation, merchant keys + Merchant-Serial-Number in test, partner keys in production.
    qr_ops = (("POST", "/v1"), ("POST", "/v1/merchant-redirect"), ("GET", "/v1/merchant-redirect"),
              ("GET", "/v1/merchant-redirect/{id}"), ("PUT", "/v1/merchant-redirect/{id}"),
              ("DELETE", "/v1/merchant-redirect/{id}"), ("GET", "/v1/merchant-callback"),
              ("GET", "/v1/merchant-callback/{merchantQrId}"), ("PUT", "/v1/merchant-callback/{merchantQrId}"),
              ("DELETE", "/v1/merchant-callback/{merchantQrId}"), ("PUT", "/v1/merchant-callback/mobilepay/{beaconId}"),
              ("POST", "/v1/exchange"), ("POST", "/v1/exchange/customer"))
    qr = _both("qr.yaml", qr_ops, "test", "/qr")
    # Order Management (issue 18): every operation, partner keys + Merchant-Serial-Number in production, merchant
    # keys in test.
    om = _both("order-management.yaml", (
        ("POST", "/v1/images"), ("PUT", "/v2/{paymentType}/categories/{orderId}"),
        ("POST", "/v2/{paymentType}/receipts/{orderId}"), ("GET", "/v2/{paymentType}/{orderId}"),
        ("POST", "/v3/categories"), ("GET", "/v3/categories"), ("GET", "/v3/categories/{categoryId}"),
        ("DELETE", "/v3/categories/{categoryId}"), ("PUT", "/v1/orders/{transactionId}"),
        ("GET", "/v1/orders/{transactionId}"), ("POST", "/v1/receipts/{transactionId}"),
        ("GET", "/v1/receipts/{transactionId}")), "production", "/order-management")
    # Checkout v3: the four operations with partner keys + MSN in production, and with merchant keys in test (the
    # keys themselves as headers, no token).
    session = "/checkout/v3/session/{reference}"
    ck = _both("checkout-swagger-id.yaml", (("POST", "/checkout/v3/session"), ("GET", session), ("PATCH", session),
                                            ("POST", session + "/expire")), "production")
    return ep + mg + rp + wh + tk + rc + qr + om + ck


TARGETS = _targets()

# ---------------------------------------------------------------------------------------------
# The accounting: every operation of every bundled spec is fuzzed, or listed here with why it is not.
# tests/evidence/test_fuzz_schemathesis.py::test_every_operation_the_sandbox_serves_is_fuzzed computes it from the
# specs and the policy table (sandbox/gateway/policy.py ROUTES): an operation the sandbox has a route for, in an
# environment the route serves, that no target fuzzes, fails it.
# ---------------------------------------------------------------------------------------------
LOGIN_PREFIX = "/access-management-1.0/access"
#: Login and Userinfo run in their own files with their own hooks (tests/login/test_login_fuzz.py,
#: tests/userinfo/test_userinfo_fuzz.py); their targets are defined here so that one test accounts for them all.
#: Login: the sales unit's own client (Basic) in test, partner keys' token + Merchant-Serial-Number in production.
#: Login's userinfo is in both the Login and the Userinfo spec: fuzzed from each.
LOGIN_TARGETS = _both("login-swagger-id.yaml", (
    ("GET", LOGIN_PREFIX + "/.well-known/openid-configuration"), ("GET", LOGIN_PREFIX + "/.well-known/jwks.json"),
    ("POST", LOGIN_PREFIX + "/oauth2/token"), ("POST", "/vipps-login-ciba/api/backchannel/authentication"),
    ("POST", "/vipps-login-ciba/api/v1/user-exists"), ("GET", "/vipps-userinfo-api/userinfo/"),
    ("GET", LOGIN_PREFIX + "/oauth2/auth")), "test") + _both(
    "userinfo-2.0.3.yaml", (("GET", "/vipps-userinfo-api/userinfo/"),), "test")
USERINFO_TARGETS = [Target("userinfo-2.0.3.yaml", "GET", "/vipps-userinfo-api/userinfo/{sub}", env)
                    for env in ("test", "production")]
FUZZED = TARGETS + LOGIN_TARGETS + USERINFO_TARGETS

#: Bundled specs the sandbox does not follow: an older copy of a spec it does (every operation of the older one is
#: an operation of the newer, which the test checks), kept for the record (sandbox/specs/SOURCES.md).
SUPERSEDED = {
    # ePayment 1.4.1 (2024-02); the sandbox follows 1.8.1. (Nor could it be fuzzed offline as it is: its receipt
    # schema is a $ref to raw.githubusercontent.com, Order Management 2.3.24's swagger.yaml.)
    "epayment.yaml": "epayment-1.8.1.yaml",
    "access-token.yaml": "access-token-2024.yaml",  # 2023-11; the 2024 copy documents /miami/v1/token as served
    "login-1.1.0-2023.yaml": "login-swagger-id.yaml",  # 4 of the 2025 publication's 7 operations
}
#: Operations of a followed spec that the sandbox has no route for, and why.
_NOT_LIVE = "only in Management 1.1.6, an 'idea/proposal' there and gone from the live 2.0.9 (reference, Management)"
NOT_SERVED: dict[tuple[str, str], str] = {
    ("epayment-1.8.1.yaml", "POST /merchant-dynamic-shipping-callback"):
        "a callback that the merchant serves and Vipps calls, not an operation of Vipps",
    **{("management.yaml", operation): _NOT_LIVE for operation in (
        "GET /management/v1/partners/whoami", "GET /management/v1/merchants",
        "GET /management/v1/merchants/{scheme}/{id}/contracts", "PATCH /management/v1/sales-units/{msn}",
        "GET /management/v1/api-quality/sales-units/{msn}")},
    ("management.yaml", "GET /management/v1/product-orders/{product-order-id}"):
        "replaced by 2.0.9's GET /management/v2/product-orders/{productOrderId}/details (reference, Management)",
    ("report.yaml", "GET /report/v1/ledgertransactions"):
        "deprecated, replaced by the v2 ledger endpoints (reference, Report)",
}
#: Routes of the APIs (not the control plane) that no followed spec documents: nothing to fuzz them from.
ROUTES_WITHOUT_SPEC: dict[str, str] = {
    "management.product_orders.list": "Management 2.0.9, which is not bundled (SOURCES.md: known but not saved)",
    "management.product_orders.details": "Management 2.0.9, which is not bundled (SOURCES.md: known but not saved)",
    "login.userinfo_no_slash": "Login's userinfo as the discovery document spells it; the specs' spelling (with "
                               "the slash) is fuzzed",
    **{name: "no Donations spec is bundled (SOURCES.md: no copy found in any indexed repository)"
       for name in ("donations.payments", "donations.agreements.get", "donations.agreements.stop")},
}
#: Targets whose positive cases cannot succeed, and why; every other target must get at least one 2xx in the
#: positive phase (the hooks' real ids and credentials reach the domain logic, not only the 401s and 404s).
NO_SUCCESS: dict[tuple[str, str], str] = {
    ("access-token-2024:POST /miami/v1/token", "test"):
        "management and accounting keys exist in production only: the test environment answers its documented 401",
}

# ---------------------------------------------------------------------------------------------
# Where the official spec is wrong (see the reference, ../shared/reference/vipps-apis.md), and only there,
# a check is skipped: (spec, METHOD path, status or None for any, check name) -> why.
# ---------------------------------------------------------------------------------------------
SPEC_BUGS: dict[tuple[str, str, int | None, str], str] = {
    # 1.8.1 declares ModificationResponse (capture/refund/cancel 200) as application/problem+json;
    # the real API (and the reference) answer application/json.
    **{("epayment-1.8.1.yaml", f"POST /v1/payments/{{Reference}}/{op}", 200, "content_type_conformance"):
       "1.8.1 declares its ModificationResponse as application/problem+json" for op in ("capture", "refund", "cancel")},
    # PaymentEvent's `required` names `paymentAction`, but the property is `name`.
    ("epayment-1.8.1.yaml", "GET /v1/payments/{Reference}/events", 200, "response_schema_conformance"):
        "PaymentEvent requires `paymentAction`; the property is `name`",
    # Force approve documents only 200, though the docs list its errors (10010-10070, a bad token or phone number).
    ("epayment-1.8.1.yaml", "POST /v1/test/payments/{Reference}/approve", 400, "status_code_conformance"):
        "force approve documents no error response",
    # 1.1.6's PricePackage.productType lists ePayment/ePaymentCustomerPresent/checkout; the live 2.0.9 API
    # answers a ProductType (PAYMENT_INTEGRATION, ...). The test client checks it against 2.0.9 instead
    # (sandbox/apis/management/response_schemas.py).
    ("management.yaml", "GET /management/v1/partners/price-packages", 200, "response_schema_conformance"):
        "1.1.6 PricePackage.productType predates the 2.0.9 ProductType the live API answers",
    # The 2024 spec types /miami/v1/token's expires_in as a string; the docs show the number 900.
    ("access-token-2024.yaml", "POST /miami/v1/token", 200, "response_schema_conformance"):
        "TokenResponse types expires_in as a string; the docs and the real endpoint give the number 900",
    # Recurring 3.1.2: the agreement and charge bodies break the spec's own schemas (RECURRING_BUGS, each proven by
    # test_each_recurring_spec_bug_is_real); the test client's check, run on every success body, reads them as meant.
    **{("recurring-3.1.2.yaml", operation, 200, "response_schema_conformance"): why for operation, why in (
        ("GET /recurring/v3/agreements", "pricing-oneof, pricing-discriminator, campaign-oneof"),
        ("GET /recurring/v3/agreements/{agreementId}", "pricing-oneof, pricing-discriminator, campaign-oneof"),
        ("GET /recurring/v3/agreements/{agreementId}/charges", "transaction-id-null, charge-id-length"),
        ("GET /recurring/v3/agreements/{agreementId}/charges/{chargeId}", "transaction-id-null, charge-id-length"),
        ("GET /recurring/v3/charges/{chargeId}", "transaction-id-null, charge-id-length"))},
    ("recurring-3.1.2.yaml", "POST /recurring/v3/agreements/{agreementId}/charges", 201, "response_schema_conformance"):
        "charge-id-length",
    ("recurring-3.1.2.yaml", "GET /recurring/v3/agreements/{agreementId}/charges", 400, "status_code_conformance"):
        "continuation-token-400",
    **{("recurring-3.1.2.yaml", "PATCH /recurring/v3/agreements/{agreementId}/accept", 204, check): "accept-204-body"
       for check in ("content_type_conformance", "response_schema_conformance")},
}

# The Recurring 3.1.2 spec's bugs, by name (the SPEC_BUGS reasons above name them). Each is proven on a real response
# of the sandbox by tests/evidence/test_fuzz_schemathesis.py::test_each_spec_bug_is_real (the skipped check fails
# there) and the test client's check (sandbox/apis/recurring/response_schemas.py) passes on the same body.
RECURRING_BUGS = {
    "pricing-oneof": "PricingRequestV3/PricingResponseV3 are oneOfs whose FLEXIBLE branch requires only type and "
                     "currency: every LEGACY or VARIABLE pricing matches two branches (and no generator can build a "
                     "request's pricing)",
    "pricing-discriminator": "PricingResponseV3's discriminator on `type` has no mapping, so by OpenAPI its values "
                             "are the schema names: LEGACY matches none of them",
    "campaign-oneof": "campaignResponseV3's price and legacy campaigns require the same fields (period a superset): "
                      "every price or period campaign fails the oneOf",
    "transaction-id-null": "ChargeResponseV3 requires a string transactionId that its own description says "
                           "'contains null until the status has reached DUE'",
    "charge-id-length": "ChargeReference.chargeId and ChargeResponseV3.id have maxLength 15, yet an orderId of up to "
                        "64 characters becomes the charge id",
    "interval-required": "AgreementResponseV3 requires `interval`, yet DraftAgreementV3 allows an agreement without "
                         "one (pay per use): the sandbox answers {\"text\": \"pay per use\"}",
    "continuation-token-400": "GET charges documents only 200 and 404, yet a Continuation-Token that is unknown or "
                              "expired ('short-lived', its own description) can only be refused: 400",
    "accept-204-body": "force accept's 204 declares an application/json object body; a 204 has no body",
}


#: Login (login-swagger-id.yaml): (spec, operation, status) -> why the status check is skipped there: statuses
#: the docs give and the spec leaves out. Each is proven by test_login_fuzz.py::test_each_login_spec_bug_is_real.
_LOGIN = "login-swagger-id.yaml"
LOGIN_SPEC_BUGS: dict[tuple[str, str, int], str] = {
    (_LOGIN, "POST /access-management-1.0/access/oauth2/token", 400):
        "documents only 200/401/500, yet RFC 6749 5.2 invalid_grant/invalid_request are 400, and the docs' CIBA "
        "polling answers authorization_pending with HTTP 400 (reference 3e)",
    (_LOGIN, "POST /vipps-login-ciba/api/backchannel/authentication", 400):
        "documents only 200, yet the docs list invalid_user and a binding_message pattern (reference 3e)",
    (_LOGIN, "POST /vipps-login-ciba/api/backchannel/authentication", 401):
        "documents only 200, yet it takes Basic credentials (its own security section)",
    (_LOGIN, "POST /vipps-login-ciba/api/backchannel/authentication", 429):
        "documents only 200, yet the docs answer 429 when too many logins are started for the same user "
        "(docs/reference/fidelity.md, CIBA)",
    (_LOGIN, "POST /vipps-login-ciba/api/v1/user-exists", 400): "documents only 200, yet login_hint is required",
    (_LOGIN, "POST /vipps-login-ciba/api/v1/user-exists", 401):
        "documents only 200, yet it takes Basic credentials (its own security section)",
}


def spec_bug(target: Target, status: int, check: str) -> str | None:
    key = f"{target.method} {target.path}"
    return SPEC_BUGS.get((target.spec, key, status, check)) or SPEC_BUGS.get((target.spec, key, None, check))


class ThreadedSandbox:
    """RunningSandbox on free loopback ports, served by an event loop in a daemon thread."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(port=0, prod_port=0)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.running: RunningSandbox | None = None

    def start(self) -> ThreadedSandbox:
        self.thread.start()
        self.running = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> RunningSandbox:
        running = RunningSandbox(self.settings)
        await running.start()
        return running

    def stop(self) -> None:
        if self.running is not None:
            asyncio.run_coroutine_threadsafe(self.running.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def world(self) -> World:
        return self.running.app[RUNTIME].world

    def url(self, env: str) -> str:
        return self.running.test_url if env == "test" else self.running.prod_url


@dataclass
class Credentials:
    """Per API: the key set, its token headers, and real ids for the path parameters."""

    sandbox: ThreadedSandbox
    http: requests.Session = field(default_factory=requests.Session)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    references: list[str] = field(default_factory=list)
    counter: itertools.count = field(default_factory=itertools.count)
    positive: bool = True  # the generation mode of the cases being run (run_target sets it)

    def key(self, type_: str, env: str, role: str | None = None, msn: str | None = None) -> dict:
        world = self.sandbox.world
        owner = next(p.id for p in world.partners.values() if p.role == role) if role else None
        from sandbox.core.model import Env, KeyType

        rows = [r for r in keyset_rows(world, KeyType(type_), Env(env), msn) if owner in (None, r["owner"])]
        return rows[0]

    def msn(self, role: str) -> str:
        return next(u.msn for u in self.sandbox.world.sales_units.values() if u.role == role)

    def token_headers(self, keyset: dict, msn: str | None = None) -> dict[str, str]:
        env = keyset["environment"]
        if keyset["type"] in ("management", "accounting"):
            basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
            reply = self.http.post(self.sandbox.url(env) + "/miami/v1/token", data="grant_type=client_credentials",
                                   headers={"Authorization": f"Basic {basic}",
                                            "Content-Type": "application/x-www-form-urlencoded"})
            headers = {"Authorization": "Bearer " + reply.json()["access_token"]}
        else:
            reply = self.http.post(self.sandbox.url(env) + "/accesstoken/get", headers={
                "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
            headers = {"Authorization": "Bearer " + reply.json()["access_token"],
                       "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
        if msn is not None:
            headers["Merchant-Serial-Number"] = msn
        return headers

    def prepare(self) -> Credentials:
        self.shop = self.msn("premium-shop-1")
        self.partner = self.key("partner", "production", role="premium")
        self.merchant_test = self.key("merchant", "test", msn=self.shop)
        self.headers["epayment"] = self.headers["webhooks"] = self.token_headers(self.partner, self.shop)
        self.headers["epayment-test"] = self.token_headers(self.merchant_test)
        self.headers["webhooks-test"] = self.token_headers(self.merchant_test, self.shop)
        self.management_keys = self.key("management", "production", role="basic")
        self.headers["management"] = self.token_headers(self.management_keys)
        self.headers["report"] = self.token_headers(self.key("accounting", "production", role="accountant"))
        self.test_references: list[str] = []
        for env, pool, size in (("production", self.references, 12), ("test", self.test_references, 4)):
            for i in range(size):  # authorized payments, a third of them captured in part
                reference = f"fuzz-pool-{env}-{i:04d}"
                self.authorized(env, reference)
                if i % 3 == 0:
                    self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments/{reference}/capture",
                                           json={"modificationAmount": {"currency": "NOK", "value": 500}},
                                           headers=self.epayment_headers(env) | {"Idempotency-Key": f"pool-{i}"}))
                pool.append(reference)
        self.prepare_recurring()
        return self

    # -- ePayment: partner keys + MSN in production, merchant keys (+ their own MSN) in test ------------------------
    def epayment_headers(self, env: str) -> dict[str, str]:
        if env == "production":
            return dict(self.headers["epayment"])
        return self.headers["epayment-test"] | {"Merchant-Serial-Number": self.shop}

    def authorized(self, env: str, reference: str, captured: int = 0) -> str:
        """A payment the user approved (and, if `captured`, captured that much of)."""
        self.create(env, reference, self.epayment_headers(env))
        self.ok(self.http.post(f"{self.sandbox.url(env)}/_sandbox/payments/{self.shop}/{reference}/approve"))
        if captured:
            self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments/{reference}/capture",
                                   json={"modificationAmount": {"currency": "NOK", "value": captured}},
                                   headers=self.epayment_headers(env) | {"Idempotency-Key": "cap-" + reference}))
        return reference

    def apply_epayment(self, target: Target, case, n: int) -> dict[str, str]:
        """Real references (a fresh payment where the call needs one in a given state); for half of the positive
        cases, a unique Idempotency-Key and an amount the payment allows (NOK, within it) so they succeed."""
        params = case.path_parameters if case.path_parameters is not None else {}
        env, headers = target.env, self.epayment_headers(target.env)
        if target.path.endswith("/approve"):  # force approve: a fresh payment each time
            reference = f"fuzz-approve-{n:06d}"
            self.create("test", reference, self.headers["epayment-test"])
            params["Reference"] = reference
            return headers
        operation = target.path.rsplit("/", 1)[1]
        real = self.positive and n % 2 == 0
        if "Reference" in params:
            pool = self.references if env == "production" else self.test_references
            params["Reference"] = pool[n % len(pool)]
            if real and operation in ("capture", "cancel", "refund"):
                params["Reference"] = self.authorized(env, f"fuzz-{operation}-{env}-{n:06d}",
                                                      captured=1000 if operation == "refund" else 0)
        body = case.body if isinstance(case.body, dict) else None
        if real and body is not None and isinstance(body.get("modificationAmount"), dict):
            body["modificationAmount"] = {"currency": "NOK", "value": 100}
        if real and body is not None and target.path == "/v1/payments":
            body |= {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
                     "reference": f"fuzz-create-{env}-{n:06d}", "userFlow": "WEB_REDIRECT",
                     "returnUrl": "https://example.com/back"}
        if real and target.method == "POST":
            headers["Idempotency-Key"] = f"fuzz-{env}-{n}"
        return headers

    # -- Recurring: a sales unit that allows it, partner keys (production) and merchant keys (test), real ids ----
    def prepare_recurring(self) -> None:
        world = self.sandbox.world
        partner = next(p.id for p in world.partners.values() if p.role == "premium")
        self.recurring_msn = next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                                  if u.partner_id == partner and u.market == "NO"
                                  and u.configuration.get("recurringAllowed") and world.is_active(u.msn))
        self.headers["recurring"] = self.token_headers(self.partner, self.recurring_msn)
        self.headers["recurring-test"] = self.token_headers(self.key("merchant", "test", msn=self.recurring_msn),
                                                            self.recurring_msn)
        # ACTIVE agreements, each with a PENDING, a RESERVED and a CHARGED charge (forced by the control plane).
        # Both environments: 4 agreements in production, 2 in test (self.charges is production's, as before).
        self.agreements: list[str] = []
        self.test_agreements: list[str] = []
        self.charges: dict[str, list[tuple[str, str]]] = {"PENDING": [], "RESERVED": [], "CHARGED": []}
        self.test_charges: dict[str, list[tuple[str, str]]] = {"PENDING": [], "RESERVED": [], "CHARGED": []}
        for env, agreements, charges, count in (("production", self.agreements, self.charges, 4),
                                                ("test", self.test_agreements, self.test_charges, 2)):
            for _ in range(count):
                agreement_id = self.active_agreement(env)
                agreements.append(agreement_id)
                for status in charges:
                    charges[status].append((agreement_id, self.recurring_charge(agreement_id, status, env)))

    def recurring_call(self, method: str, path: str, body: object = None, env: str = "production") -> requests.Response:
        headers = self.headers["recurring" if env == "production" else "recurring-test"] | {
            "Idempotency-Key": f"fuzz-prep-{next(self.counter)}"}
        return self.ok(self.http.request(method, f"{self.sandbox.url(env)}/recurring/v3{path}", json=body,
                                         headers=headers))

    def draft_agreement(self, env: str = "production") -> str:
        return self.recurring_call("POST", "/agreements", {
            "pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
            "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
            "merchantAgreementUrl": "https://shop.example.com/a", "productName": "Fuzz News"},
            env).json()["agreementId"]

    def active_agreement(self, env: str = "production") -> str:
        agreement_id = self.draft_agreement(env)
        self.ok(self.http.post(f"{self.sandbox.url(env)}/_sandbox/recurring/{self.recurring_msn}"
                               f"/agreements/{agreement_id}/approve"))
        return agreement_id

    def due(self, days: int = 5) -> str:
        return (self.sandbox.running.app[RUNTIME].clock.now().date() + timedelta(days=days)).isoformat()

    def recurring_charge(self, agreement_id: str, status: str = "PENDING", env: str = "production") -> str:
        kind = "RESERVE_CAPTURE" if status == "RESERVED" else "DIRECT_CAPTURE"
        # small amounts, due in one of 20 months: the 5x-the-price budget of an interval lasts the whole run
        charge_id = self.recurring_call("POST", f"/agreements/{agreement_id}/charges", {
            "amount": 100, "description": "Fuzz month", "due": self.due(5 + 31 * (next(self.counter) % 20)),
            "retryDays": 2,
            "transactionType": kind}, env).json()["chargeId"]
        if status != "PENDING":
            self.ok(self.http.post(f"{self.sandbox.url(env)}/_sandbox/recurring/{self.recurring_msn}"
                                   f"/agreements/{agreement_id}/charges/{charge_id}/outcome", json={"outcome": status}))
        return charge_id

    def apply_recurring(self, target: Target, case, n: int) -> dict[str, str]:
        """Real ids: a pool agreement, or a fresh one where the call changes it; the charge in the state the call
        needs (a fresh one where it changes it). Unique idempotency keys and the right Content-Type for positive
        cases; negative ones keep whatever was generated there."""
        params = case.path_parameters if case.path_parameters is not None else {}
        path, method, env = target.path, target.method, target.env
        agreements = self.agreements if env == "production" else self.test_agreements
        charges = self.charges if env == "production" else self.test_charges
        if path.endswith("/accept"):  # force accept: a fresh PENDING draft of the test environment
            params["agreementId"] = self.draft_agreement("test")
        elif method == "PATCH":  # an update may stop it: a fresh ACTIVE agreement
            params["agreementId"] = self.active_agreement(env)
        elif "agreementId" in params:
            params["agreementId"] = agreements[n % len(agreements)]
        if "chargeId" in params:
            if method == "GET":
                pool = [c for of_status in charges.values() for c in of_status]
                agreement_id, charge_id = pool[n % len(pool)]
            else:  # cancel, capture, refund: a fresh charge in the state it acts on
                status = {"DELETE": "PENDING", "capture": "RESERVED", "refund": "CHARGED"}[
                    "DELETE" if method == "DELETE" else path.rsplit("/", 1)[1]]
                agreement_id = agreements[n % len(agreements)]
                charge_id = self.recurring_charge(agreement_id, status, env)
            params["chargeId"] = charge_id
            if "agreementId" in params:
                params["agreementId"] = agreement_id
        if n % 2 == 0 and isinstance(case.body, dict) and "due" in case.body and path.endswith("/charges"):
            case.body["due"] = self.due(7)  # half of the charges due on a date the rules allow
        if n % 2 == 0 and path.endswith(("/capture", "/refund")) and isinstance(case.body, dict):
            case.body["amount"] = 50  # half of them within the charge's 100
        if n % 2 == 0 and path.endswith("/accept") and isinstance(case.body, dict):
            case.body["phoneNumber"] = "4791234567"  # half of them a well-formed number, so the user accepts
        if self.positive and n % 2 == 0 and case.headers and "Continuation-Token" in case.headers:
            del case.headers["Continuation-Token"]  # half of the listings from the start (one token is unknown)
        if n % 2 == 0 and isinstance(case.body, list):  # half of a batch for real agreements
            for i, item in enumerate(case.body):
                if isinstance(item, dict) and "agreementId" in item:
                    item["agreementId"] = agreements[i % len(agreements)]
                    if "due" in item:
                        item["due"] = self.due(7)
        headers = dict(self.headers["recurring" if target.env == "production" else "recurring-test"])
        if self.positive:
            headers["Idempotency-Key"] = f"fuzz-{n}"
            headers["Content-Type"] = "application/json"
        return headers

    # -- QR and Order Management (issue 18): real codes, tokens, orders, images and categories by hook -------------
    def qr_headers(self, env: str) -> dict[str, str]:
        key = f"qr-{env}"
        if key not in self.headers:
            keyset = self.merchant_test if env == "test" else self.partner
            self.headers[key] = self.token_headers(keyset, self.shop)
        return self.headers[key]

    def qr_call(self, method: str, path: str, body: object = None, env: str = "test",
                accept: str = "image/png") -> requests.Response:
        return self.ok(self.http.request(method, f"{self.sandbox.url(env)}/qr/v1{path}", json=body,
                                         headers=self.qr_headers(env) | {"Accept": accept}))

    def apply_qr(self, target: Target, case, n: int) -> dict[str, str]:
        """Half of the cases name a code that exists (a fresh one where the call changes or deletes it), a live
        customer token, or a personal QR; the others keep what was generated."""
        params = case.path_parameters if case.path_parameters is not None else {}
        real = n % 2 == 0
        if real and "id" in params:
            params["id"] = f"fuzz-redirect-{n}"
            self.qr_call("POST", "/merchant-redirect", {"id": params["id"], "redirectUrl": "https://example.com/f"},
                         target.env)
        if real and "merchantQrId" in params:
            params["merchantQrId"] = f"fuzz-till-{n}"
            self.qr_call("PUT", f"/merchant-callback/{params['merchantQrId']}", {"locationDescription": "Till"},
                         target.env)
        if real and target.path.endswith("/exchange/customer") and isinstance(case.body, dict):
            from sandbox.core.model import Env

            runtime = self.sandbox.running.app[RUNTIME]
            token = runtime.customer_tokens.issue(Env(target.env), self.shop, "4791234567", runtime.clock.time())
            case.body["customer"] = {"customerToken": token}
        if real and target.path == "/v1" and isinstance(case.body, dict):  # a real payment's landing page
            reference = f"fuzz-qr-{target.env}-{n:06d}"
            case.body["url"] = self.create(target.env, reference, self.epayment_headers(target.env))["redirectUrl"]
        if real and target.path.endswith("/exchange") and isinstance(case.body, dict):
            case.body["qrCode"] = "https://qr.vipps.no/28/2/01/031/4712345678?v=1"
        return dict(self.qr_headers(target.env))

    def om_call(self, method: str, path: str, body: object = None, env: str = "production") -> requests.Response:
        return self.ok(self.http.request(method, f"{self.sandbox.url(env)}/order-management{path}",
                                         json=body, headers=self.qr_headers(env)))

    def om_receipt_order(self, n: int, env: str = "production") -> str:
        order_id = f"fuzz-receipt-{n}"
        self.om_call("POST", f"/v2/ecom/receipts/{order_id}", RECEIPT, env)
        return order_id

    def om_image(self, n: int, env: str = "production") -> str:
        import struct
        import zlib

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 200, 8, 0, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(b"\x00\xff" * 200)) + chunk(b"IEND", b""))
        self.om_png = base64.b64encode(png).decode()
        image_id = f"fuzz-image-{n}"
        self.om_call("POST", "/v1/images", {"imageId": image_id, "src": self.om_png, "type": "base64"}, env)
        return image_id

    def apply_order_management(self, target: Target, case, n: int) -> dict[str, str]:
        """Real orders, images and categories for half of the cases; for the reads that document only 200 (v1
        receipts) always. Positive image uploads get a real PNG under a fresh id (the operation documents only
        200, though its own description sets the rules)."""
        params = case.path_parameters if case.path_parameters is not None else {}
        real, env = n % 2 == 0, target.env
        if target.path == "/v1/receipts/{transactionId}" and target.method == "GET":
            params["transactionId"] = self.om_receipt_order(n, env)
        elif real and "orderId" in params and target.method == "GET":
            params["orderId"], params["paymentType"] = self.om_receipt_order(n, env), "ECOM"
        elif real and "transactionId" in params and target.method == "GET":
            params["transactionId"] = f"fuzz-v1-{n}"
            self.om_call("PUT", f"/v1/orders/fuzz-v1-{n}", {"category": "GENERAL", "orderDetailsUrl": "https://e.x/o"},
                         env)
        if "categoryId" in params and real:
            order = self.om_receipt_order(n, env)
            params["categoryId"] = self.om_call("POST", "/v3/categories", {
                "orderId": order, "paymentType": "ECOM", "type": "RECEIPT", "url": "https://e.x/r"},
                env).json()["categoryId"]
        if isinstance(case.body, dict) and case.body.get("imageId") is not None and target.path != "/v1/images":
            if real or self.positive:
                case.body["imageId"] = self.om_image(n, env)
        if self.positive and target.path == "/v1/images":  # its body is optional in the spec: always sent here
            self.om_image(n, env)
            case.body = {"imageId": f"fuzz-image-new-{n}", "src": self.om_png, "type": "base64"}
        if self.positive and real and target.path == "/v1/receipts/{transactionId}" and target.method == "POST":
            case.body = (case.body if isinstance(case.body, dict) else {}) | RECEIPT  # half of them well-formed
            params["transactionId"] = f"fuzz-v1-receipt-{n}"
        if self.positive and real and target.path == "/v2/{paymentType}/receipts/{orderId}" \
                and target.method == "POST":  # half of them well-formed, under a fresh order id
            case.body = (case.body if isinstance(case.body, dict) else {}) | RECEIPT
            params["orderId"], params["paymentType"] = f"fuzz-v2-receipt-{target.env}-{n}", "ECOM"
        if self.positive and target.path == "/v1/orders/{transactionId}" and not isinstance(case.body, dict):
            case.body = {"category": "GENERAL", "orderDetailsUrl": "https://example.com/o"}  # documents only 200
        return dict(self.qr_headers(env))

    @staticmethod
    def ok(reply: requests.Response) -> requests.Response:
        assert reply.status_code < 300, reply.text
        return reply

    def create(self, env: str, reference: str, headers: dict) -> dict:
        return self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments", headers=headers | {
            "Idempotency-Key": "create-" + reference}, json={
            "amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"})).json()

    def apply_checkout(self, target: Target, case, n: int) -> dict[str, str]:
        """The keys themselves as headers (partner keys + MSN in production, merchant keys in test); for the
        operations on one session, a fresh session each time (PATCH and expire change it); half of the positive
        creations with a unique reference, real URLs and an amount in NOK, so they succeed."""
        params = case.path_parameters if case.path_parameters is not None else {}
        if self.positive and n % 2 == 0 and "reference" not in params and isinstance(case.body, dict):
            case.body |= {"reference": f"fuzz-chk-new-{target.env}-{n:06d}", "type": "PAYMENT",
                          "merchantInfo": {"callbackUrl": "https://example.com/cb", "returnUrl": "https://e.x/r",
                                           "callbackAuthorizationToken": "fuzz"},
                          "transaction": {"amount": {"currency": "NOK", "value": 1000},
                                          "paymentDescription": "Fuzz"}}
        keyset = self.partner if target.env == "production" else self.merchant_test
        headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                   "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"], "Merchant-Serial-Number": self.shop}
        if "reference" in params:
            reference = f"fuzz-chk-{target.env}-{n:06d}"
            self.ok(self.http.post(f"{self.sandbox.url(target.env)}/checkout/v3/session", headers=headers, json={
                "type": "PAYMENT", "reference": reference,
                "merchantInfo": {"callbackUrl": "https://example.com/cb", "returnUrl": "https://example.com/r",
                                 "callbackAuthorizationToken": "fuzz"},
                "transaction": {"amount": {"currency": "NOK", "value": 1000}, "paymentDescription": "Fuzz"}}))
            params["reference"] = reference
        return headers

    def product_order(self, n: int) -> str:
        reply = self.http.post(f"{self.sandbox.url('production')}/management/v1/product-orders",
                               headers=self.headers["management"] | {"Idempotency-Key": f"fuzz-po-{n}"},
                               json={"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"},
                                     "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Fuzz Shop"})
        return self.ok(reply).json()["prefilledOrderId"]

    def webhooks_headers(self, env: str) -> dict[str, str]:
        return dict(self.headers["webhooks" if env == "production" else "webhooks-test"])

    def register_webhook(self, env: str = "production") -> str:
        url, headers = f"{self.sandbox.url(env)}/webhooks/v1/webhooks", self.webhooks_headers(env)
        body = {"url": "https://example.com/hook", "events": ["epayments.payment.captured.v1"]}
        reply = self.http.post(url, headers=headers, json=body)
        if reply.status_code == 400:  # at most 25 per event: refused deletes left some behind, clear them
            self.clear_webhooks(env)
            reply = self.http.post(url, headers=headers, json=body)
        return self.ok(reply).json()["id"]

    def clear_webhooks(self, env: str) -> None:
        url, headers = f"{self.sandbox.url(env)}/webhooks/v1/webhooks", self.webhooks_headers(env)
        for hook in self.http.get(url, headers=headers).json()["webhooks"]:
            self.http.delete(f"{url}/{hook['id']}", headers=headers)

    # -- the hook: valid credentials and real ids, whatever schemathesis generated -------------------
    def apply(self, target: Target, case) -> dict[str, str]:
        """Fills real path ids into the case and returns the headers that replace generated ones."""
        n = next(self.counter)
        params = case.path_parameters if case.path_parameters is not None else {}
        api = target.spec.split(".")[0].split("-")[0]
        if api == "epayment":
            return self.apply_epayment(target, case, n)
        if api == "management":
            world = self.sandbox.world
            reach = sorted(world.reach(world.keys[self.management_keys["client_id"]]))
            msn = reach[n % len(reach)]
            if "msn" in params:
                params["msn"] = msn
            if "scheme" in params:
                merchant = world.merchants[world.sales_units[msn].merchant]
                params["scheme"], params["id"] = merchant.scheme, merchant.id
            if "product-order-id" in params and n % 2 == 0:  # half of them an order that exists
                params["product-order-id"] = self.product_order(n)
            headers = dict(self.headers["management"])
            if self.positive and n % 2 == 0 and target.method == "POST":  # half of the orders for a real business
                case.body = (case.body if isinstance(case.body, dict) else {}) | {
                    "businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"},
                    "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Fuzz Shop"}
                headers["Idempotency-Key"] = f"fuzz-po-new-{n}"
            if case.headers and "Merchant-Serial-Number" in case.headers:
                headers["Merchant-Serial-Number"] = msn
            return headers
        if api == "report":
            if "ledgerId" in params:
                params["ledgerId"] = ledger_id_for(self.shop)
            if "ledgerDate" in params and n % 2 == 0:  # half of them a real date, so reports get built
                day = self.sandbox.running.app[RUNTIME].clock.now().date()
                params["ledgerDate"] = (day - timedelta(days=n % 5)).isoformat()
            return dict(self.headers["report"])
        if api == "recurring":
            return self.apply_recurring(target, case, n)
        if api == "qr":
            return self.apply_qr(target, case, n)
        if api == "order":
            return self.apply_order_management(target, case, n)
        if api == "checkout":
            return self.apply_checkout(target, case, n)
        if api == "webhooks":
            if "id" in params:  # a registration that exists, so DELETE has something to delete
                params["id"] = self.register_webhook(target.env)
            if self.positive and n % 2 == 0 and target.method == "POST" and isinstance(case.body, dict):
                if n % 20 == 0:  # at most 25 registrations per event
                    self.clear_webhooks(target.env)
                case.body |= {"url": f"https://example.com/hook/{n}", "events": ["epayments.payment.captured.v1"]}
            return self.webhooks_headers(target.env)
        # the token endpoints: genuine keys of the environment
        if target.path == "/miami/v1/token":
            keyset = self.key("management", "production", role="basic")
            basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
            if target.env == "test":  # miami keys exist in production only: expect the documented 401
                return {"Authorization": f"Basic {basic}"}
            return {"Authorization": f"Basic {basic}"}
        keyset = self.merchant_test if target.env == "test" else self.partner
        return {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}


def load(spec: str):
    if not spec.startswith("recurring"):
        return schemathesis.openapi.from_path(SPECS / spec)
    raw = yaml.safe_load((SPECS / spec).read_text())
    # pricing-oneof: PricingRequestV3's branches all take any PricingTypeV3, so no generator can satisfy the oneOf
    # ("Nothing satisfies the branch ..."): for generating requests, each branch takes only its own type.
    schemas = raw["components"]["schemas"]
    for name, kind in (("LegacyPricingRequestV3", "LEGACY"), ("VariablePricingRequestV3", "VARIABLE"),
                       ("FlexiblePricingRequestV3", "FLEXIBLE")):
        schemas[name]["properties"]["type"] = {"type": "string", "enum": [kind]}
    return schemathesis.openapi.from_dict(raw)


def operation(schema, target: Target):
    return schema[target.path][target.method]


def run_target(creds: Credentials, schema, target: Target, examples: int, mode=None,
               samples: list | None = None, seed: int | None = None) -> dict:
    """Runs `examples` generated cases of one operation; returns status counts. Raises on a failed check."""
    from schemathesis import GenerationMode

    op = operation(schema, target)
    examples = target.examples(examples)
    base_url = creds.sandbox.url(target.env) + target.prefix
    statuses: dict[int, int] = {}

    creds.positive = mode is None or mode is GenerationMode.POSITIVE

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode or GenerationMode.POSITIVE))
    def run(case) -> None:
        headers = creds.apply(target, case)
        response = case.call(base_url=base_url, headers=headers, session=creds.http)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if samples is not None and response.status_code >= 400:
            samples.append((response.status_code, response.text[:300], case.body, case.query, case.path_parameters))
        checks = [c for c in CHECKS if not spec_bug(target, response.status_code, c.__name__)]
        if mode is not None and mode is not GenerationMode.POSITIVE:
            checks = [not_a_server_error]  # data that breaks the spec: never a 5xx (and the format check below)
        # Every refusal, positive or negative, in the API's own error format (or the gateway's), no traceback.
        if response.status_code >= 400:
            content_type = (response.headers.get("content-type") or [""])[0]
            wrong = error_format_problem(target.api, content_type, response.text)
            assert wrong is None, f"{wrong}: {response.status_code} {response.text[:500]}"
            assert "Traceback" not in response.text
        case.validate_response(response, checks=checks, headers=headers)
        # And every success body passes the test client's check (sandbox/apis/*/response_schemas.py), which is the
        # spec's schema with only its proven bugs read as the spec means them.
        if 200 <= response.status_code < 300:
            path = urlsplit(response.request.url).path
            wrong = [w for check in RESPONSE_CHECKS
                     for w in check(case.method, path, response.status_code, response.text)]
            assert not wrong, f"{case.method} {path} {response.status_code}: {wrong}"

    (run if seed is None else hypothesis_seed(seed)(run))()
    return statuses
