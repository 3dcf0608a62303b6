"""Who calls Login's token, CIBA and user-exists endpoints: the sales unit's own OAuth client credentials, or
(production only) a partner's access token from /accesstoken/get plus Merchant-Serial-Number.

- `client_secret_basic`: `Authorization: Basic base64(client_id:client_secret)`. RFC 6749 2.3.1 says both are
  form-urlencoded before base64 (openid-client does so); Authlib sends them raw. Vipps secrets hold `+`, `/`
  and `=`, so the two differ on the wire: the raw value is tried, then the percent-decoded one.
- `client_secret_post`: `client_id` and `client_secret` in the form body; on by default, off for a client
  switched to "basic only" (the portal's setting, here the control plane or the fixture's `login_clients`).
- Partner keys: the Bearer token is verified like any access token, then the one policy table decides
  (`decide`: production only, the MSN must be sent and connected, the partner approved to act on behalf).
Every refusal is an OAuth `invalid_client` (401), with the sandbox's reason in its headers only.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sandbox.core.errors import GatewayError, OAuthError
from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World
from sandbox.gateway.policy import Decision, RoutePolicy, decide
from sandbox.gateway.tokens import TokenService

BAD_CLIENT = "Client authentication failed."


@dataclass(frozen=True)
class Client:
    """The Login client a call is for: the sales unit's merchant keys, and whether a partner made it."""

    keyset: KeySet
    msn: str
    partner_id: str | None = None
    decision: Decision | None = None

    @property
    def client_id(self) -> str:
        return self.keyset.client_id


def refused(reason: str, rule: str) -> OAuthError:
    return OAuthError("invalid_client", reason, status=401, rule=rule, description=BAD_CLIENT)


def merchant_client(world: World, env: Env, msn: str) -> KeySet | None:
    """The Login client of sales unit `msn` in `env`: its merchant keys."""
    for keyset in world.keys.values():
        if keyset.type is KeyType.MERCHANT and keyset.owner == msn and keyset.environment is env:
            return keyset
    return None


def basic_credentials(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise refused("The Authorization header is not valid Basic base64(client_id:client_secret).",
                      "login-basic-malformed") from exc
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise refused("Basic credentials must be base64(client_id:client_secret).", "login-basic-malformed")
    return client_id, secret


def _checked(world: World, env: Env, route: RoutePolicy, client_id: str, secrets: tuple[str, ...]) -> Client:
    keyset = world.keys.get(client_id)
    if keyset is None:
        # Never quoted: a client_secret sent as the client_id (easily swapped) would be echoed.
        raise refused("The client_id is not a known client id.", "unknown-client-id")
    decision = decide(route, keyset, env, None, world)
    if keyset.type is not KeyType.MERCHANT or not decision.allowed:
        reason = decision.reason if not decision.allowed else (
            "Partner keys authenticate with Authorization: Bearer <token from /accesstoken/get> and "
            "Merchant-Serial-Number, not with client_secret_basic or client_secret_post.")
        raise refused(reason, decision.rule if not decision.allowed else "partner-keys-use-bearer")
    if not any(world.secret_matches(keyset, secret) for secret in secrets):
        if any(world.secret_was_retired(client_id, secret) for secret in secrets):
            raise refused("This client_secret was regenerated and no longer works; use the new one.",
                          "keys-regenerated")
        raise refused("The client_secret does not match the client_id.", "client-secret-wrong")
    return Client(keyset, keyset.owner, decision=decision)


def authenticate(world: World, tokens: TokenService, env: Env, route: RoutePolicy, authorization: str,
                 form: dict[str, str], msn: str | None) -> Client:
    """The caller of a client-authenticated Login endpoint, or an OAuthError."""
    scheme = authorization[:7].lower()
    if scheme.startswith("basic "):
        if form.get("client_secret"):
            raise OAuthError("invalid_request", "Send the client credentials once: Basic or in the form body, "
                             "not both.", status=400, rule="login-two-client-auth-methods")
        client_id, secret = basic_credentials(authorization)
        decoded_id, decoded_secret = unquote_plus(client_id), unquote_plus(secret)
        if form.get("client_id") not in (None, client_id, decoded_id):
            raise refused("The form's client_id is not the Basic credentials' client_id.", "login-client-id-differs")
        known = client_id if client_id in world.keys else decoded_id
        return _checked(world, env, route, known, (secret, decoded_secret))
    if scheme == "bearer ":
        return _partner(world, tokens, env, route, authorization[7:].strip(), msn)
    client_id, secret = form.get("client_id"), form.get("client_secret")
    if not client_id or secret is None:
        raise refused("No client credentials: send Authorization: Basic base64(client_id:client_secret), or "
                      "client_id and client_secret in the form body.", "login-credentials-missing")
    if world.login_clients.get(client_id, {}).get("basic_only"):
        raise refused("This client is set to client_secret_basic only: client_secret_post is not enabled for it.",
                      "login-client-secret-post-disabled")
    return _checked(world, env, route, client_id, (secret,))


def _partner(world: World, tokens: TokenService, env: Env, route: RoutePolicy, token: str, msn: str | None) -> Client:
    try:
        _, keyset = tokens.verify(token, env)
    except GatewayError as exc:
        raise refused(exc.reason, exc.rule or "token-invalid") from exc
    if keyset.type is not KeyType.PARTNER:
        raise refused("A Bearer token is for partner keys only; sales unit keys authenticate with their "
                      "client_id and client_secret (Basic or in the form body).", "login-bearer-partner-only")
    decision = decide(route, keyset, env, msn, world)
    if not decision.allowed:
        raise refused(decision.reason, decision.rule)
    assert msn is not None  # decide refuses partner keys without one
    client = merchant_client(world, env, msn)
    if client is None:
        raise refused(f"Sales unit {msn} has no Login client in {env}.", "login-no-client-for-msn")
    return Client(client, msn, partner_id=keyset.owner, decision=decision)
