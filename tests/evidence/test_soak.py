"""The bounded soak: a mixed load on every money-moving API at once from another process, then exact books
and a flat RSS.

The server runs as `python -m sandbox serve` (so its RSS is its own) and bench/loadgen.py drives it from a
separate process, in both environments: ePayment (create, approve, two captures, a refund, GETs, events),
Recurring (agreements drafted and approved, charges of both transaction types, the virtual clock moved a
day at a time so that they fall due and are charged or reserved, then captured and refunded), Checkout
(sessions paid on the hosted page, their payments captured), Login CIBA (polled at the API's interval,
slow_down, pending, rejected, the tokens on userinfo), a webhook receiver in a process of its own
(bench/load_receiver.py) registered in both environments, Report API reads, tokens, and requests that must
fail. New agreements stop a third of the first half early, when the clock jumps a week so that every charge
left falls due and is settled; half-way nothing new is made (the working set stops growing) and the load
keeps going on the existing objects; from then on RSS must stay flat, with the clock still moving. Afterwards
(tests/support/soak_books.py): every payment's aggregate equals the sums of its event log and what the
client did; every agreement lists exactly its charges, and every charge has the state and amounts the
client's record says, its history adding up the same; every checkout session is paid with its payment's
amounts; each production ledger's captures and refunds equal those of the sales unit's payments and
charges; every webhook the load caused arrived, signed, once (after a drain for those in flight) and every
checkout callback with its token; every approved CIBA login gave tokens once.

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

import pytest
from soak_books import books

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


def expected_state(charge: dict) -> str:
    if charge["cancelled"]:
        return "cancelled"
    if not charge["processed"]:
        return "due"
    if charge["fails"]:
        return "failed"
    return "processed-direct" if charge["type"] == "DIRECT_CAPTURE" else "processed-reserve"


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
        # RSS: flat once the working set stops growing (after a settling fifth of the steady phase)
        steady = [kb for t, kb in sampler.samples if t > SECONDS * (GROW + (1 - GROW) / 5) and t < SECONDS]
        assert len(steady) >= 10
        early, late = steady[: len(steady) // 4], steady[-(len(steady) // 4):]
        drift = sorted(late)[len(late) // 2] - sorted(early)[len(early) // 2]  # medians: a GC spike is no leak
        hooks = report["webhooks"]
        print(f"\nsoak: {report['requests']} requests in {report['seconds']:.0f} s, {len(report['payments'])} "
              f"payments, {len(report['agreements'])} agreements, {len(report['charges'])} charges, "
              f"{len(report['sessions'])} checkout sessions, {report['ciba']['tokens']} CIBA logins, "
              f"{sum(sum(e.values()) for e in hooks['received'].values())} webhooks, "
              f"{report['clockAdvances']} clock advances; RSS {steady[0] // 1024}..{max(steady) // 1024} MB in the "
              f"steady phase, drift {drift} kB")
        # zero errors other than the expected ones, and every operation exercised
        assert report["unexpected_count"] == 0, report["unexpected"][:5]
        assert set(report["counts"]) >= {"token", "create", "approve", "capture", "refund", "get", "events",
                                         "ledgers", "feed", "capture-before-approval", "over-refund",
                                         "rec-draft", "rec-approve", "rec-charge", "rec-cancel", "rec-capture",
                                         "rec-refund", "rec-capture-charged", "rec-charge-too-soon", "rec-list-charges",
                                         "chk-create", "chk-pay", "chk-get", "chk-capture", "clock", "webhook-register",
                                         "ciba-start", "ciba-approve", "ciba-reject", "ciba-slow-down", "ciba-pending",
                                         "ciba-token", "ciba-denied", "ciba-again", "ciba-minor", "userinfo"}
        assert len(report["payments"]) >= 100 and len(report["sessions"]) >= 20 and len(report["agreements"]) >= 20
        assert report["clockAdvances"] >= 3
        # the clock moved charges on: some charged, some reserved and captured, some failed, some still due
        states = {expected_state(c) for c in report["charges"].values()}
        assert {"processed-direct", "processed-reserve", "failed", "cancelled"} <= states, states
        # the books: payments, agreements and charges, sessions, and each production ledger
        mismatches, ledgers = asyncio.run(books(urls, report))
        assert not mismatches, mismatches[:5]
        assert set(ledgers) == {report["msns"][1], report["recurringMsn"]}, ledgers
        for msn, total in ledgers.items():
            assert total["ledger_capture"] == total["captured"] > 0, (msn, total)
            assert total["ledger_refund"] == -total["refunded"] < 0, (msn, total)
        # every webhook the load caused arrived once, signed; every checkout callback with its token
        assert not hooks["badSignatures"], hooks["badSignatures"][:3]
        assert hooks["received"] == hooks["expected"], hooks
        assert sum(sum(e.values()) for e in hooks["expected"].values()) > 1000
        assert report["callbacks"]["received"] == report["callbacks"]["expected"], report["callbacks"]
        # CIBA: tokens once for every approved login
        assert report["ciba"]["tokens"] == report["ciba"]["approved"] >= 3, report["ciba"]
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
