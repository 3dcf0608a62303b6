"""The benchmark suite: one command, one table, every row a ratio against a baseline measured in the same run.

    python bench/run.py [--quick] [--seconds 5]

Rows (goals from issues 8, 15 and 20):
- authorized GET payment vs a bare aiohttp JSON handler (requests/s; goal >= 0.85, issue 20)
- authorized GET agreement (Recurring) vs a bare aiohttp handler answering the same body (goal >= 0.8, issue 15)
- create -> approve -> capture flow rate with 100k payments held vs with 1k (goal >= 0.8)
- startup to the first 200 (goal < 0.35 s, issue 20), vs a bare aiohttp app; as run (no bytecode cache under
  PYTHONDONTWRITEBYTECODE=1: every module of the sandbox compiled at each start) and with the cache on
- idle RSS (goal < 60 MB), vs a bare aiohttp app
- memory per payment (goal <= 2 kB), vs the size of the payment's own JSON (GET + events)
- reset time (goal < 20 ms, server side), vs a GET /_sandbox/health round trip
- Report API feed page at the end of a 100k-entry ledger vs at the start
- a journaled write with --state at 100k payments vs at 1k (bench/persistence_writes.py, when present)
Load comes from another process: wrk (Debian's `apt-get install wrk`) for GETs, else an aiohttp client
process; the flows from bench/loadgen.py --mode flow. p50 and p99 latencies are printed with each row.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.util
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.apis.epayment.routes import PAYMENTS  # noqa: E402
from sandbox.core.model import Env  # noqa: E402
from sandbox.core.settings import Settings  # noqa: E402
from sandbox.server import RunningSandbox  # noqa: E402
from sandbox.testing import SandboxClient  # noqa: E402

BARE_BODY = {"aggregate": {k: {"currency": "NOK", "value": 1000} for k in
                           ("authorizedAmount", "cancelledAmount", "capturedAmount", "refundedAmount")},
             "amount": {"currency": "NOK", "value": 1000}, "state": "AUTHORIZED", "paymentMethod": {"type": "WALLET"},
             "profile": {}, "pspReference": "0123456789", "reference": "bench-ref-000001"}


@dataclass
class Row:
    name: str
    measured: str
    baseline: str
    ratio: float
    goal: str
    ok: bool | None
    latency: str = ""


def rss_kb(pid: int | None = None) -> int:
    text = Path(f"/proc/{pid or 'self'}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    return (f"{os.cpu_count()} CPUs ({os.sched_getaffinity(0).__len__()} usable), {cpu.group(1) if cpu else '?'}, "
            f"{int(mem.group(1)) / 1024 / 1024:.1f} GB RAM, Python {platform.python_version()}, {platform.system()}")


# -- load from another process ---------------------------------------------------------------------------------


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def get_load(url: str, headers: dict[str, str], seconds: float, connections: int = 16) -> dict:
    """Requests/s, p50 and p99 of GET url from another process (wrk, or an aiohttp client process)."""
    if shutil.which("wrk"):
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        proc = await asyncio.create_subprocess_exec(*cmd, url, stdout=asyncio.subprocess.PIPE)
        out = (await proc.communicate())[0].decode()
        assert "Non-2xx" not in out and "Socket errors" not in out, out
        return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                "p50": _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
                "p99": _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)), "tool": "wrk"}
    code = GET_CLIENT.format(url=url, headers=headers, seconds=seconds, connections=connections)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    return json.loads((await proc.communicate())[0]) | {"tool": "aiohttp client process"}


GET_CLIENT = """
import asyncio, json, time, aiohttp, statistics
async def main():
    samples, errors = [], 0
    async with aiohttp.ClientSession() as s:
        stop = time.monotonic() + {seconds}
        async def worker():
            nonlocal errors
            while time.monotonic() < stop:
                t = time.perf_counter()
                async with s.get({url!r}, headers={headers!r}) as r:
                    await r.read()
                    errors += r.status >= 300
                samples.append(time.perf_counter() - t)
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range({connections})))
        elapsed = time.monotonic() - started
    samples.sort()
    assert errors == 0
    print(json.dumps({{"rps": len(samples) / elapsed, "p50": samples[len(samples) // 2] * 1000,
                      "p99": samples[int(len(samples) * 0.99)] * 1000}}))
asyncio.run(main())
"""


async def flow_load(urls: dict[str, str], seconds: float, seed: int) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bench" / "loadgen.py"), "--test-url", urls["test"], "--prod-url",
        urls["production"], "--seconds", str(seconds), "--mode", "flow", "--env", "test", "--seed", str(seed),
        stdout=asyncio.subprocess.PIPE)
    report = json.loads((await proc.communicate())[0])
    assert report["unexpected_count"] == 0, report["unexpected"][:3]
    return report


# -- the in-process sandbox (filled directly, loaded over HTTP from other processes) ---------------------------


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


async def get_pairs(url: str, headers: dict[str, str], bare_url: str, rounds: int, seconds: float) -> tuple:
    """Alternating pairs (sandbox, bare), and the median pair: on a shared VM one load can run 10% off its neighbour.
    Returns (ratio, ours, base, spread text)."""
    pairs = []
    for _ in range(rounds):
        ours = await get_load(url, headers, seconds)
        base = await get_load(bare_url, {}, seconds)
        pairs.append((ours["rps"] / base["rps"], ours, base))
    pairs.sort(key=lambda pair: pair[0])
    ratio, ours, base = pairs[len(pairs) // 2]
    return ratio, ours, base, f"{pairs[0][0]:.2f}-{pairs[-1][0]:.2f}"


DRAFT = {"pricing": {"type": "LEGACY", "amount": 9900, "currency": "NOK"}, "interval": {"unit": "MONTH", "count": 1},
         "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
         "productName": "Morgenavisen Digital"}


async def approved_agreement(client: SandboxClient) -> tuple[str, dict[str, str], dict]:
    """An ACTIVE agreement of a sales unit allowed to use Recurring (drafted and approved over HTTP): its GET path,
    the headers to GET it with, and its body."""
    world = client.runtime.world
    msn = next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
               if u.market == "NO" and u.configuration.get("recurringAllowed") and world.is_active(u.msn))
    headers = await client.auth_headers(client.key("merchant", "test", msn=msn), msn, "test")
    reply = await client.request("POST", "/recurring/v3/agreements", "test", json_body=DRAFT,
                                 headers=headers | {"Idempotency-Key": "bench-draft"})
    assert reply.status == 201, reply.text
    agreement_id = reply.json["agreementId"]
    reply = await client.request("POST", f"/_sandbox/recurring/{msn}/agreements/{agreement_id}/approve", "test")
    assert reply.status == 200, reply.text
    path = f"/recurring/v3/agreements/{agreement_id}"
    reply = await client.request("GET", path, "test", headers=headers)
    assert reply.status == 200 and reply.json["status"] == "ACTIVE", reply.text
    return path, headers, reply.json


async def in_process_rows(args, rows: list[Row]) -> None:
    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    bare = web.Application()
    agreement_body: dict = {}  # filled below, before the bare handler is loaded
    bare.router.add_get("/payment", lambda request: web.json_response(BARE_BODY))
    bare.router.add_get("/agreement", lambda request: web.json_response(agreement_body))
    bare_runner = web.AppRunner(bare, access_log=None)
    await bare_runner.setup()
    bare_port = free_port()
    await web.TCPSite(bare_runner, "127.0.0.1", bare_port).start()
    try:
        async with aiohttp.ClientSession() as session:
            client = SandboxClient(running, session)
            msn = client.msn_role("premium-shop-1")
            keys = client.key("merchant", "test", msn=msn)
            headers = await client.auth_headers(keys)
            urls = {"test": running.test_url, "production": running.prod_url}
            fill_payments(running, msn, 0, 1000)
            # 1. authorized GET payment vs a bare JSON handler
            path = "/epayment/v1/payments/fill-00000001"
            reply = await client.request("GET", path, "test", headers=headers)
            assert reply.status == 200, reply.text
            ratio, ours, base, spread = await get_pairs(running.test_url + path, headers,
                                                        f"http://127.0.0.1:{bare_port}/payment", args.get_rounds,
                                                        args.seconds)
            rows.append(Row("authorized GET payment vs bare aiohttp JSON handler", f"{ours['rps']:.0f} req/s",
                            f"{base['rps']:.0f} req/s", ratio, ">= 0.85", ratio >= 0.85,
                            f"median of {args.get_rounds} alternating pairs (ratios {spread}); "
                            f"p50 {ours['p50']:.2f}/{base['p50']:.2f} ms, p99 {ours['p99']:.2f}/{base['p99']:.2f} ms "
                            f"({ours['tool']})"))
            # 1b. authorized GET agreement (Recurring) vs a bare handler answering the same body
            agreement_path, agreement_headers, body = await approved_agreement(client)
            agreement_body.update(body)
            ratio, ours, base, spread = await get_pairs(running.test_url + agreement_path, agreement_headers,
                                                        f"http://127.0.0.1:{bare_port}/agreement", args.get_rounds,
                                                        args.seconds)
            rows.append(Row("authorized GET agreement (Recurring) vs bare aiohttp JSON handler",
                            f"{ours['rps']:.0f} req/s", f"{base['rps']:.0f} req/s", ratio, ">= 0.8", ratio >= 0.8,
                            f"median of {args.get_rounds} alternating pairs (ratios {spread}); "
                            f"p50 {ours['p50']:.2f}/{base['p50']:.2f} ms, p99 {ours['p99']:.2f}/{base['p99']:.2f} ms "
                            f"({ours['tool']}; the same {len(json.dumps(body))}-byte body)"))
            # 2. flow rate with 1k payments held, then with 100k (after a warm-up run of the same flows)
            await flow_load(urls, 1.0, 9)
            small = await flow_load(urls, args.seconds * 2, 1)
            gc.collect()
            before, count = rss_kb(), len(running.app[PAYMENTS].payments)
            target = args.payments
            started = time.perf_counter()
            fill_payments(running, msn, 1000, target)
            fill_seconds = time.perf_counter() - started
            gc.collect()
            filled = len(running.app[PAYMENTS].payments) - count
            per_payment = (rss_kb() - before) * 1024 / filled
            large = await flow_load(urls, args.seconds * 2, 2)
            ratio = large["flows_per_second"] / small["flows_per_second"]
            lat_s, lat_l = small["latency_ms"]["flow-capture"], large["latency_ms"]["flow-capture"]
            rows.append(Row(f"flow rate (create, approve, capture) at {target // 1000}k payments vs at 1k",
                            f"{large['flows_per_second']:.0f} flows/s", f"{small['flows_per_second']:.0f} flows/s",
                            ratio, ">= 0.8", ratio >= 0.8,
                            f"capture p50 {lat_l['p50']:.1f}/{lat_s['p50']:.1f} ms, p99 {lat_l['p99']:.1f}/"
                            f"{lat_s['p99']:.1f} ms (loadgen process)"))
            # 5. memory per payment vs the payment's own JSON
            get = await client.request("GET", "/epayment/v1/payments/fill-00001500", "test", headers=headers)
            events = await client.request("GET", "/epayment/v1/payments/fill-00001500/events", "test", headers=headers)
            json_size = len(get.text) + len(events.text)
            rows.append(Row("memory per payment (created, approved, captured)", f"{per_payment:.0f} B",
                            f"{json_size} B of JSON", per_payment / json_size, "<= 2 kB", per_payment <= 2048,
                            f"RSS delta over {filled} payments, filled in {fill_seconds:.1f} s"))
        await report_row(args, running, rows)
    finally:
        await bare_runner.cleanup()
        await running.stop()


async def report_row(args, running: RunningSandbox, rows: list[Row]) -> None:
    spec = importlib.util.spec_from_file_location("report_feed", ROOT / "bench" / "report_feed.py")
    report_feed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report_feed)
    async with aiohttp.ClientSession() as session:
        client = SandboxClient(running, session)
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

BARE_SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/_sandbox/health", lambda r: web.json_response({"status": "ok"}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def first_200(cmd: list[str], port: int, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    request = b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.perf_counter() - started < 30:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc, time.perf_counter() - started
        except OSError:
            time.sleep(0.002)
    proc.kill()
    raise TimeoutError(" ".join(cmd))


def cached_bytecode_env(directory: str) -> dict[str, str]:
    """This environment with Python's bytecode cache on, kept in `directory`: what an installed sandbox has (pip and
    the image compile every module once), where a checkout run with PYTHONDONTWRITEBYTECODE=1 compiles each of the
    sandbox's modules (1.2 MB of source) at every start."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = directory
    return env


def sandbox_cmd(port: int, prod_port: int) -> list[str]:
    return [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port", str(prod_port)]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def process_rows(args, rows: list[Row]) -> None:
    ours, base = [], []
    for _ in range(args.starts):
        port = free_port()
        proc, seconds = first_200(sandbox_cmd(port, free_port()), port)
        ours.append(seconds)
        stop(proc)
        port = free_port()
        proc, seconds = first_200([sys.executable, "-c", BARE_SERVER, str(port)], port)
        base.append(seconds)
        stop(proc)
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as cache:
        env, cached = cached_bytecode_env(cache), []
        port = free_port()
        stop(first_200(sandbox_cmd(port, free_port()), port, env)[0])  # the first start writes the cache
        for _ in range(args.starts):
            port = free_port()
            proc, seconds = first_200(sandbox_cmd(port, free_port()), port, env)
            cached.append(seconds)
            stop(proc)
    o, b, c = statistics.median(ours), statistics.median(base), statistics.median(cached)
    compiled = "; no bytecode cache (PYTHONDONTWRITEBYTECODE)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""
    rows.append(Row("startup to the first 200 (python -m sandbox serve)", f"{o * 1000:.0f} ms",
                    f"{b * 1000:.0f} ms bare aiohttp", o / b, "< 0.35 s", o < 0.35,
                    f"median of {args.starts} starts{compiled}"))
    rows.append(Row("startup to the first 200, bytecode cached (as installed)", f"{c * 1000:.0f} ms",
                    f"{b * 1000:.0f} ms bare aiohttp", c / b, "< 0.35 s", c < 0.35, f"median of {args.starts} starts"))
    # idle RSS and reset, on a fresh sandbox process
    port, prod_port = free_port(), free_port()
    proc, _ = first_200(sandbox_cmd(port, prod_port), port)
    bare_port = free_port()
    bare, _ = first_200([sys.executable, "-c", BARE_SERVER, str(bare_port)], bare_port)
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}"
            async with session.get(url + "/_sandbox/keys") as resp:  # a first real request or two
                await resp.read()
            await asyncio.sleep(1.0)
            idle, bare_idle = rss_kb(proc.pid), rss_kb(bare.pid)
            rows.append(Row("idle RSS (served, fixture loaded)", f"{idle / 1024:.1f} MB",
                            f"{bare_idle / 1024:.1f} MB bare aiohttp", idle / bare_idle, "< 60 MB", idle < 60 * 1024))
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
    finally:
        stop(proc)
        stop(bare)
    s, h, r = statistics.median(server_ms), statistics.median(health_ms), statistics.median(http_ms)
    p99 = sorted(server_ms)[int(len(server_ms) * 0.99)]
    rows.append(Row("reset time (POST /_sandbox/reset, server side)", f"{s:.2f} ms",
                    f"{h:.2f} ms health round trip", s / h, "< 20 ms", s < 20,
                    f"server p50 {s:.2f} / p99 {p99:.2f} ms; HTTP round trip p50 {r:.2f} ms"))


async def persistence_row(args, rows: list[Row]) -> None:
    """bench/persistence_writes.py (the --state journal): a write at 100k payments vs at 1k, its own same-run ratio."""
    script = ROOT / "bench" / "persistence_writes.py"
    if not script.exists():
        return
    proc = await asyncio.create_subprocess_exec(sys.executable, str(script), "--big", str(args.payments),
                                                stdout=asyncio.subprocess.PIPE)
    out = (await proc.communicate())[0].decode()
    lines = re.findall(r"at\s+(\d+) payments: write p50 ([\d.]+) ms, p99 ([\d.]+) ms", out)
    ratio = re.search(r"ratio, cost of a write .*?: ([\d.]+)", out)
    if proc.returncode != 0 or len(lines) != 2 or ratio is None:
        rows.append(Row("journaled write (--state) at 100k payments vs at 1k", "failed", "-", 0.0, ">= 0.8", False,
                        out[-300:]))
        return
    (n1, p50_1, p99_1), (n2, p50_2, p99_2) = lines
    value = float(ratio.group(1))
    rows.append(Row(f"journaled write (--state, fsync) at {int(n2) // 1000}k payments vs at 1k (speed)",
                    f"{p50_2} ms p50", f"{p50_1} ms p50", value, ">= 0.8", value >= 0.8,
                    f"p50 {p50_2}/{p50_1} ms, p99 {p99_2}/{p99_1} ms, compaction amortised "
                    "(bench/persistence_writes.py)"))


def table(rows: list[Row]) -> str:
    lines = ["| measurement | measured | baseline (same run) | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = "yes" if row.ok else ("no" if row.ok is not None else "-")
        lines.append(f"| {row.name} | {row.measured} | {row.baseline} | {row.ratio:.2f} | {row.goal} | {met} |")
    notes = [f"- {row.name}: {row.latency}" for row in rows if row.latency]
    return "\n".join(lines + [""] + notes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k payments and entries, shorter loads")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per load (flows: twice this)")
    parser.add_argument("--get-rounds", type=int, default=5, help="alternating GET pairs (sandbox, bare); median kept")
    args = parser.parse_args()
    args.payments = args.entries = 10_000 if args.quick else 100_000
    args.starts, args.resets = (3, 50) if args.quick else (5, 200)
    if args.quick:
        args.seconds = min(args.seconds, 2.0)
        args.get_rounds = min(args.get_rounds, 3)
    rows: list[Row] = []
    await process_rows(args, rows)
    await in_process_rows(args, rows)
    await persistence_row(args, rows)
    print(f"Machine: {machine()}")
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
