"""Examples never rot: every runnable shell block of the README and docs/ runs against a live sandbox.

One real sandbox (`python -m sandbox serve` in a subprocess, on free loopback ports) serves the whole
module. Each Markdown file is run against a freshly reset sandbox, its runnable blocks in order in ONE
bash process (`set -euo pipefail`), so the variables a block defines carry over to the next blocks of
that file, as they do for a reader who pastes them into one shell. The blocks' `localhost:8080` and
`localhost:8081` (or `127.0.0.1:...`) are pointed at the live server's test and production ports.

A block must exit 0, and (read from the sandbox's own request log after each block) no request it sent
may have got a 5xx that no injected fault explains; a block marked `<!-- runnable -->` (rather than
`<!-- runnable: errors expected -->`) must get no 4xx either. The markers are described in
markdown_blocks.py; a shell block without one fails `test_every_shell_block_is_marked`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from markdown_blocks import ROOT, Block, MarkerError, blocks, doc_files

from sandbox.testing import SERVING

VENV_BIN = Path(sys.executable).parent
PORTS = re.compile(r"\b(?:localhost|127\.0\.0\.1):(8080|8081)\b")
DONE = "@@docs-example-block-done@@"
FILE_TIMEOUT = 60.0
START_TIMEOUT = 30.0


def clean_env() -> dict[str, str]:
    """The environment without any VIPPS_SANDBOX_* setting, with this venv's bin (vipps-sandbox) first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIPPS_SANDBOX_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def runnable_files() -> list[Path]:
    found = []
    for path in doc_files():
        try:
            if any(b.runnable for b in blocks(path)):
                found.append(path)
        except MarkerError:  # reported by test_every_shell_block_is_marked
            continue
    return found


class LiveSandbox:
    """`python -m sandbox serve --port 0 --prod-port 0`, with the URLs it prints."""

    def __init__(self, cwd: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", "0", "--prod-port", "0"],
                                     cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        self.urls: dict[str, str] = {}
        found = threading.Event()

        def read() -> None:  # keeps draining, so a full pipe never blocks the server
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                match = SERVING.search(line)
                if match:
                    self.urls[match.group(1)] = match.group(2)
                    if len(self.urls) == 2:
                        found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(START_TIMEOUT) or len(self.urls) < 2:
            self.stop()
            raise AssertionError("the sandbox did not start:\n" + "".join(self.output))
        self.test_url, self.prod_url = self.urls["test"], self.urls["production"]

    def call(self, method: str, path: str) -> dict:
        request = urllib.request.Request(self.test_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def newest_log_id(self) -> int:
        entries = self.call("GET", "/_sandbox/requests?limit=1")["entries"]
        return entries[0]["id"] if entries else 0

    def point_at(self, text: str) -> str:
        """The block's text with the documented ports replaced by the live server's."""
        hosts = {"8080": self.test_url.removeprefix("http://"), "8081": self.prod_url.removeprefix("http://")}
        return PORTS.sub(lambda m: hosts[m.group(1)], text)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    sandbox = LiveSandbox(tmp_path_factory.mktemp("served-from"))
    yield sandbox
    sandbox.stop()


def script(sandbox: LiveSandbox, runnable: list[Block], logs: Path, since: int) -> str:
    """One bash script: the blocks in order, each followed by a checkpoint that saves the request-log
    entries it caused (GET /_sandbox/requests is itself never logged) and prints a marker."""
    prologue = f"""set -euo pipefail
__docs_log={sandbox.test_url}/_sandbox/requests
__docs_since={since}
__docs_done() {{
  command curl -s --max-time 10 "$__docs_log?limit=1000&since=$__docs_since" > "{logs}/block-$1.json"
  __docs_since=$(command python3 -c 'import json, sys
entries = json.load(open(sys.argv[1]))["entries"]
print(max([e["id"] for e in entries], default=int(sys.argv[2])))' "{logs}/block-$1.json" "$__docs_since")
  printf '\\n%s %s\\n' '{DONE}' "$1"
}}
"""
    parts = [prologue]
    for index, block in enumerate(runnable):
        parts.append(f"# ---- {block.where}\n{sandbox.point_at(block.text)}\n__docs_done {index}\n")
    return "".join(parts)


def shown(block: Block, output: str) -> str:
    numbered = "\n".join(f"    {line}" for line in block.text.rstrip("\n").splitlines())
    return f"{block.where} ({block.marker}):\n{numbered}\n--- its output:\n{output.rstrip()}\n"


def bad_answers(block: Block, entries: list[dict]) -> list[str]:
    bad = []
    for entry in entries:
        status = entry.get("status")
        if status is None or entry.get("fault"):
            continue
        if status >= 500 or (status >= 400 and not block.errors_expected):
            error, decision = entry.get("error") or {}, entry.get("decision") or {}
            why = error.get("reason") or error.get("rule") or (
                decision.get("reason") if decision.get("allowed") is False else "the log gives no reason")
            bad.append(f"{entry['method']} {entry['path']} [{entry['environment']}] -> {status}: {why}")
    return bad


def run_file(sandbox: LiveSandbox, path: Path, work: Path) -> None:
    runnable = [b for b in blocks(path) if b.runnable]
    assert runnable, f"{path} has no runnable block"
    sandbox.call("POST", "/_sandbox/reset")
    logs = work / "logs"
    logs.mkdir(parents=True)
    cwd = work / "cwd"
    cwd.mkdir(parents=True)
    text = script(sandbox, runnable, logs, sandbox.newest_log_id())
    (work / "script.sh").write_text(text)
    started = time.monotonic()
    try:
        done = subprocess.run(["bash", str(work / "script.sh")], cwd=cwd, env=clean_env(), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=FILE_TIMEOUT)
        output, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        code = None
    pieces = re.split(rf"\n?{re.escape(DONE)} (\d+)\n", output)
    finished = len(pieces) // 2  # blocks that reached their checkpoint
    outputs = pieces[0::2]
    if code != 0 or finished < len(runnable):
        failing = runnable[min(finished, len(runnable) - 1)]
        why = "timed out" if code is None else f"exited {code}"
        pytest.fail(f"a runnable block {why} after {time.monotonic() - started:.1f} s:\n"
                    + shown(failing, outputs[finished] if finished < len(outputs) else ""), pytrace=False)
    problems = []
    for index, block in enumerate(runnable):
        entries = json.loads((logs / f"block-{index}.json").read_text())["entries"]
        bad = bad_answers(block, entries)
        if bad:
            problems.append(shown(block, outputs[index]) + "--- answers it should not have got:\n  "
                            + "\n  ".join(bad) + "\n")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", runnable_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_succeed_against_a_live_sandbox(live, path, tmp_path):
    run_file(live, path, tmp_path)


def test_every_shell_block_is_marked():
    errors = []
    for path in doc_files():
        try:
            blocks(path)
        except MarkerError as exc:
            errors.append(str(exc))
    assert not errors, "\n".join(errors)


def test_the_readme_flow_is_runnable_and_complete():
    """The first-ten-minutes flow is run, not just shown: a scenario, then token, create, approve, capture,
    refund and events, all in runnable blocks of README.md."""
    readme = ROOT / "README.md"
    assert readme in runnable_files()
    ran = "".join(b.text for b in blocks(readme) if b.runnable)
    for step in ("scenario run", "/accesstoken/get", "/epayment/v1/payments ", "/_sandbox/landing/approve",
                 "/capture", "/refund", "/events"):
        assert step in ran, f"the README's runnable blocks do not do {step!r}"
    assert "jq" not in re.findall(r"\b\w+\b", ran), "the README's flow may assume curl and python3 only"


# -- the checks themselves can fail ------------------------------------------------------------------

def test_an_unmarked_or_wrongly_marked_block_is_refused(tmp_path):
    page = tmp_path / "page.md"
    with pytest.raises(MarkerError, match="needs a marker"):
        blocks(page, "Text.\n\n```sh\necho hi\n```\n")
    with pytest.raises(MarkerError, match="must say why"):
        blocks(page, "<!-- not runnable -->\n```bash\necho hi\n```\n")
    with pytest.raises(MarkerError, match="unknown marker"):
        blocks(page, "<!-- runnable: sometimes -->\n```sh\necho hi\n```\n")
    with pytest.raises(MarkerError, match="only shell blocks"):
        blocks(page, "<!-- runnable -->\n```yaml\na: 1\n```\n")
    ok = blocks(page, "<!-- runnable -->\n```sh\necho hi\n```\n\n```python\nx = 1\n```\n"
                      "- item\n\n  <!-- not runnable: needs Docker -->\n  ```sh\n  docker ps\n  ```\n")
    assert [(b.language, b.runnable, b.text) for b in ok] == [
        ("sh", True, "echo hi\n"), ("python", False, "x = 1\n"), ("sh", False, "docker ps\n")]


def test_a_failing_block_fails_with_its_text_and_output(live, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\n```sh\nGREETING=hello\n```\n\n<!-- runnable -->\n```sh\n"
                    "echo \"$GREETING from block two\"\nfalse\necho never\n```\n")
    with pytest.raises(pytest.fail.Exception) as failed:
        run_file(live, page, tmp_path / "work")
    message = str(failed.value)
    assert "exited 1" in message and "page.md:7" in message and "false" in message
    output = message.split("--- its output:", 1)[1]
    assert "hello from block two" in output and "never" not in output


def test_an_undefined_variable_fails(live, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- runnable -->\n```sh\ncurl -s localhost:8080/_sandbox/keys/$CLIENT_ID/regenerate\n```\n")
    with pytest.raises(pytest.fail.Exception, match="CLIENT_ID: unbound variable"):
        run_file(live, page, tmp_path / "work")


def test_an_error_answer_fails_a_block_not_marked_for_errors(live, tmp_path):
    page = tmp_path / "page.md"
    text = "```sh\ncurl -s -X POST localhost:8081/_sandbox/payments/123456/no-such-order/approve\n```\n"
    page.write_text("<!-- runnable -->\n" + text)
    with pytest.raises(AssertionError, match=r"no-such-order/approve \[production\] -> 404"):
        run_file(live, page, tmp_path / "strict")
    page.write_text("<!-- runnable: errors expected -->\n" + text)
    run_file(live, page, tmp_path / "lenient")
