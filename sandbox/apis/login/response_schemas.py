"""Every successful Login API response a test client sees is checked against the official spec.

The test client (sandbox/testing.py) calls `violations()` on each reply. The schemas are the 2025 publication's
(login-swagger-id.yaml, which has CIBA, user-exists and Login's userinfo besides the 2023 file's four operations).
"""

from __future__ import annotations

import re

from sandbox.core.response_check import checker
from sandbox.core.spec import SpecSchemas

PREFIX = "/access-management-1.0/access"
#: (method, path) -> the schema of a 2xx body.
RESPONSES = [
    ("GET", re.compile(rf"^{PREFIX}/\.well-known/openid-configuration$"), "WellKnown"),
    ("GET", re.compile(rf"^{PREFIX}/\.well-known/jwks\.json$"), "JSONWebKeySet"),
    ("POST", re.compile(rf"^{PREFIX}/oauth2/token$"), "OauthTokenResponse"),
    ("GET", re.compile(r"^/vipps-userinfo-api/userinfo/?$"), "Userinfo"),
    ("POST", re.compile(r"^/vipps-login-ciba/api/backchannel/authentication$"), "AuthenticationResponsePayload"),
    ("POST", re.compile(r"^/vipps-login-ciba/api/v1/user-exists$"), "UserExistsResponsePayload"),
]
_SPEC: SpecSchemas | None = None


def item_errors(name: str, item: object) -> list[str]:
    global _SPEC
    _SPEC = _SPEC or SpecSchemas("login-swagger-id.yaml")
    return [f"{name}.{field}: {why}" for field, why in _SPEC.errors(name, item)]


#: What is wrong with a response, by the spec; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_errors)
