"""bench/run.py's table keeps the rows issues 15 to 20 asked for (a row must not silently disappear), its goals are
issue 20's, a left-out group still shows its rows (as "skipped", with why, never a figure), and the functions of the
other benches that its rows call are there and run (the Recurring group, at a tiny size)."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"

#: group -> words each of its rows' names must hold, in order (issue 8, 15, 16, 17 and 20)
REQUIRED = {
    "process": ("startup to the first 200", "idle RSS", "reset time"),
    "get": ("GET payment", "GET agreement"),
    "flow": ("flow rate", "memory per payment"),
    "report": ("Report feed",),
    "journal": ("journaled write",),
    "recurring": ("advance the clock", "memory per ACTIVE agreement with one charge"),
    "login": ("token exchange", "token exchange", "discovery", "JWKS"),
    "tls": ("TLS port vs plain port", "through the proxy vs the TLS port"),
    "image": ("podman run to the first 200",),
}


def load(name: str):
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_every_named_row_is_in_the_list():
    out = subprocess.run([sys.executable, str(BENCH / "run.py"), "--list"], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    listed: dict[str, list[str]] = {}
    group = ""
    for line in out.splitlines():
        if line.startswith("  "):
            listed[group].append(line.strip())
        else:
            group = line.strip()
            listed[group] = []
    assert set(REQUIRED) <= set(listed), f"groups missing from bench/run.py --list: {set(REQUIRED) - set(listed)}"
    for group, words in REQUIRED.items():
        assert len(listed[group]) == len(words), (group, listed[group])
        for name, word in zip(listed[group], words, strict=True):
            assert word in name, (group, name, word)


def test_goals_are_issue_20s():
    run = load("run")
    assert run.STARTUP_GOAL == 0.35 and run.IDLE_RSS_GOAL == 60
    source = (BENCH / "run.py").read_text()
    assert '">= 0.85"' in source  # the hot path: GET payment against a bare handler


def test_skipped_groups_say_skipped_and_why():
    run = load("run")
    args = run.parse(["--quick", "--skip", ",".join(group.key for group in run.GROUPS)])
    rows = asyncio.run(run.run(args))
    assert [row.name for row in rows] == [name for group in run.GROUPS for name in group.rows]
    assert all(row.measured == "skipped" and row.ratio is None and row.ok is None for row in rows)
    assert all(row.latency == "left out with --skip" for row in rows)
    table = run.table(rows)
    assert "| skipped | - | - | - | - |" in table and "0.00" not in table


def test_the_benches_run_py_calls_are_there():
    assert callable(load("recurring_clock").advance_costs) and callable(load("recurring_clock").memory_per_agreement)
    assert asyncio.iscoroutinefunction(load("login").figures)
    assert callable(load("tls_proxy").figures) and callable(load("image_start").figures)


def test_the_recurring_rows_are_measured(capsys):
    """The Recurring group for real, at a tenth of a second's size: two rows with figures and a verdict each."""
    run = load("run")
    args = run.parse(["--only", "recurring"])
    args.agreements, args.clock_repeats, args.memory_agreements = 2_000, 1, 200
    rows = [row for row in asyncio.run(run.run(args)) if row.measured != "skipped"]
    assert [row.name.split(" over ")[0] for row in rows] == [
        "advance the clock 31 days", "memory per ACTIVE agreement with one charge (tracemalloc)"]
    assert "over 2k ACTIVE agreements vs 200 (20 charges due" in rows[0].name
    for row in rows:
        assert row.ratio is not None and row.ratio > 0 and row.ok is not None, row
        assert row.measured not in ("failed", "skipped") and row.goal != "-"


def test_a_load_of_a_fraction_of_a_second_is_measured():
    """wrk takes whole seconds only: `-d2.5s` printed its usage, and the full run's Login rows failed on it."""
    common = load("common")

    async def handler(request):
        return common.web.json_response({"ok": True})

    async def measure() -> dict:
        async with common.bare_app({"/doc": handler}) as url:
            return await common.get_load(url + "/doc", {}, 0.6, connections=2)

    result = asyncio.run(measure())
    assert result["rps"] > 0 and result["p99"] >= result["p50"] > 0
