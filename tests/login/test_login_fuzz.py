"""Schemathesis over the Login spec (login-swagger-id.yaml, the 2025 publication) against a sandbox on loopback.

Every operation, positive and negative cases, in both environments: never a 5xx, every refusal in the OAuth format
(JSON), success bodies conform to the spec's schema (and to the test client's check). Login's userinfo is fuzzed
from the Userinfo spec as well (userinfo-2.0.3.yaml documents it too). Credentials and real codes come from the hook:
the sales unit's own client (Basic) in test, partner keys' access token + Merchant-Serial-Number in production; half
of the token calls carry a real code for the client, half of the userinfo calls a real Login access token.
The spec's gaps are listed in LOGIN_SPEC_BUGS, each with its proof; /oauth2/auth (a browser endpoint answering
302s and HTML pages) is checked for no 5xx only. The targets are fuzz_support.LOGIN_TARGETS, so that
tests/evidence/test_fuzz_schemathesis.py accounts for them with the others.
"""

from __future__ import annotations

import base64
import itertools
import os
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from api_formats import error_format_problem
from fuzz_support import LOGIN_PREFIX, LOGIN_SPEC_BUGS, LOGIN_TARGETS, NO_SUCCESS, Target, ThreadedSandbox, load
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sandbox.testing import RESPONSE_CHECKS, keyset_rows

SPEC = "login-swagger-id.yaml"
EXAMPLES = int(os.environ.get("VIPPS_SANDBOX_FUZZ_EXAMPLES", "20"))
PREFIX = LOGIN_PREFIX
TARGETS = LOGIN_TARGETS
IDS = [f"{t.id} ({t.env})" for t in TARGETS]
class LoginHook:
    """Test: the sales unit's merchant keys as the OAuth client (Basic). Production: the same sales unit's production
    client for the browser's code, and partner keys' access token + Merchant-Serial-Number for the POSTs."""

    def __init__(self, sandbox: ThreadedSandbox) -> None:
        import requests

        self.sandbox = sandbox
        self.http = requests.Session()
        world = sandbox.world
        self.shop = next(u.msn for u in world.sales_units.values() if u.role == "premium-shop-1")
        from sandbox.core.model import Env, KeyType

        self.clients = {env: keyset_rows(world, KeyType.MERCHANT, Env(env), self.shop)[0]
                        for env in ("test", "production")}
        self.client = self.clients["test"]
        partner = next(p.id for p in world.partners.values() if p.role == "premium")
        keyset = next(r for r in keyset_rows(world, KeyType.PARTNER, Env.PRODUCTION) if r["owner"] == partner)
        reply = self.http.post(sandbox.url("production") + "/accesstoken/get", headers={
            "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
        self.partner = {"Authorization": "Bearer " + reply.json()["access_token"],
                        "Merchant-Serial-Number": self.shop}
        self.phone = world.users_by_role["no-user"].phone_number
        #: CIBA lets 5 logins wait per user (then 429): the real hints take turns among the adult test users
        self.adults = [user.phone_number for role, user in sorted(world.users_by_role.items())
                       if not role.endswith("under-15")]
        self.counter = itertools.count()
        self.basic = {env: "Basic " + base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()
                      for env, c in self.clients.items()}

    def credentials(self, env: str) -> dict[str, str]:
        return {"Authorization": self.basic["test"]} if env == "test" else dict(self.partner)

    def code(self, env: str = "test") -> str:
        base = self.sandbox.url(env)
        query = urlencode({"response_type": "code", "client_id": self.clients[env]["client_id"],
                           "scope": "openid name", "state": "fuzz-state", "redirect_uri": "http://127.0.0.1/callback"})
        location = self.http.get(base + PREFIX + "/oauth2/auth?" + query, allow_redirects=False).headers["Location"]
        login_id = parse_qs(urlsplit(location).query)["login"][0]
        back = self.http.post(base + "/_sandbox/login/approve", json={"loginId": login_id, "phoneNumber": self.phone})
        return parse_qs(urlsplit(back.json()["location"]).query)["code"][0]

    def apply(self, target: Target, case, positive: bool) -> dict[str, str]:
        n, env = next(self.counter), target.env
        if target.path.endswith("/oauth2/auth") and positive:  # it declares no parameter (one case): a real login
            case.query = {"response_type": "code", "client_id": self.clients[env]["client_id"], "scope": "openid",
                          "state": f"fuzz-{n}", "redirect_uri": "http://127.0.0.1/callback"}
        if target.path.endswith("/oauth2/token") and positive and n % 2 == 0:
            case.body = {"grant_type": "authorization_code", "code": self.code(env),
                         "redirect_uri": "http://127.0.0.1/callback"}
        if target.path.startswith("/vipps-login-ciba") and positive and n % 2 == 0 and isinstance(case.body, dict):
            # half of them a real user (and, for a login, only the fields it needs: the other half keeps what was
            # generated, whose optional fields are refused more often than not)
            case.body = {"login_hint": f"urn:msisdn:{self.adults[n // 2 % len(self.adults)]}"}
            if target.path.endswith("/authentication"):
                case.body |= {"scope": "openid name", "binding_message": f"FUZZ-{n % 1000}"}
        if target.path.startswith("/vipps-userinfo-api"):
            if n % 2 == 0:
                if case.headers:  # userinfo-2.0.3 requires a subscription key, which Login refuses (see below)
                    case.headers.pop("Ocp-Apim-Subscription-Key", None)
                token = self.http.post(self.sandbox.url(env) + PREFIX + "/oauth2/token", data={
                    "grant_type": "authorization_code", "code": self.code(env),
                    "redirect_uri": "http://127.0.0.1/callback"}, headers=self.credentials(env))
                return {"Authorization": "Bearer " + token.json()["access_token"]}
            return {}
        if target.method == "POST":
            return self.credentials(env)
        return {}


@pytest.fixture(scope="module")
def fuzz():
    sandbox = ThreadedSandbox().start()
    try:
        yield LoginHook(sandbox), {spec: load(spec) for spec in {t.spec for t in TARGETS}}
    finally:
        sandbox.stop()


def run(hook: LoginHook, schemas, target: Target, examples: int, mode: GenerationMode,
        seed: int | None = None) -> dict[int, int]:
    """Like fuzz_support.run_target, with Login's hook (bench/fuzz_long.py runs it with a seed)."""
    op = schemas[target.spec][target.path][target.method]
    examples = target.examples(examples)
    statuses: dict[int, int] = {}
    positive = mode is GenerationMode.POSITIVE
    browser = target.path.endswith("/oauth2/auth")

    @settings(max_examples=examples, deadline=None, database=None, derandomize=seed is None,
              suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def one(case) -> None:
        headers = hook.apply(target, case, positive)
        response = case.call(base_url=hook.sandbox.url(target.env), headers=headers, session=hook.http,
                             allow_redirects=False)
        status = response.status_code
        statuses[status] = statuses.get(status, 0) + 1
        assert "Traceback" not in response.text
        if browser:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
            return
        if status >= 400:
            content_type = (response.headers.get("content-type") or [""])[0]
            wrong = error_format_problem(target.api, content_type, response.text)
            assert wrong is None, f"{wrong}: {status} {response.text[:300]}"
        checks = [not_a_server_error]
        if positive:
            checks += [content_type_conformance, response_schema_conformance]
            if (target.spec, f"{target.method} {target.path}", status) not in LOGIN_SPEC_BUGS:
                checks.append(status_code_conformance)
        case.validate_response(response, checks=checks, headers=headers)
        if 200 <= status < 300:
            path = urlsplit(response.request.url).path
            wrong = [w for check in RESPONSE_CHECKS for w in check(case.method, path, status, response.text)]
            assert not wrong, wrong

    (one if seed is None else hypothesis_seed(seed)(one))()
    return statuses


@pytest.mark.parametrize("target", TARGETS, ids=IDS)
def test_positive_cases_conform(fuzz, target):
    hook, schema = fuzz
    statuses = run(hook, schema, target, EXAMPLES, GenerationMode.POSITIVE)
    assert max(statuses) < 500, statuses
    # the hook's real clients, codes and tokens reach the domain logic: some case succeeds (a 302 for the browser's)
    if (target.id, target.env) not in NO_SUCCESS:
        assert any(200 <= status < 400 for status in statuses), statuses


#: /oauth2/auth declares no parameter in the spec, so nothing can break it: no negative case exists.
NEGATIVE = [target for target in TARGETS if not target.path.endswith("/oauth2/auth")]


@pytest.mark.parametrize("target", NEGATIVE, ids=[f"{t.id} ({t.env})" for t in NEGATIVE])
def test_negative_cases_are_refused_cleanly(fuzz, target):
    hook, schema = fuzz
    statuses = run(hook, schema, target, max(1, EXAMPLES // 2), GenerationMode.NEGATIVE)
    assert max(statuses) < 500, statuses


def test_the_token_fuzz_reaches_success(fuzz):
    """The hook's real codes do get tokens, so the 200 schema check runs."""
    hook, schema = fuzz
    target = TARGETS[2]
    assert run(hook, schema, target, 6, GenerationMode.POSITIVE).get(200, 0) >= 1


def login_spec_bug_evidence(hook: LoginHook, operation: str, status: int):
    """A real response of the status a LOGIN_SPEC_BUGS entry names."""
    path = operation.split(" ", 1)[1]
    url, basic = hook.sandbox.url("test") + path, {"Authorization": hook.basic["test"]}
    hint = {"login_hint": f"urn:msisdn:{hook.phone}", "scope": "openid", "binding_message": "PROOF-1"}
    if status == 401:
        return hook.http.post(url, data=hint)  # no client credentials
    if path.endswith("/oauth2/token"):
        return hook.http.post(url, data={"grant_type": "authorization_code", "code": "not-a-code",
                                         "redirect_uri": "http://127.0.0.1/callback"}, headers=basic)
    if status == 400:
        return hook.http.post(url, data={"scope": "openid"}, headers=basic)  # no login_hint
    for _ in range(10):  # 429: logins started for one user until too many wait
        reply = hook.http.post(url, data=hint, headers=basic)
        if reply.status_code == 429:
            return reply
    return reply


def test_each_login_spec_bug_is_real(fuzz):
    """Each status LOGIN_SPEC_BUGS names is a real answer of the sandbox, in the OAuth format, and the spec does not
    document it: the status check fails on it."""
    from schemathesis.core.failures import FailureGroup

    hook, schemas = fuzz
    for spec, operation, status in LOGIN_SPEC_BUGS:
        response = login_spec_bug_evidence(hook, operation, status)
        assert response.status_code == status, (operation, response.status_code, response.text)
        assert error_format_problem(Target(spec, *operation.split(" ", 1), "test").api,
                                    response.headers["content-type"], response.text) is None, response.text
        method, path = operation.split(" ", 1)
        case = schemas[spec][path][method].Case()
        with pytest.raises(FailureGroup):
            case.validate_response(response, checks=[status_code_conformance])


def test_the_userinfo_spec_requires_the_key_login_refuses(fuzz):
    """A conflict of the sources, not fixable in the sandbox: userinfo-2.0.3.yaml marks Ocp-Apim-Subscription-Key
    required on Login's userinfo, while the Login docs say sending it is a 401 (docs/reference/fidelity.md, Login
    API), as the sandbox answers by default. So the hook leaves the key out of the cases with a real token."""
    hook, schemas = fuzz
    op = schemas["userinfo-2.0.3.yaml"]["/vipps-userinfo-api/userinfo/"]["GET"]
    assert any(p.name == "Ocp-Apim-Subscription-Key" and p.is_required for p in op.headers)
    token = hook.http.post(hook.sandbox.url("test") + PREFIX + "/oauth2/token", data={
        "grant_type": "authorization_code", "code": hook.code(), "redirect_uri": "http://127.0.0.1/callback"},
        headers=hook.credentials("test")).json()["access_token"]
    url, bearer = hook.sandbox.url("test") + "/vipps-userinfo-api/userinfo/", {"Authorization": "Bearer " + token}
    key = {"Ocp-Apim-Subscription-Key": hook.client["subscription_key_primary"]}
    with_key = hook.http.get(url, headers=bearer | key)
    assert with_key.status_code == 401 and with_key.json()["error"] == "invalid_token"
    assert hook.http.get(url, headers=bearer).status_code == 200
