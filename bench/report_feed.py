"""Does a Report API feed page cost the same at the start and at the end of a 100k-entry ledger?

Fills one production ledger with 100,000 funds entries (captures and refunds in turn, through the same
domain events the ePayment API publishes, so every page has the same shape and size), then times a
1000-entry feed page at position 0 and at the last full page, both over real HTTP and in-process
(backend + JSON encoding, without the network noise). Start and end requests alternate so warm-up
and drift hit both alike. Prints the medians and the end/start ratio; a ratio near 1.0 means paging
is O(page), not O(position).

Run: .venv/bin/python bench/report_feed.py [entries]
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import statistics
import sys
import time

import aiohttp

from sandbox.apis.report.routes import REPORT_BACKEND
from sandbox.core.settings import Settings
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient

ROUNDS = 200


def cursor(ledger_id: str, position: int) -> str:
    data = {"ledgerId": ledger_id, "topic": "funds", "position": position}
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def fill(client: SandboxClient, msn: str, count: int) -> None:
    runtime = client.runtime
    runtime.clock.freeze()
    now = runtime.clock.time()
    for i in range(count):
        kind, name = ("epayment.captured", "CAPTURED") if i % 2 == 0 else ("epayment.refunded", "REFUNDED")
        runtime.publish(kind, {
            "env": "production", "msn": msn, "reference": f"bench-{i // 2:07d}", "pspReference": str(5_000_000_000 + i),
            "name": name, "amount": {"currency": "NOK", "value": 10_000}, "timestamp": now,
            "idempotencyKey": None, "success": True, "paymentDescription": None, "phoneNumber": None})
    gc.collect()
    gc.freeze()  # the ledger's entries are long-lived: keep the collector from rescanning them mid-timing


async def timed_http(client: SandboxClient, paths: list[str], headers: dict) -> list[float]:
    samples: list[list[float]] = [[] for _ in paths]
    for _ in range(ROUNDS):
        for i, path in enumerate(paths):
            start = time.perf_counter()
            reply = await client.request("GET", path, headers=headers)
            samples[i].append(time.perf_counter() - start)
            assert reply.status == 200 and len(reply.json["items"]) == 1000, reply.text[:200]
    return [statistics.median(s) for s in samples]


def timed_backend(client: SandboxClient, keyset, ledger_id: str, positions: list[int]) -> list[float]:
    backend = client.running.app[REPORT_BACKEND]
    samples: list[list[float]] = [[] for _ in positions]
    for _ in range(ROUNDS):
        for i, position in enumerate(positions):
            start = time.perf_counter()
            body = backend.feed_page(keyset, ledger_id, "funds", cursor(ledger_id, position), None, None)
            json.dumps(body)
            samples[i].append(time.perf_counter() - start)
    return [statistics.median(s) for s in samples]


async def main(count: int) -> None:
    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = SandboxClient(running, session)
            msn = client.msn_role("premium-shop-1")
            keys = client.key("merchant", "production", msn=msn)
            headers = await client.auth_headers(keys)
            started = time.perf_counter()
            fill(client, msn, count)
            print(f"filled {count} funds entries in {time.perf_counter() - started:.2f} s")
            reply = await client.request("GET", "/settlement/v1/ledgers", headers=headers)
            ledger_id = reply.json["items"][0]["ledgerId"]
            last = count - 1000
            base = f"/report/v2/ledgers/{ledger_id}/funds/feed?cursor="
            http_start, http_end = await timed_http(
                client, [base + cursor(ledger_id, 0), base + cursor(ledger_id, last)], headers)
            keyset = client.runtime.world.keys[keys["client_id"]]
            core_start, core_end = timed_backend(client, keyset, ledger_id, [0, last])
            print(f"HTTP feed page (1000 entries), median of {ROUNDS}: start {http_start * 1000:.2f} ms, "
                  f"end {http_end * 1000:.2f} ms, ratio end/start {http_end / http_start:.2f}")
            print(f"in-process page + JSON, median of {ROUNDS}: start {core_start * 1000:.2f} ms, "
                  f"end {core_end * 1000:.2f} ms, ratio end/start {core_end / core_start:.2f}")
    finally:
        await running.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
