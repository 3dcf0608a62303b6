"""The fenced code blocks of the README and docs/*.md, with the marker that says whether CI runs them.

A shell block (```sh, ```bash, ```shell, ```console) carries one marker on the line just before its
opening fence, an HTML comment that neither GitHub nor mkdocs renders:

    <!-- runnable -->                          run it; every request it sends must get a status below 400
    <!-- runnable: errors expected -->         run it; 4xx answers are part of the example (never a 5xx)
    <!-- not runnable: <the reason> -->        never run (Docker, installs, serves forever, ...)

Blocks of other languages (python, yaml, js, text) need no marker and may not carry one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^[ \t]*<!--\s*(?P<body>(?:not )?runnable\b.*?)\s*-->[ \t]*$")
RUNNABLE = "runnable"
ERRORS_EXPECTED = "runnable: errors expected"


class MarkerError(ValueError):
    """A shell block without a marker, a marker that is not one of the three, or a marker on a non-shell block."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: str | None  # "runnable", "runnable: errors expected", "not runnable: <reason>", or None

    @property
    def runnable(self) -> bool:
        return self.marker in (RUNNABLE, ERRORS_EXPECTED)

    @property
    def errors_expected(self) -> bool:
        return self.marker == ERRORS_EXPECTED

    @property
    def where(self) -> str:
        try:
            shown = self.path.relative_to(ROOT)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"


def doc_files() -> list[Path]:
    """README.md, then every page under docs/, in a stable order."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced block of one Markdown file, in order; raises MarkerError for a missing or bad marker."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"]:
                break
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        marker = _marker(lines[i - 1]) if i > 0 else None
        where = f"{path}:{i + 1}"
        if language in SHELL_LANGUAGES:
            if marker is None:
                raise MarkerError(f"{where}: a {language} block needs a marker on the line before its fence: "
                                  "<!-- runnable -->, <!-- runnable: errors expected --> or "
                                  "<!-- not runnable: <reason> -->")
            if marker.startswith("not runnable"):
                if not marker.partition(":")[2].strip():
                    raise MarkerError(f"{where}: <!-- not runnable --> must say why: <!-- not runnable: <reason> -->")
            elif marker not in (RUNNABLE, ERRORS_EXPECTED):
                raise MarkerError(f"{where}: unknown marker <!-- {marker} -->")
            elif language == "console":
                raise MarkerError(f"{where}: a console block (with prompts) cannot be runnable; use sh")
        elif marker is not None:
            raise MarkerError(f"{where}: <!-- {marker} --> marks a {language or 'plain'} block; only shell blocks "
                              "are run")
        found.append(Block(path, i + 1, language, "\n".join(body) + "\n", marker))
        i = j + 1
    return found


def _marker(line: str) -> str | None:
    match = MARKER.match(line)
    if not match:
        return None
    return re.sub(r"\s+", " ", match["body"]).strip()
