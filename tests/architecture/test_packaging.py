"""Every Python package under sandbox/ is in pyproject.toml's package list, so the wheel holds it (a package left
out imports fine from a checkout, and fails only in a fresh venv: tests/plugin's wheel test found sandbox.phone and
the issue 18 packages missing)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_in_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "sandbox").rglob("__init__.py")
             if "__pycache__" not in init.parts}
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
