"""Every test talks to a real sandbox over loopback HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from sandbox.server import RunningSandbox
from sandbox.settings import Settings
from sandbox.testing import SandboxClient


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0)


@pytest.fixture
async def sandbox(settings: Settings):
    running = RunningSandbox(settings)
    await running.start()
    async with aiohttp.ClientSession() as session:
        yield SandboxClient(running, session)
    await running.stop()
