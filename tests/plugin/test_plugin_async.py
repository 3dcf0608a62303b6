"""The pytest plugin in async tests (pytest-asyncio in strict and auto mode, anyio's plugin) and in a fresh
virtual environment that holds only the built wheel and pytest.

Each user project runs in a pytest subprocess (`runpytest_subprocess`) with plugin autoloading switched off and
only the plugins it names loaded (`-p vipps_sandbox -p asyncio`), so nothing of this project's own configuration
(pytest-aiohttp, asyncio_mode=auto, xdist) leaks into it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "pytest-plugin.md"

# A test file of a user's project; {mark} is the line that makes the async runner take the test.
# Every helper of `vipps_sandbox.aio` is awaited through `live()`, which fails when the test's loop made no
# progress meanwhile: a heartbeat task on that loop must have had at least one turn during the call.
FLOW = '''
import asyncio

import aiohttp
import pytest

BASE = "/epayment/v1/payments"
REF = "order-async-0001"


class Heartbeat:
    """A task on the test's event loop that counts its turns; a call that blocks the loop lets it count none."""

    def __init__(self):
        self.beats = 0

    async def run(self):
        while True:
            self.beats += 1
            await asyncio.sleep(0)


async def live(heartbeat, awaitable):
    before = heartbeat.beats
    result = await awaitable
    assert heartbeat.beats > before, "the test's event loop stalled during a vipps_sandbox.aio call"
    return result


def amount(value):
    return {{"modificationAmount": {{"currency": "NOK", "value": value}}}}


{mark}
async def test_a_full_payment_with_aiohttp(vipps_sandbox):
    heartbeat = Heartbeat()
    beating = asyncio.ensure_future(heartbeat.run())
    aio = vipps_sandbox.aio
    try:
        keys = await live(heartbeat, aio.key("merchant", "test"))
        msn = keys["owner"]
        assert msn in [k["owner"] for k in await live(heartbeat, aio.keys(type="merchant", env="test"))]
        assert await live(heartbeat, aio.msn("premium-shop-1"))
        headers = await live(heartbeat, aio.headers(keys, msn))
        body = {{"amount": {{"currency": "NOK", "value": 4900}}, "paymentMethod": {{"type": "WALLET"}},
                "reference": REF, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example/done"}}
        async with aiohttp.ClientSession() as session:
            async def call(path, json_body=None, key=None):
                extra = {{"Idempotency-Key": key}} if key else {{}}
                method = "POST" if json_body is not None else "GET"
                async with session.request(method, aio.test_url + path, json=json_body,
                                           headers={{**headers, **extra}}) as reply:
                    return reply.status, await reply.json()

            status, created = await call(BASE, body, "create-1")
            assert status == 201, created
            assert created["reference"] == REF
            approved = await live(heartbeat, aio.approve(msn, REF))
            assert approved["state"] == "AUTHORIZED", approved
            assert (await call(f"{{BASE}}/{{REF}}/capture", amount(4900), "capture-1"))[0] == 200
            assert (await call(f"{{BASE}}/{{REF}}/refund", amount(1000), "refund-1"))[0] == 200
            status, payment = await call(f"{{BASE}}/{{REF}}")
            assert status == 200 and payment["state"] == "AUTHORIZED"
            assert payment["aggregate"]["capturedAmount"]["value"] == 4900
            assert payment["aggregate"]["refundedAmount"]["value"] == 1000
            status, events = await call(f"{{BASE}}/{{REF}}/events")
            assert [e["name"] for e in events] == ["CREATED", "AUTHORIZED", "CAPTURED", "REFUNDED"]

        fetched = await live(heartbeat, aio.request("GET", f"{{BASE}}/{{REF}}", "test", keyset=keys, msn=msn))
        assert fetched.status == 200 and fetched.json["reference"] == REF
        tokens = await live(heartbeat, asyncio.gather(*(aio.token(keys) for _ in range(4))))
        assert all(t.count(".") == 2 for t in tokens)
        logged = [(e["method"], e["path"]) for e in await live(heartbeat, aio.requests())]
        assert ("POST", BASE) in logged and ("POST", f"{{BASE}}/{{REF}}/capture") in logged

        frozen = await live(heartbeat, aio.clock.freeze())
        later = await live(heartbeat, aio.clock.advance(3600))
        assert (later - frozen).total_seconds() == 3600
        assert await live(heartbeat, aio.clock.now()) == later
        assert abs(await live(heartbeat, aio.clock.time()) - later.timestamp()) < 0.001
        await live(heartbeat, aio.clock.unfreeze())

        await live(heartbeat, aio.add_fault({{"method": "GET", "path": "/webhooks/v1/webhooks", "status": 503}}))
        assert (await live(heartbeat, aio.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys))).status == 503
        assert await live(heartbeat, aio.inbox("shop")) == []
        await live(heartbeat, aio.reset())
        assert await live(heartbeat, aio.requests()) == []
        assert (await live(heartbeat, aio.request("GET", f"{{BASE}}/{{REF}}", "test", keyset=keys,
                                                 msn=msn))).status == 404
    finally:
        beating.cancel()


def test_the_blocking_helpers_still_work_in_a_sync_test(vipps_sandbox):
    keys = vipps_sandbox.key("merchant", "test")
    assert vipps_sandbox.token(keys).count(".") == 2
    assert vipps_sandbox.requests()[0]["path"] == "/accesstoken/get"
'''

ASYNCIO_INI = """
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
"""

ANYIO_CONFTEST = """
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""

RUNNERS = {
    # name: (plugin modules loaded with -p, ini, conftest, the line before the async test)
    "pytest-asyncio strict": (["pytest_asyncio.plugin"], ASYNCIO_INI.format(mode="strict"), None,
                              "@pytest.mark.asyncio"),
    "pytest-asyncio auto": (["pytest_asyncio.plugin"], ASYNCIO_INI.format(mode="auto"), None, ""),
    "anyio": (["anyio.pytest_plugin"], "[pytest]\n", ANYIO_CONFTEST, "@pytest.mark.anyio"),
}


def user_project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runner: str | None) -> list[str]:
    """Writes the project's ini and conftest; returns the pytest arguments that load only its plugins (the
    vipps_sandbox plugin and the runner's, none for `None`)."""
    plugins, ini, conftest, _ = RUNNERS[runner] if runner else ([], "[pytest]\n", None, "")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makeini(ini)
    if conftest:
        pytester.makeconftest(conftest)
    args = ["-p", "no:cacheprovider", "-p", "vipps_sandbox"]
    for plugin in plugins:
        args += ["-p", plugin]
    return args


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_a_full_payment_in_an_async_test_never_stalls_the_loop(pytester, monkeypatch, runner):
    args = user_project(pytester, monkeypatch, runner)
    pytester.makepyfile(test_vsplugin_async=FLOW.format(mark=RUNNERS[runner][3]))
    result = pytester.runpytest_subprocess(*args, "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_a_full_payment_with_aiohttp PASSED*"])


def test_blocking_twins_would_stall_the_loop_and_the_heartbeat_sees_it(pytester, monkeypatch):
    """The stall check can fail: the same test, with `.aio` calling the blocking helpers on the loop's thread."""
    args = user_project(pytester, monkeypatch, "pytest-asyncio auto")
    pytester.makeconftest("""
        import pytest

        from sandbox import pytest_plugin

        async def on_the_loop(fn, /, *args, **kwargs):
            return fn(*args, **kwargs)

        @pytest.fixture(autouse=True)
        def _blocking_twins(monkeypatch):
            monkeypatch.setattr(pytest_plugin, "_off_the_loop", on_the_loop)
    """)
    pytester.makepyfile(test_vsplugin_async=FLOW.format(mark=""))
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*the test's event loop stalled during a vipps_sandbox.aio call*"])


def test_the_twins_run_concurrently(pytester, monkeypatch):
    """Each twin runs in a worker thread of its own: five calls slowed by 500 ms each finish together, well
    before the 2.5 s they would take one after another, and the loop ticks all the while."""
    args = user_project(pytester, monkeypatch, "pytest-asyncio auto")
    pytester.makepyfile(test_vsplugin_gather="""
        import asyncio
        import time

        async def test_gather(vipps_sandbox):
            aio = vipps_sandbox.aio
            keys = await aio.key("merchant", "test")
            await aio.add_fault({"method": "GET", "path": "/webhooks/v1/webhooks", "latencyMs": 500})
            ticks = []

            async def ticker():
                while True:
                    ticks.append(time.monotonic())
                    await asyncio.sleep(0.05)

            ticking = asyncio.ensure_future(ticker())
            started = time.monotonic()
            replies = await asyncio.gather(*(aio.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys)
                                             for _ in range(5)))
            took = time.monotonic() - started
            ticking.cancel()
            assert [r.status for r in replies] == [200] * 5
            assert took < 2.0, took
            assert len(ticks) >= 5 and max(b - a for a, b in zip(ticks, ticks[1:])) < 0.4, ticks
    """)
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)


def test_the_twins_need_an_asyncio_loop_and_say_so(pytester, monkeypatch):
    """Driven by something that is not asyncio (as under trio), a twin fails with a message naming the way out."""
    args = user_project(pytester, monkeypatch, "pytest-asyncio auto")
    pytester.makepyfile(test_vsplugin_noloop="""
        import pytest

        def test_not_asyncio(vipps_sandbox):
            coroutine = vipps_sandbox.aio.token(vipps_sandbox.key("merchant", "test"))
            with pytest.raises(RuntimeError, match="needs a running asyncio event loop"):
                coroutine.send(None)
            coroutine.close()
    """)
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)


# -- the documentation's examples -----------------------------------------------------------------------------
def doc_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", DOC.read_text(encoding="utf-8"), flags=re.S | re.M)


def doc_example(*needles: str) -> str:
    found = [b for b in doc_blocks("python") if all(n in b for n in needles)]
    assert len(found) == 1, f"docs/pytest-plugin.md: {len(found)} Python blocks with {needles}"
    return found[0]


def shell_blocks(text: str) -> list[tuple[str, str]]:
    """(the line just before the fence, the block's body) of each sh, bash or console block."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if re.fullmatch(r"```(sh|bash|console|shell)", lines[i]):
            end = lines.index("```", i + 1)
            blocks.append((lines[i - 1] if i else "", "\n".join(lines[i + 1:end])))
            i = end
        i += 1
    return blocks


def test_the_docs_shell_blocks_are_marked():
    """Every shell block of docs/pytest-plugin.md says whether CI may run it; the install blocks may not."""
    text = DOC.read_text(encoding="utf-8")
    blocks = shell_blocks(text)
    assert len(blocks) >= 4
    for before, body in blocks:
        assert re.fullmatch(r"<!-- (not runnable: .+|runnable) -->", before), (before, body)
        if "pip install" in body or "pip wheel" in body:
            assert before.startswith("<!-- not runnable: "), (before, body)
    for way in ("pip install /path/to/vipps-sandbox", '"vipps-sandbox @ git+https://github.com/OWNER/vipps-sandbox"',
                "pip wheel . -w dist", "dist/vipps_sandbox-*.whl"):
        assert way in text, way


def test_the_docs_sync_example_passes(pytester, monkeypatch):
    args = user_project(pytester, monkeypatch, None)
    pytester.makepyfile(test_vsplugin_doc=doc_example("def test_checkout_pays_with_partner_keys"))
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_the_docs_async_examples_pass(pytester, monkeypatch, runner):
    args = user_project(pytester, monkeypatch, runner)
    if runner == "pytest-asyncio strict":
        example = doc_example("@pytest.mark.asyncio", "vipps_sandbox.aio")
    elif runner == "pytest-asyncio auto":
        [ini] = [b for b in doc_blocks("ini") if "asyncio_mode = auto" in b]
        pytester.makeini(ini)
        example = doc_example("vipps_sandbox.aio", "async def", "asyncio_mode")
    else:
        pytester.makeconftest(doc_example("def anyio_backend"))
        example = doc_example("@pytest.mark.anyio", "vipps_sandbox.aio")
    pytester.makepyfile(test_vsplugin_doc=example)
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=1)


# -- a fresh virtual environment: the built wheel and pytest, nothing else -------------------------------------
FRESH_TESTS = '''
import asyncio
import sys
from pathlib import Path

import pytest

import sandbox


def test_the_package_comes_from_the_venv_and_nothing_else_is_there():
    assert Path(sandbox.__file__).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert sys.prefix != sys.base_prefix
    for absent in ("pytest_asyncio", "anyio", "pytest_aiohttp", "xdist"):
        with pytest.raises(ImportError):
            __import__(absent)


def test_a_payment_with_the_fixture(vipps_sandbox):
    keys = vipps_sandbox.keys(type="partner", env="production")[0]
    msn = keys["msns"][0]
    body = {"amount": {"currency": "NOK", "value": 4900}, "paymentMethod": {"type": "WALLET"},
            "reference": "order-fresh-1", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example/done"}
    created = vipps_sandbox.request("POST", "/epayment/v1/payments", keyset=keys, msn=msn, json_body=body,
                                    headers={"Idempotency-Key": "order-fresh-1"})
    assert created.status == 201, created.text
    vipps_sandbox.approve(msn, "order-fresh-1")
    payment = vipps_sandbox.request("GET", "/epayment/v1/payments/order-fresh-1", keyset=keys, msn=msn)
    assert payment.json["state"] == "AUTHORIZED"


@pytest.mark.vipps_sandbox(seed=7)
def test_the_marker_and_the_async_twins_without_a_runner(vipps_sandbox):
    async def main():
        keys = await vipps_sandbox.aio.key("merchant", "test")
        return await vipps_sandbox.aio.token(keys)

    assert asyncio.run(main()).count(".") == 2
'''


def clean_env() -> dict[str, str]:
    """This process's environment without what would let the new venv see this one (or this pytest run)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("PYTEST_", "PYTHON", "VIRTUAL_ENV", "COV_CORE_"))}


def run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.fresh_venv
def test_a_fresh_venv_with_only_the_wheel_and_pytest(tmp_path):
    """`pip wheel . --no-deps`, a new venv (no system site-packages) with that wheel (its dependencies from pip's
    cache or the registry) and pytest, and a user's project that uses the fixture: about a minute."""
    started = time.monotonic()
    source, dist, venv, project = (tmp_path / name for name in ("source", "dist", "venv", "project"))
    # A copy of the checkout: setuptools leaves build/ behind, and an old build/lib would put stale modules
    # into the wheel (and dirty the checkout).
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "*.egg-info", "node_modules", "__pycache__", ".*_cache"))
    run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--quiet", "-w", str(dist)], source, 300)
    [wheel] = dist.glob("vipps_sandbox-*.whl")
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", str(wheel), "pytest"], tmp_path, 600)
    installed = run([python, "-m", "pip", "list", "--format=freeze"], tmp_path, 60).stdout.lower()
    assert "vipps-sandbox==" in installed and "pytest==" in installed
    assert not re.search(r"^(pytest-asyncio|anyio|pytest-aiohttp|pytest-xdist)==", installed, flags=re.M)

    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "shop"\nversion = "1"\n', encoding="utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "test_shop.py").write_text(textwrap.dedent(FRESH_TESTS), encoding="utf-8")
    done = run([python, "-m", "pytest", "-p", "no:cacheprovider", "-v"], project, 300)
    assert "3 passed" in done.stdout, done.stdout
    assert f"rootdir: {project}" in done.stdout
    print(f"fresh venv test took {time.monotonic() - started:.0f} s")
