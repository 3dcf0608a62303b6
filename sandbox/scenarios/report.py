"""Prints a scenario as it runs: narration, request, expected vs actual with ✓ or ✗.

Colours only when the output is a terminal, so logs and CI stay plain text.
"""

from __future__ import annotations

import json
import textwrap
from typing import TextIO

from sandbox.scenarios.model import Scenario
from sandbox.scenarios.paths import MISSING
from sandbox.scenarios.runner import ScenarioResult, StepResult
from sandbox.scenarios.secrets import Secrets

COLOURS = {"ok": "32", "bad": "31", "dim": "2", "bold": "1", "title": "1;36"}


class Printer:
    def __init__(self, out: TextIO, colour: bool | None = None, secrets: Secrets | None = None) -> None:
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        #: filled by the runner (run_async hands it over): what must never be printed
        self.secrets = secrets if secrets is not None else Secrets()

    def paint(self, text: str, style: str) -> str:
        return f"\033[{COLOURS[style]}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        """Every line goes out with the secrets the run has seen masked, whatever put them there."""
        print(self.secrets.redact_text(text), file=self.out, flush=True)

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
            # masked before show() shortens a long value, so that no secret is cut into an unrecognisable part
            expected = self.secrets.redact(check.expected, check.secret)
            actual = self.secrets.redact(actual, check.secret)
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
