"""The report as a service: it outlives the request log's ring and a restart with --state, it never counts the
sandbox's own control plane, and `vipps-sandbox readiness` prints it from a running sandbox."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from integration import Integration, control, item, report

from sandbox.core.settings import Settings
from sandbox.readiness.checks import MET, NOT_MET
from sandbox.testing import spawn, started


async def test_the_summary_outlives_the_request_log_ring():
    async with started(Settings(port=0, prod_port=0, request_log_size=5)) as sandbox:
        keys = sandbox.key("merchant", "test")
        async with Integration(sandbox.url("test"), keys, keys["owner"], system_headers=False) as shop:
            assert await shop.create("acme-order-ring-1") == 201
            for n in range(12):  # far more than the ring holds
                assert await shop.create(f"acme-order-ring-{n + 2}") == 201
        log = (await control(sandbox.url("test"), "GET", "/_sandbox/requests?limit=100"))[1]["entries"]
        creates = [entry for entry in log if entry["path"] == "/epayment/v1/payments"]
        assert len(creates) <= 5  # the ring forgot most of them
        body = await report(sandbox.url("test"), keys["owner"], "epayment")
        verdict = item(body, "epayment", "G-H1")
        assert verdict["status"] == NOT_MET and "13 of 13" in verdict["evidence"]


async def test_control_plane_calls_never_count():
    async with started(Settings(port=0, prod_port=0)) as sandbox:
        keys = sandbox.key("merchant", "test")
        base = sandbox.url("test")
        async with Integration(base, keys, keys["owner"]) as shop:
            assert await shop.create("acme-order-cp-1") == 201
        for _ in range(5):  # the control plane, without system headers or keys
            await control(base, "POST", f"/_sandbox/payments/{keys['owner']}/acme-order-cp-1/approve")
            await control(base, "GET", f"/_sandbox/readiness?msn={keys['owner']}&format=json")
        body = await report(base, keys["owner"], "epayment")
        assert item(body, "epayment", "G-H1")["status"] == MET
        assert sum(row["total"] for row in body["traffic"]) == 1


async def test_the_summary_survives_a_restart_with_state(tmp_path):
    proc, url, _ = await spawn(["--state", str(tmp_path / "state")])
    try:
        status, keys = await control(url, "GET", "/_sandbox/keys?type=merchant&env=test")
        keyset = keys[0]
        async with Integration(url, keyset, keyset["owner"], system_headers=False) as shop:
            assert await shop.create("acme-order-state-1") == 201
            await shop.get("acme-order-state-1")  # a read: never journaled, only the summary keeps it
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    proc, url, _ = await spawn(["--state", str(tmp_path / "state")])
    try:
        body = await report(url, keyset["owner"], "epayment")
        assert item(body, "epayment", "EP-E2")["status"] == MET  # the GET before the restart
        assert item(body, "epayment", "G-H1")["status"] == NOT_MET
        assert "2 of 2" in item(body, "epayment", "G-H1")["evidence"]  # the create and the read
        assert not (tmp_path / "state" / "readiness.json").read_text().count(keyset["client_secret"])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)


async def test_the_command_prints_the_report(tmp_path):
    proc, url, _ = await spawn([])
    try:
        status, keys = await control(url, "GET", "/_sandbox/keys?type=merchant&env=test")
        keyset = keys[0]
        async with Integration(url, keyset, keyset["owner"]) as shop:
            assert await shop.create("acme-order-cli-1") == 201

        async def cli(*args: str) -> tuple[int, str, str]:
            run = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sandbox", "readiness", "--url", url, "--msn", keyset["owner"], *args,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await run.communicate()
            return run.returncode, out.decode(), err.decode()

        code, out, _ = await cli("--api", "epayment")
        assert code == 0 and "ePayment: " in out and "[x] EP-E1" in out and "acme-order-cli-1" in out
        assert "[?] EP-9" in out  # design guidelines: to confirm yourself
        code, out, _ = await cli("--json")
        assert code == 0 and json.loads(out)["msn"] == keyset["owner"]
        page = tmp_path / "report.html"
        code, out, _ = await cli("--html", str(page), "--api", "recurring")
        assert code == 0 and "Recurring: " in page.read_text() and "<table" in page.read_text()
        code, _, err = await cli("--api", "nope")
        assert code == 2 and "nope" in err
        assert keyset["client_secret"] not in out
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    code = (await (await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sandbox", "readiness", "--url", url, "--msn", "1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)).wait())
    assert code == 2  # the sandbox is gone: a clear error, not a traceback
