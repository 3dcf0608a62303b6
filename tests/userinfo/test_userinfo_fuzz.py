"""Schemathesis over the Userinfo operation, GET /vipps-userinfo-api/userinfo/{sub} of userinfo-2.0.3.yaml, on
loopback: merchant keys in test, partner keys with the Merchant-Serial-Number in production, and half of the cases
with a real sub (a payment that shared a profile). Positive cases never give a 5xx and every response conforms to
the spec (status, content type, schema); negative cases never give a 5xx and every refusal is a UserinfoError or the
gateway's body. The shared machinery is tests/support/fuzz_support.py; this file keeps the Userinfo hook."""

from __future__ import annotations

import os

import pytest
import schemathesis
import yaml
from fuzz_support import SPECS, USERINFO_TARGETS, Credentials, Target, ThreadedSandbox, run_target
from schemathesis import GenerationMode

from sandbox.core.spec import SpecSchemas

POSITIVE = int(os.environ.get("VIPPS_SANDBOX_FUZZ_EXAMPLES", "20"))
SPEC = "userinfo-2.0.3.yaml"
PATH = "/vipps-userinfo-api/userinfo/{sub}"
TARGETS = USERINFO_TARGETS  # defined there, so that tests/evidence/test_fuzz_schemathesis.py accounts for them
#: The one spec bug the fuzzer meets (sandbox/apis/userinfo/response_schemas.py lists it and the others): the
#: pattern of Userinfo.phone_number is `^\d{15}$`, exactly 15 digits, which its own example '4791234567' breaks.
#: For the fuzzer's schema check it reads as meant, an MSISDN of up to 15 digits; the test client's check then runs
#: on every success body as well (run_target), with the spec's pattern read the same way.
PHONE_PATTERN, MEANT = "^\\d{15}$", "^\\d{1,15}$"


def load_meant():
    raw = yaml.safe_load((SPECS / SPEC).read_text())
    phone = raw["components"]["schemas"]["Userinfo"]["properties"]["phone_number"]
    assert phone["pattern"] == PHONE_PATTERN
    phone["pattern"] = MEANT
    return schemathesis.openapi.from_dict(raw)


def test_the_phone_number_pattern_is_a_spec_bug():
    """The spec's own example of phone_number fails its own pattern; the pattern as meant takes it."""
    schemas = SpecSchemas(SPEC)
    example = schemas.spec["components"]["schemas"]["Userinfo"]["properties"]["phone_number"]["example"]
    assert schemas.errors("Userinfo", {"phone_number": example})
    assert not schemas.errors("Userinfo", {"phone_number": "479123456789012"})


class UserinfoCredentials(Credentials):
    """The shared credentials, plus a real sub per environment: the Userinfo hook fills them in."""

    def prepare(self) -> UserinfoCredentials:
        self.shop = self.msn("premium-shop-1")
        self.partner = self.key("partner", "production", role="premium")
        self.headers["userinfo-test"] = self.token_headers(self.key("merchant", "test", msn=self.shop))
        self.headers["userinfo-production"] = self.token_headers(self.partner, self.shop)
        phone = next(iter(self.sandbox.world.users))
        self.subs = {}
        for env in ("test", "production"):
            reference = f"fuzz-userinfo-{env}"
            headers = self.headers[f"userinfo-{env}"]
            self.ok(self.http.post(f"{self.sandbox.url(env)}/epayment/v1/payments", headers=headers | {
                "Idempotency-Key": reference}, json={
                "amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
                "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back",
                "profile": {"scope": "name email address phoneNumber birthDate"}}))
            self.ok(self.http.post(f"{self.sandbox.url(env)}/_sandbox/payments/{self.shop}/{reference}/approve",
                                   json={"phoneNumber": phone}))
            payment = self.ok(self.http.get(f"{self.sandbox.url(env)}/epayment/v1/payments/{reference}",
                                            headers=headers)).json()
            self.subs[env] = payment["profile"]["sub"]
        return self

    def apply(self, target: Target, case) -> dict[str, str]:
        n = next(self.counter)
        if case.path_parameters is not None and (n % 2 == 0 or self.positive):
            # positive cases: the real sub, or (every other one) a sub of no payment, which is a 404
            case.path_parameters["sub"] = self.subs[target.env] if n % 2 == 0 else f"no-such-sub-{n}"
        return dict(self.headers[f"userinfo-{target.env}"])


@pytest.fixture(scope="module")
def fuzz():
    sandbox = ThreadedSandbox().start()
    try:
        yield UserinfoCredentials(sandbox).prepare(), load_meant()
    finally:
        sandbox.stop()


@pytest.mark.parametrize("target", TARGETS, ids=[t.env for t in TARGETS])
def test_positive_cases_conform(fuzz, target):
    creds, schema = fuzz
    statuses = run_target(creds, schema, target, POSITIVE)
    assert statuses.get(200, 0) >= 1 and statuses.get(404, 0) >= 1 and max(statuses) < 500, statuses


@pytest.mark.parametrize("target", TARGETS, ids=[t.env for t in TARGETS])
def test_negative_cases_are_refused_cleanly(fuzz, target):
    creds, schema = fuzz
    statuses = run_target(creds, schema, target, max(1, POSITIVE // 2), mode=GenerationMode.NEGATIVE)
    assert max(statuses) < 500, statuses
