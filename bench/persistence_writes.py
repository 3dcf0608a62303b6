"""Benchmark (run by hand): the cost of a journaled write does not grow with the state.

    python bench/persistence_writes.py [--big 100000] [--writes 300]

A sandbox runs with `--state` (journal fsynced before every acknowledged change) and is filled
with payments straight through the backend. Then N creates go over HTTP from another process at 1k
payments and again at 100k: the p50/p99 of those writes are compared (the 100k-th write vs the 1k-th),
and so is the compaction a journal this long would trigger, amortised over the writes between two
compactions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.apis.epayment.routes import PAYMENTS  # noqa: E402
from sandbox.core.model import Env  # noqa: E402
from sandbox.core.settings import Settings  # noqa: E402
from sandbox.gateway.context import RUNTIME  # noqa: E402
from sandbox.ops.journal import MIN_COMPACT_BYTES  # noqa: E402
from sandbox.ops.persistence import PERSISTENCE  # noqa: E402
from sandbox.server import RunningSandbox  # noqa: E402

CLIENT = r"""
import asyncio, json, sys, time, aiohttp
url, headers, currency = sys.argv[1], json.loads(sys.argv[2]), sys.argv[5]
start, count = int(sys.argv[3]), int(sys.argv[4])
async def main():
    took = []
    async with aiohttp.ClientSession() as s:
        for i in range(start, start + count):
            ref = f"write-{i:08d}"
            body = {"amount": {"currency": currency, "value": 1000}, "paymentMethod": {"type": "WALLET"},
                    "reference": ref, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}
            t = time.perf_counter()
            async with s.post(url, json=body, headers=headers | {"Idempotency-Key": ref}) as r:
                await r.read()
                assert r.status == 201, r.status
            took.append(time.perf_counter() - t)
    print(json.dumps(took))
asyncio.run(main())
"""


def fill(running: RunningSandbox, msn: str, currency: str, start: int, stop: int) -> None:
    backend = running.app[PAYMENTS]
    for i in range(start, stop):
        reference = f"fill-{i:08d}"
        body = {"amount": {"currency": currency, "value": 1000}, "paymentMethod": {"type": "WALLET"},
                "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}
        backend.create(Env.TEST, msn, body, f"c-{reference}", "http://x")
        backend.approve(backend.find(Env.TEST, msn, reference))


async def writes(running: RunningSandbox, headers: dict, currency: str, start: int, count: int) -> list[float]:
    url = f"{running.test_url}/epayment/v1/payments"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, url, json.dumps(headers), str(start),
                                                str(count), currency, stdout=asyncio.subprocess.PIPE)
    return json.loads((await proc.communicate())[0])


def pct(samples: list[float], q: float) -> float:
    return sorted(samples)[min(len(samples) - 1, int(q * len(samples)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        running = RunningSandbox(Settings(port=0, prod_port=0, state=Path(state)))
        await running.start()
        try:
            runtime = running.app[RUNTIME]
            keyset = next(k for k in runtime.world.keys.values()
                          if k.type == "merchant" and k.environment is Env.TEST)
            currency = runtime.world.sales_units[keyset.owner].currency
            token, _, _ = runtime.tokens.issue(keyset, Env.TEST, 3600, "standard")
            headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset.subscription_key_primary,
                       "Merchant-Serial-Number": keyset.owner}
            persistence = running.app[PERSISTENCE]
            results = {}
            for label, size in (("1k", args.small), ("100k", args.big)):
                fill(running, keyset.owner, currency, len(running.app[PAYMENTS].payments), size)
                took = await writes(running, headers, currency, size * 10, args.writes)
                started = time.perf_counter()
                persistence.compact()
                compaction = time.perf_counter() - started
                snapshot = persistence.journal.snapshot_path.stat().st_size
                entry_bytes = 700  # a journaled create is about this long
                between = max(MIN_COMPACT_BYTES, 2 * snapshot) / entry_bytes
                results[label] = (took, compaction, between)
                print(f"at {size:>7} payments: write p50 {pct(took, .5):.2f} ms, p99 {pct(took, .99):.2f} ms; "
                      f"compaction {compaction * 1000:.0f} ms for a {snapshot / 1e6:.1f} MB snapshot, every "
                      f"~{between:.0f} writes = {compaction / between * 1e6:.1f} us a write amortised")
            small, big = results["1k"], results["100k"]
            per = {label: statistics.median(r[0]) + r[1] / r[2] for label, r in results.items()}
            print(f"ratio, cost of a write (median + amortised compaction) at {args.small} payments / at {args.big}: "
                  f"{per['1k'] / per['100k']:.2f} (1.0 = no growth; goal >= 0.8)")
            print(f"ratio of write p50 alone: {pct(small[0], .5) / pct(big[0], .5):.2f}")
        finally:
            await running.stop()


if __name__ == "__main__":
    asyncio.run(main())
