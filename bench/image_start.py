"""Benchmark (run by hand): the container image from `podman run` to its first 200.

    python bench/image_start.py               # builds the image on the base the tests use, then 5 runs
    python bench/image_start.py --image TAG   # an image built already
    python bench/image_start.py --runs 10

Goal (issue 17): the image starts to its first 200 within 2 s of `podman run`. Each run times from just
before `podman run --detach` to the first 200 of `GET /_sandbox/health` on the test port (published on
loopback), and to both ports healthy. With a build it prints the build time and the image size too.
The base and the engine options are found as in tests/image/test_image_podman.py (tests/support/podman_support.py).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "support"))

from podman_support import Container, base_image, build, call, engine, run, scratch_dir  # noqa: E402

GOAL_SECONDS = 2.0


def first_200(container: Container, url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if call(url + "/_sandbox/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"no 200 from {url} within {seconds} s: {container.logs()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="an image built already (default: build one now)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    scratch = scratch_dir()
    tag = args.image
    try:
        base = base_image(scratch)
        podman = engine(base, scratch)
        if tag is None:
            tag = f"localhost/vipps-sandbox:bench-{uuid.uuid4().hex[:8]}"
            seconds = build(podman, base, tag)
            size = int(podman.text("image", "inspect", "--format", "{{.Size}}", tag))
            print(f"build on {base}: {seconds:.1f} s; image {size / 1e6:.0f} MB")
        first, both = [], []
        for _ in range(args.runs):
            name = f"vipps-sandbox-bench-{uuid.uuid4().hex[:8]}"
            started = time.monotonic()
            container = run(podman, tag, name, env={"VIPPS_SANDBOX_ADMIN_TOKEN": "bench"}, wait=False)
            try:
                first_200(container, container.test_url)
                first.append(time.monotonic() - started)
                first_200(container, container.prod_url)
                both.append(time.monotonic() - started)
            finally:
                container.remove()
        print(f"podman run to first 200 (test port), {args.runs} runs: median {statistics.median(first):.2f} s, "
              f"max {max(first):.2f} s (goal < {GOAL_SECONDS} s: {'yes' if max(first) < GOAL_SECONDS else 'no'})")
        print(f"podman run to both ports healthy: median {statistics.median(both):.2f} s, max {max(both):.2f} s")
        if args.image is None:
            podman("rmi", "--force", tag, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
