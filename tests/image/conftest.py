"""The image built once per session under podman (tests/support/podman_support.py), for every test here."""

from __future__ import annotations

import shutil
import uuid

import pytest
from podman_support import Unavailable, base_image, build, engine, scratch_dir


@pytest.fixture(scope="session")
def scratch():
    path = scratch_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def built(scratch):
    """(podman, image tag, build seconds): the Dockerfile built once on the base, removed at the end."""
    try:
        base = base_image(scratch)
        podman = engine(base, scratch)
    except Unavailable as exc:
        pytest.skip(str(exc))
    tag = f"localhost/vipps-sandbox:test-{uuid.uuid4().hex[:8]}"
    seconds = build(podman, base, tag)
    yield podman, tag, seconds
    podman("rmi", "--force", tag, check=False)


@pytest.fixture
def names(built):
    """Container names for one test; every container is removed afterwards, whatever happened."""
    podman, _, _ = built
    made: list[str] = []

    def new() -> str:
        made.append(f"vipps-sandbox-test-{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield new
    for name in made:
        podman("rm", "--force", "--volumes", "--time", "0", name, check=False)
