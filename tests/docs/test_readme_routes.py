"""The control plane's routes table (docs/reference/control-plane.md, which the README's map of the docs
links to) lists every /_sandbox route of the policy, so none goes undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.gateway import policy

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "control-plane.md"
HEADING = "## Control plane routes (/_sandbox/)"


def table_rows(text: str) -> set[tuple[str, str]]:
    """(METHOD, path) of each row of the table under HEADING, up to the next heading."""
    assert HEADING in text, f"{PAGE.name} has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n#", 1)[0]
    return {(m[1], m[2]) for m in re.finditer(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| .+\|$", section,
                                              re.MULTILINE)}


def test_every_sandbox_route_of_the_policy_is_in_the_control_plane_table():
    listed = table_rows(PAGE.read_text(encoding="utf-8"))
    routes = {(r.method, r.path) for r in policy.ROUTES.values() if r.path.startswith("/_sandbox")}
    assert len(routes) > 20
    missing = sorted(routes - listed)
    assert not missing, f"add these to the {HEADING} table of {PAGE.relative_to(ROOT)}: {missing}"
    unknown = sorted(listed - routes)
    assert not unknown, f"these rows of {PAGE.relative_to(ROOT)} are not routes of sandbox/policy.py: {unknown}"


def test_the_check_fails_for_a_missing_row():
    text = PAGE.read_text(encoding="utf-8")
    listed = table_rows(text.replace("| POST | `/_sandbox/reset` |", "| POST | `/_sandbox/reboot` |"))
    assert ("POST", "/_sandbox/reset") not in listed
    assert ("POST", "/_sandbox/reset") in table_rows(text)


def test_the_readme_links_to_the_control_plane_page():
    assert "(docs/reference/control-plane.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
