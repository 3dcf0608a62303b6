"""The bounded soak: a mixed load from another process, then exact books and a flat RSS.

The server runs as `python -m sandbox serve` (so its RSS is its own) and bench/loadgen.py drives it
from a separate process: tokens, create, approve, two captures, a refund, GETs, events and Report
API reads, plus requests that must fail. Half-way the load stops making payments (the working set
stops growing) and keeps going on the existing ones; from then on RSS must stay flat. Afterwards
every payment's aggregate must equal both the sums of its event log and what the client did, and
the production ledger's capture and refund entries must add up to the same.

VIPPS_SANDBOX_SOAK_SECONDS sets the duration (default 120); deselect with -m "not soak".
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parents[2]
SECONDS = float(os.environ.get("VIPPS_SANDBOX_SOAK_SECONDS", "120"))
GROW = 0.5  # share of the time new payments are made
RSS_SLACK_KB = 4096  # allowed drift of RSS while the working set is fixed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError("no VmRSS")


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.samples, self.done = pid, [], threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.done.wait(0.5):
            self.samples.append((time.monotonic() - started, rss_kb(self.pid)))


def serve() -> tuple[subprocess.Popen, dict[str, str]]:
    port, prod_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port",
                             str(prod_port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    urls = {"test": f"http://127.0.0.1:{port}", "production": f"http://127.0.0.1:{prod_port}"}
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", prod_port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    return proc, urls


async def token(session, url: str, keyset: dict) -> dict:
    async with session.post(url + "/accesstoken/get", headers={
            "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}) as resp:
        body = await resp.json()
    return {"Authorization": "Bearer " + body["access_token"],
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}


def sums(events: list[dict]) -> dict[str, int]:
    total = {"AUTHORIZED": 0, "CAPTURED": 0, "REFUNDED": 0, "CANCELLED": 0}
    for event in events:
        if event["success"] and event["name"] in total:
            total[event["name"]] += event["amount"]["value"]
    return total


async def books(urls: dict[str, str], report: dict) -> tuple[list[str], dict[str, int]]:
    """Every payment's aggregate vs its events vs the client's record; returns mismatches and the totals."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        async with session.get(urls["test"] + "/_sandbox/keys?type=merchant") as resp:
            keys = {(k["environment"], k["owner"]): k for k in await resp.json()}
        headers = {env: await token(session, urls[env], keys[(env, msn)])
                   for env, msn in zip(("test", "production"), report["msns"], strict=True)}
        mismatches: list[str] = []
        totals = {"captured": 0, "refunded": 0}

        async def check(key: str, expected: dict) -> None:
            env, msn, reference = key.split("/")
            base = f"{urls[env]}/epayment/v1/payments/{reference}"
            async with session.get(base, headers=headers[env]) as resp:
                payment = await resp.json()
            async with session.get(base + "/events", headers=headers[env]) as resp:
                events = await resp.json()
            aggregate = {k: v["value"] for k, v in payment["aggregate"].items()}
            logged = sums(events)
            seen = (aggregate["authorizedAmount"], aggregate["capturedAmount"], aggregate["refundedAmount"],
                    aggregate["cancelledAmount"])
            from_events = (logged["AUTHORIZED"], logged["CAPTURED"], logged["REFUNDED"], logged["CANCELLED"])
            client = (expected["authorized"], expected["captured"], expected["refunded"], expected["cancelled"])
            if not seen == from_events == client:
                mismatches.append(f"{key}: aggregate {seen}, events {from_events}, client {client}")
            if env == "production":
                totals["captured"] += aggregate["capturedAmount"]
                totals["refunded"] += aggregate["refundedAmount"]

        items = list(report["payments"].items())
        for i in range(0, len(items), 256):
            await asyncio.gather(*(check(k, v) for k, v in items[i:i + 256]))
        ledger = {"capture": 0, "refund": 0}
        feed = f"{urls['production']}/report/v2/ledgers/{report['ledgerId']}/funds/feed"
        cursor = None
        while True:
            async with session.get(feed, params={"cursor": cursor} if cursor else None,
                                   headers=headers["production"]) as resp:
                page = await resp.json()
            for item in page["items"]:
                if item["entryType"] in ledger:
                    ledger[item["entryType"]] += item["amount"]
            if page.get("tryLater") or not page["items"]:
                break
            cursor = page["cursor"]
        return mismatches, totals | {"ledger_capture": ledger["capture"], "ledger_refund": ledger["refund"]}


def test_soak():
    proc, urls = serve()
    sampler = Sampler(proc.pid)
    try:
        sampler.start()
        load = subprocess.run([sys.executable, str(ROOT / "bench" / "loadgen.py"), "--test-url", urls["test"],
                               "--prod-url", urls["production"], "--seconds", str(SECONDS), "--grow-fraction",
                               str(GROW)], capture_output=True, text=True, timeout=SECONDS + 120)
        sampler.done.set()
        assert load.returncode == 0, load.stderr[-3000:]
        report = json.loads(load.stdout)
        assert proc.poll() is None, "the server died"
        # zero errors other than the expected ones, and every operation exercised
        assert report["unexpected_count"] == 0, report["unexpected"][:5]
        assert set(report["counts"]) >= {"token", "create", "approve", "capture", "refund", "get", "events",
                                         "ledgers", "feed", "capture-before-approval", "over-refund"}
        assert len(report["payments"]) >= 100
        # the books: aggregates == event logs == what the client did; the ledger adds up the same
        mismatches, totals = asyncio.run(books(urls, report))
        assert not mismatches, mismatches[:5]
        assert totals["ledger_capture"] == totals["captured"] > 0
        assert totals["ledger_refund"] == -totals["refunded"]
        # RSS: flat once the working set stops growing (after a settling fifth of the steady phase)
        steady = [kb for t, kb in sampler.samples if t > SECONDS * (GROW + (1 - GROW) / 5) and t < SECONDS]
        assert len(steady) >= 10
        early, late = steady[: len(steady) // 4], steady[-(len(steady) // 4):]
        drift = sorted(late)[len(late) // 2] - sorted(early)[len(early) // 2]  # medians: a GC spike is no leak
        print(f"\nsoak: {report['requests']} requests in {report['seconds']:.0f} s, {len(report['payments'])} "
              f"payments, RSS {steady[0] // 1024}..{max(steady) // 1024} MB in the steady phase, drift {drift} kB")
        assert drift <= RSS_SLACK_KB, f"RSS grew by {drift} kB while the working set was fixed: {steady}"
    finally:
        sampler.done.set()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        assert "Traceback" not in stderr, stderr[-3000:]
