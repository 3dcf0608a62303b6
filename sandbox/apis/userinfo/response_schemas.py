"""Every successful Userinfo response a test client sees is checked against userinfo-2.0.3.yaml.

The test client (sandbox/testing.py) calls `violations()` on each reply. Two spec bugs and one documented value are
set aside, each checked as what the spec means instead:
- Userinfo.phone_number has the pattern `^\\d{15}$` (exactly 15 digits), yet its own example is '4791234567' and
  its description says MSISDN (at most 15 digits): a number of 8 to 15 digits is accepted.
- Userinfo.nin has the pattern `^\\d{11}$`, which its description gives for Norway only ("For Norway this is the
  fødselsnummer"); a Danish CPR (10 digits) and a Finnish HETU (190856-194D) are the other markets' national
  identity numbers: those two formats are accepted besides the Norwegian one.
- After the 168 hours every value reads "[Expired]" (the guide's rule), booleans included, which the spec's types
  cannot say: a value of exactly "[Expired]" is accepted wherever the spec wants another type or pattern.
"""

from __future__ import annotations

import re

from sandbox.core.claims import EXPIRED
from sandbox.core.response_check import checker
from sandbox.core.spec import SpecSchemas

RESPONSES = [("GET", re.compile(r"^/vipps-userinfo-api/userinfo/[^/]+$"), "Userinfo")]
MSISDN = re.compile(r"[0-9]{8,15}")
OTHER_NINS = re.compile(r"[0-9]{10}|[0-9]{6}[-+A-Y][0-9]{3}[0-9A-Z]")  # a Danish CPR, a Finnish HETU
_SPEC: SpecSchemas | None = None


def spec() -> SpecSchemas:
    global _SPEC
    _SPEC = _SPEC or SpecSchemas("userinfo-2.0.3.yaml", formats=True)
    return _SPEC


def _value(item: dict, field: str) -> object:
    value: object = item
    for part in field.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def item_violations(name: str, item: object) -> list[str]:
    found = []
    for field, why in spec().errors(name, item):
        value = _value(item, field) if isinstance(item, dict) else None
        if value == EXPIRED:
            continue  # "[Expired]" after the 168 hours (see the module's docstring)
        if field == "phone_number" and isinstance(value, str) and MSISDN.fullmatch(value):
            continue  # an MSISDN of fewer than 15 digits (see the module's docstring)
        if field == "nin" and isinstance(value, str) and OTHER_NINS.fullmatch(value):
            continue  # a Danish or Finnish national identity number (see the module's docstring)
        found.append(f"{name}.{field}: {why}")
    return found


#: What is wrong with a response, by the spec; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_violations)
