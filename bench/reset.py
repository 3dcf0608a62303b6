"""Benchmark (run by hand): POST /_sandbox/reset over real HTTP, and runtime.reset() in process.

    python bench/reset.py

Goal (issue 6): a reset on the default fixture under 20 ms, so a test suite can reset before every
test. The state is dirtied before each reset (a regenerated key, a moved clock, a fault rule), and
a baseline (GET /_sandbox/health over the same connection) is printed alongside, so the HTTP
round trip can be told apart from the reset itself.
"""

from __future__ import annotations

import asyncio
import copy
import statistics
import time

import aiohttp

from sandbox.core.settings import Settings
from sandbox.core.world import World
from sandbox.gateway.context import RUNTIME
from sandbox.server import RunningSandbox

GOAL_MS = 20.0
ROUNDS = 200


def report(name: str, samples: list[float]) -> None:
    median = statistics.median(samples) * 1000
    p95 = sorted(samples)[int(len(samples) * 0.95)] * 1000
    print(f"{name:<44} median {median:7.3f} ms  p95 {p95:7.3f} ms  "
          f"= {median / GOAL_MS:6.3f} x the {GOAL_MS:.0f} ms goal")


async def main() -> None:
    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    runtime = running.app[RUNTIME]
    client_id = next(iter(runtime.world.keys))
    base = running.test_url
    try:
        async with aiohttp.ClientSession() as session:
            async def dirty() -> None:
                await session.post(f"{base}/_sandbox/keys/{client_id}/regenerate")
                await session.post(f"{base}/_sandbox/clock", json={"advanceSeconds": 3600})
                await session.post(f"{base}/_sandbox/faults", json={"path": "/x", "status": 500})

            http, health = [], []
            for _ in range(ROUNDS):
                await dirty()
                start = time.perf_counter()
                async with session.post(f"{base}/_sandbox/reset") as reply:
                    assert reply.status == 200, await reply.text()
                    await reply.read()
                http.append(time.perf_counter() - start)
                start = time.perf_counter()
                async with session.get(f"{base}/_sandbox/health") as reply:
                    await reply.read()
                health.append(time.perf_counter() - start)

        direct = []
        for _ in range(ROUNDS):
            runtime.world.keys[client_id].secret_version += 1
            runtime.clock.advance(60)
            start = time.perf_counter()
            runtime.reset()
            direct.append(time.perf_counter() - start)
        rebuild = []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            World(copy.deepcopy(runtime.fixture_tables))
            rebuild.append(time.perf_counter() - start)
    finally:
        await running.stop()

    print(f"default fixture: {len(runtime.world.keys)} key sets, {len(runtime.world.sales_units)} sales units, "
          f"{len(runtime.reset_hooks)} reset hooks")
    report("POST /_sandbox/reset (HTTP round trip)", http)
    report("baseline: GET /_sandbox/health", health)
    report("runtime.reset() in process", direct)
    report("baseline: rebuilding the World from tables", rebuild)


if __name__ == "__main__":
    asyncio.run(main())
