"""`vipps-sandbox scenario list` and `vipps-sandbox scenario run NAME|PATH [--base-url] [--prod-url]`.

Without a URL the scenario runs in-process: a fresh sandbox on free loopback ports, so the
story always starts from the bundled fixture.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from importlib import resources
from pathlib import Path
from typing import TextIO

import aiohttp

from sandbox.scenarios.model import Scenario, ScenarioError, load
from sandbox.scenarios.report import Printer
from sandbox.scenarios.runner import Runner, ScenarioResult, StepError, Target


def bundled_dir() -> Path:
    return Path(str(resources.files("sandbox.bundled_scenarios")))


def bundled() -> list[Path]:
    return sorted(bundled_dir().glob("*.yaml"))


def find(name_or_path: str) -> Path:
    """A path to a file, or the name of a bundled scenario (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidate = bundled_dir() / (name_or_path if name_or_path.endswith(".yaml") else f"{name_or_path}.yaml")
    if candidate.is_file():
        return candidate
    names = ", ".join(p.stem for p in bundled())
    raise ScenarioError(name_or_path, f"no such file, and no bundled scenario has this name (bundled: {names})")


async def run_async(scenario: Scenario, base_url: str | None = None, prod_url: str | None = None,
                    printer: Printer | None = None, admin_token: str | None = None) -> ScenarioResult:
    """Runs against the given URLs, or against a fresh in-process sandbox when there are none."""
    on_step = printer.step if printer is not None else None
    secrets = printer.secrets if printer is not None else None  # the printer masks what the runner sees
    if base_url or prod_url:
        async with aiohttp.ClientSession() as session:
            return await Runner(session, Target(base_url, prod_url, admin_token), secrets).run(scenario, on_step)
    from sandbox.core.settings import Settings
    from sandbox.server import RunningSandbox

    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            return await Runner(session, Target(running.test_url, running.prod_url), secrets).run(scenario, on_step)
    finally:
        await running.stop()


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.scenario_command == "list":
        for path in bundled():
            try:
                title = load(path).title
            except ScenarioError as exc:
                title = f"(broken: {exc})"
            print(f"{path.stem:<28} {title}", file=out)
        return 0
    try:
        scenario = load(find(args.scenario))
    except ScenarioError as exc:
        print(f"vipps-sandbox: scenario error: {exc}", file=sys.stderr)
        return 2
    printer = Printer(out, False if args.no_colour else None)
    printer.header(scenario)
    try:
        result = asyncio.run(run_async(scenario, args.base_url, args.prod_url, printer, args.admin_token))
    except ScenarioError as exc:  # a key spec naming keys the sandbox does not have: found before step 1
        print(f"vipps-sandbox: scenario error: {exc}", file=sys.stderr)
        return 2
    except (StepError, aiohttp.ClientError, OSError, ValueError) as exc:
        print(f"vipps-sandbox: cannot run the scenario: {printer.secrets.redact_text(str(exc))}", file=sys.stderr)
        return 2
    printer.summary(result)
    return 0 if result.ok else 1
