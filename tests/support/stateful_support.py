"""Stateful testing: a real sandbox (tests/support/fuzz_support.py's ThreadedSandbox) driven over loopback HTTP by
Hypothesis state machines (tests/evidence/test_state_machines.py), and the invariants they check.

The checks are plain functions over the JSON the sandbox answered (and what the test's model expects), each
returning the list of what is wrong: the machines assert that it is empty, and a test feeds them tampered bodies
to prove they can fail. None of them reads the sandbox's own code: the states, events and ledger rules are
written from the API documentation (and docs/reference).
"""

from __future__ import annotations

import collections
import itertools
from datetime import UTC, datetime

import requests
from api_formats import error_format_problem
from fuzz_support import Credentials, ThreadedSandbox

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.gateway.policy import Api
from sandbox.testing import RESPONSE_CHECKS

DAY = 86400.0


def parse_now(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def reply_problems(api: Api, method: str, path: str, status: int, content_type: str, text: str) -> list[str]:
    """Every answer: never a 5xx or a traceback; a refusal in its API's own error format; a success body the
    API's spec allows (the test client's check, sandbox/apis/*/response_schemas.py)."""
    if status >= 500:
        return [f"{method} {path} answered {status}: {text[:500]}"]
    if "Traceback" in text:
        return [f"{method} {path} shows a traceback"]
    if status >= 400:
        wrong = error_format_problem(api, content_type, text)
        return [f"{method} {path} {status}: {wrong}: {text[:300]}"] if wrong else []
    if 200 <= status < 300:
        return [f"{method} {path} {status}: {w}" for check in RESPONSE_CHECKS
                for w in check(method, path.split("?")[0], status, text)]
    return []


#: The last path segments that name what a call does (the others are ids).
ACTIONS = frozenset({"capture", "refund", "cancel", "approve", "reject", "expire", "stop", "outcome", "events",
                     "charges", "agreements", "payments", "session", "clock", "feed"})


class Live:
    """A started ThreadedSandbox and a blocking client for it: token headers by name (fetched again after the
    virtual clock moved, since tokens expire on it), every answer checked by `reply_problems`."""

    def __init__(self, sandbox: ThreadedSandbox) -> None:
        self.sandbox = sandbox
        self.creds = Credentials(sandbox)
        self.http: requests.Session = self.creds.http
        self.ids = itertools.count()
        self._headers: dict[tuple, dict] = {}
        self.calls = 0
        #: (API, method, action, status) -> count: what the machines really did (the test prints it, asserts on it)
        self.stats: collections.Counter = collections.Counter()

    @property
    def world(self):
        return self.sandbox.world

    def msn(self, role: str) -> str:
        return self.creds.msn(role)

    def recurring_msn(self) -> str:
        """A sales unit of the approved partner whose configuration allows Recurring (as the fuzzer picks it)."""
        world = self.world
        partner = next(p.id for p in world.partners.values() if p.role == "premium")
        return next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                    if u.partner_id == partner and u.market == "NO" and u.configuration.get("recurringAllowed")
                    and world.is_active(u.msn))

    def headers(self, kind: str, env: str, msn: str) -> dict[str, str]:
        """`kind`: "partner" (production, with Merchant-Serial-Number), "merchant" (the unit's own keys, with the
        header too), "accounting" (the Report API's accountant), or "raw-partner"/"raw-merchant" (Checkout's
        client_id/client_secret headers)."""
        cache = (kind, env, msn)
        if cache not in self._headers:
            creds = self.creds
            if kind in ("partner", "raw-partner"):
                keyset = creds.key("partner", "production", role="premium")
            elif kind in ("merchant", "raw-merchant"):
                keyset = creds.key("merchant", env, msn=msn)
            else:
                keyset = creds.key("accounting", "production", role="accountant")
            if kind.startswith("raw-"):
                headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                           "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"],
                           "Merchant-Serial-Number": msn}
            else:
                headers = creds.token_headers(keyset, None if kind == "accounting" else msn)
            self._headers[cache] = headers
        return dict(self._headers[cache])

    def call(self, api: Api, method: str, env: str, path: str, *, headers: dict | None = None,
             body: object = None, form: dict | None = None) -> requests.Response:
        self.calls += 1
        reply = self.http.request(method, self.sandbox.url(env) + path, headers=headers,
                                  json=body if form is None else None, data=form, allow_redirects=False)
        wrong = reply_problems(api, method, path, reply.status_code, reply.headers.get("content-type", ""),
                               reply.text) if form is None else (
            [f"{method} {path} answered {reply.status_code}: {reply.text[:300]}"] if reply.status_code >= 500 else [])
        assert not wrong, wrong
        tail = path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        action = tail if tail in ACTIONS else "-"
        self.stats[(api.value, method, action, reply.status_code)] += 1
        return reply

    def clock(self, body: dict) -> float:
        """POST /_sandbox/clock; the virtual time after it (epoch seconds). Tokens are fetched again after it."""
        reply = self.call(Api.SANDBOX, "POST", "production", "/_sandbox/clock", body=body)
        assert reply.status_code == 200, reply.text
        if body.get("advanceSeconds"):
            self._headers = {k: v for k, v in self._headers.items() if k[0].startswith("raw-")}
        return parse_now(reply.json()["now"])

    def feed(self, msn: str, topic: str) -> list[dict]:
        """Every entry of the sales unit's ledger topic, through the Report API's feed (all pages)."""
        entries: list[dict] = []
        cursor = None
        path = f"/report/v2/ledgers/{ledger_id_for(msn)}/{topic}/feed"
        while True:
            query = f"?pageSize=1000&cursor={cursor}" if cursor else "?pageSize=1000"
            reply = self.call(Api.REPORT, "GET", "production", path + query,
                              headers=self.headers("accounting", "production", msn))
            assert reply.status_code == 200, reply.text
            page = reply.json()
            entries += page["items"]
            if not page["items"]:
                return entries
            cursor = page["cursor"]


# ---------------------------------------------------------------------------------------------
# ePayment: the aggregate against the event log
# ---------------------------------------------------------------------------------------------

#: The events that set the payment's state (the others, CAPTURED, REFUNDED and CANCELLED, move money only).
STATE_EVENTS = {"CREATED": "CREATED", "AUTHORIZED": "AUTHORIZED", "ABORTED": "ABORTED", "EXPIRED": "EXPIRED",
                "TERMINATED": "TERMINATED"}


def payment_problems(payment: dict, events: list[dict], expected: list[tuple[str, int]] | None = None) -> list[str]:
    """A payment (GET) against its event log (GET /events): the aggregate never exceeds the authorized amount,
    it equals the sums of the events, the state is the last state event's, and (with `expected`, the model's
    (name, value) list) every state change the model saw is in the log, in order, and nothing else is."""
    wrong = []
    agg = {name: payment["aggregate"][f"{name}Amount"]["value"] for name in
           ("authorized", "captured", "refunded", "cancelled")}
    if agg["captured"] > agg["authorized"]:
        wrong.append(f"captured {agg['captured']} > authorized {agg['authorized']}")
    if agg["refunded"] > agg["captured"]:
        wrong.append(f"refunded {agg['refunded']} > captured {agg['captured']}")
    if agg["authorized"] and agg["captured"] + agg["cancelled"] > agg["authorized"]:
        wrong.append(f"captured {agg['captured']} + cancelled {agg['cancelled']} > authorized {agg['authorized']}")
    if agg["authorized"] not in (0, payment["amount"]["value"]):
        wrong.append(f"authorized {agg['authorized']} is neither 0 nor the amount {payment['amount']['value']}")
    state, value = payment["state"], payment["amount"]["value"]
    if state == "TERMINATED" and (agg["authorized"], agg["captured"], agg["cancelled"]) != (0, 0, value):
        wrong.append(f"a TERMINATED payment (cancelled before the user approved) has the aggregate {agg}")
    if state in ("CREATED", "ABORTED", "EXPIRED") and any(agg.values()):
        wrong.append(f"a {state} payment has the aggregate {agg}")
    if state == "AUTHORIZED" and agg["cancelled"] and agg["captured"] + agg["cancelled"] != agg["authorized"]:
        wrong.append(f"a cancel left {agg['authorized'] - agg['captured'] - agg['cancelled']} reserved")
    ok = [e for e in events if e["success"]]
    sums = {"authorized": sum(e["amount"]["value"] for e in ok if e["name"] == "AUTHORIZED"),
            "captured": sum(e["amount"]["value"] for e in ok if e["name"] == "CAPTURED"),
            "refunded": sum(e["amount"]["value"] for e in ok if e["name"] == "REFUNDED"),
            "cancelled": sum(e["amount"]["value"] for e in ok if e["name"] in ("CANCELLED", "TERMINATED"))}
    if sums != agg:
        wrong.append(f"the aggregate {agg} is not the sums of the events {sums}")
    states = [STATE_EVENTS[e["name"]] for e in ok if e["name"] in STATE_EVENTS]
    if not events or events[0]["name"] != "CREATED":
        wrong.append("the event log does not start with CREATED")
    elif events[0]["pspReference"] != payment["pspReference"]:
        wrong.append("the payment's pspReference is not its CREATED event's")
    if states and states[-1] != payment["state"]:
        wrong.append(f"the state {payment['state']} is not the last state event's {states[-1]}")
    if len(set(e["pspReference"] for e in events)) != len(events):
        wrong.append("two events share a pspReference")
    if [e["timestamp"] for e in events] != sorted(e["timestamp"] for e in events):
        wrong.append("the events are not in time order")
    if any(e["reference"] != payment["reference"] for e in events):
        wrong.append("an event names another reference")
    if expected is not None:
        seen = [(e["name"], e["amount"]["value"]) for e in events]
        if seen != expected:
            wrong.append(f"the event log {seen} is not what happened {expected}")
    return wrong


# ---------------------------------------------------------------------------------------------
# The Report API's ledger: funds and fees balance, and every capture and refund is booked once
# ---------------------------------------------------------------------------------------------

def chain_problems(entries: list[dict], topic: str) -> list[str]:
    wrong = []
    balance = 0
    for entry in entries:
        if entry["balanceBefore"] != balance or entry["balanceAfter"] != balance + entry["amount"]:
            wrong.append(f"{topic} entry {entry['pspReference']} breaks the balance chain at {balance}")
        balance = entry["balanceAfter"]
    return wrong


def ledger_problems(funds: list[dict], fees: list[dict], captured: dict[str, int], refunded: dict[str, int],
                    captures: dict[str, tuple[str, int]] | None = None) -> list[str]:
    """The ledger of one sales unit against what the payments say: `captured`/`refunded` per reference (the
    references this run made, nothing else is looked at); `captures` the (reference, value) of each capture's
    pspReference. Funds and fees chain from zero; each capture is booked once in funds with at most one fee (never
    more than the capture, never positive); each date's retained fees leave the fees topic as they enter funds;
    the funds of our references add up to captures minus refunds."""
    wrong = chain_problems(funds, "funds") + chain_problems(fees, "fees")
    ours = set(captured) | set(refunded)
    booked_in: dict[str, int] = {}
    booked_out: dict[str, int] = {}
    for entry in funds:
        if entry["reference"] not in ours:
            continue
        if entry["entryType"] == "capture":
            booked_in[entry["reference"]] = booked_in.get(entry["reference"], 0) + entry["amount"]
        elif entry["entryType"] == "refund":
            booked_out[entry["reference"]] = booked_out.get(entry["reference"], 0) - entry["amount"]
        else:
            wrong.append(f"funds entry {entry['pspReference']} of a payment has type {entry['entryType']}")
    for reference in sorted(ours):
        if booked_in.get(reference, 0) != captured.get(reference, 0):
            wrong.append(f"{reference}: the ledger books {booked_in.get(reference, 0)} captured, the payment says "
                         f"{captured.get(reference, 0)}")
        if booked_out.get(reference, 0) != refunded.get(reference, 0):
            wrong.append(f"{reference}: the ledger books {booked_out.get(reference, 0)} refunded, the payment says "
                         f"{refunded.get(reference, 0)}")
    if sum(booked_in.values()) - sum(booked_out.values()) != sum(captured.values()) - sum(refunded.values()):
        wrong.append("the funds of these payments do not add up to captures minus refunds")
    by_psp: dict[str, list[dict]] = {}
    for entry in funds:
        by_psp.setdefault(entry["pspReference"], []).append(entry)
    fee_by_psp: dict[str, list[dict]] = {}
    for entry in fees:
        fee_by_psp.setdefault(entry["pspReference"], []).append(entry)
    for psp, (reference, value) in (captures or {}).items():
        booked = [e for e in by_psp.get(psp, []) if e["entryType"] == "capture"]
        if [(e["reference"], e["amount"]) for e in booked] != [(reference, value)]:
            wrong.append(f"capture {psp} of {reference} ({value}) is booked as {booked}")
        charged = [e for e in fee_by_psp.get(psp, []) if e["entryType"] == "capture-fee"]
        if len(charged) > 1 or any(not -value <= e["amount"] < 0 for e in charged):
            wrong.append(f"capture {psp} has the fees {charged}")
    for entry in funds:
        if entry["entryType"] == "fees-retained":
            mirror = [e for e in fee_by_psp.get(entry["pspReference"], []) if e["entryType"] == "fees-retained"]
            if [e["amount"] for e in mirror] != [-entry["amount"]]:
                wrong.append(f"the retained fees {entry['pspReference']} do not leave the fees topic: {mirror}")
    return wrong


# ---------------------------------------------------------------------------------------------
# Recurring: charges and agreements against their history
# ---------------------------------------------------------------------------------------------

#: The charge transitions the Recurring documentation describes (a charge only moves forward).
CHARGE_MOVES = {
    "PENDING": {"DUE", "RESERVED", "CHARGED", "FAILED", "CANCELLED"},
    "DUE": {"RESERVED", "CHARGED", "FAILED", "CANCELLED"},
    "RESERVED": {"PARTIALLY_CAPTURED", "CHARGED", "CANCELLED"},
    "PARTIALLY_CAPTURED": {"CHARGED", "PARTIALLY_REFUNDED", "REFUNDED"},
    "CHARGED": {"PARTIALLY_REFUNDED", "REFUNDED"},
    "PARTIALLY_REFUNDED": {"REFUNDED"},
    "REFUNDED": set(), "FAILED": set(), "CANCELLED": set(),
}
WITH_TRANSACTION = frozenset({"DUE", "RESERVED", "CHARGED", "PARTIALLY_CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED"})


def status_from_history(history: list[dict], amount: int) -> set[str]:
    """The statuses a charge may have, by its history alone."""
    events = [h["event"] for h in history]
    captured = sum(h["amount"] for h in history if h["event"] == "CAPTURE")
    refunded = sum(h["amount"] for h in history if h["event"] == "REFUND")
    if "FAIL" in events:
        return {"FAILED"}
    if "RESERVE" not in events:
        return {"CANCELLED"} if "CANCEL" in events else {"PENDING", "DUE"}
    if refunded:
        return {"REFUNDED"} if refunded == captured else {"PARTIALLY_REFUNDED"}
    if captured == amount:
        return {"CHARGED"}
    if captured:
        return {"PARTIALLY_CAPTURED"}
    return {"CANCELLED"} if "CANCEL" in events else {"RESERVED"}


def charge_problems(charge: dict, before: str | None = None,
                    expected: list[tuple[str, int]] | None = None) -> list[str]:
    """One charge (GET): captured <= amount, refunded <= captured, the summary is the sums of the history, the
    status is what the history says and a legal move from `before`; with `expected`, the history is the model's."""
    wrong = []
    amount, summary, history = charge["amount"], charge["summary"], charge["history"]
    if summary["captured"] > amount or summary["captured"] + summary["cancelled"] > amount:
        wrong.append(f"captured {summary['captured']} + cancelled {summary['cancelled']} > amount {amount}")
    if summary["refunded"] > summary["captured"]:
        wrong.append(f"refunded {summary['refunded']} > captured {summary['captured']}")
    for name, event in (("captured", "CAPTURE"), ("refunded", "REFUND"), ("cancelled", "CANCEL")):
        total = sum(h["amount"] for h in history if h["event"] == event)
        if total != summary[name]:
            wrong.append(f"summary.{name} {summary[name]} is not the history's {event}s {total}")
    if not history or history[0]["event"] != "CREATE" or history[0]["amount"] != amount:
        wrong.append("the history does not start with the CREATE of the amount")
    if [h["event"] for h in history].count("RESERVE") > 1:
        wrong.append("reserved twice")
    if any(not h["success"] for h in history if h["event"] != "FAIL"):
        wrong.append("a history entry other than FAIL is not a success")
    if charge["status"] not in status_from_history(history, amount):
        wrong.append(f"the status {charge['status']} is not what the history says "
                     f"{sorted(status_from_history(history, amount))}")
    if before is not None and charge["status"] != before and charge["status"] not in CHARGE_MOVES[before]:
        wrong.append(f"illegal move {before} -> {charge['status']}")
    if charge["status"] == "PENDING" and charge["transactionId"] is not None:
        wrong.append("a PENDING charge has a transactionId")
    if charge["status"] in WITH_TRANSACTION and not charge["transactionId"]:
        wrong.append(f"a {charge['status']} charge has no transactionId")
    if expected is not None:
        seen = [(h["event"], h["amount"]) for h in history]
        if seen != expected:
            wrong.append(f"the history {seen} is not what happened {expected}")
    return wrong


#: The agreement's status after each history event (UPDATE leaves it as it was).
AGREEMENT_AFTER = {"CREATE": "PENDING", "ACTIVATE": "ACTIVE", "STOP": "STOPPED", "REJECT": "STOPPED",
                   "EXPIRE": "EXPIRED"}
FINAL_AGREEMENT_EVENTS = frozenset({"STOP", "REJECT", "EXPIRE"})


def agreement_problems(agreement: dict, expected: list[tuple[str, str]] | None = None) -> list[str]:
    """One agreement (GET): its status is its history's, nothing follows a stop, rejection or expiry; with
    `expected`, the history is the model's (event, actor) list."""
    wrong = []
    events = [h["event"] for h in agreement["history"]]
    if not events or events[0] != "CREATE":
        wrong.append("the history does not start with CREATE")
    status = None
    for event in events:
        status = AGREEMENT_AFTER.get(event, status)
    if status != agreement["status"]:
        wrong.append(f"the status {agreement['status']} is not the history's {status}")
    ends = [i for i, event in enumerate(events) if event in FINAL_AGREEMENT_EVENTS]
    if ends and ends[0] != len(events) - 1:
        wrong.append(f"the history goes on after {events[ends[0]]}: {events}")
    if agreement["status"] in ("STOPPED", "EXPIRED") and "stop" not in agreement:
        wrong.append(f"a {agreement['status']} agreement has no stop time")
    if expected is not None:
        seen = [(h["event"], h["actor"]) for h in agreement["history"]]
        if seen != expected:
            wrong.append(f"the history {seen} is not what happened {expected}")
    return wrong


# ---------------------------------------------------------------------------------------------
# Checkout: the session against its ePayment payment
# ---------------------------------------------------------------------------------------------

SESSION_STATES = frozenset({"SessionCreated", "PaymentInitiated", "PaymentSuccessful", "PaymentTerminated",
                            "SessionExpired"})
#: The session's paymentDetails.state for each state of its payment.
PAYMENT_STATE = {"CREATED": "CREATED", "AUTHORIZED": "AUTHORIZED", "ABORTED": "TERMINATED",
                 "EXPIRED": "TERMINATED", "TERMINATED": "TERMINATED"}


def session_problems(session: dict, payment: dict | None) -> list[str]:
    """A session (GET) against the ePayment payment under its reference (None: there is none)."""
    wrong = []
    state, details = session["sessionState"], session.get("paymentDetails")
    if state not in SESSION_STATES:
        return [f"unknown session state {state}"]
    if state == "SessionCreated" and (details is not None or payment is not None):
        wrong.append("an unpaid session has a payment")
    if details is None:
        if payment is not None:
            wrong.append("the session shows no payment, yet there is one")
        if state in ("PaymentInitiated", "PaymentSuccessful"):
            wrong.append(f"a {state} session shows no payment")
        return wrong
    if payment is None:
        return wrong + ["the session shows a payment that does not exist"]
    if details["state"] != PAYMENT_STATE[payment["state"]]:
        wrong.append(f"paymentDetails.state {details['state']} but the payment is {payment['state']}")
    if details.get("aggregate") != payment["aggregate"]:
        wrong.append(f"the session's aggregate {details.get('aggregate')} is not the payment's {payment['aggregate']}")
    if details["amount"] != payment["amount"]:
        wrong.append(f"the session's amount {details['amount']} is not the payment's {payment['amount']}")
    expected = {"PaymentInitiated": {"CREATED"}, "PaymentSuccessful": {"AUTHORIZED"},
                "PaymentTerminated": {"ABORTED", "EXPIRED", "TERMINATED"},
                "SessionExpired": {"EXPIRED", "TERMINATED", "ABORTED"}}[state]
    if payment["state"] not in expected:
        wrong.append(f"a {state} session's payment is {payment['state']}")
    return wrong


