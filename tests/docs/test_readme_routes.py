"""The README's control plane table lists every /_sandbox route of the policy, so none goes undocumented."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.gateway import policy

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Control plane routes (/_sandbox/)"


def table_rows(text: str) -> set[tuple[str, str]]:
    """(METHOD, path) of each row of the table under HEADING, up to the next heading."""
    assert HEADING in text, f"README.md has no section {HEADING!r}"
    section = text.split(HEADING, 1)[1].split("\n#", 1)[0]
    return {(m[1], m[2]) for m in re.finditer(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| .+\|$", section,
                                              re.MULTILINE)}


def test_every_sandbox_route_of_the_policy_is_in_the_readme_table():
    listed = table_rows(README.read_text(encoding="utf-8"))
    routes = {(r.method, r.path) for r in policy.ROUTES.values() if r.path.startswith("/_sandbox")}
    assert len(routes) > 20
    missing = sorted(routes - listed)
    assert not missing, f"add these to the README's {HEADING} table: {missing}"


def test_the_check_fails_for_a_missing_row():
    text = README.read_text(encoding="utf-8")
    listed = table_rows(text.replace("| POST | `/_sandbox/reset` |", "| POST | `/_sandbox/reboot` |"))
    assert ("POST", "/_sandbox/reset") not in listed
    assert ("POST", "/_sandbox/reset") in table_rows(text)
