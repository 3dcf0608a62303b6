"""The token endpoints' rules: which credentials get a token from which endpoint, and what it looks like.

The key-type rules come from the one policy table (sandbox/gateway/policy.py token_decision); the gateway's
subscription-key texts are shared with sandbox/gateway/checks.py, since the same APIM answers both.
"""

from __future__ import annotations

from sandbox.core.errors import GatewayError, OAuthError, Problem
from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.runtime import Runtime
from sandbox.gateway.checks import INVALID_SUBSCRIPTION_KEY, MISSING_SUBSCRIPTION_KEY
from sandbox.gateway.policy import token_decision

STANDARD_LIFETIME = {Env.TEST: 3600, Env.PRODUCTION: 86400}
MIAMI_LIFETIME = 900
RESOURCE = "00000002-0000-0000-c000-000000000000"


class TokenBackend:
    """Checks credentials and issues tokens. Knows nothing of HTTP."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _keyset(self, client_id: str, client_secret: str, error) -> KeySet:
        world = self.runtime.world
        keyset = world.keys.get(client_id)
        if keyset is None:
            # Never quote it: a client_secret sent as the client_id (they are easily swapped) would be echoed.
            raise error("The client_id given is not a known client id: no key set has it (is it the client_secret?).",
                        "unknown-client-id")
        if not world.secret_matches(keyset, client_secret):
            if world.secret_was_retired(client_id, client_secret):
                raise error("This client_secret was regenerated and no longer works; use the new one.",
                            "keys-regenerated")
            raise error("The client_secret does not match the client_id.", "client-secret-wrong")
        return keyset

    def standard(self, env: Env, client_id: str | None, client_secret: str | None, subscription_key: str | None,
                 msn: str | None) -> tuple[KeySet, dict]:
        """POST /accesstoken/get: merchant keys in their environment, partner keys in production."""
        world = self.runtime.world
        miami_keyset = world.keys.get(client_id or "")
        if miami_keyset is not None and miami_keyset.type in (KeyType.MANAGEMENT, KeyType.ACCOUNTING):
            decision = token_decision("token.accesstoken", miami_keyset, env)
            raise Problem(401, "Unauthorized", decision.reason, rule=decision.rule)
        if not subscription_key:
            raise GatewayError(MISSING_SUBSCRIPTION_KEY, rule="subscription-key-missing")
        for name, value in (("client_id", client_id), ("client_secret", client_secret)):
            if not value:
                raise Problem(400, "Bad Request", f"The {name} header is missing or empty.", rule="credentials-missing")

        def unauthorized(reason: str, rule: str) -> Problem:
            return Problem(401, "Unauthorized", reason, rule=rule)

        keyset = self._keyset(client_id or "", client_secret or "", unauthorized)
        decision = token_decision("token.accesstoken", keyset, env)
        if not decision.allowed:
            raise unauthorized(decision.reason, decision.rule)
        if world.subscription_owner(subscription_key) != keyset.client_id:
            reason = INVALID_SUBSCRIPTION_KEY
            if world.retired_subscription_owner(subscription_key) == keyset.client_id:
                reason += " This subscription key was regenerated and no longer works."
            raise GatewayError(reason, rule="subscription-key-invalid")
        if msn is not None and not world.can_reach(keyset, msn):
            raise unauthorized(f"Invalid MSN: {msn}. This MSN is not valid for these keys.", "msn-not-in-reach")
        lifetime = STANDARD_LIFETIME[env]
        token, not_before, expires_on = self.runtime.tokens.issue(keyset, env, lifetime, "standard")
        body = {"token_type": "Bearer", "expires_in": str(lifetime), "ext_expires_in": "0",
                "expires_on": str(expires_on), "not_before": str(not_before), "resource": RESOURCE,
                "access_token": token}
        return keyset, body

    def miami(self, env: Env, client_id: str, client_secret: str, grant_type: str | None,
              subscription_key: str | None) -> tuple[KeySet, dict]:
        """POST /miami/v1/token: OAuth2 client credentials for management and accounting keys."""
        if subscription_key:
            raise OAuthError("invalid_client", "Do not send Ocp-Apim-Subscription-Key to /miami/v1/token.",
                             rule="miami-no-subscription-key")
        if grant_type is None:
            raise OAuthError("invalid_client", "grant_type=client_credentials is missing from the form body.",
                             rule="miami-grant-type-missing")
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", "The grant_type given is not supported; use "
                             "client_credentials.", status=400, rule="miami-grant-type-unsupported")

        def invalid_client(reason: str, rule: str) -> OAuthError:
            return OAuthError("invalid_client", reason, rule=rule)

        keyset = self._keyset(client_id, client_secret, invalid_client)
        decision = token_decision("token.miami", keyset, env)
        if not decision.allowed:
            raise invalid_client(decision.reason, decision.rule)
        token, _, _ = self.runtime.tokens.issue(keyset, env, MIAMI_LIFETIME, "miami")
        expires_in: int | str = str(MIAMI_LIFETIME) if self.runtime.settings.miami_expires_in_as_string \
            else MIAMI_LIFETIME
        return keyset, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
