"""The control plane over real HTTP: key regeneration, reset, snapshot and restore."""

from __future__ import annotations

import base64
import json
import time

import pytest

from sandbox.core.settings import Settings

WEBHOOKS = "/webhooks/v1/webhooks"


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(port=0, prod_port=0, snapshot_dir=tmp_path / "snapshots")


def std_headers(keyset: dict, secret: str | None = None, sub: str | None = None) -> dict:
    return {"client_id": keyset["client_id"], "client_secret": secret or keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": sub or keyset["subscription_key_primary"]}


async def token_reply(sandbox, keyset: dict, secret: str | None = None, sub: str | None = None):
    return await sandbox.request("POST", "/accesstoken/get", keyset["environment"],
                                 headers=std_headers(keyset, secret, sub))


async def call_with(sandbox, token: str, sub: str, env: str = "test"):
    return await sandbox.request("GET", WEBHOOKS, env, headers={"Authorization": f"Bearer {token}",
                                                                "Ocp-Apim-Subscription-Key": sub})


async def test_regenerate_secret_refuses_the_old_secret_and_its_tokens(sandbox):
    merchant = sandbox.key("merchant", "test")
    sub = merchant["subscription_key_primary"]
    old_token = await sandbox.token(merchant)
    reply = await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    assert reply.status == 200
    assert set(reply.json) == {"client_id", "client_secret"} and reply.json["client_id"] == merchant["client_id"]
    new_secret = reply.json["client_secret"]
    assert new_secret != merchant["client_secret"]

    refused = await token_reply(sandbox, merchant)
    # Azure AD's wrong-secret body; the sandbox's own words are in its header
    assert refused.status == 401 and refused.json["error_codes"] == [7000215]
    assert "regenerated" in refused.headers["Vipps-Sandbox-Reason"]
    assert refused.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    stale = await call_with(sandbox, old_token, sub)
    assert stale.status == 401 and "regenerated" in stale.json["message"]
    assert stale.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"

    fresh = await token_reply(sandbox, merchant, secret=new_secret)
    assert fresh.status == 200
    assert (await call_with(sandbox, fresh.json["access_token"], sub)).status == 200
    # The key list shows the new secret.
    assert sandbox.key("merchant", "test", msn=merchant["owner"])["client_secret"] == new_secret


async def test_regenerate_secret_of_miami_keys(sandbox):
    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    reply = await sandbox.request("POST", f"/_sandbox/keys/{management['client_id']}/regenerate", "production")
    assert reply.status == 200
    basic = base64.b64encode(f"{management['client_id']}:{management['client_secret']}".encode()).decode()
    old = await sandbox.request("POST", "/miami/v1/token", "production", data="grant_type=client_credentials",
                                headers={"Authorization": f"Basic {basic}",
                                         "Content-Type": "application/x-www-form-urlencoded"})
    assert old.status == 401 and old.json["error"] == "invalid_client" and "regenerated" in old.json[
        "error_description"]
    management["client_secret"] = reply.json["client_secret"]
    assert await sandbox.token(management)


async def test_subscription_key_rotation_without_downtime(sandbox):
    merchant = sandbox.key("merchant", "test")
    old_primary, secondary = merchant["subscription_key_primary"], merchant["subscription_key_secondary"]
    token = await sandbox.token(merchant)
    reply = await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate-subscription-key",
                                  "test", json_body={"which": "primary"})
    assert reply.status == 200
    assert reply.json["client_id"] == merchant["client_id"] and reply.json["which"] == "primary"
    new_primary = reply.json["subscription_key"]
    assert new_primary not in (old_primary, secondary)

    old = await call_with(sandbox, token, old_primary)
    assert old.status == 401 and "regenerated" in old.json["message"]
    assert old.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    # The same token keeps working with the secondary key and with the new primary: no downtime.
    assert (await call_with(sandbox, token, secondary)).status == 200
    assert (await call_with(sandbox, token, new_primary)).status == 200
    refused = await token_reply(sandbox, merchant, sub=old_primary)
    assert refused.status == 401 and "regenerated" in refused.json["message"]
    assert (await token_reply(sandbox, merchant, sub=secondary)).status == 200
    assert (await token_reply(sandbox, merchant, sub=new_primary)).status == 200


async def test_regeneration_refuses_unknown_keys_and_bad_bodies(sandbox):
    reply = await sandbox.request("POST", "/_sandbox/keys/no-such-client/regenerate", "test")
    assert reply.status == 404 and reply.headers["Content-Type"].startswith("application/problem+json")
    assert "no-such-client" in reply.json["detail"]
    reply = await sandbox.request("POST", "/_sandbox/keys/no-such-client/regenerate-subscription-key", "test",
                                  json_body={"which": "primary"})
    assert reply.status == 404
    merchant = sandbox.key("merchant", "test")
    path = f"/_sandbox/keys/{merchant['client_id']}/regenerate-subscription-key"
    for body in ({"which": "tertiary"}, {}, ["primary"], {"which": "primary", "extra": 1}):
        reply = await sandbox.request("POST", path, "test", json_body=body)
        assert reply.status == 400, body
        assert reply.json["status"] == 400
    assert (await sandbox.request("POST", path, "test")).status == 400  # no body
    assert (await sandbox.request("POST", path, "test", data="{not json",
                                  headers={"Content-Type": "application/json"})).status == 400
    management = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    reply = await sandbox.request("POST", f"/_sandbox/keys/{management['client_id']}/regenerate-subscription-key",
                                  "test", json_body={"which": "primary"})
    assert reply.status == 400 and "miami" in reply.json["detail"]


async def test_reset_returns_to_the_fixture(sandbox):
    merchant = sandbox.key("merchant", "test")
    await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 86400})
    fault = await sandbox.request("POST", "/_sandbox/faults", "test", json_body={"path": "/x", "status": 500})
    assert fault.status == 201
    assert (await token_reply(sandbox, merchant)).status == 401

    reply = await sandbox.request("POST", "/_sandbox/reset", "production")
    assert reply.status == 200 and reply.json["status"] == "reset"
    assert (await token_reply(sandbox, merchant)).status == 200
    assert (await sandbox.request("GET", "/_sandbox/faults", "test")).json == []
    assert abs(sandbox.runtime.clock.time() - time.time()) < 60


async def test_snapshot_and_restore_roundtrip(sandbox, tmp_path):
    merchant = sandbox.key("merchant", "test")
    regenerated = await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    new_secret = regenerated.json["client_secret"]
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3 * 86400, "freeze": True})
    frozen_at = sandbox.runtime.clock.time()
    token = await sandbox.token(dict(merchant, client_secret=new_secret))
    target = tmp_path / "snapshots" / "saved.json"

    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})
    assert saved.status == 200, saved.text
    assert saved.json["path"] == str(target.resolve()) and {"world", "clock"} <= set(saved.json["providers"])
    text = target.read_text()
    assert token not in text  # never tokens
    # Never secrets either: digests stand in for them, so the restored keys still work.
    assert new_secret not in text and merchant["client_secret"] not in text
    assert merchant["subscription_key_primary"] not in text

    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    assert (await token_reply(sandbox, merchant)).status == 200
    assert sandbox.runtime.clock.time() < frozen_at - 86400

    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": target.name})
    assert restored.status == 200, restored.text
    assert {"world", "clock"} <= set(restored.json["restored"])
    assert sandbox.runtime.clock.time() == frozen_at and sandbox.runtime.clock.frozen
    refused = await token_reply(sandbox, merchant)
    assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    assert (await token_reply(sandbox, merchant, secret=new_secret)).status == 200
    # A token made before the snapshot still works: the key's version was saved with it.
    assert (await call_with(sandbox, token, merchant["subscription_key_primary"])).status == 200


async def test_snapshot_by_default_and_by_name(sandbox, settings):
    merchant = sandbox.key("merchant", "test")
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test")).status == 200
    assert (settings.snapshot_dir / "snapshot.json").is_file()
    await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    named = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"name": "after-regen"})
    assert named.json["path"] == str(settings.snapshot_dir / "after-regen.json")

    assert (await sandbox.request("POST", "/_sandbox/restore", "test")).status == 200  # the default one
    assert (await token_reply(sandbox, merchant)).status == 200
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"name": "after-regen"})).status \
        == 200
    assert (await token_reply(sandbox, merchant)).status == 401


async def test_snapshot_and_restore_refuse_bad_input(sandbox, tmp_path):
    snapshots = tmp_path / "snapshots"
    missing = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": "no.json"})
    assert missing.status == 404 and missing.headers["Content-Type"].startswith("application/problem+json")
    snapshots.mkdir(exist_ok=True)
    (snapshots / "garbage.json").write_text("{not json")
    reply = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": "garbage.json"})
    assert reply.status == 400 and "not a sandbox snapshot" in reply.json["detail"]
    (snapshots / "other.json").write_text('{"_default": {}}')
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": "other.json"})).status \
        == 400
    for body in ({"name": "../escape"}, {"path": 3}, {"name": "a", "path": "b"}, {"nom": "x"}, [1]):
        reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body=body)
        assert reply.status == 400, body
    (snapshots / "file-not-dir").write_text("")
    reply = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": "file-not-dir/x.json"})
    assert reply.status == 400


async def test_a_broken_snapshot_leaves_the_state_as_it_was(sandbox, tmp_path):
    target = tmp_path / "snapshots" / "s.json"
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})).status \
        == 200
    text = target.read_text().replace('"offset"', '"offsetx"')
    target.write_text(text)
    merchant = sandbox.key("merchant", "test")
    await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate", "test")
    reply = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": target.name})
    assert reply.status == 400 and "clock" in reply.json["detail"]
    # The world loaded before the clock failed was put back: the regenerated secret still holds.
    assert (await token_reply(sandbox, merchant)).status == 401


async def test_snapshots_hold_webhook_registrations(sandbox, tmp_path):
    merchant = sandbox.key("merchant", "test")
    hook = await sandbox.request("POST", WEBHOOKS, "test", keyset=merchant, json_body={
        "url": "https://shop.example.com/hooks", "events": ["epayments.payment.refunded.v1"]})
    assert hook.status == 201, hook.text
    target = tmp_path / "snapshots" / "hooks.json"
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})
    assert "webhooks" in saved.json["providers"]
    await sandbox.request("POST", "/_sandbox/reset", "test")
    assert (await sandbox.request("GET", WEBHOOKS, "test", keyset=merchant)).json["webhooks"] == []
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": target.name})
    assert "webhooks" in restored.json["restored"], restored.text
    listed = (await sandbox.request("GET", WEBHOOKS, "test", keyset=merchant)).json["webhooks"]
    assert listed == [{"id": hook.json["id"], "url": "https://shop.example.com/hooks",
                       "events": ["epayments.payment.refunded.v1"]}]
    deleted = await sandbox.request("DELETE", f"{WEBHOOKS}/{hook.json['id']}", "test", keyset=merchant)
    assert deleted.status in (200, 204)  # the indexes were rebuilt too


async def test_snapshots_hold_payments_with_their_events_and_idempotency(sandbox, tmp_path):
    merchant = sandbox.key("merchant", "test")
    body = {"amount": {"currency": "NOK", "value": 10000}, "paymentMethod": {"type": "WALLET"},
            "reference": "order-snap-1", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r"}
    created = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant, json_body=body,
                                    headers={"Idempotency-Key": "snap-1"})
    assert created.status == 201, created.text
    approved = await sandbox.request("POST", "/epayment/v1/test/payments/order-snap-1/approve", "test",
                                     keyset=merchant, json_body={})
    assert approved.status == 200, approved.text
    pending = dict(body, reference="order-snap-2")
    assert (await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant, json_body=pending,
                                  headers={"Idempotency-Key": "snap-2"})).status == 201
    events_path = "/epayment/v1/payments/order-snap-1/events"
    before = (await sandbox.request("GET", events_path, "test", keyset=merchant)).json
    target = tmp_path / "snapshots" / "payments.json"
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})
    assert "payments" in saved.json["providers"]

    await sandbox.request("POST", "/_sandbox/reset", "test")
    gone = await sandbox.request("GET", "/epayment/v1/payments/order-snap-1", "test", keyset=merchant)
    assert gone.status == 404
    restored = await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": target.name})
    assert "payments" in restored.json["restored"], restored.text

    after = (await sandbox.request("GET", events_path, "test", keyset=merchant)).json
    assert after == before and [e["name"] for e in after] == ["CREATED", "AUTHORIZED"]
    replay = await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant, json_body=body,
                                   headers={"Idempotency-Key": "snap-1"})
    assert replay.status == 201 and replay.json == created.json  # the idempotency record came back too
    captured = await sandbox.request("POST", "/epayment/v1/payments/order-snap-1/capture", "test", keyset=merchant,
                                     json_body={"modificationAmount": {"currency": "NOK", "value": 10000}},
                                     headers={"Idempotency-Key": "snap-cap"})
    assert captured.status == 200, captured.text
    events = (await sandbox.request("GET", events_path, "test", keyset=merchant)).json
    assert events[-1]["name"] == "CAPTURED"
    assert int(events[-1]["pspReference"]) > max(int(e["pspReference"]) for e in before)  # the counter went on
    # The pending payment still expires on time: its place in the expiry queue came back.
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 3600})
    expired = await sandbox.request("GET", "/epayment/v1/payments/order-snap-2", "test", keyset=merchant)
    assert expired.json["state"] == "EXPIRED"


async def test_restore_gives_back_exactly_the_state_that_was_saved(sandbox, tmp_path):
    merchant = sandbox.key("merchant", "test")
    await sandbox.request("POST", f"/_sandbox/keys/{merchant['client_id']}/regenerate-subscription-key", "test",
                          json_body={"which": "secondary"})
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 7200})
    payment = {"amount": {"currency": "NOK", "value": 2500}, "paymentMethod": {"type": "WALLET"},
               "reference": "order-exact", "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/r"}
    assert (await sandbox.request("POST", "/epayment/v1/payments", "test", keyset=merchant, json_body=payment,
                                  headers={"Idempotency-Key": "exact"})).status == 201
    target = tmp_path / "snapshots" / "exact.json"

    def state() -> str:
        return json.dumps(sandbox.runtime.dump_state(), sort_keys=True)

    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    saved = state()
    assert (await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})).status \
        == 200
    await sandbox.request("POST", "/_sandbox/reset", "test")
    assert state() != saved
    assert (await sandbox.request("POST", "/_sandbox/restore", "test", json_body={"path": target.name})).status \
        == 200
    assert state() == saved


async def test_regenerated_secrets_never_repeat_and_snapshots_hold_no_generator_state(sandbox, tmp_path):
    """A secret given out once is not handed out again after a reset, and a snapshot holds nothing that
    would let anyone compute the next one (the ids generator's state stays out of it)."""
    merchant = sandbox.key("merchant", "test")
    path = f"/_sandbox/keys/{merchant['client_id']}/regenerate"
    first = (await sandbox.request("POST", path, "test")).json["client_secret"]
    assert (await sandbox.request("POST", "/_sandbox/reset", "test")).status == 200
    second = (await sandbox.request("POST", path, "test")).json["client_secret"]
    assert first != second
    target = tmp_path / "snapshots" / "s.json"
    saved = await sandbox.request("POST", "/_sandbox/snapshot", "test", json_body={"path": target.name})
    assert "ids" not in saved.json["providers"]
    assert '"internal"' not in target.read_text()
