"""The readiness report for one sales unit: every checklist item with its verdict and evidence.

It reads the evidence book and a little live state (webhook registrations and deliveries), never the request
log, so its cost does not grow with the traffic: a sales unit with 100,000 logged requests costs the same as
one with ten.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.readiness.checklists import CHECKLISTS, Item
from sandbox.readiness.checks import CHECKS, CONFIRM, MET, NOT_MET, TO_EXERCISE, Context, Verdict, shown
from sandbox.readiness.evidence import Proof
from sandbox.readiness.login_checks import LOGIN_CHECKS

NOT_SERVED = "not served here yet"
#: The common rules (G-*) read all of the sales unit's traffic: said in each, so a checklist never seems to
#: claim that its own API was exercised when another API's requests met the rule.
COMMON_NOTE = " (A common rule: judged on all of this sales unit's API requests, whatever the API.)"
ORDER = (MET, NOT_MET, TO_EXERCISE, CONFIRM, NOT_SERVED)


def _endpoint(item: Item, ctx: Context) -> Verdict:
    route = ctx.route_of(item.method, item.path)
    if route is None:
        return Verdict(NOT_SERVED, f"The sandbox does not serve {item.method} {item.path} yet.")
    newest: tuple[str, Proof] | None = None
    total = ok = 0
    for env, unit in ctx.units:
        stat = unit.routes.get(route)
        if stat is None:
            continue
        total, ok = total + stat.total, ok + stat.ok
        if stat.last_ok and (newest is None or stat.last_ok.wall > newest[1].wall):
            newest = (env, stat.last_ok)
    if newest is None:
        tried = f" ({total} requests, none successful)" if total else ""
        return Verdict(TO_EXERCISE, f"No successful {item.method} {item.path} yet{tried}.")
    env, proof = newest
    ident = f"{proof.ident}, " if proof.ident else ""
    if item.modes:  # "full and partial": one of each, the newest proof plus an example of every mode
        seen = {mode: unit.modes[mode] for _, unit in ctx.units for mode in item.modes if mode in unit.modes}
        shown_modes = "; ".join(f"{mode.split('-', 1)[1]}: {seen[mode]}" for mode in item.modes if mode in seen)
        missing = [mode.split("-", 1)[1] for mode in item.modes if mode not in seen]
        if missing:
            return Verdict(TO_EXERCISE, f"Seen: {shown_modes or 'none yet'}; not yet: {', '.join(missing)}.",
                           [shown(env, proof)])
        return Verdict(MET, f"{shown_modes} (newest {proof.at}, {env}; request {proof.request_id}; {ok} of "
                       f"{total} successful).", [shown(env, proof)])
    return Verdict(MET, f"{ident}{proof.at} ({env}; request {proof.request_id}; {ok} of {total} successful).",
                   [shown(env, proof)])


def judge(item: Item, ctx: Context) -> Verdict:
    if item.kind == "endpoint":
        return _endpoint(item, ctx)
    if item.kind == "manual":
        return Verdict(CONFIRM, "Traffic cannot show this: check it yourself before you submit the checklist.")
    return (CHECKS.get(item.check) or LOGIN_CHECKS[item.check])(ctx)


def _summary(title: str, rows: list[dict]) -> str:
    counts = {status: sum(1 for row in rows if row["status"] == status) for status in ORDER}
    judged = len(rows) - counts[NOT_SERVED]
    parts = [f"{title}: {counts[MET]} of {judged} met"]
    if counts[NOT_MET]:
        parts.append(f"{counts[NOT_MET]} not met")
    if counts[TO_EXERCISE]:
        parts.append(f"{counts[TO_EXERCISE]} to exercise")
    if counts[CONFIRM]:
        parts.append(f"{counts[CONFIRM]} to confirm yourself")
    return ", ".join(parts)


def traffic(ctx: Context) -> list[dict]:
    """Per route: total, success rate and counts by status, like the portal's API dashboard (checklists §11)."""
    merged: dict[str, dict] = {}
    for _, unit in ctx.units:
        for route, stat in unit.routes.items():
            row = merged.setdefault(route, {"route": route, "total": 0, "ok": 0, "statuses": {}})
            row["total"] += stat.total
            row["ok"] += stat.ok
            for status, count in stat.statuses.items():
                row["statuses"][str(status)] = row["statuses"].get(str(status), 0) + count
    rows = sorted(merged.values(), key=lambda row: row["route"])
    for row in rows:
        row["successRate"] = round(row["ok"] / row["total"], 3) if row["total"] else None
    return rows


def build(ctx: Context, apis: Iterable[str]) -> dict:
    checklists = []
    for api in apis:
        title, items = CHECKLISTS[api]
        rows = []
        for item in items:
            verdict = judge(item, ctx)
            if item.id.startswith("G-") and verdict.status in (MET, NOT_MET):
                verdict.evidence += COMMON_NOTE
            row = {"id": item.id, "item": item.text, "kind": item.kind, "status": verdict.status,
                   "evidence": verdict.evidence, "proofs": verdict.proofs}
            if verdict.status in (NOT_MET, TO_EXERCISE) and item.advice:
                row["todo"] = item.advice
            if item.exercise is not None and verdict.status != MET:
                body = None if item.exercise.body is None else _fill(item.exercise.body, ctx.msn)
                row["exercise"] = {"label": item.exercise.label, "method": item.exercise.method,
                                   "path": item.exercise.path.replace("{msn}", ctx.msn), "body": body}
            rows.append(row)
        checklists.append({"api": api, "title": title, "summary": _summary(title, rows), "items": rows,
                           "verdicts": {row["id"]: row["status"] for row in rows}})
    return {"msn": ctx.msn, "checklists": checklists, "traffic": traffic(ctx),
            "summary": [checklist["summary"] for checklist in checklists]}


def _fill(body: dict, msn: str) -> dict:
    return {key: (msn if value == "{msn}" else value) for key, value in body.items()}
