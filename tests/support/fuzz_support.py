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

import requests
import schemathesis
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
from sandbox.testing import keyset_rows

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
        return Api.TOKEN if name == "access" else Api(name)

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
    return ep + mg + rp + wh + tk


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
        return self

    @staticmethod
    def ok(reply: requests.Response) -> requests.Response:
        assert reply.status_code < 300, reply.text
        return reply

    def create(self, env: str, reference: str, headers: dict) -> None:
        self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments", headers=headers | {
            "Idempotency-Key": "create-" + reference}, json={
            "amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}))

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
    return schemathesis.openapi.from_path(SPECS / spec)


def operation(schema, target: Target):
    return schema[target.path][target.method]


def run_target(creds: Credentials, schema, target: Target, examples: int, mode=None,
               samples: list | None = None, seed: int | None = None) -> dict:
    """Runs `examples` generated cases of one operation; returns status counts. Raises on a failed check."""
    from schemathesis import GenerationMode

    op = operation(schema, target)
    base_url = creds.sandbox.url(target.env) + target.prefix
    statuses: dict[int, int] = {}

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

    (run if seed is None else hypothesis_seed(seed)(run))()
    return statuses
