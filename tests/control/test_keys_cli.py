"""`vipps-sandbox keys` (run as a subprocess) and GET /_sandbox/keys: the role of each key set's owner, a
`role` filter, a table that fits 120 columns on the bundled fixture without losing a client_id or leaking a
secret, and `--json` with every field it had before plus `role`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.fixture import store

ROOT = Path(__file__).resolve().parents[2]
#: The fields `keys --json` had before roles were added: none may go missing.
FIELDS_BEFORE = {"type", "environment", "client_id", "client_secret", "subscription_key_primary",
                 "subscription_key_secondary", "owner", "msns", "description"}
#: Login (issue 16) added `redirect_uris`: the merchant keys' registered Login redirect URIs, [] for the others.
SECRETS = ("client_secret", "subscription_key_primary", "subscription_key_secondary")


def keys_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", "keys", *args], capture_output=True, text=True,
                          encoding="utf-8", cwd=ROOT, timeout=60, env=dict(os.environ, PYTHONIOENCODING="utf-8"))


@pytest.fixture(scope="module")
def fixture_tables() -> dict:
    return store.read(store.default_fixture_path())


@pytest.fixture(scope="module")
def expected_roles(fixture_tables) -> dict[str, str | None]:
    """client_id -> the role of its owner, straight from the bundled fixture's tables."""
    owners = {p["id"]: p["role"] for p in fixture_tables["partners"]}
    owners |= {f"{m['scheme']}/{m['id']}": m["role"] for m in fixture_tables["merchants"]}
    owners |= {u["msn"]: u["role"] for u in fixture_tables["sales_units"]}
    owners = {owner: role or None for owner, role in owners.items()}
    return {record["client_id"]: owners[record["owner"]] for record in fixture_tables["keys"]}


@pytest.fixture(scope="module")
def table_output() -> str:
    result = keys_cli()
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def json_rows() -> list[dict]:
    result = keys_cli("--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


#: Issue 12 found 33 key sets; issue 14 added five sales units with a configuration to test (restricted-no,
#: restricted-dk, restricted-fi, login-only, direct-capture), each with merchant keys for test and production.
#: Issue 18 added merchant-level keys (Donations): two sets for premium-shop (a rotation), one for independent.
KEY_SETS = 33 + 5 * 2 + 3


def test_the_bundled_fixture_has_the_key_sets_of_the_issues(fixture_tables, expected_roles):
    assert len(fixture_tables["keys"]) == KEY_SETS
    assert {"premium", "premium-shop-1", "accountant", "basic"} <= set(expected_roles.values())
    assert None in expected_roles.values()  # some owners have no role: the table must cope


def test_every_line_of_the_table_fits_120_columns(table_output):
    lines = table_output.splitlines()
    assert len(lines) > KEY_SETS
    too_wide = [(len(line), line) for line in lines if len(line) > 120]
    assert not too_wide, too_wide


def test_the_table_names_every_key_set_by_its_full_client_id_and_role(table_output, expected_roles):
    lines = table_output.splitlines()
    header = next(line for line in lines if line.startswith("type"))
    assert header.split() == ["type", "env", "role", "owner", "client_id"]
    for client_id, role in expected_roles.items():
        row = [line for line in lines if client_id in line]
        assert len(row) == 1, (client_id, row)  # whole, on one line, never cut
        assert row[0].split()[2] == (role or "-"), row[0]
    assert "…" not in header and not any(line.endswith(("…", "...")) for line in lines)


def test_the_table_masks_every_secret_and_says_where_the_full_values_are(table_output, fixture_tables):
    first_line = table_output.splitlines()[0]
    assert f"{KEY_SETS} key sets" in first_line and "--json" in first_line
    for record in fixture_tables["keys"]:
        for name in SECRETS:
            secret = record[name]
            if secret:
                assert secret not in table_output, name
                assert "…" + secret[-4:] in table_output  # enough to tell key sets apart


def test_the_table_shows_every_msn_each_key_set_reaches(table_output, json_rows):
    text = " ".join(table_output.split())  # a long MSN list wraps onto the next line, it is not cut
    for row in json_rows:
        label = "MSNs " if len(row["msns"]) != 1 else "MSN "
        assert label + ", ".join(row["msns"]) in text, row["client_id"]
        assert row["description"] in text


def test_json_keeps_every_field_it_had_and_adds_the_role(json_rows, fixture_tables, expected_roles):
    assert len(json_rows) == KEY_SETS
    by_id = {record["client_id"]: record for record in fixture_tables["keys"]}
    for row in json_rows:
        assert set(row) == FIELDS_BEFORE | {"role", "redirect_uris"}
        assert row["role"] == expected_roles[row["client_id"]]
        record = by_id[row["client_id"]]
        for name in (*SECRETS, "owner", "type", "environment"):
            assert row[name] == record[name], name  # in full: this is where people copy them from
        assert row["msns"] and row["description"]


@pytest.mark.parametrize("role", ["premium", "premium-shop-1", "accountant", "self-managed"])
def test_role_filters_the_table_and_the_json(role, expected_roles):
    wanted = {client_id for client_id, owner_role in expected_roles.items() if owner_role == role}
    assert wanted
    rows = json.loads(keys_cli("--json", "--role", role).stdout)
    assert {row["client_id"] for row in rows} == wanted and all(row["role"] == role for row in rows)
    table = keys_cli("--role", role)
    assert table.returncode == 0, table.stderr
    shown = {client_id for client_id in expected_roles if client_id in table.stdout}
    assert shown == wanted
    assert all(len(line) <= 120 for line in table.stdout.splitlines())


def test_role_combines_with_type_and_env(expected_roles):
    rows = json.loads(keys_cli("--json", "--role", "premium-shop-1", "--env", "test", "--type", "merchant").stdout)
    assert len(rows) == 1 and rows[0]["environment"] == "test" and rows[0]["role"] == "premium-shop-1"
    # a known role with no key set of that type is an empty list, not an error
    assert json.loads(keys_cli("--json", "--role", "premium-shop-1", "--type", "partner").stdout) == []


def test_an_unknown_role_is_a_clear_error_listing_the_roles(expected_roles):
    result = keys_cli("--role", "premium-shop-9")
    assert result.returncode == 2 and result.stdout == ""
    assert "premium-shop-9" in result.stderr
    for role in {r for r in expected_roles.values() if r}:
        assert role in result.stderr
    assert keys_cli("--json", "--role", "nobody").returncode == 2


# -- the control plane's listing, over a real server on loopback --------------------------------------

async def test_control_plane_keys_carry_the_role(sandbox, expected_roles):
    reply = await sandbox.request("GET", "/_sandbox/keys", "test")
    assert reply.status == 200
    assert len(reply.json) == KEY_SETS
    for row in reply.json:
        assert set(row) == FIELDS_BEFORE | {"role", "redirect_uris"}
        assert row["role"] == expected_roles[row["client_id"]]


async def test_control_plane_filters_by_role(sandbox, expected_roles):
    reply = await sandbox.request("GET", "/_sandbox/keys?role=premium-shop-1&env=test", "test")
    assert reply.status == 200
    assert [(r["role"], r["environment"]) for r in reply.json] == [("premium-shop-1", "test")]
    reply = await sandbox.request("GET", "/_sandbox/keys?role=accountant", "production")
    assert reply.status == 200
    assert {r["client_id"] for r in reply.json} == {c for c, r in expected_roles.items() if r == "accountant"}


async def test_control_plane_refuses_an_unknown_role_in_the_problem_format(sandbox):
    reply = await sandbox.request("GET", "/_sandbox/keys?role=nobody", "test")
    assert reply.status == 400
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert "nobody" in reply.json["detail"] and "premium-shop-1" in reply.json["detail"]


def test_the_table_keeps_one_owners_key_sets_together(table_output, fixture_tables):
    """A newcomer looks for a shop by role: its test and production merchant keys stand next to each other,
    test first, for every sales unit of the fixture."""
    table = table_output.splitlines()
    for unit in fixture_tables["sales_units"]:
        ids = [r["client_id"] for r in fixture_tables["keys"] if r["owner"] == unit["msn"]]
        lines = sorted(n for n, line in enumerate(table) if any(i in line for i in ids))
        assert len(lines) == len(ids), (unit["msn"], lines)
        if len(lines) == 2:
            assert lines[1] - lines[0] <= 4, (unit["role"], unit["msn"], lines)  # a key set takes 2-4 lines
            assert " test " in table[lines[0]] and " production " in table[lines[1]], unit["msn"]


def test_keys_reads_the_fixture_serve_reads(tmp_path):
    """VIPPS_SANDBOX_FIXTURE chooses the fixture of `keys` as it does for `serve`, so the keys listed are the
    keys the server knows."""
    out = tmp_path / "shop.json"
    made = subprocess.run([sys.executable, "-m", "sandbox", "fixture", "generate", "--seed", "7", "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert made.returncode == 0, made.stderr
    wanted = {r["client_id"] for r in store.read(out)["keys"]}
    result = subprocess.run([sys.executable, "-m", "sandbox", "keys", "--json"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60, env=dict(os.environ, VIPPS_SANDBOX_FIXTURE=str(out)))
    assert result.returncode == 0, result.stderr
    assert {r["client_id"] for r in json.loads(result.stdout)} == wanted


def test_merchant_level_keys_are_the_fifth_kind_in_json(json_rows, fixture_tables):
    """`keys --json` shows merchant-level keys as "type": "merchant-level": production only, no subscription key,
    owned by a merchant (not a sales unit), reaching every sales unit of that merchant."""
    merchants = {f"{m['scheme']}/{m['id']}": m["role"] for m in fixture_tables["merchants"]}
    rows = [row for row in json_rows if row["type"] == "merchant-level"]
    assert sorted(merchants[row["owner"]] for row in rows) == ["independent", "premium-shop", "premium-shop"]
    units = {}
    for unit in fixture_tables["sales_units"]:
        units.setdefault(unit["merchant"], []).append(unit["msn"])
    for row in rows:
        assert row["environment"] == "production"
        assert row["subscription_key_primary"] is None and row["subscription_key_secondary"] is None
        assert row["client_secret"]
        assert sorted(row["msns"]) == sorted(units[row["owner"]])
        assert row["description"].startswith("Merchant-level keys of merchant")
    assert len({row["client_id"] for row in rows}) == 3  # two sets of one merchant: a rotation, not one key twice
