"""The Login API's own signing key: id_tokens are RS256 JWS with `kid` `public:<uuid>`, checked through the JWKS.

It is not the access-token key (sandbox/gateway/tokens.py): Vipps publishes the Login key at jwks_uri, and a
client that validates an id_token must find exactly one RSA key there. The key is made on first use (about
50 ms) and lives as long as the process: id_tokens and Login sessions do not outlive a restart (--state keeps
only the Login clients' settings, docs/apis/login.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from functools import cached_property

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def at_hash(access_token: str) -> str:
    """OpenID Connect Core 3.1.3.6: the left half of SHA-256 of the access token's ASCII, base64url, no padding."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest()[:16])


class IdTokenSigner:
    """One RSA key, its JWKS (as prepared bytes) and the signing of id_tokens."""

    def __init__(self) -> None:
        self.kid = f"public:{uuid.uuid4()}"

    @cached_property
    def key(self) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @cached_property
    def jwk(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {"use": "sig", "kty": "RSA", "kid": self.kid, "alg": "RS256", "n": _uint(numbers.n),
                "e": _uint(numbers.e)}

    @cached_property
    def jwks_bytes(self) -> bytes:
        """The JWKS document, made once: served as is (no JSON encoding per request)."""
        return json.dumps({"keys": [self.jwk]}, separators=(",", ":")).encode()

    @cached_property
    def header(self) -> str:
        """The JWS protected header, encoded once: {"alg": "RS256", "kid": ..., "typ": "JWT"}."""
        return b64url(json.dumps({"alg": "RS256", "kid": self.kid, "typ": "JWT"}, separators=(",", ":")).encode())

    def sign(self, claims: dict) -> str:
        """A compact JWS (RFC 7515) with RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 3.3). Built here rather
        than by PyJWT: the header is encoded once, and the token exchange's cost is then the RSA signature."""
        signing_input = f"{self.header}.{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"
