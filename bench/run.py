"""The benchmark suite: one command, one table, every row a ratio against a baseline measured in the same run.

    python bench/run.py [--quick] [--seconds 5] [--skip image,tls] [--only recurring] [--image TAG] [--list]

Rows, by group (`--list` prints them; goals from issues 8, 15, 16, 17 and 20):
- process: startup to the first 200 (goal < 0.35 s, issue 20) and idle RSS (goal < 60 MB), each vs a bare aiohttp
  app; reset time (goal < 20 ms, server side) vs a GET /_sandbox/health round trip
- get: authorized GET payment vs a bare aiohttp JSON handler (goal >= 0.85, issue 20); authorized GET agreement
  (Recurring) vs a bare handler answering the same body (goal >= 0.8, issue 15)
- flow: create -> approve -> capture flow rate with 100k payments held vs with 1k (goal >= 0.8); memory per payment
  (goal <= 2 kB) vs the size of the payment's own JSON (GET + events)
- report: Report API feed page at the end of a 100k-entry ledger vs at the start
- journal: a journaled write with --state at 100k payments vs at 1k (bench/persistence_writes.py)
- recurring: advancing the clock 31 days over 100k ACTIVE agreements vs 10k, the same 1,000 charges due (CPU time,
  goal <= 1.3); memory per ACTIVE agreement with one charge (goal <= 3 kB) vs its GET JSON (bench/recurring_clock.py)
- login: the token exchange (code -> tokens, RS256 id_token) in the backend and over HTTP (goal >= 1,000/s), vs the
  RS256 signature alone; discovery and JWKS vs a bare handler serving the same bytes (goal >= 0.8) (bench/login.py)
- tls: keep-alive GET payment on the TLS port vs the plain port (server CPU per request, goal <= 1.5); a fresh
  connection through the proxy vs a fresh one to the TLS port (goal <= 2) (bench/tls_proxy.py)
- image: `podman run` to the first 200 (goal < 2 s, issue 17) vs `python -m sandbox serve` to its first 200
  (bench/image_start.py; builds the image on the image tests' base, or `--image TAG`)
A group that cannot run here (no podman, no base image, no wrk for the TLS keep-alive row) or is left out with
`--skip` gets rows that say "skipped" and why; a group that fails gets rows that say "failed" and the error.
Load comes from another process: wrk (Debian's `apt-get install wrk`) for GETs, else an aiohttp client
process; the flows from bench/loadgen.py --mode flow. p50 and p99 latencies are printed with each row.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import re
import shutil
import statistics
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    Row,
    approved_agreement,
    bare_app,
    get_load,
    get_pairs,
    idle_rss,
    machine,
    pair_note,
    rss_kb,
    served,
    start_times,
)

from sandbox.apis.epayment.routes import PAYMENTS  # noqa: E402
from sandbox.core.model import Env  # noqa: E402
from sandbox.core.settings import Settings  # noqa: E402
from sandbox.server import RunningSandbox  # noqa: E402
from sandbox.testing import SandboxClient  # noqa: E402

BARE_BODY = {"aggregate": {k: {"currency": "NOK", "value": 1000} for k in
                           ("authorizedAmount", "cancelledAmount", "capturedAmount", "refundedAmount")},
             "amount": {"currency": "NOK", "value": 1000}, "state": "AUTHORIZED", "paymentMethod": {"type": "WALLET"},
             "profile": {}, "pspReference": "0123456789", "reference": "bench-ref-000001"}

#: issue 20: startup to the first 200 with all ten APIs, in seconds; idle RSS in MB
STARTUP_GOAL, IDLE_RSS_GOAL = 0.35, 60


def bench_module(name: str):
    """bench/<name>.py, imported (the benches are scripts in bench/, not a package)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- one in-process sandbox for the get, flow and report groups (filled directly, loaded over HTTP) --------------


def fill_payments(running: RunningSandbox, msn: str, start: int, stop: int) -> None:
    """Payments created, approved and captured through the backend, as the HTTP handlers would."""
    backend = running.app[PAYMENTS]
    for i in range(start, stop):
        reference = f"fill-{i:08d}"
        body = {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
                "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}
        backend.create(Env.TEST, msn, body, f"c-{reference}", "http://x")
        backend.approve(backend.find(Env.TEST, msn, reference))
        backend.capture(Env.TEST, msn, reference, {"modificationAmount": {"currency": "NOK", "value": 1000}},
                        f"k-{reference}")


async def flow_load(urls: dict[str, str], seconds: float, seed: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "loadgen.py"), "--test-url", urls["test"], "--prod-url",
        urls["production"], "--seconds", str(seconds), "--mode", "flow", "--env", "test", "--seed", str(seed),
        stdout=asyncio.subprocess.PIPE)
    report = json.loads((await proc.communicate())[0])
    assert report["unexpected_count"] == 0, report["unexpected"][:3]
    return report


class Shared:
    """What the in-process groups share: one sandbox with 1,000 payments, started on first use."""

    def __init__(self) -> None:
        self.running: RunningSandbox | None = None
        self.session: aiohttp.ClientSession | None = None

    async def client(self) -> SandboxClient:
        if self.running is None:
            self.running = RunningSandbox(Settings(port=0, prod_port=0))
            await self.running.start()
            self.session = aiohttp.ClientSession()
            client = SandboxClient(self.running, self.session)
            fill_payments(self.running, client.msn_role("premium-shop-1"), 0, 1000)
        return SandboxClient(self.running, self.session)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.running is not None:
            await self.running.stop()
        self.running = self.session = None
        gc.collect()


async def get_rows(args, shared: Shared, rows: list[Row]) -> None:
    client = await shared.client()
    running = shared.running
    msn = client.msn_role("premium-shop-1")
    headers = await client.auth_headers(client.key("merchant", "test", msn=msn))
    path = "/epayment/v1/payments/fill-00000001"
    reply = await client.request("GET", path, "test", headers=headers)
    assert reply.status == 200, reply.text
    agreement_path, agreement_headers, agreement_body = await approved_agreement(client)
    async with bare_app({"/payment": lambda request: web.json_response(BARE_BODY),
                         "/agreement": lambda request: web.json_response(agreement_body)}) as bare_url:
        ratio, ours, base, spread = await get_pairs(running.test_url + path, headers, bare_url + "/payment",
                                                    args.get_rounds, args.seconds)
        rows.append(Row("authorized GET payment vs bare aiohttp JSON handler", f"{ours['rps']:.0f} req/s",
                        f"{base['rps']:.0f} req/s", ratio, ">= 0.85", ratio >= 0.85,
                        pair_note(args.get_rounds, spread, ours, base)))
        ratio, ours, base, spread = await get_pairs(running.test_url + agreement_path, agreement_headers,
                                                    bare_url + "/agreement", args.get_rounds, args.seconds)
        rows.append(Row("authorized GET agreement (Recurring) vs bare aiohttp JSON handler",
                        f"{ours['rps']:.0f} req/s", f"{base['rps']:.0f} req/s", ratio, ">= 0.8", ratio >= 0.8,
                        pair_note(args.get_rounds, spread, ours, base)
                        + f"; the same {len(json.dumps(agreement_body))}-byte body"))


async def flow_rows(args, shared: Shared, rows: list[Row]) -> None:
    client = await shared.client()
    running = shared.running
    msn = client.msn_role("premium-shop-1")
    headers = await client.auth_headers(client.key("merchant", "test", msn=msn))
    urls = {"test": running.test_url, "production": running.prod_url}
    # the flow rate with 1k payments held, then with 100k (after a warm-up run of the same flows)
    await flow_load(urls, 1.0, 9)
    small = await flow_load(urls, args.seconds * 2, 1)
    gc.collect()
    payments = running.app[PAYMENTS].payments
    before, count = rss_kb(), len(payments)
    started = time.perf_counter()
    fill_payments(running, msn, 1000, args.payments)
    fill_seconds = time.perf_counter() - started
    gc.collect()
    filled = len(payments) - count
    per_payment = (rss_kb() - before) * 1024 / filled
    large = await flow_load(urls, args.seconds * 2, 2)
    ratio = large["flows_per_second"] / small["flows_per_second"]
    lat_s, lat_l = small["latency_ms"]["flow-capture"], large["latency_ms"]["flow-capture"]
    rows.append(Row(f"flow rate (create, approve, capture) at {args.payments // 1000}k payments vs at 1k",
                    f"{large['flows_per_second']:.0f} flows/s", f"{small['flows_per_second']:.0f} flows/s",
                    ratio, ">= 0.8", ratio >= 0.8,
                    f"capture p50 {lat_l['p50']:.1f}/{lat_s['p50']:.1f} ms, p99 {lat_l['p99']:.1f}/"
                    f"{lat_s['p99']:.1f} ms (loadgen process)"))
    # memory per payment vs the payment's own JSON
    get = await client.request("GET", "/epayment/v1/payments/fill-00001500", "test", headers=headers)
    events = await client.request("GET", "/epayment/v1/payments/fill-00001500/events", "test", headers=headers)
    json_size = len(get.text) + len(events.text)
    rows.append(Row("memory per payment (created, approved, captured)", f"{per_payment:.0f} B",
                    f"{json_size} B of JSON", per_payment / json_size, "<= 2 kB", per_payment <= 2048,
                    f"RSS delta over {filled} payments, filled in {fill_seconds:.1f} s"))


async def report_rows(args, shared: Shared, rows: list[Row]) -> None:
    report_feed = bench_module("report_feed")
    client = await shared.client()
    running = shared.running
    msn = client.msn_role("premium-shop-1")
    headers = await client.auth_headers(client.key("merchant", "production", msn=msn))
    report_feed.fill(client, msn, args.entries)
    reply = await client.request("GET", "/settlement/v1/ledgers", "production", headers=headers)
    ledger_id = reply.json["items"][0]["ledgerId"]
    base = f"{running.prod_url}/report/v2/ledgers/{ledger_id}/funds/feed?cursor="
    start = await get_load(base + report_feed.cursor(ledger_id, 0), headers, args.seconds)
    end = await get_load(base + report_feed.cursor(ledger_id, args.entries - 1000), headers, args.seconds)
    ratio = end["rps"] / start["rps"]
    rows.append(Row(f"Report feed page (1000 entries) at the end of {args.entries // 1000}k vs the start",
                    f"{end['rps']:.0f} pages/s", f"{start['rps']:.0f} pages/s", ratio, "~1.0 (>= 0.8)", ratio >= 0.8,
                    f"p50 {end['p50']:.1f}/{start['p50']:.1f} ms, p99 {end['p99']:.1f}/{start['p99']:.1f} ms"))


# -- fresh processes: startup, idle RSS, reset ------------------------------------------------------------------


async def process_rows(args, shared: Shared, rows: list[Row]) -> None:
    times = start_times(args.starts)
    o, b = times["start"], times["bare_start"]
    rows.append(Row("startup to the first 200 (python -m sandbox serve)", f"{o * 1000:.0f} ms",
                    f"{b * 1000:.0f} ms bare aiohttp", o / b, f"< {STARTUP_GOAL} s", o < STARTUP_GOAL,
                    f"median of {args.starts} starts ({times['spread'][0] * 1000:.0f}-"
                    f"{times['spread'][1] * 1000:.0f} ms), sandbox/ compiled to bytecode first, as a wheel's install "
                    "does"))
    # idle RSS and reset, on a fresh sandbox process
    with served() as (proc, url, bare):
        async with aiohttp.ClientSession() as session:
            rss = await idle_rss(session, proc, url, bare)
            idle, bare_idle = rss["rss"], rss["bare_rss"]
            rows.append(Row("idle RSS (served, fixture loaded)", f"{idle:.1f} MB", f"{bare_idle:.1f} MB bare aiohttp",
                            idle / bare_idle, f"< {IDLE_RSS_GOAL} MB", idle < IDLE_RSS_GOAL))
            server_ms, http_ms, health_ms = [], [], []
            for _ in range(args.resets):
                async with session.post(url + "/_sandbox/clock", json={"advanceSeconds": 60}) as resp:
                    await resp.read()
                started = time.perf_counter()
                async with session.post(url + "/_sandbox/reset") as resp:
                    body = await resp.json()
                http_ms.append((time.perf_counter() - started) * 1000)
                server_ms.append(body["resetMs"])
                started = time.perf_counter()
                async with session.get(url + "/_sandbox/health") as resp:
                    await resp.read()
                health_ms.append((time.perf_counter() - started) * 1000)
    s, h, r = statistics.median(server_ms), statistics.median(health_ms), statistics.median(http_ms)
    p99 = sorted(server_ms)[int(len(server_ms) * 0.99)]
    rows.append(Row("reset time (POST /_sandbox/reset, server side)", f"{s:.2f} ms",
                    f"{h:.2f} ms health round trip", s / h, "< 20 ms", s < 20,
                    f"server p50 {s:.2f} / p99 {p99:.2f} ms; HTTP round trip p50 {r:.2f} ms"))


async def journal_rows(args, shared: Shared, rows: list[Row]) -> None:
    """bench/persistence_writes.py (the --state journal): a write at 100k payments vs at 1k, its own same-run ratio."""
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bench" / "persistence_writes.py"),
                                                "--big", str(args.payments), stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    lines = re.findall(r"at\s+(\d+) payments: write p50 ([\d.]+) ms, p99 ([\d.]+) ms", out)
    ratio = re.search(r"ratio, cost of a write .*?: ([\d.]+)", out)
    if proc.returncode != 0 or len(lines) != 2 or ratio is None:
        raise RuntimeError(f"bench/persistence_writes.py exited {proc.returncode}: {out[-300:]}")
    (n1, p50_1, p99_1), (n2, p50_2, p99_2) = lines
    value = float(ratio.group(1))
    rows.append(Row(f"journaled write (--state, fsync) at {int(n2) // 1000}k payments vs at 1k (speed)",
                    f"{p50_2} ms p50", f"{p50_1} ms p50", value, ">= 0.8", value >= 0.8,
                    f"p50 {p50_2}/{p50_1} ms, p99 {p99_2}/{p99_1} ms, compaction amortised "
                    "(bench/persistence_writes.py)"))


# -- the rows of the other benches, from their own measuring functions ------------------------------------------


def thousands(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


async def recurring_rows(args, shared: Shared, rows: list[Row]) -> None:
    recurring = bench_module("recurring_clock")
    small, large, due = args.agreements // 10, args.agreements, args.agreements // 100
    costs = recurring.advance_costs(small, large, due, args.clock_repeats)
    ratio = costs["ratio"]
    rows.append(Row(f"advance the clock 31 days over {thousands(large)} ACTIVE agreements vs {thousands(small)} "
                    f"({due:,} charges due, CPU time)", f"{costs['large'] * 1000:.1f} ms",
                    f"{costs['small'] * 1000:.1f} ms", ratio, "<= 1.3", ratio <= 1.3,
                    f"median of {args.clock_repeats} alternating rounds (ratios {costs['spread'][0]:.2f}-"
                    f"{costs['spread'][1]:.2f}); garbage collector frozen while the clock moves "
                    "(bench/recurring_clock.py)"))
    memory = recurring.memory_per_agreement(args.memory_agreements)
    per = memory["per"]
    rows.append(Row("memory per ACTIVE agreement with one charge (tracemalloc)", f"{per:.0f} B",
                    f"{memory['json']} B of its GET JSON", per / memory["json"], "<= 3 kB", per <= 3072,
                    f"over {args.memory_agreements} agreements, {memory['records'] // args.memory_agreements} "
                    "idempotency records each included"))


async def login_rows(args, shared: Shared, rows: list[Row]) -> None:
    login = bench_module("login")
    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    try:
        result = await login.figures(running, args.codes, args.doc_seconds, args.doc_rounds)
    finally:
        await running.stop()
    sign = result["sign"]
    for where, rate in (("in the backend (CPU time)", result["backend"]),
                        ("over HTTP (another process, 16 connections)", result["http"])):
        rows.append(Row(f"token exchange (code -> tokens, RS256 id_token) {where}", f"{rate:,.0f}/s",
                        f"{sign:,.0f}/s RS256 signatures alone (CPU time)", rate / sign, ">= 1,000/s", rate >= 1000,
                        f"{args.codes} codes (bench/login.py)" if "HTTP" in where else ""))
    for name in ("discovery", "JWKS"):
        ratio, ours, base, spread = result[name]
        rows.append(Row(f"Login {name} vs bare aiohttp handler (same bytes)", f"{ours['rps']:.0f} req/s",
                        f"{base['rps']:.0f} req/s", ratio, ">= 0.8", ratio >= 0.8,
                        pair_note(args.doc_rounds, spread, ours, base)))


async def tls_rows(args, shared: Shared, rows: list[Row]) -> None:
    tls_proxy = bench_module("tls_proxy")
    result = await asyncio.to_thread(tls_proxy.figures, args.tls_seconds, 4, args.tls_fresh, args.tls_rounds)
    keep = result["keepalive"]
    if isinstance(keep, str):
        rows.append(skipped(KEEPALIVE, keep))
    else:
        ratio = keep["ratio_server_cpu"]
        rows.append(Row(KEEPALIVE, f"{keep['tls_server_cpu_ms']:.3f} ms TLS", f"{keep['plain_server_cpu_ms']:.3f} ms "
                        "plain", ratio, "<= 1.5", ratio <= 1.5,
                        f"server CPU per request, medians of {keep['rounds']} interleaved wrk runs (4 connections); "
                        f"req/s plain {keep['plain_rps']}, TLS {keep['tls_rps']} (ratio {keep['ratio_rps']:.2f})"))
    fresh = result["fresh_connection"]
    ratio = fresh["ratio_proxy_to_tls_server_cpu"] or fresh["ratio_proxy_to_tls_wall"]
    rows.append(Row("fresh connection per GET payment: through the proxy vs the TLS port (server CPU)",
                    f"{fresh['proxy_server_cpu_ms']:.2f} ms proxy", f"{fresh['tls_server_cpu_ms']:.2f} ms TLS", ratio,
                    "<= 2", ratio <= 2,
                    f"{args.tls_fresh} requests a kind; client wall ms plain/TLS/proxy {fresh['plain_wall_ms']:.2f}/"
                    f"{fresh['tls_wall_ms']:.2f}/{fresh['proxy_wall_ms']:.2f} (bench/tls_proxy.py)"))


KEEPALIVE = "keep-alive GET payment: TLS port vs plain port (server CPU per request)"


async def image_rows(args, shared: Shared, rows: list[Row]) -> None:
    image_start = bench_module("image_start")
    unavailable = sys.modules["podman_support"].Unavailable
    try:
        result = await asyncio.to_thread(image_start.figures, args.image, args.image_runs, False)
    except unavailable as exc:
        rows.append(skipped(IMAGE, str(exc)))
        return
    local = start_times(args.image_runs, bare=False)["start"]
    first = result["first"]
    built = (f"; built in {result['build_seconds']:.0f} s on {result['base']}, {result['size_mb']:.0f} MB"
             if "build_seconds" in result else f"; image {args.image}")
    rows.append(Row(IMAGE, f"{first:.2f} s", f"{local:.2f} s python -m sandbox serve", first / local,
                    "< 2 s", result["first_max"] < 2,
                    f"median of {args.image_runs} runs, max {result['first_max']:.2f} s; both ports healthy "
                    f"{result['both']:.2f} s{built} (bench/image_start.py)"))


IMAGE = "podman run to the first 200 (the container image)"


# -- the groups ---------------------------------------------------------------------------------------------------


@dataclass
class Group:
    key: str
    rows: tuple[str, ...]  # what its rows measure, for --list and for the rows of a skipped or failed group
    run: Callable[[argparse.Namespace, Shared, list[Row]], Awaitable[None]]
    unavailable: Callable[[argparse.Namespace], str | None] = lambda args: None
    shared: bool = False  # uses the in-process sandbox of Shared (closed once no later group does)


GROUPS = [
    Group("process", ("startup to the first 200 (python -m sandbox serve)", "idle RSS (served, fixture loaded)",
                      "reset time (POST /_sandbox/reset, server side)"), process_rows),
    Group("get", ("authorized GET payment vs bare aiohttp JSON handler",
                  "authorized GET agreement (Recurring) vs bare aiohttp JSON handler"), get_rows, shared=True),
    Group("flow", ("flow rate (create, approve, capture) at 100k payments vs at 1k",
                   "memory per payment (created, approved, captured)"), flow_rows, shared=True),
    Group("report", ("Report feed page (1000 entries) at the end of 100k vs the start",), report_rows, shared=True),
    Group("journal", ("journaled write (--state, fsync) at 100k payments vs at 1k (speed)",), journal_rows),
    Group("recurring", ("advance the clock 31 days over 100k ACTIVE agreements vs 10k",
                        "memory per ACTIVE agreement with one charge (tracemalloc)"), recurring_rows),
    Group("login", ("token exchange (code -> tokens, RS256 id_token) in the backend (CPU time)",
                    "token exchange (code -> tokens, RS256 id_token) over HTTP (another process, 16 connections)",
                    "Login discovery vs bare aiohttp handler (same bytes)",
                    "Login JWKS vs bare aiohttp handler (same bytes)"), login_rows),
    Group("tls", (KEEPALIVE, "fresh connection per GET payment: through the proxy vs the TLS port (server CPU)"),
          tls_rows),
    Group("image", (IMAGE,), image_rows,
          lambda args: None if shutil.which("podman") else "podman is not installed (Debian: apt-get install podman)"),
]


def skipped(name: str, why: str) -> Row:
    return Row(name, "skipped", "-", None, "-", None, why)


def table(rows: list[Row]) -> str:
    lines = ["| measurement | measured | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = "yes" if row.ok else ("no" if row.ok is not None else "-")
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        lines.append(f"| {row.name} | {row.measured} | {row.baseline} | {ratio} | {row.goal} | {met} |")
    notes = [f"- {row.name}: {row.latency}" for row in rows if row.latency]
    return "\n".join(lines + [""] + notes)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    keys = [group.key for group in GROUPS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10k payments, entries and agreements, shorter loads "
                        "(about 1.5 minutes on 2 cores, plus the image row's build and runs)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load (flows: twice this)")
    parser.add_argument("--get-rounds", type=int, default=5, help="alternating GET pairs (sandbox, bare); median kept")
    parser.add_argument("--skip", action="append", default=[], metavar="GROUP[,GROUP]",
                        help=f"leave groups out (their rows say skipped): {', '.join(keys)}")
    parser.add_argument("--only", action="append", default=[], metavar="GROUP[,GROUP]", help="run only these groups")
    parser.add_argument("--image", help="the image row runs this image, built already (default: build one now on "
                        "the image tests' base)")
    parser.add_argument("--list", action="store_true", help="print the groups and their rows, and exit")
    args = parser.parse_args(argv)
    args.skip = {key for value in args.skip for key in value.split(",") if key}
    args.only = {key for value in args.only for key in value.split(",") if key}
    unknown = (args.skip | args.only) - set(keys)
    if unknown:
        parser.error(f"no such group: {', '.join(sorted(unknown))} (groups: {', '.join(keys)})")
    quick = args.quick
    args.payments = args.entries = 10_000 if quick else 100_000
    args.starts, args.resets = (3, 50) if quick else (5, 200)
    args.agreements, args.clock_repeats = (10_000, 5) if quick else (100_000, 7)
    args.memory_agreements = 2_000 if quick else 10_000
    args.codes = 1_000 if quick else 5_000
    args.image_runs = 3 if quick else 5
    if quick:
        args.seconds = min(args.seconds, 2.0)
        args.get_rounds = min(args.get_rounds, 3)
    args.doc_rounds = 1 if quick else 3
    args.doc_seconds = max(1.0, args.seconds / 2)
    args.tls_seconds, args.tls_rounds, args.tls_fresh = (max(1, round(args.seconds)), 1 if quick else 3,
                                                         100 if quick else 300)
    return args


async def run(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    shared = Shared()
    try:
        for index, group in enumerate(GROUPS):
            if not any(later.shared for later in GROUPS[index:]):
                await shared.close()  # its 100k payments would weigh on the rows that follow
            why = ("left out with --skip" if group.key in args.skip else
                   "not in --only" if args.only and group.key not in args.only else group.unavailable(args))
            if why:
                rows.extend(skipped(name, why) for name in group.rows)
                continue
            done = len(rows)
            started = time.perf_counter()
            try:
                await group.run(args, shared, rows)
            except Exception as exc:  # one group's failure is its rows' verdict, not the end of the run
                traceback.print_exc(file=sys.stderr)
                failed = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
                rows.extend(Row(name, "failed", "-", None, "-", False, failed)
                            for name in group.rows[len(rows) - done:])
            else:  # a row its group stopped making shows as missing, not as nothing
                rows.extend(Row(name, "missing", "-", None, "-", False, f"the {group.key} group made no such row")
                            for name in group.rows[len(rows) - done:])
            print(f"[{group.key}: {time.perf_counter() - started:.0f} s]", file=sys.stderr, flush=True)
    finally:
        await shared.close()
    return rows


def main() -> None:
    args = parse()
    if args.list:
        for group in GROUPS:
            print(group.key)
            for name in group.rows:
                print(f"  {name}")
        return
    started, at = time.perf_counter(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    header = f"Machine: {machine()}"
    rows = asyncio.run(run(args))
    print(header)
    print(f"Run: started {at}, took {time.perf_counter() - started:.0f} s, {'--quick' if args.quick else 'full'}"
          f"{', skipped: ' + ', '.join(sorted(args.skip)) if args.skip else ''}")
    print(table(rows))


if __name__ == "__main__":
    main()
