"""--state DIR and snapshots, as a crash, a damaged disk or a hostile tenant would meet them (issue 13).

Each test runs real servers on loopback: in process (sandbox.testing.started) where only the state on
disk matters, and `python -m sandbox serve --state DIR` where the start must stop with a clear message.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.core.settings import Settings
from sandbox.ops import journal as journal_module
from sandbox.ops import persistence as persistence_module
from sandbox.testing import started

ROOT = Path(__file__).resolve().parents[2]
BASE = "/epayment/v1/payments"


def on_state(state: Path, **kwargs) -> Settings:
    return Settings(port=0, prod_port=0, state=state, **kwargs)


def payment(reference: str) -> dict:
    return {"amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r"}


async def create(sandbox, keys: dict, reference: str) -> None:
    reply = await sandbox.request("POST", BASE, "test", keyset=keys, msn=keys["owner"], json_body=payment(reference),
                                  headers={"Idempotency-Key": f"c-{reference}"})
    assert reply.status == 201, reply.text


async def capture(sandbox, keys: dict, reference: str, key: str) -> None:
    await sandbox.request("POST", f"/epayment/v1/test/payments/{reference}/approve", "test", keyset=keys,
                          msn=keys["owner"], json_body={})
    reply = await sandbox.request("POST", f"{BASE}/{reference}/capture", "test", keyset=keys, msn=keys["owner"],
                                  json_body={"modificationAmount": {"currency": "NOK", "value": 1000}},
                                  headers={"Idempotency-Key": key})
    assert reply.status == 200, reply.text


def serve(state: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`vipps-sandbox serve --state DIR` for a start that must fail: its exit code and output (a start that
    does not fail serves until the timeout, and the test fails on that)."""
    return subprocess.run([sys.executable, "-m", "sandbox", "serve", "--state", str(state), "--port", "0",
                           "--prod-port", "0", *extra], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=env)


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def write_lines(path: Path, entries: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, separators=(",", ":"), sort_keys=True) + "\n" for e in entries))


async def journal_of_three(state: Path) -> dict:
    """A state directory whose journal holds: create pay-1, approve pay-1, capture pay-1 (and payment-0002's create)."""
    async with started(on_state(state)) as sandbox:
        keys = sandbox.key("merchant", "test")
        await create(sandbox, keys, "payment-0001")
        await capture(sandbox, keys, "payment-0001", "cap-1")
        await create(sandbox, keys, "payment-0002")
    return keys


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("vipps-sandbox: error:")]
    assert len(message) == 1, result.stderr
    for needle in needles:
        assert needle in message[0], (needle, message[0])
    return message[0]


# -- finding 1: a replayed entry that fails stops the start ------------------------------------------------------
async def test_a_journal_entry_that_fails_to_replay_stops_the_start_naming_it(tmp_path):
    state = tmp_path / "state"
    await journal_of_three(state)
    entries = lines(state / "journal.jsonl")
    captures = [e for e in entries if e["path"].endswith("/capture")]
    assert len(captures) == 1
    captures[0]["path"] = f"{BASE}/never-created/capture"  # as if the create it needs had been lost
    write_lines(state / "journal.jsonl", entries)
    before = (state / "journal.jsonl").read_bytes()
    result = serve(state)
    assert_one_line_error(result, str(state), f"journal entry {captures[0]['seq']}", "POST",
                          f"{BASE}/never-created/capture", "status 404", "Way out")
    assert (state / "journal.jsonl").read_bytes() == before  # nothing cut off


async def test_a_journal_entry_whose_keys_are_gone_stops_the_start(tmp_path):
    state = tmp_path / "state"
    await journal_of_three(state)
    entries = lines(state / "journal.jsonl")
    entries[-1]["clientId"] = "00000000-no-such-client"
    write_lines(state / "journal.jsonl", entries)
    assert_one_line_error(serve(state), f"journal entry {entries[-1]['seq']}", "00000000-no-such-client",
                          "no longer exists")


async def test_the_replay_nonce_is_honoured_only_while_replaying(tmp_path):
    """The replay's identity header is no way in for anyone else: after the start it is ignored."""
    state = tmp_path / "state"
    async with started(on_state(state)) as sandbox:
        keys = sandbox.key("merchant", "test")
        nonce = sandbox.running.app[persistence_module.PERSISTENCE].nonce
        reply = await sandbox.request("POST", BASE, "test", json_body=payment("forged-1"), headers={
            "Idempotency-Key": "f-1", "Merchant-Serial-Number": keys["owner"],
            persistence_module.REPLAY_HEADER: nonce, persistence_module.REPLAY_CLIENT_HEADER: keys["client_id"]})
        assert reply.status == 401, reply.text


# -- finding 7: corruption stops the start; only a torn last line is ignored --------------------------------------
async def test_a_bad_line_in_the_middle_stops_the_start_and_the_journal_is_left_alone(tmp_path):
    state = tmp_path / "state"
    await journal_of_three(state)
    raw = (state / "journal.jsonl").read_bytes().splitlines(keepends=True)
    raw[1] = b'{"seq": 2, "broken\n'
    (state / "journal.jsonl").write_bytes(b"".join(raw))
    before = (state / "journal.jsonl").read_bytes()
    assert_one_line_error(serve(state), str(state / "journal.jsonl"), "line 2", "Way out")
    assert (state / "journal.jsonl").read_bytes() == before


async def test_a_gap_in_the_journal_stops_the_start(tmp_path):
    state = tmp_path / "state"
    await journal_of_three(state)
    entries = lines(state / "journal.jsonl")
    write_lines(state / "journal.jsonl", entries[:1] + entries[2:])
    assert_one_line_error(serve(state), str(state / "journal.jsonl"), "line 2", "missing")


async def test_a_missing_snapshot_stops_the_start_instead_of_replaying_onto_the_fixture(tmp_path):
    state = tmp_path / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_module, "MIN_COMPACT_BYTES", 1500)
        async with started(on_state(state)) as sandbox:
            keys = sandbox.key("merchant", "test")
            for n in range(8):
                await create(sandbox, keys, f"many-pay-{n:04d}")
    assert (state / "snapshot.json").exists() and lines(state / "journal.jsonl"), "no compaction happened"
    (state / "snapshot.json").unlink()
    assert_one_line_error(serve(state), str(state / "snapshot.json"), "missing", "Way out")


async def test_only_a_torn_last_line_is_ignored_and_cut_off(tmp_path):
    state = tmp_path / "state"
    keys = await journal_of_three(state)
    good = (state / "journal.jsonl").read_bytes()
    (state / "journal.jsonl").write_bytes(good + b'{"seq": 99, "t": 1')  # a kill in the middle of a write
    async with started(on_state(state)) as sandbox:
        reply = await sandbox.request("GET", f"{BASE}/payment-0002", "test", keyset=keys, msn=keys["owner"])
        assert reply.status == 200, reply.text
        assert (state / "journal.jsonl").read_bytes() == good  # exactly the torn tail was dropped


# -- the files are private -----------------------------------------------------------------------------------------
async def test_journal_snapshot_and_ids_key_are_private(tmp_path, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setattr(journal_module, "MIN_COMPACT_BYTES", 1500)
    old = os.umask(0o022)
    try:
        async with started(on_state(state)) as sandbox:
            keys = sandbox.key("merchant", "test")
            assert (state / "journal.jsonl").stat().st_mode & 0o777 == 0o600
            for n in range(8):
                await create(sandbox, keys, f"private-{n:04d}")
    finally:
        os.umask(old)
    assert (state / "snapshot.json").exists(), "no compaction happened"
    for name in ("journal.jsonl", "snapshot.json", "ids-key", "signing-key.pem"):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name
    key = (state / "ids-key").read_text().strip()
    assert len(bytes.fromhex(key)) == 32
    for name in ("journal.jsonl", "snapshot.json"):
        assert key not in (state / name).read_text()


# -- finding 6: secrets are not predictable from other secrets ------------------------------------------------------
def _untemper(y: int) -> int:
    y ^= y >> 18
    y ^= (y << 15) & 0xEFC60000
    t = y
    for _ in range(5):
        t = y ^ ((t << 7) & 0x9D2C5680)
    y = t & 0xFFFFFFFF
    t = y
    for _ in range(3):
        t = y ^ (t >> 11)
    return t & 0xFFFFFFFF


def predict_next_secret(secrets_seen: list[str]) -> str:
    """What a Mersenne Twister would hand out next, from 624 of its 32-bit outputs (156 secrets of 16 bytes)."""
    import random

    words = []
    for secret in secrets_seen:
        value = int.from_bytes(base64.b64decode(secret), "big")
        words += [(value >> (32 * i)) & 0xFFFFFFFF for i in range(4)]  # getrandbits fills the low word first
    clone = random.Random()
    clone.setstate((3, tuple(_untemper(w) for w in words[-624:]) + (624,), None))
    return base64.b64encode(clone.getrandbits(128).to_bytes(16, "big")).decode()


async def test_a_client_secret_cannot_be_predicted_from_earlier_ones_under_state(tmp_path):
    """With --state the ids came from random.Random(seed): 156 secrets a tenant saw gave away the next one.
    They come from HMAC-SHA256 in counter mode under a key kept in DIR now."""
    async with started(on_state(tmp_path / "state")) as sandbox:
        client_id = sandbox.key("merchant", "test")["client_id"]
        seen = []
        for _ in range(157):
            reply = await sandbox.request("POST", f"/_sandbox/keys/{client_id}/regenerate", "test")
            seen.append(reply.json["client_secret"])
    assert predict_next_secret(seen[:156]) != seen[156]
    assert len(set(seen)) == len(seen)


async def test_id_seed_runs_are_reproducible_and_state_runs_replay_the_same_secrets(tmp_path):
    async def secrets_of(settings: Settings, n: int) -> list[str]:
        async with started(settings) as sandbox:
            client_id = sandbox.key("merchant", "test")["client_id"]
            return [(await sandbox.request("POST", f"/_sandbox/keys/{client_id}/regenerate", "test")).json[
                "client_secret"] for _ in range(n)]

    assert await secrets_of(Settings(port=0, prod_port=0, id_seed=5), 3) == \
        await secrets_of(Settings(port=0, prod_port=0, id_seed=5), 3)
    assert await secrets_of(Settings(port=0, prod_port=0, id_seed=5), 3) != \
        await secrets_of(Settings(port=0, prod_port=0, id_seed=6), 3)
    state = tmp_path / "state"
    first = await secrets_of(on_state(state), 3)
    async with started(on_state(state)) as sandbox:  # the replay hands out the same three again, then new ones
        after = [(await sandbox.request("POST", f"/_sandbox/keys/{sandbox.key('merchant', 'test')['client_id']}"
                                        "/regenerate", "test")).json["client_secret"] for _ in range(2)]
        # the replayed regenerations ended on the last secret: it works, the earlier ones do not
        keys = dict(sandbox.key("merchant", "test"), client_secret=first[-1])
        assert keys["client_secret"] not in after
    assert not set(after) & set(first)


# -- finding 8: a failed compaction never fails an applied write ----------------------------------------------------
async def test_a_failing_compaction_never_turns_an_acknowledged_write_into_a_500(tmp_path, monkeypatch, caplog):
    state = tmp_path / "state"
    monkeypatch.setattr(journal_module, "MIN_COMPACT_BYTES", 1500)
    monkeypatch.setattr(persistence_module, "COMPACT_RETRY_SECONDS", 0.0)
    async with started(on_state(state)) as sandbox:
        (state / "snapshot.json").mkdir()  # the snapshot cannot be written: every compaction fails
        keys = sandbox.key("merchant", "test")
        with caplog.at_level("ERROR", logger="sandbox.persistence"):
            for n in range(30):  # past the threshold (which a directory's size raises a little)
                await create(sandbox, keys, f"deep-pay-{n:04d}")  # each must be a 201
        failures = [r for r in caplog.records if "compacting" in r.getMessage()]
        assert len(failures) == 1, [r.getMessage() for r in caplog.records]  # logged once, not per write
        assert sandbox.running.app[persistence_module.PERSISTENCE].compaction_failures >= 2  # and retried
        (state / "snapshot.json").rmdir()
        await create(sandbox, keys, "deep-pay-after")  # the retry works now
        assert (state / "snapshot.json").is_file()
    async with started(on_state(state)) as sandbox:
        for ref in [f"deep-pay-{n:04d}" for n in range(30)] + ["deep-pay-after"]:
            reply = await sandbox.request("GET", f"{BASE}/{ref}", "test", keyset=keys, msn=keys["owner"])
            assert reply.status == 200, (ref, reply.text)


async def test_a_failing_compaction_of_a_reset_still_keeps_the_reset(tmp_path, monkeypatch):
    state = tmp_path / "state"
    async with started(on_state(state)) as sandbox:
        (state / "snapshot.json").mkdir()  # the reset's compaction fails
        keys = sandbox.key("merchant", "test")
        await create(sandbox, keys, "before-reset-1")
        assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
        await create(sandbox, keys, "after-reset-1")
    (state / "snapshot.json").rmdir()
    async with started(on_state(state)) as sandbox:
        gone = await sandbox.request("GET", f"{BASE}/before-reset-1", "test", keyset=keys, msn=keys["owner"])
        kept = await sandbox.request("GET", f"{BASE}/after-reset-1", "test", keyset=keys, msn=keys["owner"])
        assert (gone.status, kept.status) == (404, 200), (gone.text, kept.text)


# -- finding 14: URLs name the port they are read through ---------------------------------------------------------
async def test_redirect_and_prefill_urls_name_the_real_port_after_a_replay(tmp_path):
    state = tmp_path / "state"
    order = {"businessIdentifier": {"scheme": "business:NO:ORG", "id": "974760673"},
             "productType": "PAYMENT_INTEGRATION", "salesUnitName": "Url Unit"}
    async with started(on_state(state)) as sandbox:
        keys = sandbox.key("merchant", "test")
        await create(sandbox, keys, "url-pay-0001")
        partner = next(k for k in sandbox.keys("partner", "production") if "not approved" not in k["description"])
        made = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                     json_body=order, headers={"Idempotency-Key": "url-order"})
        assert made.status == 201, made.text
        order_id = made.json["prefilledOrderId"]
    async with started(on_state(state)) as sandbox:
        test_url, prod_url = sandbox.running.test_url, sandbox.running.prod_url
        got = await sandbox.request("GET", f"{BASE}/url-pay-0001", "test", keyset=keys, msn=keys["owner"])
        assert got.json["redirectUrl"].startswith(test_url + "/_sandbox/landing?"), (test_url, got.json)
        again = await sandbox.request("POST", BASE, "test", keyset=keys, msn=keys["owner"],
                                      json_body=payment("url-pay-0001"), headers={"Idempotency-Key": "c-url-pay-0001"})
        assert again.json["redirectUrl"].startswith(test_url + "/"), again.json
        details = await sandbox.request("GET", f"/management/v2/product-orders/{order_id}/details", "production",
                                        keyset=partner)
        assert details.json["productOrderUrl"] == f"{prod_url}/_sandbox/product-orders/{order_id}", details.json
        replayed = await sandbox.request("POST", "/management/v1/product-orders", "production", keyset=partner,
                                         json_body=order, headers={"Idempotency-Key": "url-order"})
        assert replayed.json["prefillUrl"] == f"{prod_url}/_sandbox/product-orders/{order_id}", replayed.json


# -- finding 16: restore is all or nothing ---------------------------------------------------------------------------
async def test_a_failed_restore_leaves_inboxes_and_secrets_as_they_were(tmp_path):
    snapshots = tmp_path / "snapshots"
    async with started(Settings(port=0, prod_port=0, snapshot_dir=snapshots)) as sandbox:
        keys = sandbox.key("merchant", "test")
        secret = (await sandbox.request("POST", f"/_sandbox/keys/{keys['client_id']}/regenerate", "test")).json[
            "client_secret"]
        assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "good"})).status == 200
        good = json.loads((snapshots / "good.json").read_text())
        table = next(name for name in good if name.startswith("payments."))
        good[table] = {"1": {"not": "a payment"}}  # world and clock load, then the payments fail
        (snapshots / "bad.json").write_text(json.dumps(good))
        posted = await sandbox.request("POST", "/_sandbox/inbox/keep-me", "test", json_body={"hello": 1})
        assert posted.status in (200, 201, 202, 204), posted.text
        reply = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "bad"})
        assert reply.status == 400 and reply.headers["Content-Type"].startswith("application/problem+json")
        assert "payments" in reply.json["detail"]
        inbox = await sandbox.request("GET", "/_sandbox/inbox/keep-me", "test")
        assert len(inbox.json["deliveries"]) == 1, inbox.json
        # the directory is the very one from before, secrets and all (not a dump of digests)
        assert sandbox.key("merchant", "test")["client_secret"] == secret


async def test_a_snapshot_file_holding_a_json_list_is_a_400(tmp_path):
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    (snapshots / "list.json").write_text("[1, 2, 3]")
    async with started(Settings(port=0, prod_port=0, snapshot_dir=snapshots)) as sandbox:
        reply = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "list"})
        assert reply.status == 400 and "not a sandbox snapshot" in reply.json["detail"], reply.text


async def test_a_corrupt_snapshot_at_start_is_one_clear_line(tmp_path):
    state = tmp_path / "state"
    await journal_of_three(state)
    (state / "snapshot.json").write_text('{"_snapshot": [')
    assert_one_line_error(serve(state), str(state / "snapshot.json"), "Way out")
    (state / "snapshot.json").write_text("[1, 2]")
    assert_one_line_error(serve(state), str(state / "snapshot.json"))


# -- finding 5: snapshot paths stay in the snapshot directory --------------------------------------------------------
async def test_snapshot_and_restore_paths_are_confined_to_the_snapshot_directory(tmp_path):
    snapshots, outside = tmp_path / "snapshots", tmp_path / "outside"
    outside.mkdir()
    snapshots.mkdir()
    (outside / "victim.json").write_text("precious")
    async with started(Settings(port=0, prod_port=0, snapshot_dir=snapshots)) as sandbox:
        for path in (str(outside / "victim.json"), str(outside / "new" / "x.json"), "../outside/victim.json",
                     "sub/../../outside/victim.json", "~/x.json", "notes.txt", "link/victim.json"):
            if path.startswith("link/"):
                (snapshots / "link").symlink_to(outside)  # a link inside that leads out
            for route in ("snapshot", "restore"):
                reply = await sandbox.request("POST", f"/_sandbox/{route}", "test", json_body={"path": path})
                assert reply.status == 400, (route, path, reply.text)
                assert reply.headers["Content-Type"].startswith("application/problem+json")
                assert reply.headers["Vipps-Sandbox-Rule"] == "snapshot-path-outside-snapshot-dir", path
                assert "inside the snapshot directory" in reply.json["detail"]
        assert (outside / "victim.json").read_text() == "precious"
        assert not (outside / "new").exists()
        (snapshots / "named.json").symlink_to(outside / "victim.json")
        reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "named"})
        assert reply.status == 400 and (outside / "victim.json").read_text() == "precious"
        inside = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": "sub/ok.json"})
        assert inside.status == 200 and (snapshots / "sub" / "ok.json").is_file(), inside.text
        back = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": "sub/ok.json"})
        assert back.status == 200, back.text


async def test_with_state_snapshots_go_to_its_snapshots_directory_never_over_its_files(tmp_path):
    state = tmp_path / "state"
    async with started(on_state(state)) as sandbox:
        reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "mine"})
        assert reply.status == 200 and reply.json["path"] == str((state / "snapshots" / "mine.json").resolve())
        text = (state / "snapshots" / "mine.json").read_text()
        assert '"counter"' not in text and '"internal"' not in text  # never the id generator's state
    async with started(on_state(state, snapshot_dir=state)) as sandbox:
        reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": "snapshot.json"})
        assert reply.status == 400, reply.text


@pytest.mark.parametrize("name", ["ids-key"])
def test_a_damaged_ids_key_stops_the_start(tmp_path, name):
    state = tmp_path / "state"
    state.mkdir()
    (state / name).write_text("not hex")
    os.chmod(state / name, 0o600)
    assert_one_line_error(serve(state), str(state / name))
