"""Test users: the fixture's `users` table (valid national identity numbers, each market's phone format, the
situations people test), the world's lookups, `vipps-sandbox users` and GET /_sandbox/users."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import aiohttp
import pytest

from sandbox.core.settings import Settings
from sandbox.core.world import World
from sandbox.fixture import national_ids, store
from sandbox.fixture.generate import generate
from sandbox.server import RunningSandbox
from sandbox.testing import SandboxClient

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DAY = date(2026, 1, 5)


# -- check digits, computed here from the definitions (not with the module's code) ---------------------------------
def fnr_ok(value: str) -> bool:
    """Fødselsnummer: with each control digit weighted 1, both weighted sums are multiples of 11."""
    d = [int(c) for c in value]
    if len(d) != 11:
        return False
    k1 = sum(w * x for w, x in zip((3, 7, 6, 1, 8, 9, 4, 5, 2, 1), d[:10], strict=True))
    return k1 % 11 == 0 and sum(w * x for w, x in zip((5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1), d, strict=True)) % 11 == 0


def cpr_mod11_ok(value: str) -> bool:
    d = [int(c) for c in value.replace("-", "")]
    return len(d) == 10 and sum(w * x for w, x in zip((4, 3, 2, 7, 6, 5, 4, 3, 2, 1), d, strict=True)) % 11 == 0


def hetu_ok(value: str) -> bool:
    return len(value) == 11 and "0123456789ABCDEFHJKLMNPRSTUVWXY"[int(value[:6] + value[7:10]) % 31] == value[10]


# Published examples: the Norwegian Wikipedia's fødselsnummer, the CPR office's example, DVV's HETU example.
@pytest.mark.parametrize(("market", "value", "born"), [
    ("NO", "15076500565", date(1965, 7, 15)),
    ("DK", "0707614285", date(1961, 7, 7)),
    ("DK", "070761-4285", date(1961, 7, 7)),
    ("FI", "131052-308T", date(1952, 10, 13)),
])
def test_published_examples_are_valid(market, value, born):
    assert national_ids.is_valid(market, value)
    assert national_ids.BIRTHDATES[market](value) == born


@pytest.mark.parametrize(("market", "value"), [
    ("NO", "15076500566"), ("NO", "15076500575"), ("NO", "1507650056"), ("NO", "32076500565"),
    ("DK", "3207614285"), ("DK", "07076142"), ("FI", "131052-308U"), ("FI", "131052Z308T"), ("FI", "131052-30T"),
    ("SE", "15076500565"),
])
def test_wrong_numbers_are_refused(market, value):
    assert not national_ids.is_valid(market, value)


def test_danish_numbers_need_no_mod11_since_2007_but_the_sandbox_s_satisfy_it():
    assert national_ids.is_valid_dk_cpr("0101001000")  # a real date, fails mod 11: valid today
    assert not national_ids.dk_cpr_mod11("0101001000")
    assert national_ids.dk_cpr_mod11("0707614285")


def test_generated_numbers_pass_the_definitions(tmp_path):
    import random

    rng = random.Random(5)
    for year in (1901, 1950, 1999, 2000, 2012, 2024):
        born = date(year, 2, 28)
        fnr, cpr, hetu = (national_ids.GENERATORS[m](born, rng) for m in ("NO", "DK", "FI"))
        assert fnr_ok(fnr) and national_ids.no_birthdate(fnr) == born, fnr
        assert cpr_mod11_ok(cpr) and national_ids.dk_birthdate(cpr) == born, cpr
        assert hetu_ok(hetu) and national_ids.fi_birthdate(hetu) == born, hetu


# -- the fixture ------------------------------------------------------------------------------------------------------
PHONE = {"NO": re.compile(r"47[49]\d{7}"), "DK": re.compile(r"45[2-8]\d{7}"), "FI": re.compile(r"358\d{9,10}")}
CHECK = {"NO": fnr_ok, "DK": cpr_mod11_ok, "FI": hetu_ok}


@pytest.fixture(scope="module")
def tables() -> dict:
    return store.read(store.default_fixture_path())


def test_every_user_is_well_formed(tables):
    users = tables["users"]
    assert len({u["phone_number"] for u in users}) == len(users) == len({u["role"] for u in users})
    for user in users:
        market = user["market"]
        assert PHONE[market].fullmatch(user["phone_number"]), user
        assert CHECK[market](user["nin"]) and national_ids.is_valid(market, user["nin"]), user
        assert national_ids.BIRTHDATES[market](user["nin"]).isoformat() == user["birthdate"], user
        assert user["given_name"] and user["family_name"] and user["role"]
        assert re.fullmatch(r"[a-z0-9.]+@example\.(no|dk|fi)", user["email"]), user
        assert isinstance(user["email_verified"], bool)
        for address in user["addresses"]:
            assert set(address) == {"address_type", "street_address", "postal_code", "region", "country",
                                    "formatted"}
            assert address["country"] == market


def test_the_situations_people_test_are_there(tables):
    world = World(tables)
    users = list(world.users.values())
    assert {u.market for u in users} == {"NO", "DK", "FI"}
    assert any(not u.addresses for u in users) and world.users_by_role["no-no-address"].addresses == []
    assert len(world.users_by_role["no-several-addresses"].addresses) >= 2
    assert "\n" in world.users_by_role["no-several-addresses"].addresses[0]["street_address"]  # unit after \n
    assert world.users_by_role["no-under-15"].age(FIXTURE_DAY) < 15
    assert world.users_by_role["fi-under-15"].age(FIXTURE_DAY) < 15
    assert world.users_by_role["no-user"].age(FIXTURE_DAY) >= 18
    assert world.users_by_role["no-email-unverified"].email_verified is False
    for user in users:  # O(1) both ways
        assert world.user(user.phone_number) is user and world.users_by_role[user.role] is user
    assert world.user("4700000000") is None and world.user(None) is None


def test_users_are_deterministic_and_left_every_other_record_as_it_was(tmp_path):
    one, two, other = generate(42), generate(42), generate(43)
    assert one["users"] == two["users"] and one["users"] != other["users"]
    # Every table of the seed-42 fixture file but users is what it was before users existed (issue 14's file).
    store.write(one, tmp_path / "f.json")
    before = json.loads((tmp_path / "f.json").read_text())
    del before["users"]
    # Issue 18 added, after everything else: merchant-level keys (the last rows of `keys`) and donation agreements.
    del before["donation_agreements"]
    before["keys"] = {n: key for n, key in before["keys"].items() if key["type"] != "merchant-level"}
    assert hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest() == PINNED_BEFORE_USERS


PINNED_BEFORE_USERS = "cd1a1403c1f71dfde2bc353fb022d230914fc5e3add4dab2f149feb842fb7dbc"


# -- the CLI and the control plane -------------------------------------------------------------------------------
def users_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "users", *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=ROOT, timeout=60, env={"PYTHONIOENCODING": "utf-8",
                                                                       "PATH": "/usr/bin:/bin"})


def test_cli_lists_every_user_and_filters_by_market(tables):
    table = users_cli()
    assert table.returncode == 0, table.stderr
    for user in tables["users"]:
        assert user["phone_number"] in table.stdout and user["role"] in table.stdout and user["nin"] in table.stdout
    assert all(len(line) <= 120 for line in table.stdout.splitlines())
    rows = json.loads(users_cli("--json", "--market", "DK").stdout)
    assert rows and {r["market"] for r in rows} == {"DK"}
    assert rows == [dict(u, name=f"{u['given_name']} {u['family_name']}",
                         age=World(tables).user(u["phone_number"]).age(FIXTURE_DAY))
                    for u in tables["users"] if u["market"] == "DK"]
    wrong = users_cli("--market", "SE")
    assert wrong.returncode == 2 and "invalid choice" in wrong.stderr
    seeded = json.loads(users_cli("--json", "--seed", "7").stdout)
    assert [r["phone_number"] for r in seeded] == [u["phone_number"] for u in generate(7)["users"]]


async def test_control_plane_lists_the_users(sandbox, tables):
    reply = await sandbox.request("GET", "/_sandbox/users", "test")
    assert reply.status == 200
    assert [r["phone_number"] for r in reply.json] == [u["phone_number"] for u in tables["users"]]
    assert all(r["nin"] and "age" in r for r in reply.json)
    finnish = await sandbox.request("GET", "/_sandbox/users?market=FI", "production")
    assert finnish.status == 200 and {r["market"] for r in finnish.json} == {"FI"}
    wrong = await sandbox.request("GET", "/_sandbox/users?market=SE", "test")
    assert wrong.status == 400 and wrong.headers["Content-Type"].startswith("application/problem+json")
    assert "NO, DK, FI" in wrong.json["detail"]


async def test_off_loopback_the_users_need_the_admin_token():
    running = RunningSandbox(Settings(host="0.0.0.0", port=0, prod_port=0, admin_token="users-admin-token-0123456789"))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            client = SandboxClient(running, session)
            refused = await client.request("GET", "/_sandbox/users", "test")
            assert refused.status == 401 and refused.headers["Vipps-Sandbox-Rule"] == "admin-token-required"
            allowed = await client.request("GET", "/_sandbox/users", "test",
                                           headers={"Authorization": "Bearer users-admin-token-0123456789"})
            assert allowed.status == 200 and allowed.json
    finally:
        await running.stop()
