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
    raise TimeoutError(f"no 200 from {url} within {seconds} s: {container.logs()}")


def figures(image: str | None, runs: int, make_base: bool = True) -> dict:
    """Seconds from `podman run` to the first 200 on the test port, and to both ports healthy, over `runs` runs of
    `image` (None: build one now on the tests' base, and remove it after). Raises Unavailable (podman_support)
    when podman cannot run containers here, or, with `make_base` false, when no base is made yet. What
    bench/run.py calls for its image row."""
    scratch = scratch_dir()
    tag = image
    result: dict = {"runs": runs}
    try:
        base = base_image(scratch, make=make_base)
        podman = engine(base, scratch)
        if tag is None:
            tag = f"localhost/vipps-sandbox:bench-{uuid.uuid4().hex[:8]}"
            result["build_seconds"] = build(podman, base, tag)
            result["size_mb"] = int(podman.text("image", "inspect", "--format", "{{.Size}}", tag)) / 1e6
            result["base"] = base
        first, both = [], []
        try:
            for _ in range(runs):
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
        finally:
            if image is None:
                podman("rmi", "--force", tag, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result | {"first": statistics.median(first), "first_max": max(first), "both": statistics.median(both),
                     "both_max": max(both)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="an image built already (default: build one now)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    result = figures(args.image, args.runs)
    if "build_seconds" in result:
        print(f"build on {result['base']}: {result['build_seconds']:.1f} s; image {result['size_mb']:.0f} MB")
    print(f"podman run to first 200 (test port), {args.runs} runs: median {result['first']:.2f} s, "
          f"max {result['first_max']:.2f} s (goal < {GOAL_SECONDS} s: "
          f"{'yes' if result['first_max'] < GOAL_SECONDS else 'no'})")
    print(f"podman run to both ports healthy: median {result['both']:.2f} s, max {result['both_max']:.2f} s")


if __name__ == "__main__":
    main()
