"""The pytest plugin, tested as a user's project would use it: test files run by `pytester`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_the_plugin_is_registered_by_its_entry_point(pytestconfig):
    from importlib.metadata import entry_points

    assert [ep.value for ep in entry_points(group="pytest11") if ep.name == "vipps_sandbox"] == \
        ["sandbox.pytest_plugin"]
    assert pytestconfig.pluginmanager.get_plugin("vipps_sandbox") is not None


def test_sync_and_async_tests(project):
    project.makepyfile(test_vsplugin_user="""
        import json
        import urllib.request

        import aiohttp

        from sandbox.cli import main

        def test_sync(vipps_sandbox, capsys):
            for url, env in ((vipps_sandbox.test_url, "test"), (vipps_sandbox.prod_url, "production")):
                with urllib.request.urlopen(url + "/_sandbox/health") as reply:
                    assert json.load(reply)["environment"] == env
            keys = vipps_sandbox.keys(type="merchant", env="test")
            main(["keys", "--json", "--type", "merchant", "--env", "test"])
            assert keys == json.loads(capsys.readouterr().out)
            token = vipps_sandbox.token(keys[0])
            assert isinstance(token, str) and token.count(".") == 2
            miami = vipps_sandbox.token(vipps_sandbox.key("management", "production"))
            assert miami.count(".") == 2

        async def test_async(vipps_sandbox):
            keys = vipps_sandbox.key("merchant", "test")
            headers = vipps_sandbox.headers(keys)
            async with aiohttp.ClientSession() as session:
                async with session.get(vipps_sandbox.test_url + "/webhooks/v1/webhooks", headers=headers) as reply:
                    assert reply.status == 200
                    assert await reply.json() == {"webhooks": []}
    """)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


RESET_TESTS = """
        from datetime import UTC, datetime, timedelta

        PORTS = []
        HOOK = {"url": "https://example.com/hook", "events": ["epayments.payment.captured.v1"]}

        def test_a_changes_everything(vipps_sandbox):
            PORTS.append(vipps_sandbox.test_url)
            keys = vipps_sandbox.key("merchant", "test")
            assert vipps_sandbox.request("POST", "/webhooks/v1/webhooks", "test", keyset=keys,
                                         json_body=HOOK).status == 201
            vipps_sandbox.clock.freeze()
            later = vipps_sandbox.clock.advance(86400 * 30)
            assert later > datetime.now(UTC) + timedelta(days=29)

        def test_b_sees_the_fixture_again(vipps_sandbox):
            PORTS.append(vipps_sandbox.test_url)
            assert PORTS[0] == PORTS[1]  # the same server, started once
            keys = vipps_sandbox.key("merchant", "test")
            listed = vipps_sandbox.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys)
            assert listed.json == {"webhooks": []}
            assert abs(vipps_sandbox.clock.now() - datetime.now(UTC)) < timedelta(minutes=1)

        def test_c_reset_on_demand(vipps_sandbox):
            vipps_sandbox.clock.advance(3600)
            vipps_sandbox.reset()
            assert abs(vipps_sandbox.clock.now() - datetime.now(UTC)) < timedelta(minutes=1)
    """


def test_one_server_per_session_reset_between_tests(project):
    project.makepyfile(test_vsplugin_reset=RESET_TESTS)
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_without_the_reset_the_isolation_test_fails(project):
    """The isolation test above can fail: the same tests, with the plugin's reset switched off."""
    project.makeconftest("""
        import pytest

        from sandbox import pytest_plugin

        @pytest.fixture(autouse=True)
        def _no_reset(monkeypatch):
            monkeypatch.setattr(pytest_plugin.VippsSandbox, "reset", lambda self: None)
    """)
    project.makepyfile(test_vsplugin_reset=RESET_TESTS)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test_b_sees_the_fixture_again*", "*test_c_reset_on_demand*"])


def test_marker_with_seed_and_fixture(project, tmp_path):
    from sandbox.cli import main

    fixture = tmp_path / "custom.json"
    assert main(["fixture", "generate", "--seed", "3", "--out", str(fixture)]) == 0
    project.makepyfile(test_vsplugin_marker=f"""
        import pytest

        from sandbox.fixture.generate import generate
        from sandbox.core.keys_listing import keyset_rows
        from sandbox.core.world import World

        URLS = {{}}

        def client_ids(seed):
            return sorted(r["client_id"] for r in keyset_rows(World(generate(seed))))

        @pytest.mark.vipps_sandbox(seed=7)
        def test_seed_7(vipps_sandbox):
            URLS["seed7"] = vipps_sandbox.test_url
            assert sorted(k["client_id"] for k in vipps_sandbox.keys()) == client_ids(7)

        @pytest.mark.vipps_sandbox(seed=7)
        def test_seed_7_again(vipps_sandbox):
            assert vipps_sandbox.test_url == URLS["seed7"]  # one server per configuration

        def test_default(vipps_sandbox):
            assert vipps_sandbox.test_url != URLS["seed7"]
            assert sorted(k["client_id"] for k in vipps_sandbox.keys()) != client_ids(7)

        @pytest.mark.vipps_sandbox(fixture={str(fixture)!r})
        def test_fixture_file(vipps_sandbox):
            assert sorted(k["client_id"] for k in vipps_sandbox.keys()) == client_ids(3)

        @pytest.mark.vipps_sandbox(sead=1)
        def test_typo_is_an_error(vipps_sandbox):
            pass
    """)
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*takes fixture=, seed=, faults= and rate_limits= only*"])


def test_marker_with_rate_limits(project):
    """rate_limits=True gets its own server with the documented limits; other tests keep an unlimited one."""
    project.makepyfile(test_vsplugin_limits="""
        import pytest

        def polls(vipps_sandbox):
            keys = vipps_sandbox.key("merchant", "test")
            headers = vipps_sandbox.headers(keys, keys["owner"])
            path = "/epayment/v1/payments/never-made-1"
            return [vipps_sandbox.request("GET", path, "test", headers=headers).status for _ in range(121)]

        @pytest.mark.vipps_sandbox(rate_limits=True)
        def test_limited(vipps_sandbox):
            statuses = polls(vipps_sandbox)
            assert statuses[:120] == [404] * 120 and statuses[120] == 429

        def test_unlimited(vipps_sandbox):
            assert set(polls(vipps_sandbox)) == {404}
    """)
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def readme_example() -> str:
    """The README's example of a user's test (the first Python block of "## pytest plugin")."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## pytest plugin\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_pays_with_partner_keys(project):
    example = readme_example()
    assert "partner" in example and "vipps_sandbox.approve" in example
    assert len(example.strip().splitlines()) <= 12
    project.makepyfile(test_vsplugin_readme=example)
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_request_log(project):
    project.makepyfile(test_vsplugin_log="""
        def test_first(vipps_sandbox):
            vipps_sandbox.token(vipps_sandbox.key("merchant", "test"))
            entries = vipps_sandbox.requests()
            assert [(e["method"], e["path"], e["status"]) for e in entries] == [("POST", "/accesstoken/get", 200)]

        def test_second_starts_empty(vipps_sandbox):
            assert vipps_sandbox.requests() == []
    """)
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_marker_faults(project):
    project.makepyfile(test_vsplugin_faults="""
        import pytest

        RULE = {"method": "GET", "path": "/webhooks/v1/webhooks", "status": 503}

        @pytest.mark.vipps_sandbox(faults=[RULE])
        def test_faulty(vipps_sandbox):
            keys = vipps_sandbox.key("merchant", "test")
            assert vipps_sandbox.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys).status == 503

        def test_faults_are_gone_in_the_next_test(vipps_sandbox):
            keys = vipps_sandbox.key("merchant", "test")
            assert vipps_sandbox.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys).status == 200
    """)
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_xdist_workers_have_their_own_servers(project, tmp_path):
    pytest.importorskip("xdist")
    out = tmp_path / "seen"
    out.mkdir()
    project.makepyfile(test_vsplugin_workers=f"""
        import json
        import os
        import pathlib

        import pytest

        @pytest.mark.parametrize("n", range(8))
        def test_worker(vipps_sandbox, n):
            keys = vipps_sandbox.key("merchant", "test")
            hook = {{"url": "https://example.com/" + str(n), "events": ["epayments.payment.created.v1"]}}
            assert vipps_sandbox.request("POST", "/webhooks/v1/webhooks", "test", keyset=keys,
                                         json_body=hook).status == 201
            listed = vipps_sandbox.request("GET", "/webhooks/v1/webhooks", "test", keyset=keys).json["webhooks"]
            assert [w["url"] for w in listed] == [hook["url"]]  # nothing from other tests or workers
            record = {{"worker": os.environ.get("PYTEST_XDIST_WORKER"), "url": vipps_sandbox.test_url}}
            pathlib.Path({str(out)!r}, str(n)).write_text(json.dumps(record))
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)
    records = [json.loads(p.read_text()) for p in out.iterdir()]
    by_worker: dict[str, set[str]] = {}
    for record in records:
        by_worker.setdefault(record["worker"], set()).add(record["url"])
    assert set(by_worker) == {"gw0", "gw1"}
    assert all(len(urls) == 1 for urls in by_worker.values())  # one server per worker
    assert by_worker["gw0"] != by_worker["gw1"]  # each on its own ports


def test_a_relative_fixture_path_is_taken_from_the_rootdir_not_the_cwd(project, monkeypatch):
    """pytest started from a subdirectory: `fixture="tests/shop.json"` still means <rootdir>/tests/shop.json."""
    from sandbox.cli import main

    tests_dir = project.path / "tests"
    tests_dir.mkdir()
    assert main(["fixture", "generate", "--seed", "3", "--out", str(tests_dir / "shop.json")]) == 0
    (tests_dir / "test_vsplugin_relative.py").write_text(
        "import pytest\n\n"
        "from sandbox.fixture.generate import generate\n"
        "from sandbox.core.keys_listing import keyset_rows\n"
        "from sandbox.core.world import World\n\n\n"
        "@pytest.mark.vipps_sandbox(fixture='tests/shop.json')\n"
        "def test_shop(vipps_sandbox):\n"
        "    wanted = sorted(r['client_id'] for r in keyset_rows(World(generate(3))))\n"
        "    assert sorted(k['client_id'] for k in vipps_sandbox.keys()) == wanted\n", encoding="utf-8")
    monkeypatch.chdir(tests_dir)
    result = project.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([f"rootdir: {project.path}*"])
    result.assert_outcomes(passed=1)
