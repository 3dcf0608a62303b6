"""The container image under a real engine (podman): find a base, build the Dockerfile, run containers.

Where no image registry is reachable (this project's CI) the base is a Debian minbase made with
debootstrap by `.ci/image-base`; `.ci/run` starts that in the background early and names it in
VIPPS_SANDBOX_IMAGE_BASE, with VIPPS_SANDBOX_IMAGE_BASE_DONE the file its exit status is written to, which
the tests wait for. Elsewhere VIPPS_SANDBOX_IMAGE_BASE may name any image with python3 (for example
python:3.11-slim where Docker Hub is reachable); unset, a local base made earlier is reused, or made now
when debootstrap can run.

Some machines need podman's runc runtime (crun: "cgroups in hybrid mode not supported") and cannot raise
the default ulimits (containers.conf `default_ulimits = []`). The engine is probed once: the user's own
configuration first, and only when that cannot start a container, runc and a containers.conf of our own
(in a temporary directory, through CONTAINERS_CONF, for these calls only).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BASE = "localhost/vipps-sandbox-base:bookworm"
CONTAINERS_CONF = "[containers]\ndefault_ulimits = []\n"
BASE_WAIT_SECONDS = 900


class Unavailable(Exception):
    """podman cannot run containers on this machine (the reason is the message): the tests skip."""


@dataclass
class Podman:
    """`podman` with the global options and environment the probe found to work."""

    options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    def __call__(self, *args: str, check: bool = True, timeout: float = 120,
                 stdin: bytes | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *self.options, *args], env=self.env, input=stdin,
                                capture_output=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}: "
                                 f"{result.stderr.decode(errors='replace')[-3000:]}")
        return result

    def text(self, *args: str, **kwargs) -> str:
        return self(*args, **kwargs).stdout.decode().strip()

    def has_image(self, name: str) -> bool:
        return self("image", "exists", name, check=False).returncode == 0


def engine(base: str, scratch: Path) -> Podman:
    """A Podman that can start a container from `base`, or Unavailable with what each try said."""
    conf = scratch / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    tries = [Podman()]
    if runtime:
        tries.append(Podman(options=runtime))
    tries.append(Podman(options=runtime, env={**os.environ, "CONTAINERS_CONF": str(conf)}))
    said = []
    for podman in tries:
        result = podman("run", "--rm", "--network", "none", base, "true", check=False, timeout=60)
        if result.returncode == 0:
            return podman
        said.append(f"{podman.options or 'default runtime'}"
                    f"{' with default_ulimits = []' if 'CONTAINERS_CONF' in podman.env else ''}: "
                    f"{result.stderr.decode(errors='replace').strip()[-400:]}")
    raise Unavailable("podman cannot start a container here: " + " | ".join(said))


def base_image(scratch: Path, make: bool = True) -> str:
    """The base to build on: VIPPS_SANDBOX_IMAGE_BASE (waited for), a local one, or one made now (unless `make` is
    false: then Unavailable, as bench/run.py wants rather than a minute of debootstrap)."""
    if shutil.which("podman") is None:
        raise Unavailable("podman is not installed (Debian: apt-get install podman runc)")
    named = os.environ.get("VIPPS_SANDBOX_IMAGE_BASE")
    if named:
        done = os.environ.get("VIPPS_SANDBOX_IMAGE_BASE_DONE")
        if done:
            wait_for_base(Path(done))
        return named
    if Podman().has_image(LOCAL_BASE):
        return LOCAL_BASE
    if not make:
        raise Unavailable(f"no base image made yet ({LOCAL_BASE}): `python bench/image_start.py` makes one, or set "
                          "VIPPS_SANDBOX_IMAGE_BASE")
    if shutil.which("debootstrap") is None and shutil.which("debootstrap", path="/usr/sbin:/sbin") is None:
        raise Unavailable("no base image: set VIPPS_SANDBOX_IMAGE_BASE to an image with python3 "
                          "(e.g. python:3.11-slim) or install debootstrap to make one with .ci/image-base")
    if os.geteuid() != 0:
        raise Unavailable(f"no base image: run `sudo .ci/image-base {LOCAL_BASE}` once, or set "
                          "VIPPS_SANDBOX_IMAGE_BASE to an image with python3 (e.g. python:3.11-slim)")
    result = subprocess.run([str(ROOT / ".ci" / "image-base"), LOCAL_BASE, str(scratch / "base")],
                            capture_output=True, text=True, timeout=BASE_WAIT_SECONDS)
    if result.returncode != 0:
        raise AssertionError(f".ci/image-base failed: {result.stderr[-3000:]}")
    return LOCAL_BASE


def wait_for_base(done: Path) -> None:
    """Wait for .ci/run's background .ci/image-base; its failure is a failure, not a skip."""
    deadline = time.monotonic() + BASE_WAIT_SECONDS
    while not done.exists() or not done.read_text().strip():
        if time.monotonic() > deadline:
            raise AssertionError(f"the base image was not made within {BASE_WAIT_SECONDS} s ({done})")
        time.sleep(0.5)
    status = done.read_text().strip()
    if status != "0":
        log = done.with_name("log")
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f".ci/image-base exited {status}: {tail}")


def build(podman: Podman, base: str, tag: str) -> float:
    """Build the Dockerfile on `base` in docker format (an OCI image would drop HEALTHCHECK); seconds taken."""
    started = time.monotonic()
    podman("build", "--format", "docker", "--network", "host", "--layers=false",
           "--build-arg", f"PYTHON_IMAGE={base}", "--tag", tag, str(ROOT), timeout=900)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, object]:
    """One HTTP call; (status, decoded JSON body or None)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"null")
        except ValueError:
            return exc.code, raw.decode(errors="replace")


@dataclass
class Container:
    """One `podman run -d` of the image, its two ports published on loopback."""

    podman: Podman
    name: str
    test_url: str
    prod_url: str

    def wait_healthy(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                if all(call(url + "/_sandbox/health")[0] == 200 for url in (self.test_url, self.prod_url)):
                    return
            except OSError:
                pass
            state = self.podman.text("inspect", "--format", "{{.State.Status}}", self.name, check=False)
            if state not in ("running", "created", "configured") or time.monotonic() > deadline:
                raise AssertionError(f"container {self.name} is {state!r}, not healthy: {self.logs()}")
            time.sleep(0.02)

    def logs(self) -> str:
        result = self.podman("logs", self.name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")[-3000:]

    def remove(self) -> None:
        self.podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False)


def run(podman: Podman, image: str, name: str, env: dict[str, str] | None = None,
        volume: Path | None = None, wait: bool = True) -> Container:
    """Start a container from the image (podman run -d), loopback ports only; waits for health unless told not to."""
    test_port, prod_port = free_port(), free_port()
    args = ["run", "--detach", "--name", name, "--health-interval", "disable",
            "--publish", f"127.0.0.1:{test_port}:8080", "--publish", f"127.0.0.1:{prod_port}:8081"]
    for key, value in (env or {}).items():
        args += ["--env", f"{key}={value}"]
    if volume is not None:
        args += ["--volume", f"{volume}:/data"]
    podman(*args, image)
    container = Container(podman, name, f"http://127.0.0.1:{test_port}", f"http://127.0.0.1:{prod_port}")
    if wait:
        container.wait_healthy()
    return container


def scratch_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="vipps-sandbox-image-"))
