"""The Userinfo API's state: the consents users gave when they approved a payment or an agreement that asked for
profile data, and the claims `GET /vipps-userinfo-api/userinfo/{sub}` answers with.

ePayment and Recurring never call this package (API packages never import one another): on approval they publish
`profile.shared` (sandbox/core/events.py), and this backend, a runtime listener, keeps the consent indexed by
(environment, sales unit, sub), so every read is one dict lookup. The claims themselves come from the test user's
record at the moment of the read (the guide: "the merchant will get the information that is in the user profile at
the time when they actually fetch the information"), through sandbox/core/claims.py. The 168-hour rule needs no
timer: a read compares the consent's time with the virtual clock, and after 168 hours every value reads
"[Expired]" (claims.expired).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sandbox.core.claims import claims, expired, scopes_of
from sandbox.core.errors import OpaqueDenial, Problem
from sandbox.core.events import PROFILE_SHARED
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime

#: The consented data can be read for 168 hours (7 days) from the consent; then the values read "[Expired]".
WINDOW_SECONDS = 168 * 3600
NOT_FOUND = "No user information was found for this sub."


@dataclass(slots=True)
class Consent:
    """What one user shared with one sales unit: the phone number (who), and per scope when they last consented."""

    phone: str
    scopes: dict[str, float]  # scope -> epoch on the virtual clock of the newest consent to it
    first: float  # the first consent: the sid is derived from it
    source: str  # "epayment" or "recurring": the API where the user consented


class UserinfoBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.clear()

    def clear(self) -> None:
        """The reset hook: nobody has shared anything."""
        self.consents: dict[tuple[Env, str, str], Consent] = {}
        #: sub -> (environment, sales unit) it belongs to: only to explain, in the sandbox's own headers, why another
        #: sales unit's keys get the 404 of a sub that does not exist.
        self.owners: dict[str, tuple[Env, str]] = {}

    # -- what the payment APIs tell us -----------------------------------------------------------------------
    def listen(self, kind: str, payload: dict) -> None:
        """A runtime listener (runtime.listeners): keeps each profile.shared consent; ignores everything else."""
        if kind != PROFILE_SHARED:
            return
        self.record(Env(payload["env"]), payload["msn"], payload["sub"], payload.get("phoneNumber") or "",
                    payload.get("scope") or "", float(payload["timestamp"]), payload.get("source") or "")

    def record(self, env: Env, msn: str, sub: str, phone: str, scope: str, at: float, source: str) -> None:
        """A consent: a new one, or more scopes (and a fresh 168 hours for the scopes asked again) for a known sub."""
        key = (env, msn, sub)
        consent = self.consents.get(key)
        if consent is None:
            consent = self.consents[key] = Consent(phone, {}, at, source)
        consent.phone = phone or consent.phone
        for value in scopes_of(scope):
            consent.scopes[value] = max(at, consent.scopes.get(value, at))
        self.owners[sub] = (env, msn)

    # -- the merchant's read ---------------------------------------------------------------------------------
    def userinfo(self, env: Env, msn: str, sub: str) -> dict:
        """The Userinfo body for `sub` as sales unit `msn` reads it: sub, sid and the consented claims ("[Expired]"
        after 168 hours). 404 for a sub this sales unit never got (another sales unit's sub too: it does not
        resolve)."""
        consent = self.consents.get((env, msn, sub))
        if consent is None:
            raise self._not_found(env, msn, sub)
        now = self.runtime.clock.time()
        user = self.runtime.world.user(consent.phone)
        body: dict = {"sub": sub, "sid": sid(sub, consent.first)}
        for scope, at in consent.scopes.items():
            if user is not None:
                values = claims(user, [scope], env)
            else:  # a typed phone number that is no test user's: the sandbox knows only the number
                values = {"phone_number": consent.phone} if scope == "phoneNumber" and consent.phone else {}
            body.update(expired(values) if now - at >= WINDOW_SECONDS else values)
        return body

    def _not_found(self, env: Env, msn: str, sub: str) -> Problem:
        owner = self.owners.get(sub)
        if owner is None:
            return Problem(404, "Not Found", NOT_FOUND, rule="userinfo-sub-unknown",
                           reason="No approved payment or agreement that asked for profile data gave this sub.")
        other_env, other_msn = owner
        if other_env is not env:
            why = (f"This sub was given to sales unit {other_msn} in the {other_env} environment; this call is in "
                   f"{env}, and the environments share nothing.")
        else:
            why = (f"This sub belongs to sales unit {other_msn}, not to {msn} that this call acts for: a sub is bound "
                   "to the sales unit the user shared with, and another sales unit's keys do not resolve it.")
        return OpaqueDenial(404, "Not Found", NOT_FOUND, rule="userinfo-sub-of-another-sales-unit",
                            reason=why + " The caller gets the 404 of a sub that does not exist.")

    def count(self) -> int:
        return len(self.consents)

    # -- snapshots -------------------------------------------------------------------------------------------
    def dump(self) -> list[dict]:
        """The consents as JSON-able rows (no secrets: a sub is an identifier the merchant already holds)."""
        return [{"env": str(env), "msn": msn, "sub": sub, "phoneNumber": c.phone, "scopes": dict(c.scopes),
                 "first": c.first, "source": c.source} for (env, msn, sub), c in self.consents.items()]

    def load(self, rows: object) -> None:
        """Replaces the consents with a dump's; checks every row first, so a bad dump changes nothing."""
        if not isinstance(rows, list):
            raise ValueError("the userinfo state must be a list of consents")
        loaded: list[tuple[tuple[Env, str, str], Consent]] = []
        for row in rows:
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("env", "msn", "sub")):
                raise ValueError("each consent needs env, msn and sub")
            scopes = row.get("scopes")
            if not isinstance(scopes, dict) or not all(isinstance(k, str) and _number(v) for k, v in scopes.items()):
                raise ValueError("a consent's scopes must map each scope to an epoch")
            if not _number(row.get("first")):
                raise ValueError("a consent's first must be an epoch")
            loaded.append(((Env(row["env"]), row["msn"], row["sub"]),
                           Consent(str(row.get("phoneNumber") or ""), {k: float(v) for k, v in scopes.items()},
                                   float(row["first"]), str(row.get("source") or ""))))
        self.clear()
        for key, consent in loaded:
            self.consents[key] = consent
            self.owners[key[2]] = (key[0], key[1])


def sid(sub: str, first: float) -> str:
    """The session id (the spec: "currently not in use"): 16 hex digits, as the guide's examples, stable per consent."""
    return hashlib.sha256(f"{sub}/{first}".encode()).hexdigest()[:16]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
