"""The docs site: `mkdocs build --strict` passes, so no page has a broken link or anchor or is missing
from the nav; and the README's own links (GitHub renders them; mkdocs never sees the README) resolve."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify
from markdown_blocks import FENCE, ROOT

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_the_site_builds_strictly(tmp_path):
    done = build(ROOT, tmp_path / "site")
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "control-plane" / "index.html").is_file()
    assert (tmp_path / "site" / "dashboard.png").is_file()


def test_a_broken_link_an_unknown_anchor_or_a_page_outside_the_nav_fails_the_build(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    assert build(project, tmp_path / "site-ok").returncode == 0  # the copy builds as the original does
    cases = {
        "link": ("index.md", "\nSee [the missing page](no-such-page.md).\n", "no-such-page.md"),
        "anchor": ("index.md", "\nSee [fees](apis/report.md#no-such-anchor).\n", "#no-such-anchor"),
        "nav": ("orphan.md", "# Orphan\n", "orphan.md"),
    }
    for name, (page, text, named) in cases.items():
        case = tmp_path / name
        shutil.copytree(project, case)
        with (case / "docs" / page).open("a", encoding="utf-8") as f:
            f.write(text)
        done = build(case, tmp_path / f"site-{name}")
        output = done.stdout + done.stderr
        assert done.returncode != 0, f"a broken {name} did not fail the build:\n{output}"
        assert named in output, output


def headings(path: Path) -> set[str]:
    """The anchors mkdocs (Python-Markdown's toc) gives the headings of a page."""
    found: set[str] = set()
    fence: str | None = None  # the fence of the code block we are in, if any
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := FENCE.match(line):
            if fence is None:
                fence = match["fence"]
            elif match["fence"][0] == fence[0] and len(match["fence"]) >= len(fence) and not match["info"]:
                fence = None
            continue
        if fence is None and (match := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)):
            found.add(slugify(re.sub(r"[`*_]", "", match[1]), "-"))
    return found


def broken_links(markdown_file: Path) -> list[str]:
    broken = []
    for target in LINK.findall(markdown_file.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        path = (markdown_file.parent / file_part).resolve() if file_part else markdown_file
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in headings(path):
            broken.append(f"{target}: no heading with the anchor #{anchor}")
    return broken


def test_the_readme_links_resolve():
    readme = ROOT / "README.md"
    assert LINK.findall(readme.read_text(encoding="utf-8")), "the README links to the docs"
    assert broken_links(readme) == []


def test_the_readme_link_check_can_fail(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Some part\n\n```sh\n# Not a heading\n```\n")
    readme = tmp_path / "README.md"
    readme.write_text("[a](docs/page.md#some-part) [b](docs/page.md#not-a-heading) [c](docs/gone.md) "
                      "[d](https://example.com/x.md)\n")
    assert broken_links(readme) == ["docs/page.md#not-a-heading: no heading with the anchor #not-a-heading",
                                    "docs/gone.md: no such file"]


@pytest.mark.parametrize("name", ["mkdocs", "mkdocs-material"])
def test_the_docs_tools_are_in_the_test_extra(name):
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    assert any(re.match(rf"{re.escape(name)}\s*>=", requirement) for requirement in extra), extra
