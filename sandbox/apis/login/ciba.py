"""CIBA, "Login from phone number": the merchant starts a login, the user approves it on the (virtual) phone.

1. POST /vipps-login-ciba/api/backchannel/authentication: `login_hint=urn:msisdn:<MSISDN>`, `scope`, optional
   `binding_message` (^[A-Z0-9\\-]{5,8}$), `requested_expiry` (60-900), `state`, `nonce`; the spec's camelCase
   `loginHint`/`bindingMessage` too. `{"auth_req_id", "expires_in", "interval"}`.
2. The token endpoint with `grant_type=urn:openid:params:grant-type:ciba&auth_req_id=...`: 400
   `authorization_pending` while the user has not answered, `slow_down` when polled faster than `interval`,
   `access_denied` when rejected, `expired_token` after `expires_in` (on the virtual clock), then the tokens,
   once. The pace of polling is measured in real seconds (time.monotonic): a frozen virtual clock must not make
   every poll "too fast".
3. `requested_flow=login_to_webpage` with a registered `redirect_uri`: approving sends the user's browser to
   `redirect_uri?code=...`, exchanged with `grant_type=urn:vipps:params:grant-type:ciba-redirect`, once.
Users that do not exist or are under 15 are `invalid_user` (error_code), as the docs list.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid

from sandbox.apis.login import redirects
from sandbox.apis.login.backend import CODE_LIFETIME, LoginBackend, OAuthError, TokenReply, grant_error
from sandbox.apis.login.clients import Client
from sandbox.apis.login.state import Authorization, CibaRequest, Grant
from sandbox.core import claims
from sandbox.core.model import Env

BINDING_MESSAGE = re.compile(r"[A-Z0-9\-]{5,8}")
MSISDN = re.compile(r"[0-9]{8,15}")
DEFAULT_EXPIRY = 600
CIBA_EXPIRES_IN = 300  # the token response's expires_in in the docs' CIBA example
MAX_PENDING_PER_USER = 5  # "429 with Retry-After when too many logins are started for the same user"
POLL_SLACK = 0.25  # seconds of timer jitter forgiven


def bad_request(reason: str, rule: str, code: str | None = None) -> OAuthError:
    return OAuthError("invalid_request", reason, status=400, rule=rule, code=code)


#: A login_hint naming the user by the token of a QR check-in (the QR API's user.checked-in.v1).
CUSTOMER_TOKEN = "urn:customer-token:"


def field(form: dict[str, str], *names: str) -> str | None:
    """The first of `names` present (the docs' snake_case, then the spec's camelCase)."""
    for name in names:
        if name in form:
            return form[name]
    return None


def phone_of_hint(hint: str | None) -> str:
    if not hint:
        raise bad_request("login_hint is missing: send login_hint=urn:msisdn:<phone number>.",
                          "ciba-login-hint-missing")
    if not hint.startswith("urn:msisdn:"):
        raise bad_request("login_hint must be urn:msisdn:<phone number with country code>, or "
                          "urn:customer-token:<token> from a QR check-in (user.checked-in.v1).",
                          "ciba-login-hint-malformed")
    number = hint[len("urn:msisdn:"):]
    if not MSISDN.fullmatch(number):
        raise bad_request("The phone number in login_hint must be 8 to 15 digits with the country code, e.g. "
                          "urn:msisdn:4712345678.", "ciba-login-hint-malformed")
    return number


class Ciba:
    """The CIBA requests of one sandbox, by id and by (environment, phone) for the phone's cards."""

    def __init__(self, login: LoginBackend) -> None:
        self.login = login
        self.requests: dict[str, CibaRequest] = {}
        self.by_phone: dict[tuple[Env, str], dict[str, CibaRequest]] = {}
        login.forgetters["ciba"] = self._expire

    def reset(self) -> None:
        self.requests.clear()
        self.by_phone.clear()

    def _forget(self, ciba: CibaRequest) -> None:
        self.requests.pop(ciba.id, None)
        self.by_phone.get((ciba.request.env, ciba.phone), {}).pop(ciba.id, None)

    def _expire(self, key: str, now: float) -> None:
        """Called by the index a while after the request expired (its polls are told why until then)."""
        ciba = self.requests.get(key)
        if ciba is not None and ciba.expires_at + CODE_LIFETIME <= now:
            self._forget(ciba)

    def forget_expired(self) -> None:
        self.login.forget_expired()

    def user_exists(self, form: dict[str, str]) -> dict:
        phone = phone_of_hint(field(form, "login_hint", "loginHint"))
        return {"exists": self.login.runtime.world.user(phone) is not None}

    def phone_of(self, client: Client, hint: str | None) -> str:
        """The user a login_hint names: a phone number, or the customer token of a QR check-in at this client's
        sales unit (core/customer_tokens.py; another sales unit's, an expired or an unknown token names nobody)."""
        if hint is not None and hint.startswith(CUSTOMER_TOKEN):
            runtime = self.login.runtime
            holder = runtime.customer_tokens.resolve(hint[len(CUSTOMER_TOKEN):], client.keyset.environment,
                                                     self.login.now())
            if holder is None or holder.msn != client.msn:
                raise bad_request("The customer token in login_hint is unknown, expired or from a check-in at another "
                                  "sales unit.", "ciba-customer-token-unknown", code="invalid_user")
            return holder.phone
        return phone_of_hint(hint)

    def start(self, client: Client, form: dict[str, str]) -> dict:
        world = self.login.runtime.world
        phone = self.phone_of(client, field(form, "login_hint", "loginHint"))
        scopes = claims.scopes_of(form.get("scope"))
        if "openid" not in scopes:
            raise OAuthError("invalid_scope", "The scope must include openid.", status=400, rule="ciba-scope-openid")
        message = field(form, "binding_message", "bindingMessage")
        if message is not None and not BINDING_MESSAGE.fullmatch(message):
            raise bad_request("binding_message must match ^[A-Z0-9\\-]{5,8}$.", "ciba-binding-message")
        raw_expiry = field(form, "requested_expiry", "requestedExpiry")
        expiry = DEFAULT_EXPIRY
        if raw_expiry is not None:
            if not raw_expiry.isascii() or not raw_expiry.isdigit() or not 60 <= int(raw_expiry) <= 900:
                raise bad_request("requested_expiry must be a whole number of seconds from 60 to 900.",
                                  "ciba-requested-expiry")
            expiry = int(raw_expiry)
        flow = field(form, "requested_flow", "requestedFlow")
        redirect_uri = field(form, "redirect_uri", "redirectUri")
        if flow not in (None, "", "login_to_webpage"):
            raise bad_request("requested_flow must be login_to_webpage (or left out).", "ciba-requested-flow")
        if flow == "login_to_webpage":
            if not redirect_uri or not redirects.matches(redirect_uri, world.redirect_uris(client.client_id)):
                raise bad_request("login_to_webpage needs a redirect_uri registered for this client.",
                                  "ciba-redirect-uri-unregistered")
        user = world.user(phone)
        why = self.login.refusal(user)
        if why is not None:
            raise bad_request(why, "ciba-invalid-user", code="invalid_user")
        self.forget_expired()
        env = client.keyset.environment
        waiting = self.by_phone.setdefault((env, phone), {})
        now = self.login.now()
        if sum(1 for item in waiting.values() if item.status == "pending" and item.expires_at > now) \
                >= MAX_PENDING_PER_USER:
            raise OAuthError("too_many_requests", f"More than {MAX_PENDING_PER_USER} logins are waiting for this "
                             "user.", status=429, rule="ciba-too-many-for-user", headers={"Retry-After": "30"})
        nonce, state = form.get("nonce") or None, form.get("state") or None
        request = Authorization(env, client.client_id, client.msn, redirect_uri or "", scopes, state, nonce, None,
                                "plain", now)
        interval = self.login.runtime.settings.login_ciba_interval
        ciba = CibaRequest(str(uuid.uuid4()), request, phone, message, now + expiry, interval,
                           flow or None, now, last_poll=time.monotonic())
        self.requests[ciba.id] = ciba
        waiting[ciba.id] = ciba
        self.login.expiry.add(ciba.expires_at + CODE_LIFETIME, "ciba", ciba.id)
        return {"auth_req_id": ciba.id, "expires_in": expiry, "interval": interval}

    def pending_for(self, env: Env, phone: str) -> list[CibaRequest]:
        now = self.login.now()
        return [ciba for ciba in self.by_phone.get((env, phone), {}).values()
                if ciba.status == "pending" and ciba.expires_at > now]

    def find(self, auth_req_id: str | None) -> CibaRequest | None:
        return self.requests.get(auth_req_id or "")

    def answer(self, ciba: CibaRequest, approve: bool) -> str | None:
        """The user approves or rejects on the phone. Returns where the user's browser goes (login_to_webpage)."""
        now = self.login.now()
        if ciba.status != "pending" or ciba.expires_at <= now:
            raise ValueError("This login request is no longer waiting for the user.")
        if not approve:
            ciba.status = "rejected"
            return None
        ciba.status = "approved"
        grant = Grant(ciba.request, ciba.phone, now, str(uuid.uuid4()), ciba.expires_at, auth_req_id=ciba.id)
        ciba.grant = grant
        self.login.shared(ciba.request, ciba.phone, now)
        if ciba.flow != "login_to_webpage":
            return None
        code = secrets.token_urlsafe(32)
        grant.expires_at = now + CODE_LIFETIME
        self.login.codes[code] = grant
        self.login.expiry.add(grant.expires_at, "code", code)
        return redirects.with_params(ciba.request.redirect_uri, {"code": code, "state": ciba.request.state})

    def poll(self, client: Client, form: dict[str, str], origin: str) -> TokenReply:
        ciba = self.find(form.get("auth_req_id"))
        if ciba is None or ciba.request.client_id != client.client_id:
            raise grant_error("The auth_req_id is unknown, or belongs to another client.", "ciba-auth-req-id-unknown")
        if ciba.status == "done":
            raise grant_error("The tokens of this login were fetched already: once per authentication.",
                              "ciba-tokens-fetched")
        now, pace = self.login.now(), time.monotonic()
        if ciba.status == "pending" and ciba.expires_at <= now:
            raise OAuthError("expired_token", "The login request expired before the user answered.", status=400,
                             rule="ciba-expired")
        too_fast = pace - ciba.last_poll < ciba.interval - POLL_SLACK
        ciba.last_poll = pace
        if ciba.status == "rejected":
            raise OAuthError("access_denied", "The user rejected the login.", status=400, rule="ciba-rejected")
        if too_fast and ciba.status == "pending":
            raise OAuthError("slow_down", f"Poll no faster than every {ciba.interval} seconds.", status=400,
                             rule="ciba-slow-down")
        if ciba.status == "pending":
            raise OAuthError("authorization_pending", "The authorization request is still pending", status=400,
                             rule="ciba-pending")
        if ciba.flow == "login_to_webpage":
            raise grant_error("This login uses login_to_webpage: exchange the code from the redirect with "
                              "grant_type=urn:vipps:params:grant-type:ciba-redirect.", "ciba-redirect-flow")
        assert ciba.grant is not None
        ciba.status = "done"
        return self.login.tokens(ciba.grant, client, origin, CIBA_EXPIRES_IN)

    def exchange_redirect_code(self, client: Client, form: dict[str, str], origin: str) -> TokenReply:
        code = form.get("code")
        grant = self.login.codes.get(code or "")
        if grant is None or grant.auth_req_id is None or grant.expires_at <= self.login.now():
            raise grant_error("The code is unknown, expired, or not from a login_to_webpage CIBA login.",
                              "ciba-redirect-code-unknown")
        if grant.used:
            raise grant_error("The code was used already: the token endpoint works once per authentication.",
                              "ciba-redirect-code-reused")
        if grant.request.client_id != client.client_id:
            raise grant_error("The code was issued to another client.", "login-code-other-client")
        grant.used = True
        ciba = self.requests.get(grant.auth_req_id)
        if ciba is not None:
            ciba.status = "done"
        return self.login.tokens(grant, client, origin, CIBA_EXPIRES_IN)
