"""Validation against the bundled official OpenAPI specs, with a library (openapi-schema-validator).

`SpecSchemas("epayment-1.8.1.yaml").validate("CreatePaymentRequest", body)` returns the
problems as (field path, message) pairs; nothing here re-states what the spec says.

A spec's `pattern` is an ECMA 262 regular expression, where `$` matches only at the very end of the value;
Python's `$` also matches before a trailing newline, so `^[0-9]{4,10}$` would let `"123456\n"` through.
The validators here read every pattern the ECMA way (`ecma_pattern`), without restating any of them.
"""

from __future__ import annotations

import importlib.resources
import re
from functools import cache, cached_property, lru_cache
from typing import TYPE_CHECKING, Any

from sandbox.core.errors import Detail, ValidationProblem

if TYPE_CHECKING:  # the validator libraries cost a tenth of a second to import: loaded on first use
    from jsonschema.exceptions import ValidationError
    from openapi_schema_validator import OAS30Validator


def ecma_pattern(pattern: str) -> str:
    """A spec's pattern for Python's re, with ECMA 262's end anchor: each `$` outside a character class
    becomes `\\Z` (the very end; Python's `$` also matches before a final newline)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":  # an escape: the next character is never an anchor or a class bracket
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            out.append(char)
            i += 1
            for literal in ("^", "]"):  # "[^]..." and "[]...": the first ] is a member in Python
                if pattern.startswith(literal, i):
                    out.append(literal)
                    i += 1
            continue
        elif char == "$":
            char = "\\Z"
        out.append(char)
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern:
    """A spec's pattern, compiled with ECMA 262's `$` (see ecma_pattern); use it with .search, as JSON Schema does."""
    return re.compile(ecma_pattern(pattern))


def _ecma_pattern_keyword(validator: Any, pattern: str, instance: object, schema: dict):
    """JSON Schema's `pattern` keyword, as jsonschema has it but with compile_pattern."""
    if validator.is_type(instance, "string") and not compile_pattern(pattern).search(instance):  # type: ignore[arg-type]
        from jsonschema.exceptions import ValidationError

        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def validator_class() -> type[OAS30Validator]:
    """openapi-schema-validator's OAS30Validator, reading patterns the ECMA way. Every validator is one of these."""
    from jsonschema.validators import extend
    from openapi_schema_validator import OAS30Validator

    return extend(OAS30Validator, {"pattern": _ecma_pattern_keyword})


@cache
def load_spec(name: str) -> dict:
    import yaml

    text = importlib.resources.files("sandbox.specs").joinpath(name).read_text(encoding="utf-8")
    # libyaml's loader parses the big specs ten times faster than the pure-Python one.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


class SpecSchemas:
    """Validators for the component schemas of one spec file."""

    def __init__(self, spec_name: str, formats: bool = False) -> None:
        self.spec_name = spec_name
        self.formats = formats  # also check `format` (date-time, email, ...), with the library's format checker
        self.uri = f"urn:vipps-sandbox:{spec_name}"
        self._validators: dict[str, OAS30Validator] = {}

    @cached_property
    def spec(self) -> dict:
        return load_spec(self.spec_name)

    @cached_property
    def registry(self):
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT4

        return Registry().with_resource(self.uri, Resource(contents=self.spec, specification=DRAFT4))

    def validator(self, schema_name: str) -> OAS30Validator:
        validator = self._validators.get(schema_name)
        if validator is None:
            from openapi_schema_validator import oas30_format_checker

            schema = {"$ref": f"{self.uri}#/components/schemas/{schema_name}"}
            validator = validator_class()(schema, registry=self.registry,
                                          format_checker=oas30_format_checker if self.formats else None)
            self._validators[schema_name] = validator
        return validator

    def schema_for(self, schema: dict) -> OAS30Validator:
        """A validator for an inline schema of this spec (for example a response's schema)."""
        return validator_class()(schema, registry=self.registry, _resolver=self.registry.resolver(self.uri))

    def errors(self, schema_name: str, instance: object) -> list[tuple[str, str]]:
        found = []
        for error in sorted(self.validator(schema_name).iter_errors(instance), key=_error_key):
            found.append((_field_name(error), _message(error)))
        return found

    def validate(self, schema_name: str, instance: object) -> None:
        """Raises a 400 ValidationProblem naming each field that breaks the schema."""
        problems = self.errors(schema_name, instance)
        if problems:
            raise ValidationProblem([Detail(name, reason) for name, reason in problems])


REQUIRED_MESSAGE = re.compile(r"^'(.+?)' is a required property")


def _error_key(error: ValidationError) -> tuple:
    return (list(map(str, error.absolute_path)), error.message)


def _field_name(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        # One error per missing property; its message names it ("'x' is a required property").
        match = REQUIRED_MESSAGE.match(error.message)
        if match:
            path.append(match.group(1))
    return ".".join(path) or "body"


def _message(error: ValidationError) -> str:
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."


#: The specs parsed ahead of the first request: the most used API's. The others (Recurring, Management, Report,
#: Webhooks, Userinfo, Checkout, ...) are parsed on first use: with ten APIs, parsing them all at start would hold
#: about 2 MB more for specs a sandbox may never need, and idle RSS must stay under 60 MB (issue 18).
BUNDLED = ("epayment-1.8.1.yaml", "access-token-2024.yaml")


def warm() -> None:
    """Imports the validator libraries and parses the most used specs, ahead of the first request.

    The server calls this in a thread once it is listening, so starting stays fast and the first validated
    ePayment request does not pay for it either; another API's first validated request parses its spec.
    """
    import openapi_schema_validator  # noqa: F401

    for name in BUNDLED:
        load_spec(name)
