"""The Login checklist's automatic items (checklists reference section 5.2), judged from login_evidence.py."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.readiness.checks import MET, NOT_MET, TO_EXERCISE, Context, Verdict
from sandbox.readiness.evidence import Proof

#: "About once per hour": a restart or a second worker may fetch again, so up to this many within one hour pass.
DISCOVERY_PER_HOUR = 3


def _first(ctx: Context, attribute: str) -> Proof | None:
    return next((getattr(login, attribute) for login in ctx.login if getattr(login, attribute)), None)


def _sum(ctx: Context, attribute: str) -> int:
    return sum(getattr(login, attribute) for login in ctx.login)


def _shown(proof: Proof) -> list[dict]:
    return [proof.as_json()]


def redirect_uris(ctx: Context) -> Verdict:
    auths = _sum(ctx, "auths")
    if auths == 0:
        return Verdict(TO_EXERCISE, "No /oauth2/auth request for this sales unit's client yet.")
    bad = _first(ctx, "redirect_bad")
    if bad is not None:
        return Verdict(NOT_MET, f"Request {bad.request_id} sent /oauth2/auth a redirect_uri that is not registered "
                       "exactly, or is plain http on a host other than loopback.", _shown(bad))
    token_bad = _first(ctx, "token_redirect_bad")
    if token_bad is not None:
        return Verdict(NOT_MET, f"Request {token_bad.request_id} sent /oauth2/token a redirect_uri other than the "
                       "one sent to /oauth2/auth.", _shown(token_bad))
    uris = sorted({uri for login in ctx.login for uri in login.redirects})
    return Verdict(MET, f"All {auths} /oauth2/auth requests used a registered https or loopback redirect_uri "
                   f"({', '.join(uris[:3])}), and /oauth2/token sent the same one.")


def unique_state(ctx: Context) -> Verdict:
    auths = _sum(ctx, "auths")
    if auths == 0:
        return Verdict(TO_EXERCISE, "No /oauth2/auth request for this sales unit's client yet.")
    bad = _first(ctx, "state_bad")
    if bad is not None:
        return Verdict(NOT_MET, f"Request {bad.request_id} sent no state, or one shorter than 8 characters.",
                       _shown(bad))
    repeated = _first(ctx, "state_repeated")
    if repeated is not None:
        return Verdict(NOT_MET, f"Request {repeated.request_id} reused the state of an earlier login: make a "
                       "fresh random one per login.", _shown(repeated))
    return Verdict(MET, f"All {auths} /oauth2/auth requests sent a fresh state of at least 8 characters.")


def pkce_s256(ctx: Context) -> Verdict:
    challenges = _sum(ctx, "challenges")
    if challenges == 0:
        return Verdict(TO_EXERCISE, "No /oauth2/auth request sent a code_challenge yet (PKCE not used).")
    bad = _first(ctx, "challenge_plain")
    if bad is not None:
        return Verdict(NOT_MET, f"Request {bad.request_id} sent a code_challenge without "
                       "code_challenge_method=S256 (the default is plain).", _shown(bad))
    return Verdict(MET, f"All {challenges} code challenges used S256.")


def discovery_cached(ctx: Context) -> Verdict:
    peak = max((login.discovery_peak for login in ctx.login), default=0)
    if not ctx.login:  # the evidence exists once the client called /oauth2/auth or /oauth2/token
        return Verdict(TO_EXERCISE, "No login by this sales unit's client yet.")
    if peak == 0:
        return Verdict(TO_EXERCISE, "The discovery document was not fetched from the client's address (the "
                       "endpoints may be configured by hand: fetch it, and cache it for an hour).")
    if peak > DISCOVERY_PER_HOUR:
        return Verdict(NOT_MET, f"The discovery document was fetched {peak} times within an hour from the "
                       "client's address: cache it (Cache-Control: max-age=3600).")
    return Verdict(MET, f"The discovery document was fetched at most {peak} times within an hour.")


def ciba_pace(ctx: Context) -> Verdict:
    gaps = _sum(ctx, "ciba_gaps")
    bad = _first(ctx, "ciba_fast")
    if bad is not None:
        return Verdict(NOT_MET, f"Request {bad.request_id} polled the token endpoint for a CIBA login faster than "
                       "the interval the authentication answer gave.", _shown(bad))
    if gaps == 0:
        return Verdict(TO_EXERCISE, "No CIBA login was polled twice yet.")
    return Verdict(MET, f"All {gaps} repeated CIBA token polls waited at least the interval.")


LOGIN_CHECKS: dict[str, Callable[[Context], Verdict]] = {
    "login_redirect_uris": redirect_uris, "login_unique_state": unique_state, "login_pkce_s256": pkce_s256,
    "login_discovery_cached": discovery_cached, "login_ciba_pace": ciba_pace,
}
