"""The code of generated dataclass methods, compiled once and kept, for `vipps-sandbox serve`'s start.

`@dataclass` writes the source of each class's `__init__`, `__repr__`, `__eq__` (and, frozen, `__setattr__`,
`__delattr__`, `__hash__`) and compiles it with `exec`, every time the class is created: about 0.5 ms a class,
and the sandbox's modules define some 80, so about 40 ms of every start went to compiling the same text into
the same code. `kept()` wraps the server's import: while inside, the dataclasses module's `exec` (a module
global, found before the builtin) takes the code from a file of code objects keyed by their source text, and
compiles only text it has not seen, with the flags the builtin `exec` would use there (none: dataclasses.py has
no `__future__` imports, so `dont_inherit=True`). The methods are the same functions, from the same code; only
the compiling is skipped. The file is marshal data, like a .pyc, in the package's `__pycache__`, named for the
interpreter's cache tag and checked against its magic number; it is written only when something new was
compiled, atomically, with only what this run used (so it never grows with old code), and an unreadable or
unwritable one is ignored (everything then compiles, as before).
Outside `kept()` (tests, the pytest plugin, other commands) nothing changes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import marshal
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import CodeType

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "__pycache__" / \
    f"dataclass-methods.{sys.implementation.cache_tag or 'none'}.marshal"
MAGIC = importlib.util.MAGIC_NUMBER


class Kept:
    """Code objects by source text, and how many were found (`hits`) and compiled (`compiled`)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.code: dict[str, CodeType] = read(path) if path is not None else {}
        self.hits = self.compiled = 0
        self.used: set[str] = set()

    def exec(self, source, globals=None, locals=None, /):  # noqa: A002 - the builtin's own signature
        """The builtin `exec`, taking the code of a source text seen before from the file."""
        if type(source) is not str:
            return exec(source, globals, locals)
        self.used.add(source)
        code = self.code.get(source)
        if code is None:
            code = self.code[source] = compile(source, "<string>", "exec", dont_inherit=True)
            self.compiled += 1
        else:
            self.hits += 1
        return exec(code, globals, locals)

    def save(self) -> None:
        if self.path is None or not self.compiled:
            return
        temporary = None
        try:
            self.path.parent.mkdir(exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".dataclass-methods.")
            with os.fdopen(handle, "wb") as out:
                out.write(MAGIC)
                marshal.dump({source: self.code[source] for source in self.used}, out)  # what this code needs
            os.chmod(temporary, 0o644)  # as a .pyc: readable by the user a container runs as (mkstemp made it 0600)
            os.replace(temporary, self.path)
        except (OSError, ValueError):  # a read-only install: every start compiles, as without this module
            if temporary is not None:
                try:
                    os.unlink(temporary)
                except OSError:
                    pass


def read(path: Path) -> dict[str, CodeType]:
    """The kept code, or nothing when the file is missing, another interpreter's, or damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if not data.startswith(MAGIC):
        return {}
    try:
        code = marshal.loads(data[len(MAGIC):])
    except (EOFError, ValueError, TypeError):
        return {}
    if not isinstance(code, dict) or not all(type(k) is str and type(v) is CodeType for k, v in code.items()):
        return {}
    return code


@contextmanager
def kept(path: Path | None = DEFAULT_PATH) -> Iterator[Kept]:
    """While inside, dataclasses compile each method's text at most once across starts (see the docstring)."""
    store = Kept(path)
    had = "exec" in vars(dataclasses)
    own = vars(dataclasses).get("exec")
    dataclasses.exec = store.exec  # type: ignore[attr-defined]
    try:
        yield store
    finally:
        if had:
            dataclasses.exec = own  # type: ignore[attr-defined]
        else:
            del dataclasses.exec  # type: ignore[attr-defined]
        store.save()
