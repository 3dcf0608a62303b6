"""Scenario output, read as a trainer reads it: every bundled scenario (and one story that pokes at the masking)
is run with `python -m sandbox scenario run` against a real `python -m sandbox serve`. Nothing secret may show
(the fixture's secrets, secrets regenerated during the run, access tokens, the admin token), and nothing harmless
may be masked: `Bearer`, header names, client_ids and ordinary expected values print as they are."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from sandbox.fixture import store
from sandbox.scenarios.cli import bundled

ROOT = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "masking-admin-token-3f9a1c"
SECRET_FIELDS = ("client_secret", "subscription_key_primary", "subscription_key_secondary")

#: A story a trainer might write to show what a token and a key list look like; steps 2 to 4 fail on purpose
#: so that the secrets show up in the "expected ..., got ..." lines, where they must be masked.
POKING = """
title: What the printer shows of secrets
steps:
  - narration: A token, its type and the response's content type.
    keys: partner-keys of premium
    request: {method: POST, path: /accesstoken/get}
    expect:
      status: 200
      fields: {token_type: Bearer, access_token: {exists: true}}
      headers: {Content-Type: {contains: json}}
    save: {token: access_token}
  - narration: The saved token, compared by value, and once after the word Bearer.
    keys: partner-keys of premium
    request: {method: POST, path: /accesstoken/get}
    expect:
      status: 200
      fields: {access_token: "${token}", token_type: "Bearer ${token}"}
  - narration: The whole key list, checked so that it prints.
    request: {method: GET, path: /_sandbox/keys}
    expect:
      status: 200
      fields: {$: {length: 1}, "[0].client_id": not-this-one}
  - narration: A regenerated secret, in the whole response.
    keys: merchant-keys of premium-shop-2
    request: {method: POST, path: "/_sandbox/keys/${keys.client_id}/regenerate"}
    expect:
      status: 200
      fields: {$: {length: 99}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Each scenario's stdout (and stderr), the secrets the server held at the end, and the fixture's."""
    poking = tmp_path_factory.mktemp("masking") / "poking.yaml"
    poking.write_text(textwrap.dedent(POKING), encoding="utf-8")
    port, prod_port = free_port(), free_port()
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    server = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port",
                               str(prod_port), "--admin-token", ADMIN_TOKEN], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    test_url, prod_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prod_port}"
    try:
        for _ in range(300):
            try:
                get_json(test_url + "/_sandbox/health")
                break
            except OSError:
                time.sleep(0.05)
        outputs = {}
        for name, path in [(p.stem, str(p)) for p in bundled()] + [("poking", str(poking))]:
            result = subprocess.run([sys.executable, "-m", "sandbox", "scenario", "run", path, "--base-url", test_url,
                                     "--prod-url", prod_url, "--admin-token", ADMIN_TOKEN, "--no-colour"],
                                    capture_output=True, encoding="utf-8", cwd=ROOT, env=env, timeout=120)
            outputs[name] = (result.returncode, result.stdout, result.stderr)
        live = get_json(test_url + "/_sandbox/keys")
    finally:
        server.terminate()
        server.wait(timeout=10)
    fixture = store.read(store.default_fixture_path())["keys"]
    secrets = {row[name] for row in [*live, *fixture] for name in SECRET_FIELDS if row.get(name)}
    return {"outputs": outputs, "secrets": secrets, "live": live, "fixture": fixture}


def test_the_bundled_scenarios_ran_green(runs):
    outputs = runs["outputs"]
    assert set(outputs) >= {"janitor-keys", "postman-keys", "keys-leaked", "full-payment", "poking"}
    for name, (code, out, err) in outputs.items():
        if name != "poking":
            assert code == 0, (name, out[-3000:], err)
    code, out, err = outputs["poking"]
    assert code == 1 and "✗ 1 of 4 steps passed" in out, (out, err)


def test_bearer_prints_as_it_is(runs):
    for name in ("janitor-keys", "postman-keys", "partner-keys-in-test"):
        out = runs["outputs"][name][1]
        assert 'token_type: expected "Bearer", got "Bearer"' in out, out
    everything = "".join(out for _, out, _ in runs["outputs"].values())
    # no "…arer" (Login's token_type is the lower-case "bearer", as Vipps sends it)
    assert "arer\"" not in everything.replace('"Bearer"', "").replace('"bearer"', "")


def test_the_token_after_bearer_stays_masked(runs):
    out = runs["outputs"]["poking"][1]
    assert re.search(r'✗ token_type: expected "Bearer …[\w-]{4}", got "Bearer"\n', out), out
    assert re.search(r'✗ access_token: expected "…[\w-]{4}", got "…[\w-]{4}"\n', out), out


def test_no_secret_shows_anywhere(runs):
    assert len(runs["secrets"]) > 80  # the fixture's, plus the one regenerated by keys-leaked and by poking
    regenerated = {row["client_secret"] for row in runs["live"]} - {row["client_secret"] for row in runs["fixture"]}
    assert len(regenerated) == 2
    for name, (_, out, err) in runs["outputs"].items():
        for text in (out, err):
            shown = [secret for secret in runs["secrets"] if secret in text]
            assert not shown, (name, shown)
            assert "eyJ" not in text, name  # no access token (a JWT) either
            assert ADMIN_TOKEN not in text, name


def test_the_printed_key_list_masks_its_secrets_by_name(runs):
    out = runs["outputs"]["poking"][1]
    first = runs["live"][0]
    line = next(line for line in out.splitlines() if line.startswith("    ✗ $: expected {\"length\": 1}"))
    assert f'"client_id": "{first["client_id"]}"' in line  # client_ids are not secrets
    assert f'"client_secret": "…{first["client_secret"][-4:]}"' in line
    regenerated = next(line for line in out.splitlines() if "expected {\"length\": 99}" in line)
    assert re.search(r'"client_secret": "…[^"]{4}"', regenerated), regenerated


def test_header_names_and_ordinary_values_print_as_they_are(runs):
    outputs = runs["outputs"]
    assert ('header Vipps-Sandbox-Rule: expected "partner-keys-connected-sales-units-only", '
            'got "partner-keys-connected-sales-units-only"') in outputs["janitor-keys"][1]
    assert 'header Content-Type: expected {"contains": "json"}, got "application/json' in outputs["poking"][1]
    assert 'access_token: expected {"exists": true}, got (present)' in outputs["poking"][1]
    assert '[0].client_id: expected "not-this-one", got "' + runs["live"][0]["client_id"] in outputs["poking"][1]
    leaked = outputs["keys-leaked"][1]
    assert 'which: expected "primary", got "primary"' in leaked
    assert "client_secret: expected {\"exists\": true}, got (present)" in leaked
    callers = re.findall(r"\(client_id ([^)]*)\)", "".join(out for _, out, _ in outputs.values()))
    assert callers and all(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", c) for c in callers)
    masked = [line for _, out, _ in outputs.values() for line in out.splitlines() if "…" in line]
    # the only masked values are secrets: access tokens, client secrets, the poking story's key list, and the
    # Checkout session's `token` (its create answer's secret field) in the hosted page's URL
    assert all(re.search(r"(access_token|token_type|client_secret|\$): expected|/_sandbox/checkout/session\?token=…",
                         line) for line in masked), masked
