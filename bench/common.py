"""What the benchmarks share: the machine line, load from another process, fresh sandbox processes, a bare aiohttp app.

bench/run.py builds its table from these and from the measuring functions of bench/recurring_clock.py,
bench/login.py, bench/tls_proxy.py and bench/image_start.py, which print their own figures when run alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sandbox.testing import SandboxClient  # noqa: E402


@dataclass
class Row:
    """One line of bench/run.py's table. `ok` None: no verdict (a skipped or failed row says why in `latency`)."""

    name: str
    measured: str
    baseline: str
    ratio: float | None
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
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {cpu.group(1) if cpu else '?'}, "
            f"{int(mem.group(1)) / 1024 / 1024:.1f} GB RAM, Python {platform.python_version()}, {platform.system()}, "
            f"load average {load} at the start")


# -- load from another process ---------------------------------------------------------------------------------


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


async def get_load(url: str, headers: dict[str, str], seconds: float, connections: int = 16) -> dict:
    """Requests/s, p50 and p99 of GET url from another process (wrk, or an aiohttp client process)."""
    if shutil.which("wrk"):  # wrk takes whole seconds only ("-d2.5s" prints its usage)
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
        for name, value in headers.items():
            cmd += ["-H", f"{name}: {value}"]
        proc = await asyncio.create_subprocess_exec(*cmd, url, stdout=asyncio.subprocess.PIPE)
        out = (await proc.communicate())[0].decode()
        assert "Non-2xx" not in out and "Socket errors" not in out and "Requests/sec" in out, out
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


async def get_pairs(url: str, headers: dict[str, str], bare_url: str, rounds: int, seconds: float) -> tuple:
    """Alternating pairs (sandbox, bare), and the median pair: on a shared VM one load can run 10% off its neighbour.
    Returns (ratio, ours, base, spread text)."""
    pairs = []
    for _ in range(rounds):
        ours = await get_load(url, headers, seconds)
        base = await get_load(bare_url, headers, seconds)  # the same request: parsing its headers is aiohttp's cost
        pairs.append((ours["rps"] / base["rps"], ours, base))
    pairs.sort(key=lambda pair: pair[0])
    ratio, ours, base = pairs[len(pairs) // 2]
    return ratio, ours, base, f"{pairs[0][0]:.2f}-{pairs[-1][0]:.2f}"


def pair_note(rounds: int, spread: str, ours: dict, base: dict) -> str:
    return (f"median of {rounds} alternating pairs (ratios {spread}); p50 {ours['p50']:.2f}/{base['p50']:.2f} ms, "
            f"p99 {ours['p99']:.2f}/{base['p99']:.2f} ms ({ours['tool']})")


@contextlib.asynccontextmanager
async def bare_app(routes: dict[str, Callable]) -> AsyncIterator[str]:
    """A bare aiohttp app in this process with GET handlers at the given paths; yields its base URL."""
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- Recurring: an approved agreement over HTTP ------------------------------------------------------------------

DRAFT = {"pricing": {"type": "LEGACY", "amount": 9900, "currency": "NOK"}, "interval": {"unit": "MONTH", "count": 1},
         "merchantRedirectUrl": "https://shop.example.com/r", "merchantAgreementUrl": "https://shop.example.com/a",
         "productName": "Morgenavisen Digital"}


def recurring_msn(runtime) -> str:
    """The first active Norwegian sales unit of the fixture allowed to use Recurring."""
    world = runtime.world
    return next(u.msn for u in sorted(world.sales_units.values(), key=lambda u: u.msn)
                if u.market == "NO" and u.configuration.get("recurringAllowed") and world.is_active(u.msn))


async def approved_agreement(client: SandboxClient) -> tuple[str, dict[str, str], dict]:
    """An ACTIVE agreement of a sales unit allowed to use Recurring (drafted and approved over HTTP): its GET path,
    the headers to GET it with, and its body."""
    msn = recurring_msn(client.runtime)
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


# -- fresh processes: startup, idle RSS --------------------------------------------------------------------------

BARE_SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_get("/_sandbox/health", lambda r: web.json_response({"status": "ok"}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def first_200(cmd: list[str], port: int) -> tuple[subprocess.Popen, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def sandbox_cmd(port: int, prod_port: int) -> list[str]:
    return [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port", str(prod_port)]


def bare_cmd(port: int) -> list[str]:
    return [sys.executable, "-c", BARE_SERVER, str(port)]


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def compile_sources() -> None:
    """Bytecode for sandbox/, as an installed wheel has it (pip compiles at install): an editable checkout where
    PYTHONDONTWRITEBYTECODE is set (as on this project's shared machine) has none, and every start would compile
    every module first, which doubled the startup figure there. Written to the git-ignored __pycache__ folders."""
    import compileall

    compileall.compile_dir(str(ROOT / "sandbox"), quiet=2)


def start_times(starts: int, bare: bool = True) -> dict:
    """Seconds from the start of `python -m sandbox serve` to its first 200, over `starts` starts, each followed by a
    bare aiohttp app's start (unless `bare` is false): medians and the sandbox's range. Bytecode compiled first."""
    compile_sources()
    ours, base = [], []
    for _ in range(starts):
        port = free_port()
        proc, seconds = first_200(sandbox_cmd(port, free_port()), port)
        ours.append(seconds)
        stop(proc)
        if bare:
            port = free_port()
            proc, seconds = first_200(bare_cmd(port), port)
            base.append(seconds)
            stop(proc)
    return {"start": statistics.median(ours), "bare_start": statistics.median(base) if base else None,
            "spread": (min(ours), max(ours))}


@contextlib.contextmanager
def served() -> Iterator[tuple[subprocess.Popen, str, subprocess.Popen]]:
    """A fresh `python -m sandbox serve` and a fresh bare aiohttp app: (sandbox process, its test URL, bare process)."""
    port = free_port()
    proc, _ = first_200(sandbox_cmd(port, free_port()), port)
    bare_port = free_port()
    try:
        bare, _ = first_200(bare_cmd(bare_port), bare_port)
    except BaseException:
        stop(proc)
        raise
    try:
        yield proc, f"http://127.0.0.1:{port}", bare
    finally:
        stop(proc)
        stop(bare)


async def idle_rss(session: aiohttp.ClientSession, proc: subprocess.Popen, url: str, bare: subprocess.Popen) -> dict:
    """RSS in MB of a served sandbox after a first real request and a second at rest, beside the bare app's."""
    async with session.get(url + "/_sandbox/keys") as resp:
        await resp.read()
    await asyncio.sleep(1.0)
    return {"rss": rss_kb(proc.pid) / 1024, "bare_rss": rss_kb(bare.pid) / 1024}
