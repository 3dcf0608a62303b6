"""What `vipps-sandbox serve` imports before it listens, checked in a fresh interpreter: the goal is the first 200
in under 0.35 s (issue 20), so what no first request needs is imported on first use or in the warm-up thread
once the server listens (sandbox/server.py warm), never at the start.

Cheap and independent of the machine's load: module names, not timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Loaded on first use or by the warm-up, never before the server listens.
NOT_AT_START = (
    "jwt",  # tokens: sandbox/gateway/tokens.py warm
    "yaml", "jsonschema", "openapi_schema_validator",  # specs and validators: sandbox/core/spec.py warm
    "segno",  # the landing page's QR code
    "cryptography.x509",  # the warm-up (PyJWT); the primitives the Login key uses are imported at the start
    "zoneinfo", "sysconfig",  # the warm-up, else the first ledger (sandbox/apis/report/ledger.py)
    "faker", "sandbox.fixture.generate",  # fixture generation: only with --seed
    "tinydb",  # writing fixtures only: sandbox/fixture/store.py reads them with json
    "sandbox.core.ca", "sandbox.gateway.proxy",  # --tls-port / --proxy-port only
    "sandbox.readiness.checks", "sandbox.readiness.report",  # the first readiness report
    "sandbox.scenarios.runner", "sandbox.scenarios.cli",  # other commands
)


def imported(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_cli_module_imports_no_aiohttp() -> None:
    """keys, users, readiness stay light, and serve's load_server is what imports aiohttp (with the CAs deferred)."""
    found = imported("import sys, json\nimport sandbox.cli\n"
                     "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp')))")
    assert found == []


#: serve's start in a fresh interpreter, up to listening (sandbox/cli.py main, sandbox/server.py serve_forever),
#: without the warm-up thread that runs once it listens.
UP_TO_LISTENING = """
import asyncio, json, sys
import sandbox.cli
server = sandbox.cli.load_server()
from sandbox.core import system_cas
from sandbox.core.settings import Settings
import aiohttp.connector


async def main():
    running = server.RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    await running.stop()


asyncio.run(main())
print(json.dumps({"loaded": [m for m in sys.argv[1:] if m in sys.modules], "pending": system_cas.pending(),
                  "cas": aiohttp.connector._SSL_CONTEXT_VERIFIED.cert_store_stats()["x509_ca"]}))
"""


def test_serve_imports_nothing_the_first_request_does_without() -> None:
    done = subprocess.run([sys.executable, "-c", UP_TO_LISTENING, *NOT_AT_START], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["loaded"] == [], f"imported before the server listens: {found['loaded']}"
    # aiohttp's two client TLS contexts wait for the system CAs (sandbox/core/system_cas.py): ~35 ms not spent
    assert (found["pending"], found["cas"]) == (2, 0)
