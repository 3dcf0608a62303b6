"""Prints a scenario as it runs: narration, request, expected vs actual with ✓ or ✗.

Colours only when the output is a terminal, so logs and CI stay plain text.
"""

from __future__ import annotations

import json
import re
import textwrap
from typing import TextIO

from sandbox.scenarios.model import Scenario
from sandbox.scenarios.paths import MISSING
from sandbox.scenarios.runner import ScenarioResult, StepResult

#: Values of fields with these names are secrets: printed as their last 4 characters only.
SECRET_LABEL = re.compile(r"(token|secret|subscription_key|password)", re.IGNORECASE)
COLOURS = {"ok": "32", "bad": "31", "dim": "2", "bold": "1", "title": "1;36"}


class Printer:
    def __init__(self, out: TextIO, colour: bool | None = None) -> None:
        self.out = out
        self.colour = out.isatty() if colour is None else colour

    def paint(self, text: str, style: str) -> str:
        return f"\033[{COLOURS[style]}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def header(self, scenario: Scenario) -> None:
        self.line(self.paint(f"▶ {scenario.title}", "title") + self.paint(f"  ({scenario.source})", "dim"))
        paragraphs = [p for p in scenario.story.split("\n\n") if p.strip()]
        for index, paragraph in enumerate(paragraphs):
            if index:
                self.line()
            self.line(textwrap.fill(" ".join(paragraph.split()), 100, initial_indent="  ", subsequent_indent="  "))
        self.line()

    def step(self, result: StepResult) -> None:
        step = result.step
        mark = self.paint("✓", "ok") if result.ok else self.paint("✗", "bad")
        self.line(f"{mark} {self.paint(f'Step {step.number}.', 'bold')} {step.narration}")
        if result.request_line:
            self.line(self.paint(f"    → {result.request_line}", "dim"))
        if result.caller:
            self.line(self.paint(f"      as {result.caller}", "dim"))
        for check in result.checks:
            sign = self.paint("✓", "ok") if check.ok else self.paint("✗", "bad")
            actual = check.actual
            if isinstance(check.expected, dict) and "exists" in check.expected:
                actual = "(missing)" if actual is MISSING else "(present)"
                self.line(f"    {sign} {check.label}: expected {show(check.expected)}, got {actual}")
                continue
            expected = check.expected
            if SECRET_LABEL.search(check.label):
                expected, actual = mask(expected), mask(actual)
            self.line(f"    {sign} {check.label}: expected {show(expected)}, got {show(actual)}")
        if result.reason:
            self.line(f"      reason: {result.reason}")
        if result.error:
            self.line(f"    {self.paint('✗', 'bad')} {result.error}")

    def summary(self, result: ScenarioResult) -> None:
        passed = sum(1 for s in result.steps if s.ok)
        total = len(result.steps)
        text = f"{passed} of {total} steps passed"
        self.line()
        self.line(self.paint(f"✓ {text}", "ok") if result.ok else self.paint(f"✗ {text}", "bad"))


def show(value: object) -> str:
    if value is MISSING:
        return "(missing)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else json.dumps(value,
                                                                                               ensure_ascii=False)
    return text if len(text) <= 160 else text[:157] + "..."


def mask(value: object) -> object:
    return "…" + value[-4:] if isinstance(value, str) and len(value) > 4 else value
