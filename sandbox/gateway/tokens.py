"""RS256 access tokens: issued by the two token endpoints, verified on every API call.

The key pair is made lazily on first use, so creating the app stays fast; PyJWT and cryptography are imported
on first use too (about 30 ms, most of it cryptography.x509, which PyJWT imports): the server imports them in its
warm-up thread once it listens (`warm`), so neither the start nor the first token pays. Verified tokens are cached;
a cache hit re-checks only what can change (the clock and the key's version).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from sandbox.core.clock import VirtualClock
from sandbox.core.errors import GatewayError
from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "vipps-sandbox"
CACHE_LIMIT = 50_000


@lru_cache(maxsize=1)
def process_key_pair() -> rsa.RSAPrivateKey:
    """One RSA key pair per process, made on first use (about 50 ms), shared by every app in it.

    Each app still has its own key id, so a token from another app instance is refused.
    """
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def warm() -> None:
    """Imports PyJWT and the cryptography it uses, ahead of the first token (the server calls it in a thread)."""
    import jwt  # noqa: F401
    from cryptography.hazmat.primitives import serialization  # noqa: F401
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: F401


def new_private_pem() -> str:
    """A fresh RSA key, as unencrypted PKCS#8 PEM (for a private file of the --state directory)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


@dataclass(frozen=True)
class Claims:
    env: Env
    key_type: KeyType
    client_id: str
    owner: str
    version: int
    iat: int
    nbf: int
    exp: int
    flow: str  # "standard" or "miami"


class TokenService:
    def __init__(self, clock: VirtualClock, world: World) -> None:
        self.clock = clock
        self.world = world
        self.kid = secrets.token_hex(8)
        self._cache: dict[str, Claims] = {}

    @cached_property
    def private_key(self) -> rsa.RSAPrivateKey:
        return process_key_pair()

    def use_key(self, pem: str) -> None:
        """Signs with this key from now on (--state keeps one, so tokens outlive a restart). The key id
        comes from the key, so a restarted sandbox recognises its own tokens."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the signing key must be an RSA private key")
        for name in ("public_key", "public_pem"):
            self.__dict__.pop(name, None)
        self.__dict__["private_key"] = key
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = hashlib.sha256(der).hexdigest()[:16]
        self._cache.clear()
        self.world.decisions.clear()  # admissions of tokens the old key signed (sandbox/gateway/admission.py)

    @cached_property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()

    @cached_property
    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def issue(self, keyset: KeySet, env: Env, lifetime: int, flow: str) -> tuple[str, int, int]:
        """A signed token for these keys; returns (token, not_before, expires_on)."""
        import jwt

        now = int(self.clock.time())
        payload = {
            "iss": f"{ISSUER}/{env}", "env": str(env), "kt": str(keyset.type), "cid": keyset.client_id,
            "owner": keyset.owner, "ver": keyset.secret_version, "flow": flow,
            "iat": now, "nbf": now, "exp": now + lifetime, "jti": secrets.token_hex(8),
        }
        token = jwt.encode(payload, self.private_key, algorithm="RS256", headers={"kid": self.kid})
        return token, now, now + lifetime

    def verify(self, token: str, env: Env) -> tuple[Claims, KeySet]:
        """The claims of a valid token for this environment, or a 401 GatewayError saying why."""
        claims = self._cache.get(token)
        if claims is None:
            claims = self._decode(token)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = claims
        now = self.clock.time()
        if now >= claims.exp:
            raise GatewayError("The access token has expired. Get a new one from the token endpoint.",
                               rule="token-expired")
        if now < claims.nbf:
            raise GatewayError("The access token is not valid yet.", rule="token-not-yet-valid")
        if claims.env is not env:
            raise GatewayError(f"This access token was issued by the {claims.env} environment; tokens never work "
                               f"in the other environment ({env}).", rule="keys-stay-in-their-environment")
        keyset = self.world.keys.get(claims.client_id)
        if keyset is None:
            raise GatewayError("The keys that issued this access token no longer exist.", rule="token-unknown-keys")
        if keyset.secret_version != claims.version:
            raise GatewayError("The keys that issued this access token were regenerated since; get a new token "
                               "with the new client_secret.", rule="keys-regenerated")
        return claims, keyset

    def cached_claims(self, token: str) -> Claims | None:
        """The claims of a token `verify` has decoded (and not yet forgotten), else None."""
        return self._cache.get(token)

    def _decode(self, token: str) -> Claims:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "RS256" or header.get("kid") != self.kid:
                raise GatewayError("The access token was not signed by this sandbox (wrong algorithm or key id).",
                                   rule="token-invalid")
            # The virtual clock, not the wall clock, decides expiry: PyJWT's own time checks are off.
            data = jwt.decode(token, self.public_key, algorithms=["RS256"],
                              options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                       "require": ["env", "kt", "cid", "ver", "iat", "nbf", "exp"]})
            return Claims(Env(data["env"]), KeyType(data["kt"]), str(data["cid"]), str(data["owner"]),
                          int(data["ver"]), int(data["iat"]), int(data["nbf"]), int(data["exp"]),
                          str(data.get("flow", "standard")))
        except GatewayError:
            raise
        except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
            raise GatewayError(f"The access token is invalid: {exc}", rule="token-invalid") from exc
