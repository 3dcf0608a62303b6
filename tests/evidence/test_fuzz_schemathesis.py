"""Schemathesis against every implemented operation of the bundled official specs, on loopback.

Positive cases (data the spec allows) must never give a 5xx and every response must conform to the
spec: a documented status code, its content type and its schema; and every target must succeed at least once
(the hooks' real ids and credentials reach the domain logic, not only the 401s and 404s). Negative cases (data
the spec forbids) must never give a 5xx. Every refusal, in either phase, is in its API's own error format.
Each operation runs in every environment it exists in (merchant keys in test, partner keys + Merchant-Serial-Number
in production; the second environment with a quarter of the examples). Credentials, MSNs and real ids come from a
hook (tests/support/fuzz_support.py); known bugs of the official specs are listed there in SPEC_BUGS and are the
only exceptions, each proven here. test_every_operation_the_sandbox_serves_is_fuzzed computes the coverage from the
specs and the policy table, Login's and Userinfo's fuzz files included. The example count is fixed and
derandomized, so CI runs the same cases every time; bench/fuzz_long.py runs many more.
"""

from __future__ import annotations

import functools
import os

import pytest
import yaml
from fuzz_support import (
    FUZZED,
    NO_SUCCESS,
    NOT_SERVED,
    RECURRING_BUGS,
    ROUTES_WITHOUT_SPEC,
    SPEC_BUGS,
    SPECS,
    SUPERSEDED,
    TARGETS,
    Credentials,
    ThreadedSandbox,
    load,
    path_template,
    route_for,
    run_target,
    spec_prefix,
)
from schemathesis import GenerationMode

from sandbox.core.model import Env
from sandbox.gateway.policy import ROUTES, Api

POSITIVE = int(os.environ.get("VIPPS_SANDBOX_FUZZ_EXAMPLES", "20"))
NEGATIVE = max(1, POSITIVE // 2)


@pytest.fixture(scope="module")
def fuzz():
    sandbox = ThreadedSandbox().start()
    try:
        yield Credentials(sandbox).prepare(), {}
    finally:
        sandbox.stop()


def schema_for(fuzz, spec: str):
    _, schemas = fuzz
    if spec not in schemas:
        schemas[spec] = load(spec)
    return schemas[spec]


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t.id} ({t.env})" for t in TARGETS])
def test_positive_cases_conform(fuzz, target):
    creds, _ = fuzz
    statuses = run_target(creds, schema_for(fuzz, target.spec), target, POSITIVE)
    assert sum(statuses.values()) >= 1 and max(statuses) < 500, statuses
    # The hooks' real ids and credentials reach the domain logic, not only the 401s and 404s: some case succeeds.
    if (target.id, target.env) not in NO_SUCCESS:
        assert any(200 <= status < 300 for status in statuses), statuses


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t.id} ({t.env})" for t in TARGETS])
def test_negative_cases_are_refused_cleanly(fuzz, target):
    creds, _ = fuzz
    statuses = run_target(creds, schema_for(fuzz, target.spec), target, NEGATIVE, mode=GenerationMode.NEGATIVE)
    assert max(statuses) < 500, statuses


@functools.cache
def raw_spec(spec: str) -> dict:
    return yaml.load((SPECS / spec).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.cache
def spec_operations(spec: str) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, item in raw_spec(spec)["paths"].items() for method in item
            if method in ("get", "put", "post", "patch", "delete", "head", "options")]


def test_every_operation_the_sandbox_serves_is_fuzzed():
    """Computed from the bundled specs and the policy table: every operation of a followed spec that the sandbox has
    a route for is fuzzed in every environment the route serves (here, or in the Login and Userinfo fuzz files);
    every other operation is listed in NOT_SERVED with why; every older spec's operations are its successor's; every
    API route that no spec documents is listed in ROUTES_WITHOUT_SPEC."""
    bundled = {path.name for path in SPECS.glob("*.yaml")}
    followed = bundled - set(SUPERSEDED)
    assert set(SUPERSEDED.values()) <= followed
    fuzzed = {(t.spec, t.method, t.path, t.env) for t in FUZZED}
    assert len(fuzzed) == len(FUZZED), "a target is listed twice"
    missing, unlisted, covered_routes = [], [], set()
    for spec in sorted(followed):
        prefix = spec_prefix(raw_spec(spec))
        for method, path in spec_operations(spec):
            route = route_for(method, prefix + path)
            if route is None:
                if (spec, f"{method} {path}") not in NOT_SERVED:
                    unlisted.append(f"{spec} {method} {path}")
                continue
            assert (spec, f"{method} {path}") not in NOT_SERVED, f"{spec} {method} {path} is served after all"
            covered_routes.add(route.name)
            for env in sorted(route.envs):
                if (spec, method, path, env.value) not in fuzzed:
                    missing.append(f"{spec} {method} {path} ({env.value})")
    assert not missing, f"served but not fuzzed: {missing}"
    assert not unlisted, f"not served and not listed in NOT_SERVED: {unlisted}"
    for spec, operation in NOT_SERVED:
        assert tuple(operation.split(" ", 1)) in spec_operations(spec), (spec, operation)
    # the older copies: nothing in them that the followed spec lacks
    for old, new in SUPERSEDED.items():
        old_prefix = spec_prefix(raw_spec(old))
        new_prefix = spec_prefix(raw_spec(new))
        newer = {(m, path_template(new_prefix + p)) for m, p in spec_operations(new)}
        assert {(m, path_template(old_prefix + p)) for m, p in spec_operations(old)} <= newer, old
    # every target is a real operation, served where it is fuzzed, and the API routes no spec documents are listed
    for target in FUZZED:
        assert (target.method, target.path) in spec_operations(target.spec), target
        assert target.route is not None and Env(target.env) in target.route.envs, target
    api_routes = {name for name, route in ROUTES.items() if route.api is not Api.SANDBOX}
    assert api_routes - covered_routes == set(ROUTES_WITHOUT_SPEC), api_routes - covered_routes


def test_the_spec_bug_lists_are_short_and_name_real_targets():
    """The exceptions name real targets; a short list per spec: anything else found must be fixed, not excluded."""
    named = {(t.spec, f"{t.method} {t.path}") for t in TARGETS}
    for spec, operation, _, _ in SPEC_BUGS:
        assert (spec, operation) in named
    assert set(NO_SUCCESS) <= {(t.id, t.env) for t in FUZZED}
    # The other specs: one skipped check per bug (7, the last the 1.1.6 price-package enum of issue 14). Recurring
    # 3.1.2: its bugs are named in RECURRING_BUGS (each proven below), every skip names only those, and each named
    # bug is used or proven apart.
    others = [key for key in SPEC_BUGS if key[0] != "recurring-3.1.2.yaml"]
    assert len(others) <= 7
    recurring = {name.strip() for key, why in SPEC_BUGS.items() if key[0] == "recurring-3.1.2.yaml"
                 for name in why.split(",")}
    assert recurring <= set(RECURRING_BUGS)
    assert set(RECURRING_BUGS) - recurring == {"interval-required"}  # no check skipped: the sandbox answers one
    assert len(RECURRING_BUGS) <= 8


def test_the_checks_can_fail(fuzz):
    """A response the spec does not allow is caught: the same checks fail on a tampered response."""
    import requests
    from schemathesis.core.failures import FailureGroup

    creds, _ = fuzz
    target = next(t for t in TARGETS if t.path == "/v1/payments/{Reference}" and t.method == "GET")
    op = schema_for(fuzz, target.spec)[target.path][target.method]
    case = op.Case(path_parameters={"Reference": creds.references[0]})
    headers = creds.apply(target, case)
    response = case.call(base_url=creds.sandbox.url(target.env) + target.prefix, headers=headers)
    assert response.status_code == 200
    tampered = requests.Response()
    tampered.status_code, tampered._content = 200, b'{"state": "CAPTURED"}'
    tampered.headers["Content-Type"] = "application/json"
    tampered.request, tampered.url = response.request, response.request.url
    with pytest.raises(FailureGroup):
        case.validate_response(tampered)


def evidence(creds: Credentials, target, n: int, status: int):
    """A real response for a SPEC_BUGS entry: the status it names, from a valid request."""
    import base64

    import requests

    url = creds.sandbox.url(target.env) + target.prefix
    if target.path.endswith("/approve"):
        case_ref = f"fuzz-evidence-{n}"
        creds.create("test", case_ref, creds.headers["epayment-test"])
        return requests.post(f"{url}/v1/test/payments/{case_ref}/approve", json={"token": "not-this-one"},
                             headers=creds.headers["epayment-test"])
    if target.path.endswith(("/capture", "/refund", "/cancel")):
        reference = f"fuzz-evidence-{n}"
        creds.create("production", reference, creds.headers["epayment"])
        requests.post(f"{creds.sandbox.url('production')}/_sandbox/payments/{creds.shop}/{reference}/approve")
        op = target.path.rsplit("/", 1)[1]
        if op == "refund":
            requests.post(f"{url}/v1/payments/{reference}/capture", json={
                "modificationAmount": {"currency": "NOK", "value": 1000}},
                headers=creds.headers["epayment"] | {"Idempotency-Key": f"ev-{n}"})
        return requests.post(f"{url}/v1/payments/{reference}/{op}", json={
            "modificationAmount": {"currency": "NOK", "value": 1000}},
            headers=creds.headers["epayment"] | {"Idempotency-Key": f"ev-{n}-{op}"})
    if target.spec.startswith("recurring"):
        return recurring_evidence(creds, target, n, status)
    if target.path.endswith("/events"):
        return requests.get(f"{url}/v1/payments/{creds.references[0]}/events", headers=creds.headers["epayment"])
    keyset = creds.management_keys
    basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
    return requests.post(f"{url}/miami/v1/token", data="grant_type=client_credentials", headers={
        "Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"})


def test_each_spec_bug_is_real(fuzz):
    """Every exception is needed: on a real response, the check it skips does fail (so it is the spec)."""
    import fuzz_support
    from schemathesis.core.failures import FailureGroup

    creds, _ = fuzz
    for n, (spec, operation, status, check_name) in enumerate(SPEC_BUGS):
        method, path = operation.split(" ", 1)
        target = next(t for t in TARGETS if t.spec == spec and t.method == method and t.path == path
                      and (t.env == "production" or "approve" in path or "accept" in path))
        response = evidence(creds, target, n, status)
        assert response.status_code == status, (operation, response.status_code, response.text)
        op = schema_for(fuzz, spec)[path][method]
        case = op.Case(path_parameters={p.name: "x" for p in op.path_parameters} or None)
        check = next(c for c in fuzz_support.CHECKS if c.__name__ == check_name)
        with pytest.raises(FailureGroup):
            case.validate_response(response, checks=[check])
        if spec.startswith("recurring") and response.status_code < 300:  # and it is only the spec: the client check
            from sandbox.testing import RESPONSE_CHECKS
            path_url = response.request.path_url
            assert not [w for c in RESPONSE_CHECKS for w in c(method, path_url, response.status_code, response.text)]


def recurring_evidence(creds: Credentials, target, n: int, status: int):
    """A real Recurring response of the status a SPEC_BUGS entry names, from a valid request."""
    import requests

    url = creds.sandbox.url(target.env) + "/recurring/v3"
    headers = creds.headers["recurring" if target.env == "production" else "recurring-test"]
    agreement_id, pending = creds.charges["PENDING"][0]
    if target.path.endswith("/accept"):
        drafted = creds.draft_agreement("test")
        return requests.patch(f"{url}/agreements/{drafted}/accept", json={"phoneNumber": "4791234567"},
                              headers=headers | {"Idempotency-Key": f"ev-accept-{n}"})
    if target.method == "POST":  # a charge whose orderId (30 characters) becomes its id
        return requests.post(f"{url}/agreements/{agreement_id}/charges", headers=headers | {
            "Idempotency-Key": f"ev-charge-{n}"}, json={
            "amount": 100, "description": "Evidence", "due": creds.due(40), "retryDays": 2,
            "transactionType": "DIRECT_CAPTURE", "orderId": f"evidence-order-{n:015d}"})
    if target.path.endswith("/charges"):
        token = {"Continuation-Token": "3fa85f64-5717-4562-b3fc-2c963f66afa6"} if status == 400 else {}
        return requests.get(f"{url}/agreements/{agreement_id}/charges", headers=headers | token)
    if "{chargeId}" in target.path:  # a PENDING charge: transactionId null
        path = f"/charges/{pending}" if target.path.startswith("/recurring/v3/charges") else \
            f"/agreements/{agreement_id}/charges/{pending}"
        return requests.get(url + path, headers=headers)
    if "{agreementId}" in target.path:  # a LEGACY agreement
        return requests.get(f"{url}/agreements/{agreement_id}", headers=headers)
    return requests.get(f"{url}/agreements", headers=headers)


def test_each_recurring_spec_bug_is_real(fuzz):
    """Each bug RECURRING_BUGS names, on a real body: the spec's schema refuses it, the schema it means takes it."""
    import requests
    import yaml
    from fuzz_support import SPECS

    from sandbox.core.spec import SpecSchemas

    creds, _ = fuzz
    spec = SpecSchemas("recurring-3.1.2.yaml")
    raw = yaml.safe_load((SPECS / "recurring-3.1.2.yaml").read_text())["components"]["schemas"]
    url, headers = creds.sandbox.url("production") + "/recurring/v3", creds.headers["recurring"]
    agreement_id, pending = creds.charges["PENDING"][0]
    agreement = creds.ok(requests.get(f"{url}/agreements/{agreement_id}", headers=headers)).json()
    proven = set()
    # pricing-oneof: a LEGACY pricing fails the oneOf, and passes its own branch
    assert spec.errors("PricingResponseV3", agreement["pricing"]) and not spec.errors(
        "LegacyPricingResponseV3", agreement["pricing"]) and agreement["pricing"]["type"] == "LEGACY"
    proven.add("pricing-oneof")
    # pricing-discriminator: no mapping, and the value is none of the schema names
    assert "mapping" not in raw["PricingResponseV3"]["discriminator"]
    assert agreement["pricing"]["type"] not in [b["$ref"].rsplit("/", 1)[1] for b in raw["PricingResponseV3"]["oneOf"]]
    proven.add("pricing-discriminator")
    # campaign-oneof: a price campaign fails the oneOf, and passes priceCampaignResponseV3
    drafted = creds.recurring_call("POST", "/agreements", {
        "pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"}, "interval": {"unit": "MONTH", "count": 1},
        "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
        "productName": "Campaign", "campaign": {"type": "PRICE_CAMPAIGN", "price": 100,
                                                "end": "2099-02-28T00:00:00Z"}}).json()["agreementId"]
    campaign = creds.ok(requests.get(f"{url}/agreements/{drafted}", headers=headers)).json()["campaign"]
    assert spec.errors("campaignResponseV3", campaign) and not spec.errors("priceCampaignResponseV3", campaign)
    proven.add("campaign-oneof")
    # transaction-id-null: a PENDING charge has no transaction yet
    charge = creds.ok(requests.get(f"{url}/charges/{pending}", headers=headers)).json()
    assert charge["status"] == "PENDING" and charge["transactionId"] is None
    assert "transactionId" in [f for f, _ in spec.errors("ChargeResponseV3", charge)]
    assert "null until the status has reached DUE" in raw["ChargeResponseV3"]["properties"]["transactionId"][
        "description"].replace("\n", " ")
    proven.add("transaction-id-null")
    # charge-id-length: an orderId of 30 characters is the charge's id
    order = "evidence-order-long-0000000001"
    reply = creds.recurring_call("POST", f"/agreements/{agreement_id}/charges", {
        "amount": 100, "description": "Long order id", "due": creds.due(45), "retryDays": 2,
        "transactionType": "DIRECT_CAPTURE", "orderId": order}).json()
    assert reply == {"chargeId": order} and "chargeId" in [f for f, _ in spec.errors("ChargeReference", reply)]
    proven.add("charge-id-length")
    # interval-required: a draft without an interval is taken; the response schema requires one
    assert "interval" not in raw["DraftAgreementV3"]["required"]
    assert "interval" in raw["AgreementResponseV3"]["required"]
    creds.recurring_call("POST", "/agreements", {
        "pricing": {"type": "FLEXIBLE", "currency": "NOK"}, "merchantRedirectUrl": "https://shop.example.com/r",
        "merchantAgreementUrl": "https://shop.example.com/a", "productName": "Pay per use"})
    proven.add("interval-required")
    # continuation-token-400: an unknown token is refused with 400, which the operation does not document
    reply = requests.get(f"{url}/agreements/{agreement_id}/charges", headers=headers | {
        "Continuation-Token": "3fa85f64-5717-4562-b3fc-2c963f66afa6"})
    responses = yaml.safe_load((SPECS / "recurring-3.1.2.yaml").read_text())["paths"][
        "/recurring/v3/agreements/{agreementId}/charges"]["get"]["responses"]
    assert reply.status_code == 400 and "400" not in responses
    proven.add("continuation-token-400")
    # accept-204-body: the 204 declares a JSON body; the answer has none
    drafted = creds.draft_agreement("test")
    reply = requests.patch(f"{creds.sandbox.url('test')}/recurring/v3/agreements/{drafted}/accept", json={
        "phoneNumber": "4791234567"}, headers=creds.headers["recurring-test"] | {"Idempotency-Key": "ev-accept-x"})
    declared = yaml.safe_load((SPECS / "recurring-3.1.2.yaml").read_text())["paths"][
        "/recurring/v3/agreements/{agreementId}/accept"]["patch"]["responses"]["204"]
    assert reply.status_code == 204 and reply.content == b"" and "application/json" in declared["content"]
    proven.add("accept-204-body")
    assert proven == set(RECURRING_BUGS)


def test_the_spec_bugs_are_documented():
    """docs/reference/evidence.md lists every spec bug the fuzzers skip a check for (and only proven ones exist)."""
    from pathlib import Path

    from fuzz_support import LOGIN_SPEC_BUGS

    text = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "evidence.md").read_text()
    section = text.split("### Spec bugs the fuzzer meets", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    for spec, operation, _, _ in SPEC_BUGS:
        if spec == "recurring-3.1.2.yaml":
            continue
        path = operation.split(" ", 1)[1]
        assert any(path.rsplit("/", 1)[1] in row and path.split("/")[1] in row for row in rows), operation
    for name in RECURRING_BUGS:
        assert f"`{name}`" in section, name
    for _, operation, status in LOGIN_SPEC_BUGS:
        assert any(f"`{operation}`" in row and str(status) in row for row in rows), (operation, status)
    assert "phone_number" in section


def test_the_error_format_check_can_fail():
    """The refusal check tells the APIs' formats apart: another API's body, HTML or a body that is no JSON fails."""
    from api_formats import SHAPES, error_format_problem

    problem = '{"type": "https://httpstatuses.io/400", "title": "Bad Request", "status": 400, "traceId": "1"}'
    oauth = '{"error": "invalid_request", "error_description": "no"}'
    assert error_format_problem(Api.LOGIN, "application/json", problem)
    assert error_format_problem(Api.EPAYMENT, "application/json", oauth)
    assert error_format_problem(Api.QR, "application/json", problem)
    assert error_format_problem(Api.CHECKOUT, "text/html", "<html></html>")
    assert error_format_problem(Api.USERINFO, "application/json", "not json")
    assert error_format_problem(Api.LOGIN, "application/json", oauth) is None
    assert {target.api for target in FUZZED} <= set(SHAPES)
