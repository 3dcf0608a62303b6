"""The checks behind the checklists' automatic items: each reads the evidence and says met, not met or not yet
exercised, with the requests that show it and, when not met, what to do.

A check never says "met" without evidence: an integration that did nothing gets "not yet exercised".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from sandbox.readiness.evidence import Proof, Unit

MET, NOT_MET, TO_EXERCISE, CONFIRM = "met", "not met", "not yet exercised", "to confirm yourself"
MONTH = 30 * 24 * 3600
#: The Webhooks API refuses a 26th registration per event, so the report cannot wait for "more than 25": more
#: than this many registrations of one event look like one per payment (a few systems listening is normal).
PER_EVENT_PLENTY = 5
MAGIC = {151: "insufficient funds", 186: "expired card"}


@dataclass
class Verdict:
    status: str
    evidence: str
    proofs: list[dict] = field(default_factory=list)


@dataclass
class Context:
    """What a check may read: the sales unit's summaries per environment, and live state the report gathers."""

    msn: str
    units: list[tuple[str, Unit]]
    token_calls: int = 0
    client_calls: int = 0
    registrations: list[dict] = field(default_factory=list)  # {"env", "url", "events"}
    attempts: list[dict] = field(default_factory=list)  # webhook delivery attempts for this sales unit
    callbacks: list[dict] = field(default_factory=list)  # Checkout payment-completed callback attempts, its sessions'
    now_wall: float = 0.0
    login: list = field(default_factory=list)  # LoginEvidence per environment (sandbox/readiness/login_evidence.py)
    now_virtual: float = 0.0  # the sandbox's clock: moving it a month on ages the examples too
    route_of: Callable[[str, str], str | None] = lambda method, path: None


def shown(env: str, proof: Proof) -> dict:
    return {"env": env, **proof.as_json()}


def _first(ctx: Context, attribute: str) -> tuple[str, Proof] | None:
    for env, unit in ctx.units:
        proof = getattr(unit, attribute)
        if proof is not None:
            return env, proof
    return None


def system_headers(ctx: Context) -> Verdict:
    ok = sum(unit.system_ok for _, unit in ctx.units)
    total = sum(unit.api_calls for _, unit in ctx.units)
    if total == 0:
        return Verdict(TO_EXERCISE, "No API request for this sales unit yet.")
    bad = _first(ctx, "system_bad")
    seen = next((unit.system_seen for _, unit in ctx.units if unit.system_seen), {})
    values = "; ".join(f"{name}: {value}" for name, value in seen.items())
    if bad is None:
        return Verdict(MET, f"All {total} API requests carried the four headers ({values}).")
    return Verdict(NOT_MET, f"{total - ok} of {total} API requests lacked one of the four Vipps-System-* headers "
                   "or sent one longer than 30 characters; the first is request "
                   f"{bad[1].request_id}." + (f" Seen on the others: {values}." if values else ""), [shown(*bad)])


def partner_msn(ctx: Context) -> Verdict:
    partner_calls = sum(unit.key_types.get("partner", 0) for _, unit in ctx.units)
    if partner_calls == 0:
        return Verdict(TO_EXERCISE, "No request with partner keys acted for this sales unit yet.")
    bad = _first(ctx, "partner_no_msn")
    if bad is None:
        return Verdict(MET, f"All {partner_calls} requests with partner keys sent Merchant-Serial-Number.")
    return Verdict(NOT_MET, f"Request {bad[1].request_id} used partner keys without Merchant-Serial-Number.",
                   [shown(*bad)])


def token_reuse(ctx: Context) -> Verdict:
    if ctx.client_calls == 0:
        return Verdict(TO_EXERCISE, "No API request with this sales unit's keys yet.")
    if ctx.token_calls == 0:
        return Verdict(TO_EXERCISE, "No access token request was seen in this run (the token may be older).")
    if ctx.token_calls >= ctx.client_calls and ctx.client_calls > 2:
        return Verdict(NOT_MET, f"{ctx.token_calls} token requests for {ctx.client_calls} API requests: a new token "
                       "per request.")
    return Verdict(MET, f"{ctx.token_calls} token requests for {ctx.client_calls} API requests.")


def idempotency_keys(ctx: Context) -> Verdict:
    changes = sum(unit.changes for _, unit in ctx.units)
    if changes == 0:
        return Verdict(TO_EXERCISE, "No state-changing request yet.")
    bad = _first(ctx, "change_unkeyed")
    if bad is None:
        return Verdict(MET, f"All {changes} state-changing requests carried an Idempotency-Key.")
    keyed = sum(unit.changes_keyed for _, unit in ctx.units)
    return Verdict(NOT_MET, f"{changes - keyed} of {changes} state-changing requests had no Idempotency-Key; the "
                   f"first is request {bad[1].request_id}.", [shown(*bad)])


def no_resend_after_4xx(ctx: Context) -> Verdict:
    bad = _first(ctx, "resent_after_4xx")
    if bad is not None:
        return Verdict(NOT_MET, f"Request {bad[1].request_id} resent a request with the key of one that got a 4xx.",
                       [shown(*bad)])
    if not any(unit.changes_keyed for _, unit in ctx.units):
        return Verdict(TO_EXERCISE, "No state-changing request with an Idempotency-Key yet.")
    return Verdict(MET, "No request was resent with the key of a request that got a 4xx.")


def retry_same_key(ctx: Context) -> Verdict:
    bad = _first(ctx, "retried_new_key")
    if bad is not None:
        return Verdict(NOT_MET, f"After a 5xx, request {bad[1].request_id} came with a new Idempotency-Key: a "
                       "retry like that can make a duplicate.", [shown(*bad)])
    good = _first(ctx, "retried_same_key")
    if good is not None:
        return Verdict(MET, f"After a 5xx, request {good[1].request_id} retried with the same Idempotency-Key.",
                       [shown(*good)])
    return Verdict(TO_EXERCISE, "No request of this sales unit has failed with a 5xx yet: run the exercise, then "
                   "make the call again.")


def _gaps(polls: list[float]) -> list[float]:
    return [b - a for a, b in zip(polls, polls[1:], strict=False)]


def polling_pace(ctx: Context, prefix: str = "") -> Verdict:
    firsts, gaps = [], []
    for _, unit in ctx.units:
        for ident, tracked in unit.objects.items():
            if prefix and not ident.startswith(prefix) or not tracked.polls:
                continue
            if tracked.created is not None:
                firsts.append(tracked.polls[0] - tracked.created)
            gaps.extend(_gaps(tracked.polls))
    if not gaps:
        return Verdict(TO_EXERCISE, "No object was polled twice yet.")
    median = statistics.median(gaps)
    early = [first for first in firsts if first < 1.0]
    if median < 1.5:
        return Verdict(NOT_MET, f"Polls came every {median:.2f} s (median of {len(gaps)} gaps); the guideline is "
                       "every 2 seconds.")
    if early and len(early) > len(firsts) / 2:
        return Verdict(NOT_MET, f"The first poll came less than a second after the create for {len(early)} of "
                       f"{len(firsts)} payments; start after about 5 seconds.")
    return Verdict(MET, f"Polls came every {median:.1f} s (median of {len(gaps)} gaps).")


def polling_agreement(ctx: Context) -> Verdict:
    return polling_pace(ctx, "agr_")


def _registered(ctx: Context, prefix: str) -> list[dict]:
    return [r for r in ctx.registrations if any(event.startswith(prefix) for event in r["events"])]


def _polled(ctx: Context, prefix: str = "") -> bool:
    return any(tracked.polls for _, unit in ctx.units for ident, tracked in unit.objects.items()
               if not prefix or ident.startswith(prefix))


def webhooks_and_polling_epayment(ctx: Context) -> Verdict:
    registered, polled = _registered(ctx, "epayments.payment."), _polled(ctx)
    if registered and polled:
        return Verdict(MET, f"A webhook for {registered[0]['events'][0]} is registered, and payments were polled.")
    if not registered and not polled:
        return Verdict(TO_EXERCISE, "Neither a webhook registration nor a poll was seen yet.")
    missing = "no webhook is registered for the epayments.payment.*.v1 events" if not registered \
        else "payments were never polled with get payment"
    return Verdict(NOT_MET, f"Only one of the two: {missing}.")


def webhooks_recurring(ctx: Context) -> Verdict:
    stopped = [r for r in ctx.registrations if "recurring.agreement-stopped.v1" in r["events"]]
    if stopped:
        return Verdict(MET, "A webhook for recurring.agreement-stopped.v1 is registered.")
    if _registered(ctx, "recurring."):
        return Verdict(NOT_MET, "Recurring events are registered, but not recurring.agreement-stopped.v1: users "
                       "stop agreements in the app.")
    return Verdict(TO_EXERCISE if not _polled(ctx, "agr_") else NOT_MET,
                   "No webhook is registered for the Recurring events.")


def _reached(ctx: Context, state: str) -> list[tuple[str, str, bool]]:
    """(env, ident, read afterwards) for every object that reached `state`."""
    found = []
    for env, unit in ctx.units:
        for ident, tracked in unit.objects.items():
            at = tracked.states.get(state)
            if at is not None:
                found.append((env, ident, any(poll >= at for poll in tracked.polls)))
    return found


def states_read_epayment(ctx: Context) -> Verdict:
    wanted = ("authorized", "aborted", "expired", "terminated", "captured", "refunded", "cancelled")
    read, unseen, unread = [], [], []
    for state in wanted:
        reached = _reached(ctx, state)
        if not reached:
            unseen.append(state.upper())
        elif any(was_read for _, _, was_read in reached):
            read.append(state.upper())
        else:
            unread.append(f"{state.upper()} ({reached[0][1]})")
    if unread:
        return Verdict(NOT_MET, f"Reached but never read back afterwards: {', '.join(unread)}.")
    if unseen:
        return Verdict(TO_EXERCISE, f"Read back: {', '.join(read) or 'none yet'}; not reached yet: "
                       f"{', '.join(unseen)}.")
    return Verdict(MET, f"Every state and event was reached and read back: {', '.join(read)}.")


def reference_quality(ctx: Context) -> Verdict:
    counts = {name: sum(unit.references.get(name, 0) for _, unit in ctx.units)
              for name in ("all", "digits-only", "leading-zero", "short", "uuid")}
    if counts["all"] == 0:
        return Verdict(TO_EXERCISE, "No payment was created yet.")
    examples = next((unit.reference_examples for _, unit in ctx.units if unit.reference_examples), {})
    bad = [f"{counts[name]} {name} (for example {examples.get(name)!r})"
           for name in ("digits-only", "leading-zero", "short") if counts[name]]
    if bad:
        return Verdict(NOT_MET, f"Of {counts['all']} references: {', '.join(bad)}.")
    return Verdict(MET, f"All {counts['all']} references look useful (for example {examples.get('all')!r}).")


def failure_cases_epayment(ctx: Context) -> Verdict:
    amounts = {t.amount for _, unit in ctx.units for t in unit.objects.values()}
    seen = [f"{word} ({amount})" for amount, word in MAGIC.items() if amount in amounts]
    outcomes = [state.upper() for state in ("aborted", "expired") if _reached(ctx, state)]
    missing = [f"{word} ({amount})" for amount, word in MAGIC.items() if amount not in amounts] + \
        [state.upper() for state in ("aborted", "expired") if not _reached(ctx, state)]
    if missing:
        return Verdict(TO_EXERCISE, f"Seen: {', '.join(seen + outcomes) or 'none yet'}; still to test: "
                       f"{', '.join(missing)}.")
    return Verdict(MET, f"Tested: {', '.join(seen + outcomes)}.")


def receipts(ctx: Context) -> Verdict:
    captured = [ident for _, ident, _ in _reached(ctx, "captured")]
    if not captured:
        return Verdict(TO_EXERCISE, "No payment was captured yet.")
    with_receipt = [ident for _, unit in ctx.units for ident, t in unit.objects.items()
                    if t.receipt and "captured" in t.states]
    if len(with_receipt) == len(captured):
        return Verdict(MET, f"All {len(captured)} captured payments have a receipt.")
    return Verdict(NOT_MET, f"{len(captured) - len(with_receipt)} of {len(captured)} captured payments have no "
                   "receipt.")


def evidence_recurring(ctx: Context) -> Verdict:
    wanted = {"agreement ACTIVE": "agreement-activated", "agreement STOPPED": "agreement-stopped",
              "charge CHARGED": "charge-captured", "charge REFUNDED": "charge-refunded"}
    seen, missing, proofs = [], [], []
    for words, state in wanted.items():
        reached = _reached(ctx, state)
        if reached:
            seen.append(f"{words} ({reached[0][1]})")
            proofs.append({"env": reached[0][0], "id": reached[0][1]})
        else:
            missing.append(words)
    if missing:
        return Verdict(TO_EXERCISE, f"Seen: {', '.join(seen) or 'none yet'}; missing: {', '.join(missing)}.", proofs)
    return Verdict(MET, f"Seen: {', '.join(seen)}.", proofs)


def webhook_registrations(ctx: Context) -> Verdict:
    if not ctx.registrations:
        return Verdict(TO_EXERCISE, "No webhook is registered for this sales unit.")
    per_event: dict[str, int] = {}
    for registration in ctx.registrations:
        for event in registration["events"]:
            per_event[event] = per_event.get(event, 0) + 1
    worst = max(per_event.items(), key=lambda pair: pair[1])
    if worst[1] > PER_EVENT_PLENTY:
        return Verdict(NOT_MET, f"{worst[1]} registrations for {worst[0]}: that looks like one per payment; "
                       "register once per sales unit.")
    return Verdict(MET, f"{len(ctx.registrations)} registrations, at most {worst[1]} per event.")


def webhook_https(ctx: Context) -> Verdict:
    if not ctx.registrations:
        return Verdict(TO_EXERCISE, "No webhook is registered for this sales unit.")
    plain = [r["url"] for r in ctx.registrations if not r["url"].startswith("https://")]
    if plain:
        return Verdict(NOT_MET, f"{len(plain)} registrations use plain HTTP, for example {plain[0]!r}; production "
                       "needs a public https:// URL.")
    return Verdict(MET, "Every registration uses https://.")


def webhook_answers(ctx: Context) -> Verdict:
    if not ctx.attempts:
        return Verdict(TO_EXERCISE, "No webhook was delivered to this sales unit's registrations yet.")
    bad = [a for a in ctx.attempts if not (isinstance(a.get("status"), int) and 200 <= a["status"] < 300)]
    slow = [a for a in ctx.attempts if (a.get("latencyMs") or 0) > 10_000]
    if bad or slow:
        return Verdict(NOT_MET, f"{len(bad)} of {len(ctx.attempts)} deliveries were not answered with a 2xx, and "
                       f"{len(slow)} took more than 10 seconds.")
    return Verdict(MET, f"All {len(ctx.attempts)} deliveries were answered with a 2xx within 10 seconds.")


def management_used(ctx: Context) -> Verdict:
    used = [name for _, unit in ctx.units for name, stat in unit.routes.items()
            if name.startswith("management.") and stat.ok]
    if used:
        return Verdict(MET, f"Management API calls seen: {', '.join(sorted(set(used)))}.")
    return Verdict(TO_EXERCISE, "No successful Management API call for this sales unit yet.")


def recent_examples(ctx: Context) -> Verdict:
    proofs = [(env, stat.last_ok) for env, unit in ctx.units for stat in unit.routes.values() if stat.last_ok]
    if not proofs:
        return Verdict(TO_EXERCISE, "No successful request yet.")
    old = [(env, proof) for env, proof in proofs
           if ctx.now_wall - proof.wall > MONTH or ctx.now_virtual - proof.when > MONTH]
    if old:
        return Verdict(NOT_MET, f"{len(old)} endpoint examples are more than 30 days old.", [shown(*old[0])])
    return Verdict(MET, "Every endpoint example is at most 30 days old.")


def capture_after_authorization(ctx: Context) -> Verdict:
    """G-T3: capture only payments the user approved (capturing before gives error 6080)."""
    captures = sum(unit.captures for _, unit in ctx.units)
    if captures == 0:
        return Verdict(TO_EXERCISE, "No capture was asked for yet.")
    early = _first(ctx, "capture_early")
    if early is not None:
        return Verdict(NOT_MET, f"Request {early[1].request_id} asked to capture {early[1].ident} before the user "
                       "approved it (the API refuses that with 6080).", [shown(*early)])
    return Verdict(MET, f"All {captures} captures came after the user approved.")


def checkout_callbacks(ctx: Context) -> Verdict:
    """CO-1: the payment-completed callbacks reached the integration and it answered them with a 2xx."""
    if not ctx.callbacks:
        return Verdict(TO_EXERCISE, "No Checkout session of this sales unit has sent its payment-completed callback "
                       "yet.")
    failed = [a for a in ctx.callbacks if a.get("outcome") != "delivered"]
    delivered = len(ctx.callbacks) - len(failed)
    if failed:
        first = failed[0]
        why = f"status {first['status']}" if first.get("status") else first.get("error") or first.get("outcome")
        return Verdict(NOT_MET, f"{len(failed)} of {len(ctx.callbacks)} callback attempts were not answered with a "
                       f"2xx; the first, for session {first.get('reference')}: {why}.")
    return Verdict(MET, f"All {delivered} payment-completed callbacks were answered with a 2xx.")


CHECKS: dict[str, Callable[[Context], Verdict]] = {
    "checkout_callbacks": checkout_callbacks, "capture_after_authorization": capture_after_authorization,
    "system_headers": system_headers, "partner_msn": partner_msn, "token_reuse": token_reuse,
    "idempotency_keys": idempotency_keys, "no_resend_after_4xx": no_resend_after_4xx,
    "retry_same_key": retry_same_key, "polling_pace": polling_pace, "polling_agreement": polling_agreement,
    "webhooks_and_polling_epayment": webhooks_and_polling_epayment, "webhooks_recurring": webhooks_recurring,
    "states_read_epayment": states_read_epayment, "reference_quality": reference_quality,
    "failure_cases_epayment": failure_cases_epayment, "receipts": receipts, "evidence_recurring": evidence_recurring,
    "webhook_registrations": webhook_registrations, "webhook_https": webhook_https,
    "webhook_answers": webhook_answers, "management_used": management_used, "recent_examples": recent_examples,
}
