"""The fixture: deterministic, complete (every situation of the seed pages), valid identifiers."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.fixture import store
from sandbox.fixture.business_ids import SCHEMES, is_valid
from sandbox.fixture.generate import generate
from sandbox.model import KeyType
from sandbox.world import World

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_gives_byte_identical_files(tmp_path):
    one, two, other = tmp_path / "one.json", tmp_path / "two.json", tmp_path / "other.json"
    for seed, out in (("7", one), ("7", two), ("8", other)):
        result = cli("fixture", "generate", "--seed", seed, "--partners", "6", "--merchants", "12", "--out", str(out))
        assert result.returncode == 0, result.stderr
    assert digest(one) == digest(two)
    assert digest(one) != digest(other)


def test_bundled_fixture_is_what_the_readme_command_makes(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = next(line.strip().strip("`") for line in readme.splitlines()
                   if "fixture generate" in line and "fixtures/default.json" in line)
    args = command.split()[1:]  # drop "vipps-sandbox"
    out = args.index("--out")
    args[out + 1] = str(tmp_path / "default.json")
    assert cli(*args).returncode == 0
    assert digest(tmp_path / "default.json") == digest(ROOT / "fixtures" / "default.json")


def test_too_small_fixture_is_a_clear_error(tmp_path):
    result = cli("fixture", "generate", "--seed", "1", "--merchants", "2", "--out", str(tmp_path / "x.json"))
    assert result.returncode == 2
    assert "--merchants must be at least" in result.stderr


@pytest.fixture(scope="module")
def world() -> World:
    return World(store.read(store.default_fixture_path()))


def test_business_identifiers_pass_their_check_digits(world):
    countries = set()
    for merchant in world.merchants.values():
        assert is_valid(merchant.scheme, merchant.id), merchant
        countries.add(merchant.country)
        assert merchant.scheme == SCHEMES[merchant.country]
    assert countries == {"NO", "DK", "FI"}
    assert not is_valid(SCHEMES["NO"], "123456789") or not is_valid(SCHEMES["NO"], "123456788")


def test_every_situation_of_the_seed_pages_is_present(world):
    partners = {p.role: p for p in world.partners.values()}
    keys_of = lambda owner: {k.type for k in world.keys.values() if k.owner == owner}  # noqa: E731
    premium = partners["premium"]
    assert premium.level == "Partner Premium" and premium.act_on_behalf_approved
    assert keys_of(premium.id) == {KeyType.PARTNER}
    basic = partners["basic"]
    assert basic.level == "Partner" and keys_of(basic.id) == {KeyType.MANAGEMENT}
    dual = partners["dual"]
    assert keys_of(dual.id) == {KeyType.PARTNER, KeyType.ACCOUNTING}  # two separate key sets
    accountant = partners["accountant"]
    consenting = {m for p, m in world.consents if p == accountant.id}
    assert consenting and any(m not in consenting for m in world.merchants)
    self_managed = next(m for m in world.merchants.values() if m.role == "self-managed")
    assert keys_of(self_managed.key) == {KeyType.MANAGEMENT}
    own_mgmt = next(k for k in world.keys.values() if k.owner == self_managed.key)
    assert set(world.reach(own_mgmt)) == set(world.merchant_msns[self_managed.key])
    units = {u.role: u for u in world.sales_units.values()}
    assert units["newborn"].created_at == "2026-01-05T11:59:00Z"
    assert units["newborn"].msn in world.reach(next(k for k in world.keys.values() if k.owner == premium.id))
    assert units["independent-1"].partner_id is None
    assert any(not m.active for m in world.merchants.values())
    for unit in world.sales_units.values():
        envs = {k.environment for k in world.keys.values() if k.owner == unit.msn}
        assert envs == {"test", "production"}
    partner_keys = [k for k in world.keys.values() if k.type is KeyType.PARTNER]
    assert all(k.environment == "production" for k in partner_keys)
    assert any(not world.partners[k.owner].act_on_behalf_approved for k in partner_keys)


def test_keys_json_lists_every_field(tmp_path):
    result = cli("keys", "--json", "--type", "partner", "--env", "production")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows and all(row["type"] == "partner" and row["environment"] == "production" for row in rows)
    assert set(rows[0]) == {"type", "environment", "client_id", "client_secret", "subscription_key_primary",
                            "subscription_key_secondary", "owner", "role", "msns", "description"}
    premium = next(r for r in rows if "Partner Premium" in r["description"])
    assert premium["description"].endswith(f"act on behalf of its {len(premium['msns'])} sales units")
    accounting = json.loads(cli("keys", "--json", "--type", "accounting").stdout)
    assert all(r["subscription_key_secondary"] is None for r in accounting)
    table = cli("keys", "--type", "merchant", "--env", "test")
    assert table.returncode == 0 and "client_id" in table.stdout and "merchant" in table.stdout


def test_keys_of_a_missing_fixture_is_a_clear_error(tmp_path):
    result = cli("keys", "--fixture", str(tmp_path / "nope.json"))
    assert result.returncode == 2 and "fixture file not found" in result.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = cli("keys", "--fixture", str(broken))
    assert result.returncode == 2 and "not valid TinyDB JSON" in result.stderr


def test_generate_in_memory_equals_the_file(tmp_path):
    path = tmp_path / "f.json"
    store.write(generate(42), path)
    assert store.read(path) == store.read(store.default_fixture_path())
