"""Instructions from an interpreter's start to a listening server, counted by callgrind: the stable startup figure.

    python bench/callgrind_start.py [--runs 3] [--repo DIR]

Wall-clock startup (bench/run.py's `process` row, goal < 0.35 s to the first 200, issue 20) moves with the
machine's load: on the shared 2-core VM a bare aiohttp app alone takes anywhere from 260 to 400 ms. This counts
instructions instead, for three programs, each run under `valgrind --tool=callgrind` in a fresh interpreter
with PYTHONHASHSEED=0 and sandbox/ compiled to bytecode first:

- `serve`: what `vipps-sandbox serve` does up to listening on both ports (sandbox/cli.py main's serve branch:
  the garbage collector off, load_server, the settings, RunningSandbox.start), then exits at once;
- `serve, methods compiled afresh`: the same without sandbox/core/dataclass_code.py's kept methods;
- `bare aiohttp`: importing aiohttp.web, one app with one route, listening on one port, then exiting;
- `bare aiohttp, system CAs deferred`: the same, aiohttp imported as `serve` imports it (its client TLS contexts
  without the system CAs until later: sandbox/core/system_cas.py), so that the difference is the sandbox's own.

The warm-up thread that `serve` starts once it listens (PyJWT, the specs) is not in any of them. Each figure is
the median of --runs runs (they repeat within about 1%). Needs Debian's valgrind. Takes about a minute a run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SERVE = """
import asyncio, gc, os, sys
from sandbox import cli
from sandbox.core import dataclass_code, system_cas
gc.disable()
if sys.argv[1] == "kept":
    server = cli.load_server()
else:
    with system_cas.deferred():
        from sandbox import server
settings = cli.serve_settings(cli.build_parser().parse_args(["serve", "--port", "0", "--prod-port", "0"]))

async def main():
    await server.RunningSandbox(settings).start()
    os._exit(0)

asyncio.run(main())
"""

BARE = """
import asyncio, os, sys
from sandbox.core import system_cas
with system_cas.deferred() if sys.argv[1:] == ["deferred"] else open(os.devnull):
    from aiohttp import web

async def main():
    app = web.Application()
    app.router.add_get("/_sandbox/health", lambda request: web.json_response({"status": "ok"}))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    os._exit(0)

asyncio.run(main())
"""


def count(code: str, args: list[str], cwd: Path) -> int:
    """Instructions of one run of `python -c code args` under callgrind."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        env = dict(os.environ, PYTHONHASHSEED="0")
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                               "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"exited {done.returncode}: {done.stderr[-2000:]}")
        text = out.read_text(errors="replace")
        found = re.search(r"^(?:summary|totals):\s*(\d+)", text, re.MULTILINE)
        if found is None:
            raise RuntimeError("no totals in the callgrind output")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each program; the median is printed")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose sandbox is measured")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.repo / "sandbox")], check=True)
    count(SERVE, ["kept"], args.repo)  # the first start writes the kept methods; the runs below read them
    programs = {"serve": (SERVE, ["kept"]), "serve, methods compiled afresh": (SERVE, ["plain"]),
                "bare aiohttp": (BARE, []), "bare aiohttp, system CAs deferred": (BARE, ["deferred"])}
    figures = {}
    for name, (code, extra) in programs.items():
        runs = [count(code, extra, args.repo) for _ in range(args.runs)]
        figures[name] = statistics.median(runs)
        print(f"{name}: {figures[name] / 1e6:.0f}M instructions (runs: "
              f"{', '.join(f'{r / 1e6:.1f}M' for r in runs)})", flush=True)
    for base in ("bare aiohttp", "bare aiohttp, system CAs deferred"):
        for name in ("serve", "serve, methods compiled afresh"):
            print(f"{name} / {base}: {figures[name] / figures[base]:.2f} "
                  f"({(figures[name] - figures[base]) / 1e6:+.0f}M)")


if __name__ == "__main__":
    main()
