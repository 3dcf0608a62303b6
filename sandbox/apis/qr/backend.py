"""The QR backend: one-time, merchant redirect and merchant callback QR codes, check-ins and the exchanges.

Knows nothing of HTTP. Every printed code has a `token` (from the runtime's ids: the same on a --state replay)
that its content URL names, `/_sandbox/qr/r/{token}`; `codes` maps a token to the code, so scanning is one
lookup. What the rules need:

- An update of a redirect QR changes where its token leads, at once; a delete drops the token for good. Creating
  the same id again makes a new token: the printed code of the deleted one never works again.
- A redirect QR's `ttl` and a one-time QR's 10 minutes run on the virtual clock, through ONE heap ordered by
  expiry (`_sweep` pops only what fell due; never a scan).
- A scan of a merchant callback QR issues a customer token (runtime.customer_tokens, 15 minutes) and publishes
  the `user.checked-in.v1` webhook (its body ready made: the Webhooks API delivers it; no import between them).
- One-time codes live 10 minutes and are neither journaled nor in snapshots; the others are in the snapshot.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import re
import secrets
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from sandbox.apis.qr import rules
from sandbox.core.clock import iso_utc
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import Env
from sandbox.core.runtime import Runtime

ONE_TIME_SECONDS = 600  # "expiresIn (10 min)" (reference section 7)
CHECK_IN_EVENT = "user.checked-in.v1"
CHECKINS_SHOWN = 5  # the phone shows a user's last few check-ins
TARGET_PATH = "/_sandbox/qr/r/"
IMAGE_PATH = "/_sandbox/qr/generate/qr."
#: The version 1.0 personal QR of the Vipps app holds the phone number (ePayment spec's example
#: https://qr.vipps.no/28/2/01/031/4712345678?v=1); the sandbox's 2.0 form is its own (UNCERTAIN, fidelity notes):
#: https://qr.vipps.no/p/<base64url of "msisdn:epoch seconds">.
PERSONAL_V1 = re.compile(r"https://qr\.vipps\.no/28/2/01/031/([1-9][0-9]{7,14})(\?v=1)?", re.ASCII)
PERSONAL_V2 = re.compile(r"https://qr\.vipps\.no/p/([A-Za-z0-9_-]{4,200}={0,2})", re.ASCII)
MSISDN = re.compile(r"[1-9][0-9]{7,14}", re.ASCII)
Key = tuple[Env, str, str]


@dataclass(slots=True)
class RedirectQr:
    env: Env
    msn: str
    id: str
    redirect_url: str
    token: str
    expires_at: float | None = None


@dataclass(slots=True)
class CallbackQr:
    env: Env
    msn: str
    merchant_qr_id: str
    location: str
    token: str
    category: str | None = None
    beacon: bool = False  # a migrated MobilePay PoS code (PUT .../mobilepay/{beaconId})


@dataclass(slots=True)
class OneTimeQr:
    env: Env
    msn: str
    url: str
    expires_at: float


@dataclass(slots=True)
class CheckIn:
    at: float
    msn: str
    merchant_qr_id: str
    location: str


@dataclass(slots=True)
class ScanResult:
    """What a scan did: `location` is where the phone goes next (a redirect QR's target, a landing page)."""

    kind: str  # "redirect", "callback", "one-time"
    location: str | None = None
    msn: str | None = None
    merchant_qr_id: str | None = None


@dataclass
class QrBackend:
    runtime: Runtime
    redirects: dict[Key, RedirectQr] = field(default_factory=dict)
    callbacks: dict[Key, CallbackQr] = field(default_factory=dict)
    beacons: dict[tuple[Env, str], str] = field(default_factory=dict)  # (env, beaconId) -> MSN
    one_time: dict[str, OneTimeQr] = field(default_factory=dict)
    codes: dict[str, tuple[str, Key]] = field(default_factory=dict)  # token -> ("redirect" | "callback", key)
    checkins: dict[tuple[Env, str], deque[CheckIn]] = field(default_factory=dict)
    _expiry: list[tuple[float, str]] = field(default_factory=list)  # (when, token): redirect ttl and one-time

    def now(self) -> float:
        return self.runtime.clock.time()

    def clear(self) -> None:
        for table in (self.redirects, self.callbacks, self.beacons, self.one_time, self.codes, self.checkins):
            table.clear()
        self._expiry.clear()

    # -- time ------------------------------------------------------------------------------------------
    def _sweep(self) -> None:
        now = self.now()
        while self._expiry and self._expiry[0][0] <= now:
            _, token = heapq.heappop(self._expiry)
            code = self.one_time.get(token)
            if code is not None and code.expires_at <= now:
                del self.one_time[token]
                continue
            entry = self.codes.get(token)
            if entry is not None and entry[0] == "redirect":
                qr = self.redirects.get(entry[1])
                if qr is not None and qr.token == token and qr.expires_at is not None and qr.expires_at <= now:
                    del self.redirects[entry[1]]
                    del self.codes[token]

    def _token(self) -> str:
        return self.runtime.ids.hex(12)  # journaled stream: a --state replay prints the same codes

    # -- URLs ------------------------------------------------------------------------------------------
    @staticmethod
    def content(origin: str, token: str) -> str:
        return f"{origin}{TARGET_PATH}{token}"

    @staticmethod
    def image_url(origin: str, token: str, fmt: str, size: int | None) -> str:
        extra = f"&size={size}" if size is not None and fmt == "png" else ""
        return f"{origin}{IMAGE_PATH}{fmt}?code={token}{extra}"

    def content_of(self, token: str, origin: str) -> str | None:
        """What the image of `token` encodes (None: no live code has it)."""
        self._sweep()
        one = self.one_time.get(token)
        if one is not None:
            return one.url
        return self.content(origin, token) if token in self.codes else None

    # -- one-time payment QR ---------------------------------------------------------------------------
    def create_one_time(self, env: Env, msn: str, body: object, fmt: str, size: int | None, origin: str) -> dict:
        valid = rules.validate("OneTimePaymentQrRequest", body)
        rules.require_strings(valid, "url")
        url = valid["url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise rules.invalid("Supplied landing page token is not valid",
                                [Detail("url", "The url must be the landing page URL (vippsLandingPageUrl) of a "
                                        "payment: an absolute https:// URL.")])
        self._sweep()
        token = secrets.token_hex(12)  # lives 10 minutes, never journaled: not from the journaled id stream
        expires = self.now() + ONE_TIME_SECONDS
        self.one_time[token] = OneTimeQr(env, msn, url, expires)
        heapq.heappush(self._expiry, (expires, token))
        return {"url": url if fmt == "target" else self.image_url(origin, token, fmt, size),
                "expiresIn": ONE_TIME_SECONDS}

    # -- merchant redirect QR --------------------------------------------------------------------------
    def _redirect_view(self, qr: RedirectQr, fmt: str, size: int | None, origin: str) -> dict:
        url = self.content(origin, qr.token) if fmt == "target" else self.image_url(origin, qr.token, fmt, size)
        left = -1 if qr.expires_at is None else max(0, int(qr.expires_at - self.now()))
        return {"id": qr.id, "url": url, "redirectUrl": qr.redirect_url, "expiresIn": left}

    def _redirect(self, env: Env, msn: str, qr_id: str) -> RedirectQr:
        self._sweep()
        qr = self.redirects.get((env, msn, qr_id))  # an id no QR can have (too long) is simply not found
        if qr is None:
            raise Problem(404, "Not Found", f"No merchant redirect QR with id {qr_id[:128]!r} exists for this "
                          "sales unit (or it expired, or was deleted).", rule="qr-not-found")
        return qr

    def create_redirect(self, env: Env, msn: str, body: object, fmt: str, size: int | None, origin: str) -> dict:
        valid = rules.validate("MerchantRedirectQrRequest", body)
        rules.require_strings(valid, "id", "redirectUrl")
        self._sweep()
        key = (env, msn, valid["id"])
        if key in self.redirects:
            raise Problem(409, "Conflict", f"A merchant redirect QR with id {valid['id']!r} already exists.",
                          details=[Detail("id", "The id is already in use.")], rule="qr-id-exists")
        ttl = valid.get("ttl")
        qr = RedirectQr(env, msn, valid["id"], valid["redirectUrl"], self._token(),
                        None if ttl is None else self.now() + ttl)
        self._store_redirect(qr)
        return self._redirect_view(qr, fmt, size, origin)

    def _store_redirect(self, qr: RedirectQr) -> None:
        key = (qr.env, qr.msn, qr.id)
        self.redirects[key] = qr
        self.codes[qr.token] = ("redirect", key)
        if qr.expires_at is not None:
            heapq.heappush(self._expiry, (qr.expires_at, qr.token))

    def list_redirects(self, env: Env, msn: str, fmt: str, size: int | None, origin: str) -> list[dict]:
        self._sweep()
        return [self._redirect_view(qr, fmt, size, origin) for (e, m, _), qr in self.redirects.items()
                if e is env and m == msn]

    def get_redirect(self, env: Env, msn: str, qr_id: str, fmt: str, size: int | None, origin: str) -> dict:
        return self._redirect_view(self._redirect(env, msn, qr_id), fmt, size, origin)

    def update_redirect(self, env: Env, msn: str, qr_id: str, body: object, fmt: str, size: int | None,
                        origin: str) -> dict:
        qr = self._redirect(env, msn, qr_id)
        valid = rules.validate("MerchantRedirectQrUpdateRequest", body)
        rules.require_strings(valid, "redirectUrl")
        qr.redirect_url = valid["redirectUrl"]  # the printed code leads there from now on
        return self._redirect_view(qr, fmt, size, origin)

    def delete_redirect(self, env: Env, msn: str, qr_id: str) -> None:
        qr = self._redirect(env, msn, qr_id)
        del self.redirects[(env, msn, qr.id)]
        self.codes.pop(qr.token, None)  # for good: a new QR with this id gets a new token

    # -- merchant callback QR --------------------------------------------------------------------------
    def _callback_view(self, qr: CallbackQr, fmt: str, size: int | None, origin: str) -> dict:
        return {"merchantSerialNumber": qr.msn, "merchantQrId": qr.merchant_qr_id, "locationDescription": qr.location,
                "qrImageUrl": self.image_url(origin, qr.token, fmt, size), "qrContent": self.content(origin, qr.token)}

    def _callback(self, env: Env, msn: str, qr_id: str) -> CallbackQr:
        qr = self.callbacks.get((env, msn, rules.path_id(qr_id, "merchantQrId")))
        if qr is None:
            raise Problem(404, "Not Found", f"No merchant callback QR with merchantQrId {qr_id[:128]!r} exists for "
                          "this sales unit.", rule="qr-not-found")
        return qr

    def list_callbacks(self, env: Env, msn: str, fmt: str, size: int | None, origin: str) -> list[dict]:
        return [self._callback_view(qr, fmt, size, origin) for (e, m, _), qr in self.callbacks.items()
                if e is env and m == msn]

    def get_callback(self, env: Env, msn: str, qr_id: str, fmt: str, size: int | None, origin: str) -> dict:
        return self._callback_view(self._callback(env, msn, qr_id), fmt, size, origin)

    def put_callback(self, env: Env, msn: str, qr_id: str, body: object) -> None:
        rules.path_id(qr_id, "merchantQrId")
        valid = rules.validate("MerchantCallbackPutRequest", body)
        rules.require_strings(valid, "locationDescription")
        category = rules.check_category(valid)
        existing = self.callbacks.get((env, msn, qr_id))
        if existing is not None:  # "the last call defines the location"; the image stays the same
            existing.location, existing.category = valid["locationDescription"], category
            return
        if (env, qr_id) in self.beacons and self.beacons[(env, qr_id)] != msn:
            raise Problem(409, "Conflict", "This id is a migrated MobilePay beacon of another sales unit.",
                          rule="qr-beacon-of-another-sales-unit")
        self._store_callback(CallbackQr(env, msn, qr_id, valid["locationDescription"], self._token(), category))

    def _store_callback(self, qr: CallbackQr) -> None:
        key = (qr.env, qr.msn, qr.merchant_qr_id)
        self.callbacks[key] = qr
        self.codes[qr.token] = ("callback", key)
        if qr.beacon:
            self.beacons[(qr.env, qr.merchant_qr_id)] = qr.msn

    def put_mobilepay(self, env: Env, msn: str, beacon_id: str, body: object) -> None:
        """Maps a printed MobilePay PoS code (its beaconId) to this sales unit; its check-ins name merchantQrId =
        beaconId. A beacon already mapped to another sales unit is a 409 (the spec's Conflict)."""
        rules.path_id(beacon_id, "beaconId")
        valid = rules.validate("MerchantCallbackMobilePayPutRequest", body)
        rules.require_strings(valid, "locationDescription")
        owner = self.beacons.get((env, beacon_id))
        if owner is not None and owner != msn:
            raise Problem(409, "Conflict", f"The beacon {beacon_id[:64]!r} is already mapped to another sales unit.",
                          rule="qr-beacon-of-another-sales-unit")
        existing = self.callbacks.get((env, msn, beacon_id))
        if existing is not None:
            existing.location, existing.beacon = valid["locationDescription"], True
            self.beacons[(env, beacon_id)] = msn
            return
        self._store_callback(CallbackQr(env, msn, beacon_id, valid["locationDescription"], self._token(),
                                        beacon=True))

    def delete_callback(self, env: Env, msn: str, qr_id: str) -> None:
        qr = self._callback(env, msn, qr_id)
        del self.callbacks[(env, msn, qr.merchant_qr_id)]
        self.codes.pop(qr.token, None)
        if qr.beacon:
            self.beacons.pop((env, qr.merchant_qr_id), None)

    # -- scanning (the phone, or the control plane) ------------------------------------------------------
    def scan(self, env: Env, phone: str, content: str) -> ScanResult:
        """A user scans a code: a redirect QR leads to its redirectUrl, a one-time QR to its landing page, a
        merchant callback QR checks the user in (user.checked-in.v1 with a fresh customer token)."""
        if not MSISDN.fullmatch(phone):
            raise Problem(400, "Bad Request", "phoneNumber must be an MSISDN: digits only, with the country code.",
                          details=[Detail("phoneNumber", "Not an MSISDN.")], rule="qr-scan-invalid")
        token = token_of(content)
        self._sweep()
        one = self.one_time.get(token or "")
        if one is not None and one.env is env:
            return ScanResult("one-time", location=one.url, msn=one.msn)
        entry = self.codes.get(token or "")
        if entry is None or entry[1][0] is not env:
            raise Problem(404, "Not Found", "This QR code does not work: it was never made in this environment, "
                          "it expired, or it was deleted.", details=[Detail("qrContent", "No live QR code.")],
                          rule="qr-code-dead")
        kind, key = entry
        if kind == "redirect":
            return ScanResult("redirect", location=self.redirects[key].redirect_url, msn=key[1])
        qr = self.callbacks[key]
        now = self.now()
        customer_token = self.runtime.customer_tokens.issue(env, qr.msn, phone, now, merchant_qr_id=qr.merchant_qr_id)
        webhook = {"customerToken": customer_token, "merchantQrId": qr.merchant_qr_id, "msn": qr.msn,
                   "initiatedAt": iso_utc(now)}
        self.runtime.publish("qr.user-checked-in", {"env": str(env), "msn": qr.msn, "reference": qr.merchant_qr_id,
                                                    "webhookEvent": CHECK_IN_EVENT, "webhook": webhook})
        shown = self.checkins.setdefault((env, phone), deque(maxlen=CHECKINS_SHOWN))
        shown.append(CheckIn(now, qr.msn, qr.merchant_qr_id, qr.location))
        return ScanResult("callback", msn=qr.msn, merchant_qr_id=qr.merchant_qr_id)

    def target(self, env: Env, token: str) -> ScanResult | None:
        """What a GET of a code's content URL opens (a browser, not the app): None for a dead code."""
        self._sweep()
        entry = self.codes.get(token)
        if entry is None or entry[1][0] is not env:
            return None
        kind, key = entry
        if kind == "redirect":
            return ScanResult("redirect", location=self.redirects[key].redirect_url, msn=key[1])
        return ScanResult("callback", msn=key[1], merchant_qr_id=key[2])

    # -- the exchanges -----------------------------------------------------------------------------------
    def exchange(self, env: Env, msn: str, body: object) -> dict:
        """A user's personal QR (presented at the till) -> their MSISDN, with the code's version."""
        if not isinstance(body, dict) or not isinstance(body.get("qrCode"), str) or not body["qrCode"].strip():
            raise exchange_invalid("qrCode", "The complete data contained in the QR code is required.")
        problems = rules.spec().errors("QrExchangeRequest", body)
        if problems:
            raise Problem(400, "Bad request", "The request body contains one or more invalid parameters.",
                          details=[Detail(name, why) for name, why in problems], rule="qr-request-invalid")
        code = body["qrCode"].strip()
        match = PERSONAL_V1.fullmatch(code)
        if match:
            return {"msisdn": match.group(1), "version": "1.0"}
        match = PERSONAL_V2.fullmatch(code)
        if match:
            decoded = _personal_v2(match.group(1))
            if decoded is not None:
                return {"msisdn": decoded[0], "timestamp": decoded[1], "version": "2.0"}
        raise exchange_invalid("qrCode", "The QR code is not a personal QR code of the Vipps or MobilePay app.")

    def exchange_customer(self, env: Env, msn: str, body: object) -> dict:
        """A check-in's customerToken -> the MSISDN of the user who checked in (this sales unit's tokens only)."""
        if not isinstance(body, dict) or not isinstance(body.get("customer"), dict):
            raise exchange_invalid("customer", "Customer object is required.")
        problems = rules.spec().errors("CustomerExchangeRequest", body)
        if problems:
            raise Problem(400, "Bad request", "The request body contains one or more invalid parameters.",
                          details=[Detail(name, why) for name, why in problems], rule="qr-request-invalid")
        token = body["customer"].get("customerToken")
        if not isinstance(token, str) or not token:
            raise exchange_invalid("customer.customerToken", "The customerToken is required.")
        holder = self.runtime.customer_tokens.resolve(token, env, self.now())
        if holder is None or holder.msn != msn:
            raise exchange_invalid("customer.customerToken", "The customerToken is unknown or expired (it is valid "
                                   "15 minutes, for the sales unit whose QR code was scanned).")
        return {"msisdn": holder.phone, "timestamp": int(holder.issued_at)}

    # -- snapshots ---------------------------------------------------------------------------------------
    def dump(self) -> dict:
        self._sweep()
        return {"redirects": [{"env": str(q.env), "msn": q.msn, "id": q.id, "redirectUrl": q.redirect_url,
                               "token": q.token, "expiresAt": q.expires_at} for q in self.redirects.values()],
                "callbacks": [{"env": str(q.env), "msn": q.msn, "merchantQrId": q.merchant_qr_id,
                               "locationDescription": q.location, "token": q.token, "category": q.category,
                               "beacon": q.beacon} for q in self.callbacks.values()]}

    def load(self, data: object) -> None:
        if not isinstance(data, dict):
            raise ValueError("the QR state must be an object of redirects and callbacks")
        try:  # build everything first: a bad dump changes nothing
            redirects = [RedirectQr(Env(r["env"]), str(r["msn"]), str(r["id"]), str(r["redirectUrl"]),
                                    str(r["token"]), None if r.get("expiresAt") is None else float(r["expiresAt"]))
                         for r in data.get("redirects", [])]
            callbacks = [CallbackQr(Env(c["env"]), str(c["msn"]), str(c["merchantQrId"]),
                                    str(c["locationDescription"]), str(c["token"]), c.get("category"),
                                    bool(c.get("beacon"))) for c in data.get("callbacks", [])]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"a QR code in the snapshot is malformed: {exc}") from exc
        self.clear()
        for qr in redirects:
            self._store_redirect(qr)
        for callback in callbacks:
            self._store_callback(callback)


def token_of(content: str) -> str | None:
    """The token a scanned code's content names: .../_sandbox/qr/r/{token}, whatever host it was made on."""
    if not isinstance(content, str) or len(content) > 2000:
        return None
    path = urlsplit(content.strip()).path
    if not path.startswith(TARGET_PATH):
        return None
    token = path[len(TARGET_PATH):]
    return token if re.fullmatch(r"[0-9a-f]{24}", token) else None


def personal_qr(phone: str, timestamp: int) -> str:
    """The sandbox's version 2.0 personal QR of a user (what the phone would show at a till)."""
    raw = base64.urlsafe_b64encode(f"{phone}:{timestamp}".encode()).decode()
    return f"https://qr.vipps.no/p/{quote(raw)}"


def _personal_v2(payload: str) -> tuple[str, int] | None:
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    phone, _, stamp = text.partition(":")
    if not MSISDN.fullmatch(phone) or not stamp.isdigit() or len(stamp) > 12:
        return None
    return phone, int(stamp)


def exchange_invalid(name: str, reason: str) -> Problem:
    """The exchange operations' 400 (their spec's example: title "Bad request", one extraDetails entry)."""
    return Problem(400, "Bad request", "The request body contains one or more invalid parameters.",
                   details=[Detail(name, reason)], rule="qr-exchange-invalid")
