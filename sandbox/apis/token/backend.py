"""The token endpoints' rules: which credentials get a token from which endpoint, and what it looks like.

The key-type rules come from the one policy table (sandbox/gateway/policy.py token_decision); the gateway's
subscription-key texts are shared with sandbox/gateway/checks.py, since the same APIM answers both.

POST /accesstoken/get refuses credentials as Azure AD does (IdentityError, rendered in sandbox/core/errors.py):
an application its directory does not hold (an unknown client_id, keys of the other environment, partner keys
in test, keys of the specialized flow) is AADSTS700016, a wrong client_secret AADSTS7000215. The sandbox's own
explanation goes in the error's reason (the Vipps-Sandbox-Reason header and the request log), never in the body.
"""

from __future__ import annotations

from sandbox.core.errors import GatewayError, IdentityError, IdentityMoment, OAuthError, Problem
from sandbox.core.model import MIAMI_KEY_TYPES, Env, KeySet, KeyType
from sandbox.core.runtime import Runtime
from sandbox.gateway.checks import INVALID_SUBSCRIPTION_KEY, MISSING_SUBSCRIPTION_KEY
from sandbox.gateway.policy import token_decision

STANDARD_LIFETIME = {Env.TEST: 3600, Env.PRODUCTION: 86400}
MIAMI_LIFETIME = 900
#: The one scope merchant-level keys ask for (Donations); the token answer echoes it.
DONATIONS_SCOPE = "donations:read"
RESOURCE = "00000002-0000-0000-c000-000000000000"
UNKNOWN_CLIENT_ID = "The client_id given is not a known client id: no key set has it (is it the client_secret?)."


class TokenBackend:
    """Checks credentials and issues tokens. Knows nothing of HTTP."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def _keyset(self, client_id: str, client_secret: str, error) -> KeySet:
        keyset = self.runtime.world.keys.get(client_id)
        if keyset is None:
            # Never quote it: a client_secret sent as the client_id (they are easily swapped) would be echoed.
            raise error(UNKNOWN_CLIENT_ID, "unknown-client-id")
        return self._secret_checked(keyset, client_secret, error)

    def _secret_checked(self, keyset: KeySet, client_secret: str, error) -> KeySet:
        world = self.runtime.world
        client_id = keyset.client_id
        if not world.secret_matches(keyset, client_secret):
            if world.secret_was_retired(client_id, client_secret):
                raise error("This client_secret was regenerated and no longer works; use the new one.",
                            "keys-regenerated")
            raise error("The client_secret does not match the client_id.", "client-secret-wrong")
        return keyset

    def _moment(self) -> IdentityMoment:
        """The time and the ids Azure AD stamps on a refusal: the virtual clock, and uuids that leave the
        journaled id stream alone (a refusal changes nothing)."""
        ids = self.runtime.ids
        return IdentityMoment(self.runtime.clock.now().strftime("%Y-%m-%d %H:%M:%SZ"), ids.unjournaled_uuid4(),
                              ids.unjournaled_uuid4())

    def _directory(self, env: Env) -> str:
        settings = self.runtime.settings
        return settings.token_directory_test if env is Env.TEST else settings.token_directory_production

    def standard(self, env: Env, client_id: str | None, client_secret: str | None, subscription_key: str | None,
                 msn: str | None) -> tuple[KeySet, dict]:
        """POST /accesstoken/get: merchant keys in their environment, partner keys in production."""
        world = self.runtime.world

        def not_in_directory(reason: str, rule: str) -> IdentityError:
            # AADSTS700016 quotes the identifier; the sandbox never does (it may be a secret sent in its place).
            return IdentityError(700016, reason, rule=rule, moment=self._moment(), directory=self._directory(env))

        known = world.keys.get(client_id or "")
        if known is not None and known.type in MIAMI_KEY_TYPES:
            # Before the subscription key: these keys have none, and the reason points to /miami/v1/token.
            decision = token_decision("token.accesstoken", known, env)
            raise not_in_directory(decision.reason, decision.rule)
        if not subscription_key:
            raise GatewayError(MISSING_SUBSCRIPTION_KEY, rule="subscription-key-missing")
        if not client_id:
            raise IdentityError(900144, "The client_id header is missing or empty.", rule="credentials-missing",
                                moment=self._moment())
        if not client_secret:
            raise IdentityError(7000218, "The client_secret header is missing or empty.", rule="credentials-missing",
                                moment=self._moment())
        if known is None:
            raise not_in_directory(UNKNOWN_CLIENT_ID, "unknown-client-id")
        decision = token_decision("token.accesstoken", known, env)
        if not decision.allowed:  # the other environment's keys, partner keys in test: not in this directory
            raise not_in_directory(decision.reason, decision.rule)

        def secret_wrong(reason: str, rule: str) -> IdentityError:
            # The client id matched a key set, so quoting it (as Azure AD does) echoes no secret.
            return IdentityError(7000215, reason, rule=rule, moment=self._moment(), app=known.client_id)

        keyset = self._secret_checked(known, client_secret, secret_wrong)
        if world.subscription_owner(subscription_key) != keyset.client_id:
            reason = INVALID_SUBSCRIPTION_KEY
            if world.retired_subscription_owner(subscription_key) == keyset.client_id:
                reason += " This subscription key was regenerated and no longer works."
            raise GatewayError(reason, rule="subscription-key-invalid")
        if msn is not None and not world.can_reach(keyset, msn):
            # Vipps' own check, not Azure AD's: the 2-field body of the FAQ's "Invalid MSN" texts
            raise Problem(401, "Unauthorized", f"Invalid MSN: {msn}. This MSN is not valid for these keys.",
                          rule="msn-not-in-reach")
        lifetime = STANDARD_LIFETIME[env]
        token, not_before, expires_on = self.runtime.tokens.issue(keyset, env, lifetime, "standard")
        body = {"token_type": "Bearer", "expires_in": str(lifetime), "ext_expires_in": "0",
                "expires_on": str(expires_on), "not_before": str(not_before), "resource": RESOURCE,
                "access_token": token}
        return keyset, body

    def miami(self, env: Env, client_id: str, client_secret: str, grant_type: str | None,
              subscription_key: str | None, scope: str | None = None) -> tuple[KeySet, dict]:
        """POST /miami/v1/token: OAuth2 client credentials for management, accounting and merchant-level keys.
        Merchant-level keys may ask for `scope=donations:read`, which the answer echoes (reference section 1a);
        another scope is invalid_scope (UNCERTAIN). The other key types' tokens have no scope: one sent is ignored."""
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
        if scope is not None and keyset.type is KeyType.MERCHANT_LEVEL and scope.split() != [DONATIONS_SCOPE]:
            raise OAuthError("invalid_scope", f"Merchant-level keys may ask for scope={DONATIONS_SCOPE} only.",
                             status=400, rule="merchant-level-scope-invalid")
        token, _, _ = self.runtime.tokens.issue(keyset, env, MIAMI_LIFETIME, "miami")
        expires_in: int | str = str(MIAMI_LIFETIME) if self.runtime.settings.miami_expires_in_as_string \
            else MIAMI_LIFETIME
        body: dict = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
        if scope is not None and keyset.type is KeyType.MERCHANT_LEVEL:
            body["scope"] = DONATIONS_SCOPE
        return keyset, body
