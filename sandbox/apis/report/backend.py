"""The Report API's logic: who sees which ledger, paging with opaque cursors, and accounting consents.

Knows nothing of HTTP: handlers pass the raw path and query strings, get dicts back, and every bad
input comes back as a raised 400 Problem (Report error code 10002, input validation). Visibility is
asked of sandbox.gateway.policy on every call, so a consent change counts on the next request.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import date

from sandbox.apis.report.ledger import (
    TOPICS,
    Ledger,
    LedgerBook,
    is_vm_handle,
    ledger_id_for,
    recipient_handle,
)
from sandbox.core.clock import iso_utc
from sandbox.core.errors import Detail, OpaqueDenial, Problem, printable
from sandbox.core.model import KeySet, KeyType, SalesUnit
from sandbox.core.runtime import Runtime
from sandbox.gateway.policy import can_read_ledger, partner_named, readable_ledger_msns

MAX_PAGE_SIZE = 1000
LEDGER_ID = re.compile(r"^[0-9]{1,20}$")
LEDGER_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
HANDLE = re.compile(r"^(api|NO|DK|FI):[0-9]{1,12}$")
VALIDATION_CODE = "10002"
NO_SUCH_LEDGER = "No such ledgerId"


def bad_request(name: str, reason: str) -> Problem:
    return Problem(400, "Bad Request", reason, code=VALIDATION_CODE, details=[Detail(name, reason)],
                   rule="report-input-invalid")


def no_such_ledger(ledger_id: str) -> Problem:
    """A ledger that does not exist. One the caller may not see gets the same body (ReportBackend._why_hidden)."""
    return Problem(404, "Not Found", NO_SUCH_LEDGER, rule="report-no-such-ledger",
                   reason=f"No sales unit has a ledger with the id {ledger_id}.")


SAME_404 = " The caller gets the 404 of a ledger that does not exist."


def encode_cursor(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode_cursor(text: str, keys: dict[str, type | tuple]) -> dict:
    """Opaque base64 JSON (either alphabet; a '+' that a query string turned into ' ' is forgiven)."""
    try:
        raw = text.strip().replace(" ", "+").replace("+", "-").replace("/", "_")
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." cursors
        raise bad_request("cursor", "The cursor is not one this API gave out (not base64 JSON).") from None
    if not isinstance(data, dict) or set(data) != set(keys):
        raise bad_request("cursor", "The cursor is not one this API gave out (wrong fields).")
    for name, kind in keys.items():
        if not isinstance(data[name], kind) or isinstance(data[name], bool):
            raise bad_request("cursor", f"The cursor is not one this API gave out ({name} has the wrong type).")
    return data


def parse_page_size(text: str | None) -> int:
    if text is None:
        return MAX_PAGE_SIZE
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE_SIZE:  # not '²'
        raise bad_request("pageSize", f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}.")
    return int(text)


def parse_flag(name: str, text: str | None) -> bool:
    if text is None or text.lower() == "false":
        return False
    if text.lower() == "true":
        return True
    raise bad_request(name, f"{name} must be true or false.")


def parse_ledger_id(text: str) -> str:
    if not LEDGER_ID.fullmatch(text):
        raise bad_request("ledgerId", "ledgerId must be the digits of a ledger id from GET /settlement/v1/ledgers.")
    return text


def parse_topic(text: str) -> str:
    if text not in TOPICS:
        raise bad_request("topic", "topic must be funds or fees.")
    return text


def parse_date(text: str) -> date:
    try:
        if not LEDGER_DATE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise bad_request("ledgerDate", "ledgerDate must be a real date in the format YYYY-MM-DD.") from None


def parse_handles(text: str | None) -> list[str] | None:
    if text is None or text == "":
        return None
    handles = [h.strip() for h in text.split(",") if h.strip()]
    for handle in handles:
        if not HANDLE.fullmatch(handle):
            raise bad_request("settlesForRecipientHandles",
                              f"{printable(handle, 12)!r} is not a recipient handle such as api:123456 or "
                              "NO:123456.")
    return handles


class ReportBackend:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.book = LedgerBook(lambda: self.runtime.world, runtime.settings.ledger_cutoff)
        runtime.listeners.append(self.book.on_event)
        runtime.reset_hooks.append(self.book.clear)
        runtime.state_providers["ledgers"] = (self.book.dump, self.book.load)
        #: (accounting partner id, merchant key) -> virtual time of the revocation, to say so when it hides a
        #: ledger. Forgotten when the consent is granted again, and on reset.
        self.revoked: dict[tuple[str, str], float] = {}
        runtime.reset_hooks.append(self.revoked.clear)

    # -- visibility ---------------------------------------------------------------------------------
    def _readable(self, keyset: KeySet, ledger_id: str) -> Ledger | None:
        """The ledger if these keys may read it (None when it has no entries yet); else the 404."""
        msn = self.book.msn_of(ledger_id)
        if msn is None:
            raise no_such_ledger(ledger_id)
        if not can_read_ledger(keyset, msn, self.runtime.world):
            rule, reason = self._why_hidden(keyset, msn)
            raise OpaqueDenial(404, "Not Found", NO_SUCH_LEDGER, rule=rule, reason=reason + SAME_404)
        ledger = self.book.ledgers.get(msn)
        if ledger is not None:
            ledger.settle(self.runtime.clock.time())
        return ledger

    def _why_hidden(self, keyset: KeySet, msn: str) -> tuple[str, str]:
        """The rule and plain reason these keys may not read sales unit `msn`'s ledger (for the sandbox's headers
        and request log only: the caller's answer is the one for a ledger that does not exist)."""
        world = self.runtime.world
        unit = world.sales_units[msn]
        ledger = f"Ledger {ledger_id_for(msn)} belongs to sales unit {msn}"
        if keyset.type is KeyType.MERCHANT:
            return ("merchant-keys-own-ledger-only",
                    f"{ledger}; merchant keys read only their own sales unit's ledger (sales unit {keyset.owner}).")
        if keyset.type is KeyType.MERCHANT_LEVEL:
            return ("merchant-level-keys-own-merchant-only",
                    f"{ledger} of merchant {unit.merchant}; merchant-level keys read only their own merchant's "
                    f"ledgers (merchant {keyset.owner}).")
        if keyset.type is not KeyType.ACCOUNTING:  # the gateway refuses these keys first (policy.decide)
            return "report-needs-accounting-keys", f"{ledger}; only merchant and accounting keys read ledgers."
        merchant = world.merchants[unit.merchant]
        revoked = self.revoked.get((keyset.owner, merchant.key))
        if revoked is not None:
            return ("report-consent-revoked",
                    f"{ledger} of merchant {merchant.name} ({merchant.key}), which revoked its consent to accounting "
                    f"{partner_named(keyset.owner, world)} at {iso_utc(revoked)} (virtual clock).")
        return ("report-no-consent",
                f"{ledger} of merchant {merchant.name} ({merchant.key}), which has not consented to accounting "
                f"{partner_named(keyset.owner, world)} reading its reports (POST /_sandbox/consents grants it).")

    def _left_out(self, keyset: KeySet, handles: list[str] | None) -> list[str]:
        """What the ledger list leaves out without a word to the caller, in plain words for the sandbox's
        Vipps-Sandbox-Warning: each filtered handle it cannot show, and (unfiltered) ledgers a revoked consent
        hides."""
        world = self.runtime.world
        notes = []
        if handles is not None:
            units: dict[str, list[SalesUnit]] = {}
            for unit in world.sales_units.values():
                units.setdefault(recipient_handle(unit), []).append(unit)
            for handle in dict.fromkeys(handles):
                found = units.get(handle)
                if not found:
                    notes.append(f"No sales unit settles as {handle}.")
                    continue
                for unit in found:
                    if not can_read_ledger(keyset, unit.msn, world):
                        notes.append(f"Left out {handle}. {self._why_hidden(keyset, unit.msn)[1]}")
        elif keyset.type is KeyType.ACCOUNTING:
            for (partner_id, merchant_key), when in sorted(self.revoked.items()):
                merchant = world.merchants.get(merchant_key)
                if partner_id != keyset.owner or merchant is None or (partner_id, merchant_key) in world.consents:
                    continue
                notes.append(f"Left out the ledgers of merchant {merchant.name} ({merchant_key}): it revoked its "
                             f"consent to accounting {partner_named(partner_id, world)} at {iso_utc(when)} "
                             "(virtual clock).")
        return notes

    # -- GET /settlement/v1/ledgers -------------------------------------------------------------------
    def list_ledgers(self, keyset: KeySet, handles_text: str | None, cursor_text: str | None,
                     page_size_text: str | None, notes: list[str] | None = None) -> dict:
        """`notes`, when given, gets what the list leaves out, in plain words (for Vipps-Sandbox-Warning)."""
        size = parse_page_size(page_size_text)
        handles = parse_handles(handles_text)
        after = None
        if cursor_text:
            cursor = decode_cursor(cursor_text, {"afterLedgerId": str, "settlesForRecipientHandles": (str, type(None))})
            after = cursor["afterLedgerId"]
            cursor_handles = parse_handles(cursor["settlesForRecipientHandles"])
            if handles is not None and handles != cursor_handles:
                raise bad_request("cursor", "The cursor belongs to another settlesForRecipientHandles filter.")
            handles = cursor_handles
        world = self.runtime.world
        if notes is not None:
            notes.extend(self._left_out(keyset, handles))
        wanted = set(handles) if handles is not None else None
        rows = []
        for msn in readable_ledger_msns(keyset, world):
            unit = world.sales_units[msn]
            handle = recipient_handle(unit)
            if wanted is not None and handle not in wanted:
                continue
            rows.append((ledger_id_for(msn), unit, handle))
        rows.sort(key=lambda row: row[0])
        if after is not None:
            rows = [row for row in rows if row[0] > after]
        page = rows[:size]
        items = [self._ledger_item(ledger_id, unit, handle) for ledger_id, unit, handle in page]
        next_cursor = ""
        if len(rows) > size:
            next_cursor = encode_cursor({"afterLedgerId": page[-1][0],
                                         "settlesForRecipientHandles": ",".join(handles) if handles else None})
        return {"items": items, "cursor": next_cursor}

    def _ledger_item(self, ledger_id: str, unit, handle: str) -> dict:
        merchant = self.runtime.world.merchants[unit.merchant]
        return {"ledgerId": ledger_id, "currency": unit.currency,
                "payoutBankAccount": dict(unit.settlement_bank_account),
                "owner": {"scheme": merchant.scheme, "id": merchant.id},
                "settlesForRecipientHandles": [handle],
                "salesUnits": [{"name": unit.name, "recipientHandle": handle}]}

    # -- GET /report/v2/ledgers/{ledgerId}/{topic}/dates/{ledgerDate} -------------------------------------
    def date_page(self, keyset: KeySet, ledger_id_text: str, topic_text: str, date_text: str,
                  cursor_text: str | None, gdpr_text: str | None, page_size_text: str | None) -> dict:
        ledger_id, topic = parse_ledger_id(ledger_id_text), parse_topic(topic_text)
        day, gdpr = parse_date(date_text), parse_flag("includeGDPRSensitiveData", gdpr_text)
        size = parse_page_size(page_size_text)
        offset = 0
        if cursor_text:
            cursor = decode_cursor(cursor_text, {"ledgerId": str, "topic": str, "ledgerDate": str, "offset": int})
            if (cursor["ledgerId"], cursor["topic"], cursor["ledgerDate"]) != (ledger_id, topic, day.isoformat()):
                raise bad_request("cursor", "The cursor belongs to another ledger, topic or date.")
            offset = cursor["offset"]
        ledger = self._readable(keyset, ledger_id)
        msn = self.book.msn_of(ledger_id)
        assert msn is not None  # _readable raised the 404 otherwise
        # "Today" is the open ledger date in the merchant's time zone (with the configured cutoff).
        today = self.book.calendar(self.runtime.world.sales_units[msn]).date_of(self.runtime.clock.time())
        if day > today:  # not there yet: the 2023 guide's answer (the 2023 spec says 404)
            return {"items": [], "hasMore": False, "tryLater": True}
        log = ledger.topics[topic] if ledger is not None else None
        start, end = log.span(day.isoformat()) if log is not None else (0, 0)
        if not 0 <= offset <= end - start:
            raise bad_request("cursor", "The cursor points outside this date's report.")
        first = start + offset
        last = min(end, first + size)
        body: dict = {"items": self._items(ledger, topic, first, last, gdpr), "hasMore": last < end}
        if last < end:
            body["cursor"] = encode_cursor({"ledgerId": ledger_id, "topic": topic, "ledgerDate": day.isoformat(),
                                            "offset": last - start})
        body["tryLater"] = day >= today  # today is still open
        return body

    # -- GET /report/v2/ledgers/{ledgerId}/{topic}/feed ---------------------------------------------------
    def feed_page(self, keyset: KeySet, ledger_id_text: str, topic_text: str, cursor_text: str | None,
                  gdpr_text: str | None, page_size_text: str | None) -> dict:
        ledger_id, topic = parse_ledger_id(ledger_id_text), parse_topic(topic_text)
        gdpr, size = parse_flag("includeGDPRSensitiveData", gdpr_text), parse_page_size(page_size_text)
        position = 0
        if cursor_text:
            cursor = decode_cursor(cursor_text, {"ledgerId": str, "topic": str, "position": int})
            if (cursor["ledgerId"], cursor["topic"]) != (ledger_id, topic):
                raise bad_request("cursor", "The cursor belongs to another ledger or topic.")
            position = cursor["position"]
        ledger = self._readable(keyset, ledger_id)
        total = len(ledger.topics[topic].entries) if ledger is not None else 0
        if not 0 <= position <= total:
            raise bad_request("cursor", "The cursor points outside this feed.")
        last = min(total, position + size)
        items = self._items(ledger, topic, position, last, gdpr)
        return {"items": items, "cursor": encode_cursor({"ledgerId": ledger_id, "topic": topic, "position": last}),
                "tryLater": not items}

    def _items(self, ledger: Ledger | None, topic: str, first: int, last: int, gdpr: bool) -> list[dict]:
        """A slice of the append-only list; GDPR fields only for Vippsnummer/MyShop ledgers."""
        if ledger is None or first >= last:
            return []
        log = ledger.topics[topic]
        entries = log.entries[first:last]
        if not (gdpr and is_vm_handle(ledger.handle)):
            return entries
        return [{**entry, **extra} if extra else entry for entry, extra in zip(entries, log.gdpr[first:last],
                                                                              strict=True)]

    # -- the control plane: accounting consents -------------------------------------------------------
    def consents(self, partner_id: str | None = None) -> list[dict]:
        world = self.runtime.world
        return [self._consent(p, m) for p, m in sorted(world.consents) if partner_id in (None, p)]

    def _consent(self, partner_id: str, merchant_key: str) -> dict:
        world = self.runtime.world
        merchant = world.merchants.get(merchant_key)
        scheme, _, business_id = merchant_key.rpartition("/")
        return {"accountingPartnerId": partner_id, "merchantId": business_id, "scheme": scheme,
                "merchantName": merchant.name if merchant else None,
                "ledgerIds": [ledger_id_for(msn) for msn in world.merchant_msns.get(merchant_key, [])]}

    def _merchant_key(self, business_id: object) -> str:
        if not isinstance(business_id, str) or not business_id:
            raise Problem(400, "Bad Request", "merchantId must be the merchant's organisation number (business id).",
                          details=[Detail("merchantId", "Required string.")])
        world = self.runtime.world
        for scheme in ("business:NO:ORG", "business:DK:CVR", "business:FI:Y-tunnus"):
            if f"{scheme}/{business_id}" in world.merchants:
                return f"{scheme}/{business_id}"
        raise Problem(404, "Not Found", "No merchant has the business id given.",
                      details=[Detail("merchantId", "Unknown merchant.")])

    def _accounting_partner(self, partner_id: object) -> str:
        if not isinstance(partner_id, str) or not partner_id:
            raise Problem(400, "Bad Request", "accountingPartnerId must be a partner id such as partner-1003.",
                          details=[Detail("accountingPartnerId", "Required string.")])
        world = self.runtime.world
        if partner_id not in world.partners:
            raise Problem(404, "Not Found", "No partner has the accountingPartnerId given.",
                          details=[Detail("accountingPartnerId", "Unknown partner.")])
        if not world.partners[partner_id].accounting:
            raise Problem(400, "Bad Request", f"Partner {partner_id} has no accounting keys, so it is not an "
                          "accounting partner and consent would open nothing.",
                          details=[Detail("accountingPartnerId", "Not an accounting partner.")])
        return partner_id

    def grant(self, body: object) -> tuple[dict, bool]:
        if not isinstance(body, dict):
            raise Problem(400, "Bad Request", 'The body must be a JSON object such as '
                          '{"accountingPartnerId": "partner-1003", "merchantId": "987654321"}.')
        unknown = sorted(set(body) - {"accountingPartnerId", "merchantId"})
        if unknown:
            raise Problem(400, "Bad Request", f"Unknown field {unknown[0]!r}.",
                          details=[Detail(unknown[0], "Unknown field.")])
        partner_id = self._accounting_partner(body.get("accountingPartnerId"))
        merchant_key = self._merchant_key(body.get("merchantId"))
        world = self.runtime.world
        created = (partner_id, merchant_key) not in world.consents
        world.grant_consent(partner_id, merchant_key)
        self.revoked.pop((partner_id, merchant_key), None)
        return self._consent(partner_id, merchant_key), created

    def revoke(self, partner_id: str, business_id: str) -> None:
        world = self.runtime.world
        keys = [f"{s}/{business_id}" for s in ("business:NO:ORG", "business:DK:CVR", "business:FI:Y-tunnus")]
        revoked = [key for key in keys if world.revoke_consent(partner_id, key)]
        for key in revoked:
            self.revoked[(partner_id, key)] = self.runtime.clock.time()
        if not revoked:
            raise Problem(404, "Not Found", f"There is no consent from merchant {business_id} to accounting "
                          f"partner {partner_id}.", rule="consent-not-found")
