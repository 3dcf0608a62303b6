"""A scenario file, parsed and checked before anything runs.

Errors name the file, the step and the field, because people write these files by hand:
    scenarios/x.yaml, step 3 (Create a payment), field request.method: must be one of GET, POST, ...
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from sandbox.core.model import Env, KeyType
from sandbox.scenarios.paths import FILTERS, known_zone, split_filters

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
AUTH_MODES = ("auto", "bearer", "credentials", "none")
MATCHERS = ("contains", "exists", "oneOf", "length", "gte", "lte", "equals")
KEYS_PATTERN = re.compile(r"^(?P<type>merchant-level|merchant|partner|management|accounting)-keys of "
                          r"(?P<role>[\w.:/-]+)"
                          r"(?: in (?P<env>test|production))?$")
VARIABLE = re.compile(r"\$\{([^}]*)\}")
BUILTIN_PREFIXES = ("msn.", "partner.", "merchant.", "merchant_id.", "merchant_scheme.", "keys.")
BUILTINS = ("run",)
STEP_FIELDS = {"narration", "keys", "request", "expect", "save", "credentials"}
REQUEST_FIELDS = {"method", "path", "env", "msn", "headers", "json", "form", "auth", "token"}
EXPECT_FIELDS = {"status", "fields", "headers"}
CREDENTIAL_FIELDS = {"client_id", "client_secret", "subscription_key"}


class ScenarioError(ValueError):
    """A scenario file that cannot run, with where and why."""

    def __init__(self, source: str, message: str, step: int | None = None, narration: str | None = None,
                 field_name: str | None = None) -> None:
        where = source
        if step is not None:
            where += f", step {step}" + (f" ({narration})" if narration else "")
        if field_name is not None:
            where += f", field {field_name}"
        super().__init__(f"{where}: {message}")
        self.source, self.step, self.field = source, step, field_name


@dataclass(frozen=True)
class KeySpec:
    """`partner-keys of premium`, `merchant-keys of premium-shop-1 in test`."""

    type: KeyType
    role: str
    env: Env | None

    def __str__(self) -> str:
        return f"{self.type}-keys of {self.role}" + (f" in {self.env}" if self.env else "")


@dataclass
class Step:
    number: int
    narration: str
    keys: str | None  # may hold ${variables}; parsed into a KeySpec when run
    method: str
    path: str
    env: str | None
    msn: str | None
    headers: dict
    json: object
    form: dict | None
    auth: str
    token: str | None
    credentials: dict
    status: int
    fields: dict
    expect_headers: dict
    save: dict


@dataclass
class Scenario:
    name: str
    source: str
    title: str
    story: str
    steps: list[Step] = field(default_factory=list)


def parse_keys(text: str) -> KeySpec | None:
    match = KEYS_PATTERN.match(text.strip())
    if match is None:
        return None
    return KeySpec(KeyType(match["type"]), match["role"], Env(match["env"]) if match["env"] else None)


def variables_in(value: object) -> list[str]:
    """Every ${name} used anywhere in a value (strings, lists, dicts, keys included)."""
    if isinstance(value, str):
        return VARIABLE.findall(value)
    if isinstance(value, dict):
        return [v for k, item in value.items() for v in variables_in(k) + variables_in(item)]
    if isinstance(value, list):
        return [v for item in value for v in variables_in(item)]
    return []


def is_builtin(name: str) -> bool:
    return name in BUILTINS or any(name.startswith(p) and len(name) > len(p) for p in BUILTIN_PREFIXES)


def load(path: Path) -> Scenario:
    source = str(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(source, f"cannot read the file: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(source, f"not valid YAML: {exc}") from exc
    return parse(document, source, path.stem)


def parse(document: object, source: str, name: str) -> Scenario:
    if not isinstance(document, dict):
        raise ScenarioError(source, "the file must be a mapping with title and steps")
    unknown = sorted(set(document) - {"title", "story", "steps"})
    if unknown:
        raise ScenarioError(source, "unknown field (expected title, story, steps)", field_name=unknown[0])
    title = document.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ScenarioError(source, "required, a non-empty string", field_name="title")
    story = document.get("story", "")
    if not isinstance(story, str):
        raise ScenarioError(source, "must be a string", field_name="story")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError(source, "required, a non-empty list of steps", field_name="steps")
    scenario = Scenario(name, source, title.strip(), story.strip())
    saved: set[str] = set()
    for number, raw in enumerate(raw_steps, start=1):
        step = parse_step(raw, source, number)
        for used in variables_in([step.keys, step.path, step.env, step.msn, step.headers, step.json, step.form,
                                  step.token, step.credentials, step.fields, step.expect_headers]):
            if used not in saved and not is_builtin(used):
                raise ScenarioError(source, f"${{{used}}} is neither saved by an earlier step nor built in "
                                    f"({', '.join(BUILTINS)}, {', '.join(p + '...' for p in BUILTIN_PREFIXES)})",
                                    number, step.narration, "request")
        saved.update(step.save)
        scenario.steps.append(step)
    return scenario


def parse_step(raw: object, source: str, number: int) -> Step:
    def fail(message: str, field_name: str | None = None, narration: str | None = None) -> ScenarioError:
        return ScenarioError(source, message, number, narration, field_name)

    if not isinstance(raw, dict):
        raise fail("a step must be a mapping with narration, request and expect")
    narration = raw.get("narration")
    if not isinstance(narration, str) or not narration.strip():
        raise fail("required, a non-empty string", "narration")
    narration = narration.strip()

    def bad(message: str, field_name: str) -> ScenarioError:
        return fail(message, field_name, narration)

    unknown = sorted(set(raw) - STEP_FIELDS)
    if unknown:
        raise bad(f"unknown field (expected {', '.join(sorted(STEP_FIELDS))})", unknown[0])
    keys = raw.get("keys")
    if keys is not None:
        if not isinstance(keys, str):
            raise bad("must be a string such as 'partner-keys of premium'", "keys")
        if "${" not in keys and parse_keys(keys) is None:
            raise bad(f"{keys!r} is not '<merchant|partner|management|accounting|merchant-level>-keys of <role> "
                      "[in <env>]'",
                      "keys")
    request = raw.get("request")
    if not isinstance(request, dict):
        raise bad("required, a mapping with method and path", "request")
    unknown = sorted(set(request) - REQUEST_FIELDS)
    if unknown:
        raise bad(f"unknown field (expected {', '.join(sorted(REQUEST_FIELDS))})", f"request.{unknown[0]}")
    method = request.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise bad(f"must be one of {', '.join(METHODS)}", "request.method")
    path = request.get("path")
    if not isinstance(path, str) or not path.startswith(("/", "${")):
        raise bad("required, a path starting with / (or a saved ${path})", "request.path")
    env = request.get("env")
    if env is not None and env not in ("test", "production"):
        raise bad("must be test or production", "request.env")
    msn = request.get("msn")
    if msn is not None:
        msn = str(msn)
    for name in ("headers", "form"):
        if request.get(name) is not None and not isinstance(request[name], dict):
            raise bad("must be a mapping", f"request.{name}")
    if "json" in request and "form" in request:
        raise bad("a request has either json or form, not both", "request.form")
    auth = request.get("auth", "auto")
    if auth not in AUTH_MODES:
        raise bad(f"must be one of {', '.join(AUTH_MODES)}", "request.auth")
    if auth in ("bearer", "credentials") and keys is None and request.get("token") is None:
        raise bad(f"auth {auth} needs keys", "keys")
    credentials = raw.get("credentials") or {}
    if not isinstance(credentials, dict) or set(credentials) - CREDENTIAL_FIELDS:
        raise bad(f"must be a mapping of {', '.join(sorted(CREDENTIAL_FIELDS))}", "credentials")
    if credentials and keys is None:
        raise bad("credentials override the step's keys, so the step needs keys", "credentials")
    expect = raw.get("expect")
    if not isinstance(expect, dict):
        raise bad("required, a mapping with at least status", "expect")
    unknown = sorted(set(expect) - EXPECT_FIELDS)
    if unknown:
        raise bad(f"unknown field (expected {', '.join(sorted(EXPECT_FIELDS))})", f"expect.{unknown[0]}")
    status = expect.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise bad("required, an HTTP status code such as 200", "expect.status")
    fields, expect_headers = expect.get("fields") or {}, expect.get("headers") or {}
    for name, value in (("expect.fields", fields), ("expect.headers", expect_headers)):
        if not isinstance(value, dict):
            raise bad("must be a mapping of path: expected value", name)
        for key, expected in value.items():
            check_matcher(expected, bad, f"{name}.{key}")
    save = raw.get("save") or {}
    if not isinstance(save, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in save.items()):
        raise bad("must be a mapping of name: JSON path (or ${template})", "save")
    for name, saved_from in save.items():
        for filter_name in split_filters(saved_from)[1]:
            zone = filter_name[5:] if filter_name.startswith("date:") else None
            if zone is not None and not known_zone(zone):
                raise bad(f"unknown time zone {zone!r} in filter {filter_name!r} (an IANA name such as Europe/Oslo)",
                          f"save.{name}")
            if filter_name not in ("path", "date") and zone is None and not re.fullmatch(
                    r"query:\w+|days:[+-]?[0-9]{1,4}", filter_name):
                raise bad(f"unknown filter {filter_name!r} (known: {', '.join(FILTERS)})", f"save.{name}")
        if not re.fullmatch(r"[A-Za-z_]\w*", name) or is_builtin(name):
            raise bad(f"{name!r} is not a valid name for a saved value (letters, digits, _; not built in)",
                      f"save.{name}")
    return Step(number, narration, keys, method.upper(), path, env, msn, request.get("headers") or {},
                request.get("json"), request.get("form"), auth, request.get("token"), credentials, status, fields,
                expect_headers, save)


def near_matcher(key: object) -> str | None:
    """The known matcher a mapping key is, or looks like a typo of (`containz`, `Exists`, `one_of`)."""
    if not isinstance(key, str):
        return None
    if key in MATCHERS:
        return key
    folded = {m.lower(): m for m in MATCHERS}
    plain = key.lower().replace("_", "").replace("-", "")
    if plain in folded:
        return folded[plain]
    close = difflib.get_close_matches(plain, list(folded), n=1, cutoff=0.8)
    return folded[close[0]] if close else None


def check_matcher(expected: object, bad, field_name: str) -> None:
    """The rule: a mapping with exactly one key, a known matcher, is that matcher. A mapping whose every key
    is a matcher or looks like one (`containz`, `Exists`, two matchers at once) is refused, so a typo is
    never compared as a literal. Any other value, mappings included, is compared for equality; a literal
    object whose keys look like matchers is written `{equals: {...}}`."""
    if not isinstance(expected, dict) or not expected:
        return
    guesses = [near_matcher(key) for key in expected]
    if len(expected) == 1 and next(iter(expected)) in MATCHERS:
        kind, argument = next(iter(expected.items()))
        if kind == "exists" and not isinstance(argument, bool):
            raise bad("exists must be true or false", field_name)
        if kind == "oneOf" and not isinstance(argument, list):
            raise bad("oneOf must be a list", field_name)
        if kind in ("length", "gte", "lte") and (not isinstance(argument, int | float) or isinstance(argument, bool)):
            raise bad(f"{kind} must be a number", field_name)
        return
    if all(guesses):
        unknown = [str(k) for k in expected if k not in MATCHERS]
        if unknown:
            hints = ", ".join(f"{k!r} (did you mean {g}?)" for k, g in zip(expected, guesses, strict=True)
                              if k not in MATCHERS)
            raise bad(f"unknown matcher {hints}; known matchers: {', '.join(MATCHERS)} "
                      "(write {equals: {...}} to compare with an object literally)", field_name)
        raise bad(f"a matcher is a mapping with exactly one key, not {len(expected)} "
                  "(write {equals: {...}} to compare with an object literally)", field_name)
