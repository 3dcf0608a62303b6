"""The discovery document, built from the origin the client used (scheme, host and port as the request came in).

Unmodified OIDC libraries compare the document's `issuer` with the URL they discovered from, byte for byte
(openid-client: `new URL(issuer)` and href equality; Authlib: `iss` against metadata["issuer"]). So the issuer
is `<origin>/access-management-1.0/access/` (with the trailing slash, as Vipps has it) and every endpoint is
built from the same origin, never hard-coded to apitest.vipps.no. Documents are prepared bytes, one per origin
(a handful in practice; the cache is bounded), so the endpoint costs no JSON encoding per request.
"""

from __future__ import annotations

import json

PREFIX = "/access-management-1.0/access/"
CIBA_PATH = "/vipps-login-ciba/api/backchannel/authentication"
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
CIBA_REDIRECT_GRANT = "urn:vipps:params:grant-type:ciba-redirect"
SCOPES = ["openid", "address", "birthDate", "email", "name", "phoneNumber", "nin", "delegatedConsents", "gender"]
CACHE_LIMIT = 64


def issuer(origin: str) -> str:
    return origin + PREFIX


def document(origin: str) -> dict:
    """The documented discovery fields ([LS] WellKnown's required ones, the 2026 values), for one origin."""
    base = issuer(origin)
    return {
        "issuer": base,
        "authorization_endpoint": base + "oauth2/auth",
        "token_endpoint": base + "oauth2/token",
        "jwks_uri": base + ".well-known/jwks.json",
        "userinfo_endpoint": origin + "/vipps-userinfo-api/userinfo",
        "backchannel_authentication_endpoint": origin + CIBA_PATH,
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_user_code_parameter_supported": False,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["authorization_code", "client_credentials", CIBA_GRANT, CIBA_REDIRECT_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": SCOPES,
        "claims_supported": ["sub"],
        "claims_parameter_supported": False,
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
    }


class Documents:
    """Prepared bytes of the discovery document, by origin."""

    def __init__(self) -> None:
        self._by_origin: dict[str, bytes] = {}

    def for_origin(self, origin: str) -> bytes:
        body = self._by_origin.get(origin)
        if body is None:
            body = json.dumps(document(origin), separators=(",", ":")).encode()
            if len(self._by_origin) >= CACHE_LIMIT:
                self._by_origin.clear()
            self._by_origin[origin] = body
        return body
