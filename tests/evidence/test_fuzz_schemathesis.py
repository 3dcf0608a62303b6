"""Schemathesis against every implemented operation of the bundled official specs, on loopback.

Positive cases (data the spec allows) must never give a 5xx and every response must conform to the
spec: a documented status code, its content type and its schema. Negative cases (data the spec
forbids) must never give a 5xx, and every refusal is a 4xx with a JSON body. Credentials, MSNs and
real ids come from a hook (tests/support/fuzz_support.py); known bugs of the official specs are listed there
in SPEC_BUGS and are the only exceptions. The example count is fixed and derandomized, so CI runs the
same cases every time; bench/fuzz_long.py runs many more.
"""

from __future__ import annotations

import os

import pytest
from fuzz_support import SPEC_BUGS, TARGETS, Credentials, ThreadedSandbox, load, run_target
from schemathesis import GenerationMode

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
    assert sum(statuses.values()) >= 1 and max(statuses) < 500


@pytest.mark.parametrize("target", TARGETS, ids=[f"{t.id} ({t.env})" for t in TARGETS])
def test_negative_cases_are_refused_cleanly(fuzz, target):
    creds, _ = fuzz
    statuses = run_target(creds, schema_for(fuzz, target.spec), target, NEGATIVE, mode=GenerationMode.NEGATIVE)
    assert max(statuses) < 500


def test_every_operation_the_sandbox_serves_is_fuzzed():
    """Each target names a real operation of its spec, and the exceptions name real targets."""
    for target in TARGETS:
        assert target.method.lower() in load(target.spec).raw_schema["paths"][target.path]
    named = {(t.spec, f"{t.method} {t.path}") for t in TARGETS}
    for spec, operation, _, _ in SPEC_BUGS:
        assert (spec, operation) in named
    # a short list: anything else found must be fixed, not excluded (7: the 1.1.6 price-package enum, issue 14)
    assert len(SPEC_BUGS) <= 7


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


def evidence(creds: Credentials, target, n: int):
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
                      and (t.env == "production" or "approve" in path))
        response = evidence(creds, target, n)
        assert response.status_code == status, (operation, response.status_code, response.text)
        op = schema_for(fuzz, spec)[path][method]
        case = op.Case(path_parameters={p.name: "x" for p in op.path_parameters} or None)
        check = next(c for c in fuzz_support.CHECKS if c.__name__ == check_name)
        with pytest.raises(FailureGroup):
            case.validate_response(response, checks=[check])
