"""--state DIR: every acknowledged change survives SIGKILL at any moment, and nothing is half-applied."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from sandbox.testing import output_tail, spawn

ROOT = Path(__file__).resolve().parents[2]
BASE = "/epayment/v1/payments"


class Server:
    """`python -m sandbox serve --state DIR` in its own process, killed with SIGKILL when told."""

    def __init__(self, state: Path, compact_bytes: int | None = None) -> None:
        self.state = state
        self.env = dict(os.environ)
        if compact_bytes is not None:  # compact often, so kills also land during and after compactions
            self.env["VIPPS_SANDBOX_COMPACT_BYTES"] = str(compact_bytes)
        self.proc: asyncio.subprocess.Process | None = None
        self.url = self.prod_url = ""

    async def start(self, session: aiohttp.ClientSession) -> None:
        # The server picks its own free ports each time (no race with other processes for them).
        self.proc, self.url, self.prod_url = await spawn(["--state", str(self.state), "--id-seed", "7"], env=self.env,
                                             cwd=str(ROOT))

    async def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()


def merchant_keys() -> dict:
    out = subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json", "--type", "merchant", "--env", "test"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out)[0]


async def token_headers(session: aiohttp.ClientSession, server: Server, keys: dict) -> dict:
    creds = {"client_id": keys["client_id"], "client_secret": keys["client_secret"],
             "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]}
    async with session.post(server.url + "/accesstoken/get", headers=creds) as resp:
        token = (await resp.json())["access_token"]
    return {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"],
            "Merchant-Serial-Number": keys["owner"]}


def create_body(reference: str) -> dict:
    return {"amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r"}


async def workload(session, server, headers, acked: dict, round_no: int, stop: asyncio.Event) -> None:
    """Creates, approves and captures payments, recording every request that got a 2xx."""
    n = 0
    while not stop.is_set():
        n += 1
        ref = f"crash-{round_no}-{n:05d}"
        try:
            async with session.post(server.url + BASE, json=create_body(ref),
                                    headers=headers | {"Idempotency-Key": f"c-{ref}"}) as resp:
                if resp.status != 201:
                    continue
            acked["created"].add(ref)
            async with session.post(f"{server.url}/epayment/v1/test/payments/{ref}/approve", json={},
                                    headers=headers) as resp:
                if resp.status != 200:
                    continue
            acked["approved"].add(ref)
            for part in (1, 2):
                async with session.post(f"{server.url}{BASE}/{ref}/capture",
                                        json={"modificationAmount": {"currency": "NOK", "value": 1000}},
                                        headers=headers | {"Idempotency-Key": f"k-{ref}-{part}"}) as resp:
                    if resp.status != 200:
                        break
                acked["captures"].add((ref, f"k-{ref}-{part}"))
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return


@pytest.mark.parametrize("compact_bytes", [None, 20_000], ids=["journal-only", "frequent-compaction"])
async def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path, compact_bytes):
    state = tmp_path / "state"
    keys = merchant_keys()
    acked = {"created": set(), "approved": set(), "captures": set()}
    rng = random.Random(1234)
    server = Server(state, compact_bytes)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            for round_no in range(5):
                await server.start(session)
                headers = await token_headers(session, server, keys)
                stop = asyncio.Event()
                tasks = [asyncio.create_task(workload(session, server, headers, acked, round_no * 10 + i, stop))
                         for i in range(4)]
                await asyncio.sleep(rng.uniform(0.3, 1.2))
                await server.kill()  # mid-flight: some requests are acknowledged, some cut off
                stop.set()
                await asyncio.gather(*tasks)
            await server.start(session)  # the files always load
            headers = await token_headers(session, server, keys)
            assert acked["captures"], "the workload acknowledged nothing: the test proves nothing"
            for ref in sorted(acked["created"]):
                async with session.get(f"{server.url}{BASE}/{ref}", headers=headers) as resp:
                    assert resp.status == 200, (ref, await resp.text())
                    payment = await resp.json()
                async with session.get(f"{server.url}{BASE}/{ref}/events", headers=headers) as resp:
                    events = await resp.json()
                captured = sum(e["amount"]["value"] for e in events if e["name"] == "CAPTURED" and e["success"])
                # nothing half-applied: the aggregate is exactly what the event log says
                assert payment["aggregate"]["capturedAmount"]["value"] == captured, (ref, payment, events)
                if ref in acked["approved"]:
                    assert payment["state"] == "AUTHORIZED", (ref, payment)
                keys_seen = {e.get("idempotencyKey") for e in events if e["name"] == "CAPTURED"}
                for acked_ref, key in acked["captures"]:
                    if acked_ref == ref:
                        assert key in keys_seen, (ref, key, events)
        finally:
            await server.kill()
    assert os.path.exists(state / "journal.jsonl")
    if compact_bytes is not None:
        assert os.path.exists(state / "snapshot.json")


async def test_tokens_outlive_a_restart_with_state_and_the_signing_key_is_private(tmp_path):
    """With --state the signing key is kept (mode 0600), so a client's token works after a restart, as
    a real API's does; without it every process signs with its own key."""
    state = tmp_path / "state"
    keys = merchant_keys()
    server = Server(state)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            await server.start(session)
            headers = await token_headers(session, server, keys)
            async with session.get(f"{server.url}{BASE}/never-made-1", headers=headers) as resp:
                assert resp.status == 404, await resp.text()  # let through: the payment is unknown
            await server.kill()
            await server.start(session)
            async with session.get(f"{server.url}{BASE}/never-made-1", headers=headers) as resp:
                assert resp.status == 404, await resp.text()
                assert resp.headers["Vipps-Sandbox-Decision"] == "allow"
        finally:
            await server.kill()
    key_file = state / "signing-key.pem"
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key_file.stat().st_mode & 0o777 == 0o600
    for name in ("journal.jsonl", "snapshot.json"):
        if (state / name).exists():
            assert "PRIVATE KEY" not in (state / name).read_text()


def test_a_damaged_signing_key_stops_the_start_with_a_clear_error(tmp_path, capsys):
    from sandbox.cli import main

    state = tmp_path / "state"
    state.mkdir()
    (state / "signing-key.pem").write_text("not a key")
    assert main(["serve", "--state", str(state), "--port", "0", "--prod-port", "0"]) == 2
    assert "signing-key.pem is not a usable signing key" in capsys.readouterr().err


def test_a_signing_key_others_can_read_is_warned_about(tmp_path, caplog):
    from sandbox.gateway.tokens import new_private_pem
    from sandbox.ops.journal import SIGNING_KEY, Journal

    journal = Journal(tmp_path)
    made = journal.kept(SIGNING_KEY, new_private_pem)
    assert (tmp_path / SIGNING_KEY).stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # made under a temporary name, then linked into place
    assert journal.kept(SIGNING_KEY, lambda: "never used") == made  # never replaced
    (tmp_path / SIGNING_KEY).chmod(0o644)
    with caplog.at_level("WARNING"):
        journal.kept(SIGNING_KEY, new_private_pem)
    assert "can be read by other users" in caplog.text


async def regenerate(session: aiohttp.ClientSession, url: str, keys: dict) -> dict:
    """Rotates the client secret and the primary subscription key, as the portal's buttons do; the new keys."""
    async with session.post(f"{url}/_sandbox/keys/{keys['client_id']}/regenerate") as resp:
        assert resp.status == 200, await resp.text()
        secret = (await resp.json())["client_secret"]
    async with session.post(f"{url}/_sandbox/keys/{keys['client_id']}/regenerate-subscription-key",
                            json={"which": "primary"}) as resp:
        assert resp.status == 200, await resp.text()
        sub = (await resp.json())["subscription_key"]
    return dict(keys, client_secret=secret, subscription_key_primary=sub)


async def completed_unit_keys(session: aiohttp.ClientSession, server: Server) -> dict:
    """A sales unit made by a completed product order, and its test keys (made at run time, not in the fixture)."""
    prod_url = server.prod_url
    async with session.get(prod_url + "/_sandbox/keys?type=partner&env=production") as resp:
        partner = next(k for k in await resp.json() if k["description"].startswith("Partner keys")
                       and "not approved" not in k["description"])
    async with session.post(prod_url + "/accesstoken/get", headers={
            "client_id": partner["client_id"], "client_secret": partner["client_secret"],
            "Ocp-Apim-Subscription-Key": partner["subscription_key_primary"]}) as resp:
        token = (await resp.json())["access_token"]
    order = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"},
             "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Crash Unit"}
    async with session.post(prod_url + "/management/v1/product-orders", json=order, headers={
            "Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": partner["subscription_key_primary"],
            "Idempotency-Key": "crash-order"}) as resp:
        assert resp.status == 201, (await resp.text()) + "\nThe server said:\n" + output_tail(server.proc)
        order_id = (await resp.json())["prefilledOrderId"]
    for action in ("view", "submit", "complete"):
        async with session.post(f"{server.url}/_sandbox/product-orders/{order_id}/{action}") as resp:
            assert resp.status == 200, await resp.text()
    async with session.get(f"{server.url}/_sandbox/keys?type=merchant&env=test") as resp:
        unit = next(k for k in await resp.json() if "Crash Unit" in k["description"])
    return unit


async def test_sigkill_keeps_payments_of_product_order_units_and_rotated_keys_through_compactions(tmp_path):
    """Issue 13, finding 1: after a compaction key sets are kept as digests, so a replay that re-authenticated
    each entry with the keys' credentials got 401s (and dropped the entries) for a sales unit made by a
    product order and for keys whose secret and primary subscription key were regenerated. The replay now
    applies each entry as the identity it was journaled as; every acknowledged payment must be back."""
    state = tmp_path / "state"
    acked = {"created": set(), "approved": set(), "captures": set()}
    rng = random.Random(4321)
    server = Server(state, compact_bytes=3_000)  # a compaction every few payments
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            await server.start(session)
            unit = await completed_unit_keys(session, server)
            fixture_keys = merchant_keys()
            for round_no in range(4):
                if round_no:
                    await server.start(session)
                # Rotated every round: the journal after each compaction holds only keys it knows as digests.
                unit = await regenerate(session, server.url, unit)
                fixture_keys = await regenerate(session, server.url, fixture_keys)
                stop = asyncio.Event()
                tasks = []
                for i, keys in enumerate((unit, fixture_keys, unit, fixture_keys)):
                    headers = await token_headers(session, server, keys)
                    tasks.append(asyncio.create_task(
                        workload(session, server, headers, acked, 100 + round_no * 10 + i, stop)))
                await asyncio.sleep(rng.uniform(0.8, 1.5))
                await server.kill()
                stop.set()
                await asyncio.gather(*tasks)
            await server.start(session)
            assert acked["captures"], "the workload acknowledged nothing: the test proves nothing"
            by_unit = {keys["owner"]: await token_headers(session, server, keys) for keys in (unit, fixture_keys)}
            assert len(by_unit) == 2
            missing = []
            for ref in sorted(acked["created"]):
                found = None
                for headers in by_unit.values():
                    async with session.get(f"{server.url}{BASE}/{ref}", headers=headers) as resp:
                        if resp.status == 200:
                            found = (headers, await resp.json())
                if found is None:
                    missing.append(ref)
                    continue
                headers, payment = found
                async with session.get(f"{server.url}{BASE}/{ref}/events", headers=headers) as resp:
                    events = await resp.json()
                if ref in acked["approved"]:
                    assert payment["state"] == "AUTHORIZED", (ref, payment)
                keys_seen = {e.get("idempotencyKey") for e in events if e["name"] == "CAPTURED"}
                assert {key for r, key in acked["captures"] if r == ref} <= keys_seen, (ref, events)
            assert not missing, f"{len(missing)} acknowledged payments are gone after the restart: {missing[:5]}"
        finally:
            await server.kill()
    assert (state / "snapshot.json").exists()


# -- Recurring (issue 15): agreement drafts, approvals and charges survive kills and compactions ----------------
RECURRING = "/recurring/v3/agreements"


def recurring_merchant_keys() -> dict:
    """Test merchant keys of an active sales unit whose configuration allows Recurring."""
    from sandbox.core.runtime import load_tables
    from sandbox.core.settings import Settings
    from sandbox.core.world import World

    world = World(load_tables(Settings()))
    allowed = {u.msn for u in world.sales_units.values()
               if u.configuration.get("recurringAllowed") and world.is_active(u.msn)}
    out = subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json", "--type", "merchant", "--env", "test"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return next(k for k in json.loads(out) if k["owner"] in allowed)


async def due_date(session: aiohttp.ClientSession, server: Server, days: int) -> str:
    from datetime import date, timedelta

    async with session.get(server.url + "/_sandbox/clock") as resp:
        now = (await resp.json())["now"]
    return (date.fromisoformat(now[:10]) + timedelta(days=days)).isoformat()


async def recurring_workload(session, server, headers, acked: dict, round_no: int, due: str,
                             stop: asyncio.Event) -> None:
    """Drafts agreements, force-accepts them (test) and creates a charge on each, recording every 2xx."""
    n = 0
    while not stop.is_set():
        n += 1
        name = f"rc-{round_no}-{n:05d}"
        draft = {"pricing": {"type": "LEGACY", "amount": 10000, "currency": "NOK"},
                 "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
                 "merchantAgreementUrl": "https://shop.example.com/a", "productName": name}
        try:
            async with session.post(server.url + RECURRING, json=draft,
                                    headers=headers | {"Idempotency-Key": f"d-{name}"}) as resp:
                if resp.status != 201:
                    continue
                agreement_id = (await resp.json())["agreementId"]
            acked["drafted"][agreement_id] = name
            async with session.patch(f"{server.url}{RECURRING}/{agreement_id}/accept",
                                     json={"phoneNumber": "4712345678"},
                                     headers=headers | {"Idempotency-Key": f"a-{name}"}) as resp:
                if resp.status != 204:
                    continue
            acked["approved"].add(agreement_id)
            charge = {"amount": 1000 + n, "description": "Monthly", "due": due, "retryDays": 0,
                      "transactionType": "DIRECT_CAPTURE"}
            async with session.post(f"{server.url}{RECURRING}/{agreement_id}/charges", json=charge,
                                    headers=headers | {"Idempotency-Key": f"c-{name}"}) as resp:
                if resp.status != 201:
                    continue
                acked["charges"][(agreement_id, (await resp.json())["chargeId"])] = 1000 + n
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return


@pytest.mark.parametrize("compact_bytes", [None, 6_000], ids=["journal-only", "frequent-compaction"])
async def test_sigkill_keeps_recurring_drafts_approvals_and_charges(tmp_path, compact_bytes):
    """Issue 15: every acknowledged draft, force accept and charge is back after kills at random points (and
    compactions, which hold the Recurring state since it has a state provider), and the charges are still on
    the clock's index: moving the clock past their due date charges every one of them."""
    state = tmp_path / "state"
    keys = recurring_merchant_keys()
    acked: dict = {"drafted": {}, "approved": set(), "charges": {}}
    rng = random.Random(1515)
    server = Server(state, compact_bytes)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            for round_no in range(4):
                await server.start(session)
                headers = await token_headers(session, server, keys)
                due = await due_date(session, server, 5)
                stop = asyncio.Event()
                tasks = [asyncio.create_task(recurring_workload(session, server, headers, acked, round_no * 10 + i,
                                                                due, stop)) for i in range(3)]
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                await server.kill()
                stop.set()
                await asyncio.gather(*tasks)
            await server.start(session)
            headers = await token_headers(session, server, keys)
            assert acked["charges"], "the workload acknowledged nothing: the test proves nothing"
            for agreement_id, name in sorted(acked["drafted"].items()):
                async with session.get(f"{server.url}{RECURRING}/{agreement_id}", headers=headers) as resp:
                    assert resp.status == 200, (agreement_id, await resp.text())
                    agreement = await resp.json()
                assert agreement["productName"] == name, agreement
                if agreement_id in acked["approved"]:
                    assert agreement["status"] == "ACTIVE", agreement
            for (agreement_id, charge_id), amount in sorted(acked["charges"].items()):
                async with session.get(f"{server.url}{RECURRING}/{agreement_id}/charges/{charge_id}",
                                       headers=headers) as resp:
                    assert resp.status == 200, (charge_id, await resp.text())
                    charge = await resp.json()
                assert charge["amount"] == amount and charge["status"] in ("PENDING", "DUE"), charge
            async with session.post(server.url + "/_sandbox/clock", json={"advanceSeconds": 8 * 86400}) as resp:
                assert resp.status == 200, await resp.text()
            headers = await token_headers(session, server, keys)
            for agreement_id, charge_id in sorted(acked["charges"]):
                async with session.get(f"{server.url}{RECURRING}/{agreement_id}/charges/{charge_id}",
                                       headers=headers) as resp:
                    charge = await resp.json()
                assert charge["status"] == "CHARGED", charge
        finally:
            await server.kill()
    if compact_bytes is not None:
        assert (state / "snapshot.json").exists()


class Receiver:
    """A merchant's webhook receiver on loopback, in this process: answers `status`, keeps what it got."""

    def __init__(self) -> None:
        self.status = 200
        self.got: list[dict] = []
        self.runner: aiohttp.web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        from aiohttp import web

        async def receive(request: web.Request) -> web.Response:
            self.got.append(json.loads(await request.read()))
            return web.Response(status=self.status)

        app = web.Application()
        app.router.add_post("/hooks", receive)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hooks"  # type: ignore[union-attr]

    def references(self) -> list[str]:
        return [body["reference"] for body in self.got]


async def attempts_for(session: aiohttp.ClientSession, server: Server, reference: str) -> list[dict]:
    async with session.get(f"{server.url}/_sandbox/webhooks/deliveries?reference={reference}") as resp:
        assert resp.status == 200, await resp.text()
        return (await resp.json())["attempts"]


async def until(check, what: str, timeout: float = 10.0):
    """Polls the async `check` until it returns something true; that value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("compact_bytes", [None, 1], ids=["journal-only", "after-a-compaction"])
async def test_sigkill_keeps_webhook_deliveries_in_flight_and_sends_them_after_the_restart(tmp_path, compact_bytes):
    """Issue 17: a delivery being retried, and one due behind it, are delivered after a SIGKILL and a restart
    with --state, at least once and with the same delivery ids; one delivered before the kill is not sent again.
    A real receiver on loopback. The deliveries come back from the journal's replay, onto the fixture or onto a
    snapshot (the first write compacts when compact_bytes is 1); test_a_compaction_keeps_the_deliveries_in_flight
    has them in the snapshot itself."""
    state = tmp_path / "state"
    keys = merchant_keys()
    receiver = Receiver()
    await receiver.start()
    server = Server(state, compact_bytes)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            await server.start(session)
            headers = await token_headers(session, server, keys)
            async with session.post(server.url + "/webhooks/v1/webhooks", headers=headers, json={
                    "url": receiver.url, "events": ["epayments.payment.created.v1"]}) as resp:
                assert resp.status == 201, await resp.text()

            async def create(ref: str) -> None:
                async with session.post(server.url + BASE, json=create_body(ref),
                                        headers=headers | {"Idempotency-Key": f"c-{ref}"}) as resp:
                    assert resp.status == 201, await resp.text()

            await create("hook-aaaa")
            await until(lambda: _delivered(session, server, "hook-aaaa"), "the first delivery")
            receiver.status = 500  # the receiver breaks: the next delivery is retried, the one after waits
            await create("hook-bbbb")
            await create("hook-cccc")
            failed = await until(lambda: _failed(session, server, "hook-bbbb"), "a failed attempt")
            b_id = failed[0]["deliveryId"]
            assert not await attempts_for(session, server, "hook-cccc")  # due, behind the one being retried
            await server.kill()
            assert receiver.references().count("hook-aaaa") == 1

            receiver.status = 200
            await server.start(session)
            after_b = await until(lambda: _delivered(session, server, "hook-bbbb"), "hook-bbbb after the restart")
            after_c = await until(lambda: _delivered(session, server, "hook-cccc"), "hook-cccc after the restart")
            assert after_b[0]["deliveryId"] == b_id and after_c[0]["deliveryId"] == b_id + 1
            got = receiver.references()
            assert got.count("hook-cccc") == 1 and got[-2:] == ["hook-bbbb", "hook-cccc"]
            assert receiver.references().count("hook-aaaa") == 1  # delivered before the kill: not again
            assert not await attempts_for(session, server, "hook-aaaa")
            await server.kill()
            # and the next restart sends nothing again: all of it is done
            await server.start(session)
            await asyncio.sleep(0.5)
            assert len(receiver.got) == receiver.references().count("hook-bbbb") + 2
            async with session.get(f"{server.url}/_sandbox/webhooks/deliveries") as resp:
                assert (await resp.json())["attempts"] == []
        finally:
            await server.kill()
            if receiver.runner is not None:
                await receiver.runner.cleanup()
    if compact_bytes is not None:
        assert (state / "snapshot.json").exists()
    assert oct((state / "in-flight-marks.jsonl").stat().st_mode & 0o777) == "0o600"


async def _delivered(session, server, reference: str) -> list[dict]:
    return [a for a in await attempts_for(session, server, reference) if a["outcome"] == "delivered"]


async def _failed(session, server, reference: str) -> list[dict]:
    return [a for a in await attempts_for(session, server, reference) if a["outcome"] == "failed"]


async def test_a_compaction_keeps_the_deliveries_in_flight(tmp_path):
    """The deliveries due or being retried when the state is compacted are in the snapshot (the journal after it
    cannot make them again): a restart sends them, with their ids, and not the one delivered before."""
    from sandbox.app import create_app
    from sandbox.core.settings import Settings
    from sandbox.ops.persistence import PERSISTENCE
    from sandbox.server import RunningSandbox

    settings = Settings(port=0, prod_port=0, state=tmp_path / "state", id_seed=7)
    keys = merchant_keys()
    receiver = Receiver()
    await receiver.start()
    running = RunningSandbox(settings, create_app(settings))
    await running.start()
    server = Server(tmp_path / "state")
    server.url = running.test_url
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            headers = await token_headers(session, server, keys)
            async with session.post(server.url + "/webhooks/v1/webhooks", headers=headers, json={
                    "url": receiver.url, "events": ["epayments.payment.created.v1"]}) as resp:
                assert resp.status == 201, await resp.text()
            for ref in ("snap-aaaa", "snap-bbbb", "snap-cccc"):
                if ref == "snap-bbbb":
                    await until(lambda: _delivered(session, server, "snap-aaaa"), "the first delivery")
                    receiver.status = 500
                async with session.post(server.url + BASE, json=create_body(ref),
                                        headers=headers | {"Idempotency-Key": f"c-{ref}"}) as resp:
                    assert resp.status == 201, await resp.text()
            b_id = (await until(lambda: _failed(session, server, "snap-bbbb"), "a failed attempt"))[0]["deliveryId"]
            running.app[PERSISTENCE].compact()  # the journal is empty now: only the snapshot knows them
            assert (tmp_path / "state" / "journal.jsonl").stat().st_size == 0
            await running.stop()
            receiver.status = 200
            running = RunningSandbox(settings, create_app(settings))
            await running.start()
            server.url = running.test_url
            after_b = await until(lambda: _delivered(session, server, "snap-bbbb"), "snap-bbbb after the restart")
            after_c = await until(lambda: _delivered(session, server, "snap-cccc"), "snap-cccc after the restart")
            assert after_b[0]["deliveryId"] == b_id and after_c[0]["deliveryId"] == b_id + 1
            assert after_b[0]["attempt"] >= 2  # the attempts before the restart count on
            assert receiver.references().count("snap-aaaa") == 1 and receiver.references()[-2:] == [
                "snap-bbbb", "snap-cccc"]
    finally:
        await running.stop()
        if receiver.runner is not None:
            await receiver.runner.cleanup()
