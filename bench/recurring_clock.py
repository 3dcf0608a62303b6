"""Recurring API benchmarks (issue 15), run by hand: one command, ratios measured in one run.

    python bench/recurring_clock.py [--seconds 5] [--rounds 3]

1. Advancing the virtual clock by 31 days with 100,000 ACTIVE agreements of which 1,000 have a charge due in the
   window, vs 10,000 agreements with the same 1,000 due (goal: ratio <= 1.3). Every other agreement has a charge
   due in 600 days, so the index by time holds an entry per agreement either way. The agreements are made through
   the backend's own draft/approve/create-charge methods (not over HTTP: 100,000 drafts would take minutes), then
   the clock is moved an hour first (not measured) so the approved agreements' spent 10-minute expiry entries are
   gone, as they are in any sandbox that has run for more than ten minutes. The live objects are frozen out of
   the garbage collector while the clock moves (`gc.freeze()`; `--with-gc` not): a full collection landing in
   the window walks every live object, a cost of Python's, not of the index. Each size is filled once; then
   `--repeats` rounds alternate between the two sizes, each round giving the first 1,000 agreements a new charge
   due in 20 days and moving the clock 31 days. A round's cost is the process's CPU time (time.process_time(),
   not the wall clock: on a shared machine the wall clock also counts the time other processes had the CPU);
   the ratio is the median of the per-round ratios (the rounds' median times are printed too).
2. Memory per ACTIVE agreement with one charge (tracemalloc over 10,000 of them, made the same way; idempotency
   records included, since the sandbox keeps one per draft, accept and charge). Goal <= 3 kB.
3. Authorized GET /recurring/v3/agreements/{id} over HTTP vs a bare aiohttp JSON handler answering the same body,
   both loaded by wrk from another process (goal >= 0.8), median of alternating pairs.
4. `python -m sandbox serve` (every API, Recurring included): startup to the first 200 of GET /_sandbox/health
   (goal < 0.35 s, issue 20), median of `--starts` starts alternating with a bare aiohttp app's; and its idle RSS
   after a first request and a second at rest (goal < 60 MB), beside the bare app's (bench/common.py, as in
   bench/run.py, whose table has rows 1 and 2 too).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DRAFT,
    approved_agreement,
    bare_app,
    get_pairs,
    idle_rss,
    machine,
    recurring_msn,
    served,
    start_times,
)

from sandbox.apis.recurring.backend import RecurringBackend  # noqa: E402
from sandbox.core.model import Env  # noqa: E402
from sandbox.core.runtime import Runtime  # noqa: E402
from sandbox.core.settings import Settings  # noqa: E402
from sandbox.server import RunningSandbox  # noqa: E402
from sandbox.testing import SandboxClient  # noqa: E402

DAY = 86400


def due_in(runtime: Runtime, days: int) -> str:
    return (datetime.fromtimestamp(runtime.clock.time(), UTC).date() + timedelta(days=days)).isoformat()


def fill(backend: RecurringBackend, msn: str, count: int, due_now: int) -> None:
    """`count` ACTIVE agreements with one charge each: `due_now` of them due in 20 days, the rest in 600."""
    runtime = backend.runtime
    soon, late = due_in(runtime, 20), due_in(runtime, 600)
    for n in range(count):
        _, reply = backend.draft(Env.TEST, msn, DRAFT, f"d{n}", "http://127.0.0.1")
        agreement = backend.agreements[(Env.TEST, msn, reply["agreementId"])]
        backend.approve(agreement, "4712345678")
        body = {"amount": 9900, "description": "Monthly", "due": soon if n < due_now else late, "retryDays": 0,
                "transactionType": "DIRECT_CAPTURE"}
        status, _ = backend.create_charge(Env.TEST, msn, agreement.id, body, f"c{n}")
        assert status == 201


def fresh(settings: Settings) -> tuple[RecurringBackend, str]:
    runtime = Runtime(settings)
    runtime.clock.freeze()
    return RecurringBackend(runtime), recurring_msn(runtime)


class Advancing:
    """One sandbox state of `agreements` ACTIVE agreements, `due` of them with a charge due within the next window;
    `advance()` moves the clock 31 days and sweeps (measured), then gives the same `due` agreements their next
    charge, due in 20 days (not measured)."""

    def __init__(self, agreements: int, due: int, freeze: bool = True) -> None:
        self.backend, self.msn = fresh(Settings(port=0, prod_port=0))
        self.due, self.freeze, self.round = due, freeze, 0
        fill(self.backend, self.msn, agreements, due)
        self.first = list(self.backend.agreements)[:due]
        self.backend.runtime.clock.advance(3600)
        self.backend.sweep()  # not measured: the spent expiry entries of the approved agreements

    def advance(self) -> float:
        """CPU seconds of moving the clock 31 days and sweeping: `due` charges CHARGED."""
        backend = self.backend
        gc.collect()
        if self.freeze:  # the live objects out of the collector's reach: a full collection would walk them all
            gc.freeze()
        started = time.process_time()
        backend.runtime.clock.advance(31 * DAY)
        made = backend.sweep()
        elapsed = time.process_time() - started
        gc.unfreeze()
        assert made == self.due, (made, self.due)
        self.round += 1
        soon = due_in(backend.runtime, 20)
        for n, (_, _, agreement_id) in enumerate(self.first):
            body = {"amount": 9900, "description": "Monthly", "due": soon, "retryDays": 0,
                    "transactionType": "DIRECT_CAPTURE"}
            status, _ = backend.create_charge(Env.TEST, self.msn, agreement_id, body, f"r{self.round}-{n}")
            assert status == 201
        return elapsed


def advance_costs(small: int, large: int, due: int, repeats: int, freeze: bool = True) -> dict:
    """Rounds alternating between the two sizes: the median of the per-round ratios large / small, and each size's
    median CPU seconds."""
    states = Advancing(small, due, freeze), Advancing(large, due, freeze)
    states[0].advance(), states[1].advance()  # a warm-up round each: first-use caches, not measured
    pairs = []
    for _ in range(repeats):
        small_s = states[0].advance()
        large_s = states[1].advance()
        pairs.append((large_s / small_s, small_s, large_s))
    return {"ratio": statistics.median(p[0] for p in pairs), "small": statistics.median(p[1] for p in pairs),
            "large": statistics.median(p[2] for p in pairs), "spread": (min(p[0] for p in pairs),
                                                                       max(p[0] for p in pairs)), "made": due}


def memory_per_agreement(count: int) -> dict:
    settings = Settings(port=0, prod_port=0)
    backend, msn = fresh(settings)
    fill(backend, msn, 100, 0)  # warm: first-use caches (schemas, ids) are not per agreement
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    fill(backend, msn, count, 0)
    gc.collect()
    after = tracemalloc.take_snapshot()
    total = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    idempotency = backend.idempotency
    tracemalloc.stop()
    sample = next(iter(backend.agreements.values()))
    view = backend.agreement_view(sample, "http://127.0.0.1")
    return {"per": total / count, "records": len(idempotency), "json": len(json.dumps(view))}


async def get_rows(seconds: float, rounds: int) -> dict:
    """Authorized GET agreement vs a bare aiohttp handler answering the same body (alternating wrk pairs)."""
    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            path, headers, body = await approved_agreement(SandboxClient(running, session))
        async with bare_app({"/agreement": lambda request: web.json_response(body)}) as bare_url:
            ratio, ours, base, spread = await get_pairs(running.test_url + path, headers, bare_url + "/agreement",
                                                        rounds, seconds)
        return {"ratio": ratio, "ours": ours, "base": base, "spread": spread, "bytes": len(json.dumps(body))}
    finally:
        await running.stop()


async def process_rows(starts: int) -> dict:
    """Startup to the first 200 and idle RSS of `python -m sandbox serve`, each beside a bare aiohttp app's."""
    times = start_times(starts)
    with served() as (proc, url, bare):
        async with aiohttp.ClientSession() as session:
            return times | await idle_rss(session, proc, url, bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating GET pairs (the median is reported)")
    parser.add_argument("--repeats", type=int, default=7, help="alternating clock-advance rounds (the median is kept)")
    parser.add_argument("--memory-agreements", type=int, default=10_000)
    parser.add_argument("--starts", type=int, default=5, help="starts of the sandbox (and of the bare app) timed")
    parser.add_argument("--with-gc", action="store_true", help="leave the live objects to the garbage collector "
                        "while the clock moves (a full collection then walks all of them: O(objects), not the index)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    proc = asyncio.run(process_rows(args.starts))
    start, rss = proc["start"], proc["rss"]
    print(f"startup to the first 200 (python -m sandbox serve): {start * 1000:.0f} ms vs bare aiohttp "
          f"{proc['bare_start'] * 1000:.0f} ms -> ratio {start / proc['bare_start']:.2f}; goal < 0.35 s "
          f"{'OK' if start < 0.35 else 'MISSED'}; median of {args.starts} starts "
          f"({proc['spread'][0] * 1000:.0f}-{proc['spread'][1] * 1000:.0f} ms)")
    print(f"idle RSS (served, fixture loaded): {rss:.1f} MB vs bare aiohttp {proc['bare_rss']:.1f} MB -> ratio "
          f"{rss / proc['bare_rss']:.2f}; goal < 60 MB {'OK' if rss < 60 else 'MISSED'}")
    costs = advance_costs(10_000, 100_000, 1_000, args.repeats, not args.with_gc)
    ratio, small, large = costs["ratio"], costs["small"], costs["large"]
    print(f"advance 31 days, 1,000 due: {large * 1000:.1f} ms with 100,000 agreements vs {small * 1000:.1f} ms with "
          f"10,000 (CPU time, medians) -> ratio {ratio:.2f} (goal <= 1.3) {'OK' if ratio <= 1.3 else 'MISSED'}; "
          f"median of {args.repeats} alternating rounds (ratios {costs['spread'][0]:.2f}-{costs['spread'][1]:.2f}); "
          f"{costs['made']} transitions a round")
    memory = memory_per_agreement(args.memory_agreements)
    print(f"memory per ACTIVE agreement with one charge: {memory['per']:.0f} B (goal <= 3072 B) "
          f"{'OK' if memory['per'] <= 3072 else 'MISSED'}; incl. {memory['records'] // args.memory_agreements} "
          f"idempotency records each; its GET body is {memory['json']} B of JSON")
    get = asyncio.run(get_rows(args.seconds, args.rounds))
    ours, base = get["ours"], get["base"]
    print(f"authorized GET agreement: {ours['rps']:.0f} req/s vs bare aiohttp {base['rps']:.0f} req/s (same "
          f"{get['bytes']}-byte body) -> ratio {get['ratio']:.2f} (goal >= 0.8) "
          f"{'OK' if get['ratio'] >= 0.8 else 'MISSED'}; median of {args.rounds} alternating pairs (ratios "
          f"{get['spread']}); p50 {ours['p50']:.2f}/{base['p50']:.2f} ms, "
          f"p99 {ours['p99']:.2f}/{base['p99']:.2f} ms ({ours['tool']})")


if __name__ == "__main__":
    main()
