"""Schemathesis against the bundled official specs: a sandbox in a thread, credentials and real ids by hook.

Shared by tests/evidence/test_fuzz_schemathesis.py (bounded, in CI) and bench/fuzz_long.py (long runs).
Schemathesis speaks `requests` (blocking), so the sandbox runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import threading
from dataclasses import dataclass, field
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
from sandbox.gateway.policy import Api
from sandbox.server import RunningSandbox
from sandbox.testing import RESPONSE_CHECKS, keyset_rows

SPECS = Path(__file__).resolve().parents[2] / "sandbox" / "specs"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class Target:
    """One implemented operation of one bundled spec, and where the sandbox serves it."""

    spec: str
    method: str
    path: str
    env: str  # "test" or "production"
    prefix: str = ""  # the spec's server path (/epayment, /webhooks)

    @property
    def api(self) -> Api:
        name = self.spec.split(".")[0].split("-")[0]
        return {"access": Api.TOKEN, "order": Api.ORDER_MANAGEMENT}.get(name) or Api(name)

    @property
    def id(self) -> str:
        return f"{self.spec.split('.')[0]}:{self.method} {self.path}"


def _targets() -> list[Target]:
    ep = [Target("epayment-1.8.1.yaml", m, p, "production", "/epayment") for m, p in (
        ("POST", "/v1/payments"), ("GET", "/v1/payments/{Reference}"), ("GET", "/v1/payments/{Reference}/events"),
        ("POST", "/v1/payments/{Reference}/capture"), ("POST", "/v1/payments/{Reference}/refund"),
        ("POST", "/v1/payments/{Reference}/cancel"))]
    ep.append(Target("epayment-1.8.1.yaml", "POST", "/v1/test/payments/{Reference}/approve", "test", "/epayment"))
    # management.yaml is 1.1.6: only its live operations (the reference's 2.0.9 list) that the sandbox serves.
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
    wh = [Target("webhooks.yaml", m, p, "production", "/webhooks") for m, p in (
        ("GET", "/v1/webhooks"), ("POST", "/v1/webhooks"), ("DELETE", "/v1/webhooks/{id}"))]
    tk = [Target("access-token-2024.yaml", "POST", p, env) for p in ("/accesstoken/get", "/miami/v1/token")
          for env in ("test", "production")]
    # Recurring v3: partner keys + Merchant-Serial-Number in production; the test-only force accept, and the draft
    # and charge creation once more with merchant keys in test.
    agreement, charge = "/recurring/v3/agreements/{agreementId}", "/recurring/v3/agreements/{agreementId}/charges"
    rc = [Target("recurring-3.1.2.yaml", m, p, "production") for m, p in (
        ("GET", "/recurring/v3/agreements"), ("POST", "/recurring/v3/agreements"), ("GET", agreement),
        ("PATCH", agreement), ("GET", charge), ("POST", charge), ("POST", "/recurring/v3/agreements/charges"),
        ("GET", charge + "/{chargeId}"), ("DELETE", charge + "/{chargeId}"),
        ("GET", "/recurring/v3/charges/{chargeId}"),
        ("POST", charge + "/{chargeId}/capture"), ("POST", charge + "/{chargeId}/refund"))]
    rc += [Target("recurring-3.1.2.yaml", m, p, "test") for m, p in (
        ("PATCH", agreement + "/accept"), ("POST", "/recurring/v3/agreements"), ("POST", charge))]
    # QR (issue 18): every operation, merchant keys + Merchant-Serial-Number in test, partner keys in production.
    qr_ops = (("POST", "/v1"), ("POST", "/v1/merchant-redirect"), ("GET", "/v1/merchant-redirect"),
              ("GET", "/v1/merchant-redirect/{id}"), ("PUT", "/v1/merchant-redirect/{id}"),
              ("DELETE", "/v1/merchant-redirect/{id}"), ("GET", "/v1/merchant-callback"),
              ("GET", "/v1/merchant-callback/{merchantQrId}"), ("PUT", "/v1/merchant-callback/{merchantQrId}"),
              ("DELETE", "/v1/merchant-callback/{merchantQrId}"), ("PUT", "/v1/merchant-callback/mobilepay/{beaconId}"),
              ("POST", "/v1/exchange"), ("POST", "/v1/exchange/customer"))
    qr = [Target("qr.yaml", m, p, "test", "/qr") for m, p in qr_ops]
    qr += [Target("qr.yaml", m, p, "production", "/qr") for m, p in (("POST", "/v1/merchant-redirect"),
                                                                       ("GET", "/v1/merchant-callback"))]
    # Order Management (issue 18): every operation, partner keys + Merchant-Serial-Number in production.
    om = [Target("order-management.yaml", m, p, "production", "/order-management") for m, p in (
        ("POST", "/v1/images"), ("PUT", "/v2/{paymentType}/categories/{orderId}"),
        ("POST", "/v2/{paymentType}/receipts/{orderId}"), ("GET", "/v2/{paymentType}/{orderId}"),
        ("POST", "/v3/categories"), ("GET", "/v3/categories"), ("GET", "/v3/categories/{categoryId}"),
        ("DELETE", "/v3/categories/{categoryId}"), ("PUT", "/v1/orders/{transactionId}"),
        ("GET", "/v1/orders/{transactionId}"), ("POST", "/v1/receipts/{transactionId}"),
        ("GET", "/v1/receipts/{transactionId}"))]
    # Checkout v3: the four operations with partner keys + MSN in production, and with merchant keys in test.
    session = "/checkout/v3/session/{reference}"
    ck = [Target("checkout-swagger-id.yaml", m, p, env) for m, p in (
        ("POST", "/checkout/v3/session"), ("GET", session), ("PATCH", session), ("POST", session + "/expire"))
        for env in ("production", "test")]
    return ep + mg + rp + wh + tk + rc + qr + om + ck


TARGETS = _targets()

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
        self.management_keys = self.key("management", "production", role="basic")
        self.headers["management"] = self.token_headers(self.management_keys)
        self.headers["report"] = self.token_headers(self.key("accounting", "production", role="accountant"))
        for i in range(12):  # authorized payments, a third of them captured in part
            reference = f"fuzz-pool-{i:04d}"
            self.create("production", reference, self.headers["epayment"])
            self.ok(self.http.post(f"{self.sandbox.url('production')}/_sandbox/payments/{self.shop}/{reference}/approve"))
            if i % 3 == 0:
                self.ok(self.http.post(f"{self.sandbox.url('production')}/epayment/v1/payments/{reference}/capture",
                                       json={"modificationAmount": {"currency": "NOK", "value": 500}},
                                       headers=self.headers["epayment"] | {"Idempotency-Key": f"pool-{i}"}))
            self.references.append(reference)
        self.prepare_recurring()
        return self

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
        self.agreements: list[str] = []
        self.charges: dict[str, list[tuple[str, str]]] = {"PENDING": [], "RESERVED": [], "CHARGED": []}
        for _ in range(4):
            agreement_id = self.active_agreement()
            self.agreements.append(agreement_id)
            for status in self.charges:
                self.charges[status].append((agreement_id, self.recurring_charge(agreement_id, status)))
        self.test_agreements = [self.active_agreement("test") for _ in range(2)]

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

    def recurring_charge(self, agreement_id: str, status: str = "PENDING") -> str:
        kind = "RESERVE_CAPTURE" if status == "RESERVED" else "DIRECT_CAPTURE"
        # small amounts, due in one of 20 months: the 5x-the-price budget of an interval lasts the whole run
        charge_id = self.recurring_call("POST", f"/agreements/{agreement_id}/charges", {
            "amount": 100, "description": "Fuzz month", "due": self.due(5 + 31 * (next(self.counter) % 20)),
            "retryDays": 2,
            "transactionType": kind}).json()["chargeId"]
        if status != "PENDING":
            self.ok(self.http.post(f"{self.sandbox.url('production')}/_sandbox/recurring/{self.recurring_msn}"
                                   f"/agreements/{agreement_id}/charges/{charge_id}/outcome", json={"outcome": status}))
        return charge_id

    def apply_recurring(self, target: Target, case, n: int) -> dict[str, str]:
        """Real ids: a pool agreement, or a fresh one where the call changes it; the charge in the state the call
        needs (a fresh one where it changes it). Unique idempotency keys and the right Content-Type for positive
        cases; negative ones keep whatever was generated there."""
        params = case.path_parameters if case.path_parameters is not None else {}
        path, method = target.path, target.method
        if path.endswith("/accept"):  # force accept: a fresh PENDING draft of the test environment
            params["agreementId"] = self.draft_agreement("test")
        elif method == "PATCH":  # an update may stop it: a fresh ACTIVE agreement
            params["agreementId"] = self.active_agreement()
        elif "agreementId" in params:
            pool = self.agreements if target.env == "production" else self.test_agreements
            params["agreementId"] = pool[n % len(pool)]
        if "chargeId" in params:
            if method == "GET":
                pool = [c for charges in self.charges.values() for c in charges]
                agreement_id, charge_id = pool[n % len(pool)]
            else:  # cancel, capture, refund: a fresh charge in the state it acts on
                status = {"DELETE": "PENDING", "capture": "RESERVED", "refund": "CHARGED"}[
                    "DELETE" if method == "DELETE" else path.rsplit("/", 1)[1]]
                agreement_id = self.agreements[n % len(self.agreements)]
                charge_id = self.recurring_charge(agreement_id, status)
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
                    item["agreementId"] = self.agreements[i % len(self.agreements)]
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
        if real and target.path.endswith("/exchange") and isinstance(case.body, dict):
            case.body["qrCode"] = "https://qr.vipps.no/28/2/01/031/4712345678?v=1"
        return dict(self.qr_headers(target.env))

    def om_call(self, method: str, path: str, body: object = None) -> requests.Response:
        return self.ok(self.http.request(method, f"{self.sandbox.url('production')}/order-management{path}",
                                         json=body, headers=self.headers["webhooks"]))

    def om_receipt_order(self, n: int) -> str:
        order_id = f"fuzz-receipt-{n}"
        self.om_call("POST", f"/v2/ecom/receipts/{order_id}", {
            "orderLines": [{"name": "socks", "id": "1", "totalAmount": 1000, "totalAmountExcludingTax": 800,
                            "totalTaxAmount": 200, "taxRate": 2500}], "bottomLine": {"currency": "NOK"}})
        return order_id

    def om_image(self, n: int) -> str:
        import struct
        import zlib

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 200, 8, 0, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(b"\x00\xff" * 200)) + chunk(b"IEND", b""))
        self.om_png = base64.b64encode(png).decode()
        image_id = f"fuzz-image-{n}"
        self.om_call("POST", "/v1/images", {"imageId": image_id, "src": self.om_png, "type": "base64"})
        return image_id

    def apply_order_management(self, target: Target, case, n: int) -> dict[str, str]:
        """Real orders, images and categories for half of the cases; for the reads that document only 200 (v1
        receipts) always. Positive image uploads get a real PNG under a fresh id (the operation documents only
        200, though its own description sets the rules)."""
        params = case.path_parameters if case.path_parameters is not None else {}
        real = n % 2 == 0
        if target.path == "/v1/receipts/{transactionId}" and target.method == "GET":
            params["transactionId"] = self.om_receipt_order(n)
        elif real and "orderId" in params and target.method == "GET":
            params["orderId"], params["paymentType"] = self.om_receipt_order(n), "ECOM"
        elif real and "transactionId" in params and target.method == "GET":
            params["transactionId"] = f"fuzz-v1-{n}"
            self.om_call("PUT", f"/v1/orders/fuzz-v1-{n}", {"category": "GENERAL", "orderDetailsUrl": "https://e.x/o"})
        if "categoryId" in params and real:
            order = self.om_receipt_order(n)
            params["categoryId"] = self.om_call("POST", "/v3/categories", {
                "orderId": order, "paymentType": "ECOM", "type": "RECEIPT", "url": "https://e.x/r"}).json()["categoryId"]
        if isinstance(case.body, dict) and case.body.get("imageId") is not None and target.path != "/v1/images":
            if real or self.positive:
                case.body["imageId"] = self.om_image(n)
        if self.positive and target.path == "/v1/images":  # its body is optional in the spec: always sent here
            self.om_image(n)
            case.body = {"imageId": f"fuzz-image-new-{n}", "src": self.om_png, "type": "base64"}
        if self.positive and target.path == "/v1/orders/{transactionId}" and not isinstance(case.body, dict):
            case.body = {"category": "GENERAL", "orderDetailsUrl": "https://example.com/o"}  # documents only 200
        return dict(self.headers["webhooks"])

    @staticmethod
    def ok(reply: requests.Response) -> requests.Response:
        assert reply.status_code < 300, reply.text
        return reply

    def create(self, env: str, reference: str, headers: dict) -> None:
        self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments", headers=headers | {
            "Idempotency-Key": "create-" + reference}, json={
            "amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}))

    def apply_checkout(self, target: Target, params: dict, n: int) -> dict[str, str]:
        """The keys themselves as headers (partner keys + MSN in production, merchant keys in test); for the
        operations on one session, a fresh session each time (PATCH and expire change it)."""
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

    def register_webhook(self) -> str:
        url = f"{self.sandbox.url('production')}/webhooks/v1/webhooks"
        body = {"url": "https://example.com/hook", "events": ["epayments.payment.captured.v1"]}
        reply = self.http.post(url, headers=self.headers["webhooks"], json=body)
        if reply.status_code == 400:  # at most 25 per event: refused deletes left some behind, clear them
            for hook in self.http.get(url, headers=self.headers["webhooks"]).json()["webhooks"]:
                self.http.delete(f"{url}/{hook['id']}", headers=self.headers["webhooks"])
            reply = self.http.post(url, headers=self.headers["webhooks"], json=body)
        return self.ok(reply).json()["id"]

    # -- the hook: valid credentials and real ids, whatever schemathesis generated -------------------
    def apply(self, target: Target, case) -> dict[str, str]:
        """Fills real path ids into the case and returns the headers that replace generated ones."""
        n = next(self.counter)
        params = case.path_parameters if case.path_parameters is not None else {}
        api = target.spec.split(".")[0].split("-")[0]
        if api == "epayment" and target.env == "test":  # force approve: a fresh payment each time
            reference = f"fuzz-approve-{n:06d}"
            self.create("test", reference, self.headers["epayment-test"])
            params["Reference"] = reference
            return self.headers["epayment-test"] | {"Merchant-Serial-Number": self.shop}
        if api == "epayment":
            if "Reference" in params:
                params["Reference"] = self.references[n % len(self.references)]
            return dict(self.headers["epayment"])
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
            return self.apply_checkout(target, params, n)
        if api == "webhooks":
            if "id" in params:  # a registration that exists, so DELETE has something to delete
                params["id"] = self.register_webhook()
            return dict(self.headers["webhooks"])
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
