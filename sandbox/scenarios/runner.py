"""Runs a parsed scenario over real HTTP, step by step, and records expected vs actual.

The runner knows the sandbox only through its HTTP surface (/_sandbox/keys for credentials,
/_sandbox/building for role nicknames), so the same scenario runs in-process or against a
sandbox in Docker.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

import aiohttp

from sandbox.core.model import MIAMI_KEY_TYPES, Env, KeyType
from sandbox.scenarios.model import VARIABLE, KeySpec, Scenario, ScenarioError, Step, is_builtin, parse_keys
from sandbox.scenarios.paths import MISSING, apply_filter, lookup, matches, split_filters
from sandbox.scenarios.secrets import Secrets, is_secret_name, is_secret_path

TOKEN_PATHS = {"/accesstoken/get": "standard", "/miami/v1/token": "miami"}
HOSTS = {Env.TEST: "apitest.vipps.no", Env.PRODUCTION: "api.vipps.no"}
SYSTEM_HEADERS = {"Vipps-System-Name": "vipps-sandbox", "Vipps-System-Version": "scenarios",
                  "Vipps-System-Plugin-Name": "scenario-runner", "Vipps-System-Plugin-Version": "1"}


class StepError(Exception):
    """The step could not be sent as written (unknown role, missing keys, a failed token request)."""


@dataclass
class Check:
    label: str
    expected: object
    actual: object
    ok: bool
    secret: bool = False  # the checked field or header holds a secret: print it masked


@dataclass
class StepResult:
    step: Step
    request_line: str = ""
    caller: str = ""
    checks: list[Check] = field(default_factory=list)
    reason: str | None = None  # Vipps-Sandbox-Reason of the response, when there is one
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(check.ok for check in self.checks)


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)


class Target:
    """Where each environment is reached. With one URL only, the Host header picks the environment.

    Off loopback (as in Docker) the sandbox's control plane needs its admin token.
    """

    def __init__(self, test_url: str | None, prod_url: str | None, admin_token: str | None = None) -> None:
        if not test_url and not prod_url:
            raise ValueError("a scenario needs at least one URL")
        self.urls = {Env.TEST: (test_url or "").rstrip("/"), Env.PRODUCTION: (prod_url or "").rstrip("/")}
        self.admin_token = admin_token

    def url(self, env: Env, path: str) -> tuple[str, dict]:
        own = self.urls[env]
        if own:
            return own + path, {}
        other = self.urls[Env.PRODUCTION if env is Env.TEST else Env.TEST]
        return other + path, {"Host": HOSTS[env]}


class Runner:
    def __init__(self, session: aiohttp.ClientSession, target: Target, secrets: Secrets | None = None) -> None:
        self.session = session
        self.target = target
        #: every secret this run has seen, so that whoever prints the results can mask them
        self.secrets = secrets if secrets is not None else Secrets()
        self.secrets.add(target.admin_token)
        self.variables: dict[str, object] = {"run": uuid.uuid4().hex[:10]}
        self.roles: dict[str, dict[str, str]] = {}

    async def run(self, scenario: Scenario, on_step=None) -> ScenarioResult:
        building = await self._get_json("/_sandbox/building")
        self.roles = building.get("roles", {}) if isinstance(building, dict) else {}
        await self.check_keys(scenario)
        result = ScenarioResult(scenario)
        for step in scenario.steps:
            outcome = StepResult(step)
            try:
                await self.run_step(step, outcome)
            except StepError as exc:
                outcome.error = str(exc)
            except aiohttp.ClientError as exc:
                outcome.error = f"the request failed: {exc}"
            result.steps.append(outcome)
            if on_step is not None:
                on_step(outcome)
        return result

    # -- one step ------------------------------------------------------------------------------
    async def run_step(self, step: Step, outcome: StepResult) -> None:
        keyset = None
        if step.keys is not None:
            spec = parse_keys(str(self.render(step.keys, None)))
            if spec is None:
                raise StepError(f"keys {step.keys!r} is not '<type>-keys of <role> [in <env>]'")
            keyset = await self.find_keys(spec)
            outcome.caller = f"{spec} (client_id {keyset['client_id']})"
        env = Env(step.env) if step.env else Env(keyset["environment"]) if keyset else Env.TEST
        path = str(self.render(step.path, keyset))
        if not path.startswith("/"):
            raise StepError(f"the path {path!r} does not start with / (save a URL with '| path' to use it here)")
        headers = {str(k): str(self.render(v, keyset)) for k, v in step.headers.items()}
        msn = self.msn(str(self.render(step.msn, keyset))) if step.msn is not None else None
        if msn is not None:
            headers.setdefault("Merchant-Serial-Number", msn)
        credentials = {k: str(self.render(v, keyset)) for k, v in step.credentials.items()}
        data: str | None = None
        if step.json is not None:
            data = json.dumps(self.render(step.json, keyset))
            headers.setdefault("Content-Type", "application/json")
        elif step.form is not None:
            from urllib.parse import urlencode
            data = urlencode({k: str(self.render(v, keyset)) for k, v in step.form.items()})
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")

        auth = step.auth
        if auth == "auto":
            bare = path.split("?", 1)[0]
            auth = ("credentials" if bare in TOKEN_PATHS and keyset else "none" if bare.startswith("/_sandbox")
                    else "bearer" if keyset or step.token else "none")
        if auth == "credentials":
            assert keyset is not None
            extra, form = self.credential_headers(path, keyset, credentials)
            headers = {**extra, **headers}
            if form is not None and data is None:
                data = form
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif auth == "bearer":
            token = str(self.render(step.token, keyset)) if step.token else await self.token(env, keyset, credentials)
            headers.setdefault("Authorization", f"Bearer {token}")
            sub = credentials.get("subscription_key") or (keyset or {}).get("subscription_key_primary")
            if sub:
                headers.setdefault("Ocp-Apim-Subscription-Key", sub)
        if keyset is not None and keyset["type"] == KeyType.PARTNER:
            for name, value in SYSTEM_HEADERS.items():
                headers.setdefault(name, value)

        outcome.request_line = f"{step.method} {path}  [{env}]" + (f"  MSN {msn}" if msn else "")
        status, response_headers, body = await self.send(step.method, env, path, headers, data)
        outcome.reason = response_headers.get("Vipps-Sandbox-Reason")
        outcome.checks.append(Check("status", step.status, status, status == step.status))
        for json_path, expected in step.fields.items():
            expected = self.render(expected, keyset)
            actual = lookup(body, json_path)
            outcome.checks.append(Check(json_path, expected, actual, matches(expected, actual),
                                        is_secret_path(json_path)))
        lowered = {k.lower(): v for k, v in response_headers.items()}
        for name, expected in step.expect_headers.items():
            expected = self.render(expected, keyset)
            actual = lowered.get(name.lower(), MISSING)
            outcome.checks.append(Check(f"header {name}", expected, actual, matches(expected, actual),
                                        is_secret_name(str(name))))
        for name, source in step.save.items():
            path, filters = split_filters(source)
            if path.startswith("header:"):  # a response header: `header:Location | query:code`
                value = lowered.get(path[len("header:"):].strip().lower(), MISSING)
            else:
                value = self.render(path, keyset) if VARIABLE.search(path) else lookup(body, path)
            for name_of_filter in filters:
                value = apply_filter(value, name_of_filter)
            if value is MISSING:
                outcome.checks.append(Check(f"save {name} from {source}", "a value", MISSING, False))
            else:
                self.variables[name] = value

    # -- keys and tokens ------------------------------------------------------------------------
    async def check_keys(self, scenario: Scenario) -> None:
        """Every step's key spec must name keys the sandbox has, before step 1 runs: a role or MSN that
        does not exist is a broken file (ScenarioError), not a failed step halfway through the story.
        Specs using saved ${values} are known only when their step runs, so they are checked then."""
        rows = None
        for step in scenario.steps:
            used = VARIABLE.findall(step.keys or "")
            if step.keys is None or any(not is_builtin(v) or v.startswith("keys.") for v in used):
                continue
            if rows is None:
                rows = await self._get_json("/_sandbox/keys")
            try:
                spec = parse_keys(str(self.render(step.keys, None)))
                if spec is None:
                    raise StepError(f"{step.keys!r} is not '<type>-keys of <role> [in <env>]'")
                self.pick_keys(spec, rows)
            except StepError as exc:
                raise ScenarioError(scenario.source, str(exc), step.number, step.narration, "keys") from exc

    async def find_keys(self, spec: KeySpec) -> dict:
        rows = await self._get_json(f"/_sandbox/keys?type={spec.type}")
        return self.pick_keys(spec, rows)

    def pick_keys(self, spec: KeySpec, rows: object) -> dict:
        owner = self.owner(spec)
        if not isinstance(rows, list):
            raise StepError(f"GET /_sandbox/keys did not return a list: {rows!r}")
        rows = [r for r in rows if isinstance(r, dict) and r.get("type") == spec.type]
        wanted = spec.env or Env.PRODUCTION
        matching = [r for r in rows if r.get("owner") == owner]
        for row in matching:
            if row.get("environment") == wanted:
                return row
        if spec.env is None and matching:
            return matching[0]
        raise StepError(f"there are no {spec.type} keys of {spec.role} ({owner}) in {wanted}")

    def owner(self, spec: KeySpec) -> str:
        partners, merchants = self.roles.get("partners", {}), self.roles.get("merchants", {})
        if spec.type is KeyType.MERCHANT:
            return self.msn(spec.role)
        if spec.role in partners:
            return partners[spec.role]
        if spec.type in (KeyType.MANAGEMENT, KeyType.MERCHANT_LEVEL) and spec.role in merchants:
            return merchants[spec.role]  # a merchant's own management keys; merchant-level keys (Donations)
        if spec.role in partners.values() or spec.role in merchants.values():
            return spec.role
        merchant_owned = spec.type in (KeyType.MANAGEMENT, KeyType.MERCHANT_LEVEL)
        raise StepError(f"no partner{' or merchant' if merchant_owned else ''} has the role "
                        f"{spec.role!r} (known: {', '.join(sorted(partners))})")

    def msn(self, role_or_msn: str) -> str:
        if role_or_msn.isdigit():
            return role_or_msn
        units = self.roles.get("salesUnits", {})
        if role_or_msn not in units:
            raise StepError(f"no sales unit has the role {role_or_msn!r} (known: {', '.join(sorted(units))})")
        return units[role_or_msn]

    def credential_headers(self, path: str, keyset: dict, overrides: dict) -> tuple[dict, str | None]:
        client_id = overrides.get("client_id", keyset["client_id"])
        secret = overrides.get("client_secret", keyset["client_secret"])
        if TOKEN_PATHS.get(path.split("?", 1)[0]) == "miami":
            basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}, "grant_type=client_credentials"
        headers = {"client_id": client_id, "client_secret": secret}
        sub = overrides.get("subscription_key", keyset.get("subscription_key_primary"))
        if sub:
            headers["Ocp-Apim-Subscription-Key"] = sub
        return headers, None

    async def token(self, env: Env, keyset: dict | None, overrides: dict) -> str:
        if keyset is None:
            raise StepError("a bearer request needs keys or a token")
        miami = keyset["type"] in MIAMI_KEY_TYPES
        path = "/miami/v1/token" if miami else "/accesstoken/get"
        headers, form = self.credential_headers(path, keyset, overrides)
        if form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, _, body = await self.send("POST", env, path, headers, form)
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            detail = json.dumps(body)[:300] if body is not MISSING else ""
            raise StepError(f"could not get an access token from {path} in {env}: HTTP {status} {detail}")
        return body["access_token"]

    # -- plumbing ---------------------------------------------------------------------------------
    def render(self, value: object, keyset: dict | None) -> object:
        """Substitutes ${name}; a string that is exactly one ${name} keeps the value's type."""
        if isinstance(value, dict):
            return {self.render(k, keyset): self.render(v, keyset) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, keyset) for v in value]
        if not isinstance(value, str):
            return value
        whole = VARIABLE.fullmatch(value)
        if whole:
            return self.variable(whole[1], keyset)
        return VARIABLE.sub(lambda m: str(self.variable(m[1], keyset)), value)

    def variable(self, name: str, keyset: dict | None) -> object:
        if name in self.variables:
            return self.variables[name]
        prefix, _, rest = name.partition(".")
        if prefix == "keys":
            if keyset is None or rest not in keyset:
                raise StepError(f"${{{name}}}: the step has no keys with a field {rest!r}")
            return keyset[rest]
        if prefix == "msn":
            return self.msn(rest)
        table = {"partner": "partners", "merchant": "merchants", "merchant_id": "merchants",
                 "merchant_scheme": "merchants"}.get(prefix)
        if table is None:
            raise StepError(f"${{{name}}} was not saved by an earlier step (did that step fail?)")
        known = self.roles.get(table, {})
        if rest not in known:
            raise StepError(f"${{{name}}}: no {table[:-1]} has the role {rest!r} (known: {', '.join(sorted(known))})")
        value = known[rest]
        if prefix == "merchant_id":
            return value.rsplit("/", 1)[-1]
        if prefix == "merchant_scheme":
            return value.rsplit("/", 1)[0]
        return value

    async def send(self, method: str, env: Env, path: str, headers: dict, data: str | None):
        url, extra = self.target.url(env, path)
        if self.target.admin_token and path.startswith("/_sandbox") and "Authorization" not in headers:
            extra["Authorization"] = f"Bearer {self.target.admin_token}"
        self.secrets.learn_headers(headers)  # client_secret, subscription keys, bearer tokens sent
        async with self.session.request(method, url, headers={**extra, **headers}, data=data,
                                        allow_redirects=False) as response:
            text = await response.text()
            try:
                body: object = json.loads(text) if text else MISSING
            except ValueError:
                body = text
            self.secrets.learn(body)  # key lists, tokens, regenerated secrets: masked wherever they are printed
            return response.status, dict(response.headers), body

    async def _get_json(self, path: str) -> object:
        status, _, body = await self.send("GET", Env.TEST if self.target.urls[Env.TEST] else Env.PRODUCTION,
                                          path, {}, None)
        if status == 401:
            raise StepError(f"GET {path} answered HTTP 401: this sandbox's control plane needs its admin token "
                            "(--admin-token, or the VIPPS_SANDBOX_ADMIN_TOKEN environment variable)")
        if status != 200:
            raise StepError(f"GET {path} answered HTTP {status}: is this a vipps-sandbox?")
        return body
