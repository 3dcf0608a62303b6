"""What the Login checklist's automatic items need (L-4, L-7, L-9, L-11, L-16), kept per sales unit.

The request log's entry carries neither the query string nor the body, so the observer hands these few fields
over for the Login routes only: `redirect_uri`, `state`, `code_challenge_method` and whether a challenge came on
/oauth2/auth; `grant_type`, `redirect_uri` and `auth_req_id` on /oauth2/token. Never kept: the code, tokens,
client secrets, nonce, the code challenge or verifier. `state` and `auth_req_id` are kept only as short
digests (enough to see a repeat or to pace the polls of one request), `redirect_uri` as sent (it is public: it
is registered in the portal and shown to the user's browser).

Discovery carries no client identity, so its fetches are kept per (environment, remote address), and counted
against a sales unit when its client calls /auth or /token from that address: the most fetches seen within any
hour is what L-11 judges.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sandbox.apis.login.redirects import matches
from sandbox.readiness.evidence import MAX_OBJECTS, Proof, digest

HOUR = 3600.0
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
MAX_FETCHES = 32  # discovery fetch times kept per remote address
MAX_PEERS = 256
#: Login routes that carry no client identity (credentials NONE in the policy table).
ANONYMOUS = ("login.discovery", "login.jwks")
POLL_SLACK = 0.2  # seconds: the CIBA backend's own tolerance (sandbox/apis/login/ciba.py)


def redirect_ok(uri: str) -> bool:
    """https, an app scheme, or http on a loopback host (RFC 8252); never plain http elsewhere."""
    if uri.startswith("https://"):
        return True
    if uri.startswith("http://"):
        try:
            host = urlsplit(uri).hostname
        except ValueError:  # a malformed authority ("http://[") is no loopback host
            return False
        return host in ("127.0.0.1", "localhost", "::1")
    return ":" in uri  # a private-use app scheme such as com.example.app:/callback


@dataclass
class LoginEvidence:
    auths: int = 0
    redirect_bad: Proof | None = None  # an /auth redirect_uri unregistered or plain http (or refused)
    redirects: OrderedDict = field(default_factory=OrderedDict)  # redirect_uris sent to /auth
    code_tokens: int = 0
    token_redirect_bad: Proof | None = None  # /token's redirect_uri not one sent to /auth
    states: OrderedDict = field(default_factory=OrderedDict)  # digest -> None, bounded
    state_bad: Proof | None = None  # missing or shorter than 8
    state_repeated: Proof | None = None
    challenges: int = 0
    challenge_plain: Proof | None = None
    discovery_peak: int = 0  # the most discovery fetches within an hour from this unit's client's address
    ciba_polls: OrderedDict = field(default_factory=OrderedDict)  # auth_req_id digest -> last poll (wall)
    ciba_gaps: int = 0
    ciba_fast: Proof | None = None

    def as_json(self) -> dict:
        def proof(value: Proof | None) -> dict | None:
            return value.as_json() if value else None

        return {"auths": self.auths, "redirectBad": proof(self.redirect_bad), "redirects": list(self.redirects),
                "codeTokens": self.code_tokens, "tokenRedirectBad": proof(self.token_redirect_bad),
                "states": list(self.states), "stateBad": proof(self.state_bad),
                "stateRepeated": proof(self.state_repeated), "challenges": self.challenges,
                "challengePlain": proof(self.challenge_plain), "discoveryPeak": self.discovery_peak,
                "cibaPolls": list(self.ciba_polls.items()), "cibaGaps": self.ciba_gaps,
                "cibaFast": proof(self.ciba_fast)}

    @classmethod
    def from_json(cls, raw: dict) -> LoginEvidence:
        def proof(value: dict | None) -> Proof | None:
            return Proof.from_json(value) if value else None

        return cls(int(raw["auths"]), proof(raw["redirectBad"]), OrderedDict.fromkeys(raw["redirects"]),
                   int(raw["codeTokens"]), proof(raw["tokenRedirectBad"]), OrderedDict.fromkeys(raw["states"]),
                   proof(raw["stateBad"]), proof(raw["stateRepeated"]), int(raw["challenges"]),
                   proof(raw["challengePlain"]), int(raw["discoveryPeak"]),
                   OrderedDict((k, float(v)) for k, v in raw["cibaPolls"]), int(raw["cibaGaps"]),
                   proof(raw["cibaFast"]))


def _remember(bounded: OrderedDict, key: str, value=None) -> None:
    bounded[key] = value
    bounded.move_to_end(key)
    if len(bounded) > MAX_OBJECTS:
        bounded.popitem(last=False)


class DiscoveryFetches:
    """Discovery fetch times (virtual clock) per (environment, remote address), bounded, with the most fetches
    seen within one hour kept up to date on each fetch (so reading it costs a lookup)."""

    def __init__(self) -> None:
        self.by_peer: OrderedDict[tuple[str, str], tuple[deque, list[int]]] = OrderedDict()

    def fetched(self, env: str, peer: str, when: float) -> None:
        found = self.by_peer.get((env, peer))
        if found is None:
            found = self.by_peer[(env, peer)] = (deque(maxlen=MAX_FETCHES), [0])
            if len(self.by_peer) > MAX_PEERS:
                self.by_peer.popitem(last=False)
        times, peak = found
        times.append(when)
        if len(times) <= peak[0]:  # no more fetches are kept than the peak already counts: it cannot grow
            return
        within = sum(1 for at in times if when - at <= HOUR)
        if within > peak[0]:
            peak[0] = within

    def peak(self, env: str, peer: str) -> int:
        found = self.by_peer.get((env, peer))
        return found[1][0] if found else 0


class LoginBook:
    """Per (env, sales unit) Login evidence beside the EvidenceBook, fed by the same observer, kept in the same
    snapshot and state file (under "login")."""

    def __init__(self, ciba_interval: float = 5.0) -> None:
        self.ciba_interval = ciba_interval
        self.units: dict[tuple[str, str], LoginEvidence] = {}
        self.discovery = DiscoveryFetches()
        self.anonymous: dict[tuple[str, str, str], Proof] = {}  # (route, env, peer) -> the newest fetch

    def anonymous_proofs(self, env: str, peer: str) -> list[tuple[str, Proof]]:
        """The newest discovery and JWKS fetches from this address: they prove L-E1 and L-E2 for the sales unit
        whose client logs in from there (neither request names a client)."""
        found = [(route, self.anonymous.get((route, env, peer))) for route in ANONYMOUS]
        return [(route, proof) for route, proof in found if proof is not None]

    def unit(self, env: str, msn: str) -> LoginEvidence:
        found = self.units.get((env, msn))
        if found is None:
            found = self.units[(env, msn)] = LoginEvidence()
        return found

    def clear(self) -> None:
        self.units.clear()
        self.discovery = DiscoveryFetches()
        self.anonymous.clear()

    def fetched(self, route: str, env: str, peer: str, status: int, proof: Proof, when: float) -> None:
        """Discovery or JWKS, fetched by whoever is at `peer` (neither request names a client)."""
        self.fetched_run(route, env, peer, status, proof, (when,))

    def fetched_run(self, route: str, env: str, peer: str, status: int, proof: Proof, whens) -> None:
        """`fetched` for several fetches one after the other, at `whens`; `proof` is the last one's."""
        if status < 400:
            if route == "login.discovery":
                fetches = self.discovery
                for when in whens:
                    fetches.fetched(env, peer, when)
            self.anonymous[(route, env, peer)] = proof
            if len(self.anonymous) > MAX_PEERS:
                self.anonymous.pop(next(iter(self.anonymous)))

    def observe(self, *, env: str, msn: str | None, route: str, peer: str, query, form: dict | None,
                registered: list[str] | None, status: int, proof: Proof, when: float) -> None:
        if route in ANONYMOUS:
            self.fetched(route, env, peer, status, proof, when)
            return
        if msn is None:
            return
        login = self.unit(env, msn)
        if route in ("login.auth", "login.token"):
            login.discovery_peak = max(login.discovery_peak, self.discovery.peak(env, peer))
        if route == "login.auth":
            on_auth(login, query, registered, status, proof)
        elif route == "login.token" and form is not None:
            on_token(login, form, self.ciba_interval, proof.wall, proof)

    def dump(self) -> list:
        return [[env, msn, login.as_json()] for (env, msn), login in self.units.items()]

    def load(self, raw: list) -> None:
        self.clear()
        for env, msn, data in raw:
            self.units[(env, msn)] = LoginEvidence.from_json(data)


def on_auth(login: LoginEvidence, query, registered: list[str] | None, status: int, proof: Proof) -> None:
    """/oauth2/auth: the redirect_uri (registered? https or loopback?), the state, PKCE's method."""
    login.auths += 1
    uri = query.get("redirect_uri") or ""
    if not uri or registered is None or status >= 400 or not redirect_ok(uri) or not _registered(uri, registered):
        login.redirect_bad = login.redirect_bad or proof
    elif uri not in login.redirects:
        _remember(login.redirects, uri)
    state = query.get("state") or ""
    if len(state) < 8:
        login.state_bad = login.state_bad or proof
    else:
        key = digest(state)
        if key in login.states:
            login.state_repeated = login.state_repeated or proof
        _remember(login.states, key)
    if query.get("code_challenge"):
        login.challenges += 1
        if query.get("code_challenge_method") != "S256":
            login.challenge_plain = login.challenge_plain or proof


def _registered(uri: str, registered: list[str]) -> bool:
    return matches(uri, registered)  # the Login API's own rule (exact; loopback http on any port)


def on_token(login: LoginEvidence, form: dict, interval: float, wall: float, proof: Proof) -> None:
    """/oauth2/token: the code grant's redirect_uri against those sent to /auth; the pace of CIBA polls."""
    grant = form.get("grant_type")
    if grant == "authorization_code":
        login.code_tokens += 1
        if form.get("redirect_uri") not in login.redirects:
            login.token_redirect_bad = login.token_redirect_bad or proof
    elif grant == CIBA_GRANT and form.get("auth_req_id"):
        key = digest(form["auth_req_id"])
        before = login.ciba_polls.get(key)
        if before is not None:
            login.ciba_gaps += 1
            if wall - before < interval - POLL_SLACK:
                login.ciba_fast = login.ciba_fast or proof
        _remember(login.ciba_polls, key, wall)
