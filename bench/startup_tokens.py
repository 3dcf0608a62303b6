"""Benchmark (run by hand): app creation on the default fixture, and token verification on a warm cache.

    python bench/startup_tokens.py

Goals (issue 2): loading the default fixture and creating the app under 100 ms; a warm-cache token
verification under 50 us. Each figure is printed with a baseline measured in the same run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import jwt
from aiohttp import web

from sandbox.app import create_app
from sandbox.core.model import Env, KeyType
from sandbox.core.settings import Settings
from sandbox.fixture import store
from sandbox.gateway.context import RUNTIME


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


COLD = """
import time
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""


def cold_start() -> tuple[float, float]:
    """Median of 5 fresh interpreters each: our app vs importing its main dependencies."""
    ours = COLD.format(body="from sandbox.app import create_app\ncreate_app()")
    base = COLD.format(body="import aiohttp.web, jwt, tinydb, faker")

    def run(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return float(out.strip().splitlines()[-1])

    return statistics.median(run(ours) for _ in range(5)), statistics.median(run(base) for _ in range(5))


def main() -> None:
    path = store.default_fixture_path()
    create_app(Settings())  # warm imports and caches once

    def baseline_start() -> None:
        with open(path) as fh:
            json.load(fh)
        web.Application()

    base = statistics.median(timed(baseline_start, 30))
    ours = statistics.median(timed(lambda: create_app(Settings()), 30))
    print(f"app creation on the default fixture: median {ours * 1e3:.2f} ms "
          f"(goal < 100 ms: {'OK' if ours < 0.1 else 'MISSED'}); baseline json.load + bare app "
          f"{base * 1e3:.2f} ms; ratio {ours / base:.1f}x")

    cold = cold_start()
    print(f"cold start in a new process (imports + fixture + app): {cold[0] * 1e3:.0f} ms; baseline "
          f"`import aiohttp, jwt, tinydb, faker` {cold[1] * 1e3:.0f} ms; ratio {cold[0] / cold[1]:.2f}")

    app = create_app(Settings())
    runtime = app[RUNTIME]
    keyset = next(k for k in runtime.world.keys.values() if k.type is KeyType.MERCHANT and k.environment is Env.TEST)
    token, _, _ = runtime.tokens.issue(keyset, Env.TEST, 3600, "standard")
    runtime.tokens.verify(token, Env.TEST)
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        runtime.tokens.verify(token, Env.TEST)
    warm = (time.perf_counter() - start) / n
    cold_n = 300
    start = time.perf_counter()
    for _ in range(cold_n):
        jwt.decode(token, runtime.tokens.public_key, algorithms=["RS256"], options={"verify_exp": False})
    cold = (time.perf_counter() - start) / cold_n
    print(f"token verification, warm cache: {warm * 1e6:.2f} us per request "
          f"(goal < 50 us: {'OK' if warm < 50e-6 else 'MISSED'}); baseline full RS256 verification "
          f"{cold * 1e6:.1f} us; ratio {warm / cold:.3f}")


if __name__ == "__main__":
    main()
