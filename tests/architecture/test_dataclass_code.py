"""The dataclass methods `vipps-sandbox serve` keeps compiled (sandbox/core/dataclass_code.py): the same code as
compiling them afresh, for every dataclass the server imports, checked in fresh interpreters."""

from __future__ import annotations

import dataclasses
import json
import marshal
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.core import dataclass_code

ROOT = Path(__file__).resolve().parents[2]

#: Imports the server as `serve` does (kept at PATH, or not at all), then prints a fingerprint of every dataclass
#: loaded: each generated method's code, annotations and defaults, and the class's signature.
FINGERPRINT = """
import dataclasses, inspect, json, re, sys
from pathlib import Path
from sandbox import cli
from sandbox.core import dataclass_code, system_cas
path = sys.argv[1]
if path == "-":
    with system_cas.deferred():
        from sandbox import server
    counts = None
else:
    with system_cas.deferred(), dataclass_code.kept(Path(path)) as kept:
        from sandbox import server
    counts = [kept.hits, kept.compiled]
    assert "exec" not in vars(dataclasses)
prints = {}
for module in list(sys.modules.values()):
    for name, cls in list(vars(module).items()):
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)) or cls.__module__ != module.__name__:
            continue
        methods = {}
        for method in ("__init__", "__repr__", "__eq__", "__setattr__", "__delattr__", "__hash__"):
            fn = cls.__dict__.get(method)
            fn = getattr(fn, "__wrapped__", fn)
            if inspect.isfunction(fn):
                c = fn.__code__
                methods[method] = [c.co_code.hex(), repr(c.co_consts), c.co_names, c.co_varnames, c.co_flags,
                                   c.co_filename, repr(fn.__annotations__), repr(fn.__defaults__),
                                   repr(fn.__kwdefaults__), fn.__qualname__]
        prints[f"{cls.__module__}.{cls.__qualname__}"] = [str(inspect.signature(cls)), methods]
text = re.sub(r" at 0x[0-9a-f]+", " at 0x...", json.dumps({"counts": counts, "prints": prints}))  # default values
print(text)
"""


def fingerprint(path: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FINGERPRINT, path], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_kept_code_is_the_code_compiled_afresh(tmp_path):
    path = tmp_path / "kept.marshal"
    plain = fingerprint("-")
    first = fingerprint(str(path))  # compiles everything, writes the file
    again = fingerprint(str(path))  # compiles nothing
    sandbox_classes = [name for name in plain["prints"] if name.startswith("sandbox.")]
    assert len(sandbox_classes) > 50
    assert first["prints"] == plain["prints"] == again["prints"]
    assert first["counts"][1] > 150 and path.exists() and path.stat().st_mode & 0o777 == 0o644
    assert again["counts"] == [first["counts"][0] + first["counts"][1], 0]


def test_a_damaged_or_foreign_file_is_ignored_and_rewritten(tmp_path):
    path = tmp_path / "kept.marshal"
    for content in (b"", b"not marshal at all", dataclass_code.MAGIC + b"\xff\x00garbage",
                    b"\x00\x00\r\n" + marshal.dumps({"x": compile("1", "<string>", "exec")}),  # another magic
                    dataclass_code.MAGIC + marshal.dumps({"x": 1})):  # not code objects
        path.write_bytes(content)
        assert dataclass_code.read(path) == {}
        with dataclass_code.kept(path) as kept:
            @dataclasses.dataclass(frozen=True)
            class Point:
                x: int
                y: int = 0
        assert kept.compiled > 0 and Point(1) == Point(1, 0) and hash(Point(1)) == hash(Point(1, 0))
        assert dataclass_code.read(path)  # rewritten, whole


def test_a_read_only_place_changes_nothing(tmp_path):
    missing = tmp_path / "no-such-dir" / "deeper" / "kept.marshal"
    with dataclass_code.kept(missing) as kept:
        @dataclasses.dataclass
        class Thing:
            name: str
            tags: list = dataclasses.field(default_factory=list)
    assert kept.compiled > 0 and not missing.exists()
    assert Thing("a") == Thing("a", []) and repr(Thing("a")) == "test_a_read_only_place_changes_nothing.<locals>." \
        "Thing(name='a', tags=[])"
    assert "exec" not in vars(dataclasses)


def test_the_flags_of_the_caller_are_not_inherited(tmp_path):
    """This module has `from __future__ import annotations`; the builtin exec in dataclasses.py would not use it,
    so neither does the kept code: a generated __init__'s annotations are the types, not strings."""
    with dataclass_code.kept(tmp_path / "kept.marshal"):
        @dataclasses.dataclass
        class Typed:
            count: int

    @dataclasses.dataclass
    class Plain:
        count: int

    assert Typed.__init__.__code__.co_flags == Plain.__init__.__code__.co_flags
    assert Typed.__init__.__annotations__ == Plain.__init__.__annotations__


@pytest.mark.parametrize("source", [compile("x = 1", "<string>", "exec"), b"x = 2"])
def test_what_is_not_text_goes_to_the_builtin(tmp_path, source):
    kept = dataclass_code.Kept(None)
    space: dict = {}
    kept.exec(source, space)
    assert space["x"] in (1, 2) and kept.hits == kept.compiled == 0


def test_the_file_keeps_only_what_the_code_uses(tmp_path):
    path = tmp_path / "kept.marshal"
    with dataclass_code.kept(path):
        @dataclasses.dataclass
        class Old:
            gone: int
    old = set(dataclass_code.read(path))
    with dataclass_code.kept(path) as kept:
        @dataclasses.dataclass
        class New:
            here: str
    kept_now = set(dataclass_code.read(path))
    assert kept.compiled > 0 and old and kept_now and not old & kept_now
