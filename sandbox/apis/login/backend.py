"""The Login API's rules: authorize, the login page's consent, the token endpoint, Login's userinfo.

Knows nothing of HTTP. Every expiry is on the virtual clock (core/clock.py); codes, access tokens and pending
logins are indexed by time (state.ExpiryIndex) and forgotten when they expire. CIBA lives in ciba.py.

Refusals the user's browser sees are `ErrorPage`s (an unknown client or redirect_uri is never redirected to)
or `RedirectError`s (sent back to the registered redirect_uri with error, error_description and state, as the
reference's 3b says). The token endpoint and userinfo raise OAuthErrors ({"error", "error_description"}).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from sandbox.apis.login import discovery, redirects
from sandbox.apis.login.clients import Client, merchant_client
from sandbox.apis.login.signing import IdTokenSigner, at_hash, b64url
from sandbox.apis.login.state import Authorization, ExpiryIndex, Grant, PendingLogin, Session
from sandbox.core import claims
from sandbox.core.errors import OAuthError
from sandbox.core.events import PROFILE_SHARED, profile_event
from sandbox.core.model import Env, KeyType, User
from sandbox.core.runtime import Runtime

CODE_LIFETIME = 120  # "only be valid for a couple of minutes" [L23 FAQ]
LOGIN_PAGE_LIFETIME = 600
ID_TOKEN_LIFETIME = 3600
EXPIRES_IN = 3599  # what the token response says [LS example]
MIN_STATE = 8
MAX_PARAM = 1000  # longer state/nonce gave HTTP 502 at api.vipps.no [L23 FAQ]; here a clear 400
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
MIN_AGE = 15
AUTHORIZATION_CODE = "authorization_code"
#: Pending logins are made by anyone's browser, unauthenticated: at most this many wait at once (each for 10 min).
MAX_PENDING_LOGINS = 50_000


@dataclass
class ErrorPage(Exception):
    """A refusal shown on a page of the sandbox: never a redirect (the redirect_uri cannot be trusted)."""

    status: int
    title: str
    message: str
    rule: str


@dataclass
class RedirectError(Exception):
    """A refusal sent back to the (registered) redirect_uri."""

    url: str
    rule: str
    reason: str


@dataclass
class TokenReply:
    """A token response before its id_token is signed: the state has changed already (the code is used, the
    session exists); `finish` or the route (which signs off the event loop) adds the id_token."""

    body: dict
    claims: dict

    def finish(self, signer: IdTokenSigner) -> dict:
        return {**self.body, "id_token": signer.sign(self.claims)}


def grant_error(reason: str, rule: str) -> OAuthError:
    return OAuthError("invalid_grant", reason, status=400, rule=rule)


def pkce_ok(challenge: str, method: str, verifier: str) -> bool:
    if method == "S256":
        computed = b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
        return hmac.compare_digest(computed, challenge)
    return hmac.compare_digest(verifier.encode(), challenge.encode())


class LoginBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.signer = IdTokenSigner()
        self.documents = discovery.Documents()
        self.logins: dict[str, PendingLogin] = {}
        self.codes: dict[str, Grant] = {}
        self.sessions: dict[str, Session] = {}
        self.expiry = ExpiryIndex()
        #: Other tables in the same index (CIBA's): table -> forget(key, now).
        self.forgetters: dict[str, Callable[[str, float], None]] = {}

    def reset(self) -> None:
        self.logins.clear()
        self.codes.clear()
        self.sessions.clear()
        self.expiry.clear()

    def now(self) -> float:
        return self.runtime.clock.time()

    def forget_expired(self) -> None:
        """Drops what has expired, by the index: O(expired), never a scan."""
        now = self.now()
        tables = {"login": self.logins, "code": self.codes, "session": self.sessions}
        for table, key in self.expiry.due(now):
            if table in self.forgetters:
                self.forgetters[table](key, now)
                continue
            record = tables[table].get(key)
            if record is not None and record.expires_at <= now:
                del tables[table][key]

    # -- /oauth2/auth --------------------------------------------------------------------------------
    def client_for_msn(self, env: Env, msn: str) -> str:
        """Partners' `msn=` instead of `client_id=`: the merchant's client id (production only, [L23])."""
        if env is not Env.PRODUCTION:
            raise ErrorPage(400, "Partner login not available", "msn= is for partner keys, which work in "
                            "production only; in the test environment use the sales unit's client_id.",
                            "partner-keys-production-only")
        keyset = merchant_client(self.runtime.world, env, msn)
        if keyset is None:
            raise ErrorPage(400, "Unknown sales unit", "No sales unit with this MSN has a Login client here.",
                            "login-no-client-for-msn")
        return keyset.client_id

    def authorize(self, env: Env, params: dict[str, str]) -> str:
        """Checks an /oauth2/auth request; returns the new pending login's id. ErrorPage or RedirectError."""
        world = self.runtime.world
        client_id = params.get("client_id") or ""
        keyset = world.keys.get(client_id)
        if keyset is None or keyset.type is not KeyType.MERCHANT or keyset.environment is not env:
            raise ErrorPage(400, "Unknown client", "The client_id is not the Login client of a sales unit in "
                            f"this ({env}) environment.", "login-client-unknown")
        redirect_uri = params.get("redirect_uri") or ""
        if not redirect_uri or not redirects.matches(redirect_uri, world.redirect_uris(client_id)):
            raise ErrorPage(400, "Redirect URI not registered", "The \"redirect_uri\" provided with your request "
                            "does not match any of your preregistered URIs.", "login-redirect-uri-unregistered")
        state = params.get("state")

        def back(error: str, description: str, rule: str) -> RedirectError:
            url = redirects.with_params(redirect_uri, {"error": error, "error_description": description,
                                                       "state": state})
            return RedirectError(url, rule, description)

        if params.get("response_type") != "code":
            raise back("unsupported_response_type", "response_type must be code.", "login-response-type")
        scopes = claims.scopes_of(params.get("scope"))
        if "openid" not in scopes:
            raise back("invalid_scope", "The scope must include openid.", "login-scope-openid-missing")
        if not state or len(state) < MIN_STATE:
            raise back("invalid_request", "The state parameter is required and must be at least 8 characters.",
                       "login-state-too-short")
        nonce = params.get("nonce") or None
        if len(state) > MAX_PARAM or (nonce is not None and len(nonce) > MAX_PARAM):
            raise back("invalid_request", f"state and nonce may be at most {MAX_PARAM} characters.",
                       "login-parameter-too-long")
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or "plain"
        if method not in ("plain", "S256"):
            raise back("invalid_request", "code_challenge_method must be plain or S256.", "login-pkce-method")
        if challenge is None and params.get("code_challenge_method"):
            raise back("invalid_request", "code_challenge_method without code_challenge.", "login-pkce-challenge")
        if challenge is not None and not PKCE_VERIFIER.fullmatch(challenge):
            raise back("invalid_request", "code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~].",
                       "login-pkce-challenge")
        if params.get("app_callback_uri") and not params.get("requested_flow"):
            raise back("invalid_app_callback_uri", "app_callback_uri needs requested_flow.", "login-app-callback")
        self.forget_expired()
        if len(self.logins) >= MAX_PENDING_LOGINS:
            raise ErrorPage(429, "Too many logins", "Too many logins are waiting for a user; try again in a few "
                            "minutes.", "login-too-many-pending")
        now = self.now()
        login = PendingLogin(secrets.token_urlsafe(24), Authorization(
            env, client_id, keyset.owner, redirect_uri, scopes, state, nonce, challenge, method, now),
            now + LOGIN_PAGE_LIFETIME)
        self.logins[login.id] = login
        self.expiry.add(login.expires_at, "login", login.id)
        return login.id

    # -- the login page ------------------------------------------------------------------------------
    def pending(self, login_id: str | None) -> PendingLogin:
        login = self.logins.get(login_id or "")
        if login is None or login.expires_at <= self.now():
            raise ErrorPage(404, "Login not found", "This login is unknown, finished or expired: start again "
                            "from the merchant's site.", "login-page-unknown")
        return login

    def refusal(self, user: User | None) -> str | None:
        """Why this user cannot log in (None: they can)."""
        if user is None:
            return "No Vipps MobilePay user has this phone number: choose a test user."
        if user.age(date.fromtimestamp(self.now())) < MIN_AGE:
            return "Users under 15 cannot log in with Vipps MobilePay."
        return None

    def consent(self, login_id: str, phone: str | None) -> str:
        """The user consents (to every scope: all or nothing); returns where the browser goes, with the code."""
        login = self.pending(login_id)
        user = self.runtime.world.user(phone)
        why = self.refusal(user)
        if why is not None:
            raise ErrorPage(400, "Cannot log in", why, "login-user-refused")
        assert user is not None
        del self.logins[login.id]
        request = login.request
        now = self.now()
        grant = Grant(request, user.phone_number, now, str(uuid.uuid4()), now + CODE_LIFETIME)
        code = secrets.token_urlsafe(32)
        self.codes[code] = grant
        self.expiry.add(grant.expires_at, "code", code)
        self.shared(request, user.phone_number, now)
        return redirects.with_params(request.redirect_uri, {"code": code, "state": request.state,
                                                            "scope": " ".join(request.scopes)})

    def cancel(self, login_id: str) -> str:
        login = self.pending(login_id)
        del self.logins[login.id]
        return redirects.with_params(login.request.redirect_uri, {
            "error": "access_denied", "error_description": "The user cancelled the login.",
            "state": login.request.state})

    def shared(self, request: Authorization, phone: str, at: float) -> None:
        """Tells the Userinfo API (and any listener) that the user shared a profile with this sales unit."""
        self.runtime.publish(PROFILE_SHARED, profile_event(
            env=str(request.env), msn=request.msn, sub=claims.subject(request.msn, phone), phone=phone,
            scope=" ".join(request.scopes), timestamp=at, source="login"))

    # -- /oauth2/token -------------------------------------------------------------------------------
    def exchange_code(self, client: Client, form: dict[str, str], origin: str) -> TokenReply:
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "The code parameter is missing.", status=400,
                             rule="login-code-missing")
        if not form.get("redirect_uri"):
            raise OAuthError("invalid_request", "The redirect_uri parameter is missing.", status=400,
                             rule="login-redirect-uri-missing")
        self.forget_expired()
        grant = self.codes.get(code)
        generic = "The provided authorization grant is invalid, expired, revoked, does not match the redirection " \
                  "URI used in the authorization request, or was issued to another client."
        if grant is None or grant.expires_at <= self.now():
            raise OAuthError("invalid_grant", "The code is unknown or expired.", status=400,
                             rule="login-code-unknown-or-expired", description=generic)
        if grant.used:
            raise OAuthError("invalid_grant", "The code was used already: codes work once.", status=400,
                             rule="login-code-reused", description=generic)
        request = grant.request
        if request.client_id != client.client_id or request.env is not client.keyset.environment:
            raise OAuthError("invalid_grant", "The code was issued to another client.", status=400,
                             rule="login-code-other-client", description=generic)
        if form["redirect_uri"] != request.redirect_uri:
            raise OAuthError("invalid_grant", "The redirect_uri differs from the one of the authorization request.",
                             status=400, rule="login-redirect-uri-differs", description=generic)
        if request.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_grant", "The code_verifier is missing (PKCE was used).", status=400,
                                 rule="login-pkce-verifier-missing", description=generic)
            if not pkce_ok(request.code_challenge, request.code_challenge_method, verifier):
                raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.", status=400,
                                 rule="login-pkce-verifier-wrong", description=generic)
        grant.used = True  # kept until it expires, so a replay is told why
        return self.tokens(grant, client, origin, EXPIRES_IN)

    def tokens(self, grant: Grant, client: Client, origin: str, expires_in: int) -> TokenReply:
        """The token response: an opaque access token (Login's userinfo only) and the id_token's claims."""
        request = grant.request
        now = self.now()
        access = secrets.token_urlsafe(32)
        sub = claims.subject(request.msn, grant.phone)
        window = min(self.runtime.settings.login_userinfo_window, expires_in)
        session = Session(request.env, request.msn, grant.phone, request.scopes, sub, grant.sid, now + window)
        self.sessions[access] = session
        self.expiry.add(session.expires_at, "session", access)
        iat = int(now)
        body = {"iss": discovery.issuer(origin), "sub": sub, "aud": [request.client_id], "exp": iat + ID_TOKEN_LIFETIME,
                "iat": iat, "auth_time": int(grant.auth_time), "rat": int(request.requested_at),
                "at_hash": at_hash(access), "sid": grant.sid, "jti": str(uuid.uuid4())}
        if request.nonce is not None:
            body["nonce"] = request.nonce
        elif self.runtime.settings.login_empty_nonce:
            body["nonce"] = ""
        if client.partner_id is not None:
            body["msn"] = request.msn
        if grant.auth_req_id is not None:
            body["auth_req_id"] = grant.auth_req_id
        return TokenReply({"access_token": access, "expires_in": expires_in, "scope": " ".join(request.scopes),
                           "token_type": "bearer"}, body)

    # -- Login's userinfo ----------------------------------------------------------------------------
    def userinfo(self, env: Env, token: str | None, subscription_key: str | None) -> dict:
        def unauthorized(reason: str, rule: str) -> OAuthError:
            return OAuthError("invalid_token", reason, status=401, rule=rule,
                              headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

        if subscription_key and self.runtime.settings.login_userinfo_refuses_subscription_key:
            raise unauthorized("Login's userinfo takes the user's access token and nothing else: do not send "
                               "Ocp-Apim-Subscription-Key (the docs: it gives 401).", "login-userinfo-subscription-key")
        if not token:
            raise unauthorized("Send Authorization: Bearer <access_token from the login>.", "login-userinfo-no-token")
        session = self.sessions.get(token)
        if session is None or session.env is not env:
            raise unauthorized("The access token is not a Login access token of this environment (tokens from "
                               "/accesstoken/get do not work here).", "login-userinfo-token-unknown")
        if session.expires_at <= self.now():
            raise unauthorized("The Login access token has expired: the user logs in again (no refresh tokens).",
                               "login-userinfo-token-expired")
        user = self.runtime.world.user(session.phone)
        values = claims.claims(user, session.scopes, env) if user is not None else {}
        return {"sub": session.sub, "sid": session.sid, **values}

    # -- the clients' settings -----------------------------------------------------------------------
    def client_view(self, client_id: str) -> dict:
        world = self.runtime.world
        keyset = world.keys.get(client_id)
        if keyset is None or keyset.type is not KeyType.MERCHANT:
            raise KeyError(client_id)
        basic_only = world.login_clients.get(client_id, {}).get("basic_only", False)
        return {"clientId": client_id, "msn": keyset.owner, "environment": str(keyset.environment),
                "redirectUris": world.redirect_uris(client_id),
                "tokenEndpointAuthMethods": ["client_secret_basic"] if basic_only
                else ["client_secret_basic", "client_secret_post"]}

    def update_client(self, client_id: str, redirect_uris: list[str] | None, basic_only: bool | None) -> dict:
        self.client_view(client_id)  # KeyError for what is not a Login client
        world = self.runtime.world
        settings = world.login_clients.setdefault(client_id, {"redirect_uris": [], "basic_only": False})
        if redirect_uris is not None:
            settings["redirect_uris"] = list(dict.fromkeys(redirect_uris))
        if basic_only is not None:
            settings["basic_only"] = basic_only
        world.decisions.clear()
        return self.client_view(client_id)
