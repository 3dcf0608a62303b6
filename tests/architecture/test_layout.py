"""The package layout of docs/architecture.md, checked on the source: no import cycles, backends free of
aiohttp, API packages independent of each other, and shared machinery that never reaches into an API.

Imports are read with `ast` (every import: top level, inside functions, under TYPE_CHECKING), so a cycle
hidden behind a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sandbox import app as app_module

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "sandbox"
SHARED = ("sandbox.core", "sandbox.gateway", "sandbox.ops")
#: Modules of an API package that hold its state and rules: no HTTP framework in them.
HTTP_MODULES = {"routes", "pages"}
#: The one error module renders every typed error into its API's format, as an aiohttp response.
RENDERS_RESPONSES = {"sandbox.core.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The sandbox modules this file imports (a `from pkg import name` counts as pkg.name when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def uses_the_web_framework(path: Path) -> bool:
    """Imports aiohttp's server side (aiohttp.web); its HTTP client (webhook deliveries) is not the framework."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import) and any(a.name.startswith("aiohttp.web") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and (
                node.module.startswith("aiohttp.web") or
                (node.module == "aiohttp" and any(a.name.startswith("web") for a in node.names))):
            return True
    return False


FILES = {module_name(path): path for path in SANDBOX.rglob("*.py")}
GRAPH = {name: imports_of(path, set(FILES)) - {name} for name, path in FILES.items()}
API_PACKAGES = sorted(p.name for p in (SANDBOX / "apis").iterdir() if (p / "__init__.py").exists())


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of modules (not packages: `sandbox.core` importing its own __init__ is no cycle), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in FILES and FILES[nxt].name == "__init__.py":
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_sees_a_cycle():
    fake = {"sandbox.core.model": {"sandbox.core.world"}, "sandbox.core.world": {"sandbox.core.model"}}
    assert find_cycle(fake) == ["sandbox.core.model", "sandbox.core.world", "sandbox.core.model"]


def test_no_import_cycles():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH) or [])


@pytest.mark.parametrize("api", API_PACKAGES)
def test_an_api_package_has_the_same_kinds_of_file(api):
    package = SANDBOX / "apis" / api
    assert (package / "routes.py").exists(), f"sandbox/apis/{api}/routes.py holds the handlers and setup(app)"
    routes = ast.parse((package / "routes.py").read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "setup" for n in routes.body)


@pytest.mark.parametrize("api", API_PACKAGES)
def test_every_api_package_is_listed_once_by_the_app(api):
    listed = [m.__name__ for m in app_module.PACKAGES]
    assert listed.count(f"sandbox.apis.{api}.routes") == 1


@pytest.mark.parametrize("api", API_PACKAGES)
def test_an_api_package_never_imports_another(api):
    mine = f"sandbox.apis.{api}"
    for name, imported in GRAPH.items():
        if name == mine or name.startswith(mine + "."):
            others = sorted(i for i in imported if i.startswith("sandbox.apis.") and not
                            (i == mine or i.startswith(mine + ".")) and i != "sandbox.apis")
            assert not others, f"{name} imports {others}: API packages stay independent"


def test_shared_machinery_never_imports_an_api_package():
    """Adding an API changes nothing in core, gateway or ops: they must not know any API package."""
    for name, imported in GRAPH.items():
        if name.startswith(SHARED):
            apis = sorted(i for i in imported if i.startswith("sandbox.apis"))
            assert not apis, f"{name} imports {apis}"


def test_backends_and_the_core_hold_no_aiohttp():
    """State and rules are plain Python: only routes.py and pages.py of an API speak HTTP."""
    offenders = []
    for name, path in FILES.items():
        parts = name.split(".")
        in_api = len(parts) >= 4 and parts[1] == "apis" and parts[3] not in HTTP_MODULES
        if (in_api or name.startswith("sandbox.core.")) and name not in RENDERS_RESPONSES and \
                uses_the_web_framework(path):
            offenders.append(name)
    assert offenders == [], offenders
