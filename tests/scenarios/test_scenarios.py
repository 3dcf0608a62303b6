"""Every bundled scenario runs green in-process; broken files get errors naming file, step and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from sandbox.cli import main as cli_main
from sandbox.scenarios.cli import bundled, run_async
from sandbox.scenarios.model import ScenarioError, load
from sandbox.scenarios.paths import MISSING, lookup, matches

ISSUE_SIX = {"janitor-keys", "postman-keys", "accounting-keys", "partner-keys-in-test", "msn-change",
             "keys-leaked", "full-payment"}


#: Issue 15's narrated Recurring story (partner keys, three virtual months, one failure retried).
ISSUE_FIFTEEN = {"recurring-partner"}
#: Issue 19's story for trainers: a sloppy integration and the readiness report that catches each fault.
ISSUE_NINETEEN = {"sloppy-integration"}
#: Issue 16's narrated Userinfo story (a payment shares name and email; a week later they read "[Expired]").
ISSUE_SIXTEEN_USERINFO = {"profile-sharing"}
#: Issue 18's narrated QR and Order Management stories.
ISSUE_EIGHTEEN = {"qr-poster", "receipt-in-the-app", "donations-partner", "checkout-partner-webshop"}
#: Issue 16's Login story (the browser flow through the control plane, then CIBA with the phone).
ISSUE_SIXTEEN_LOGIN = {"login-with-vipps"}


def test_the_seven_stories_of_issue_six_are_bundled():
    assert ISSUE_SIX <= {path.stem for path in bundled()}


def test_exactly_the_stories_of_the_issues_are_bundled():
    """Every file in scenarios/ is one of these: a story added or lost shows here (and each is run below)."""
    assert {path.stem for path in bundled()} == (ISSUE_SIX | ISSUE_FIFTEEN | ISSUE_SIXTEEN_USERINFO
                                                 | ISSUE_SIXTEEN_LOGIN | ISSUE_EIGHTEEN | ISSUE_NINETEEN)


@pytest.mark.parametrize("path", bundled(), ids=lambda p: p.stem)
async def test_bundled_scenario_passes_in_process(path: Path):
    scenario = load(path)
    result = await run_async(scenario)
    failures = [(s.step.number, s.step.narration, s.error, [c for c in s.checks if not c.ok])
                for s in result.steps if not s.ok]
    assert not failures, failures
    assert len(result.steps) == len(scenario.steps) >= 3


async def test_a_scenario_runs_against_a_running_sandbox_with_one_url(sandbox):
    """Only the test URL: production steps reach production through the Host header (api.vipps.no)."""
    scenario = load(next(p for p in bundled() if p.stem == "janitor-keys"))
    result = await run_async(scenario, base_url=sandbox.url("test"))
    assert result.ok, [(s.step.number, s.error, s.checks) for s in result.steps if not s.ok]
    from sandbox.apis.epayment.routes import PAYMENTS

    made = sandbox.running.app[PAYMENTS].payments.values()
    assert {str(p.env) for p in made} == {"production"} and len(made) == 2


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


GOOD_STEP = """
  - narration: Health
    request: {method: GET, path: /_sandbox/health}
    expect: {status: 200}
"""


@pytest.mark.parametrize(("body", "step", "field", "words"), [
    ("steps: []\ntitle: x\n", None, "steps", "non-empty list"),
    ("title: x\nsteps:" + GOOD_STEP + """
  - narration: Bad method
    request: {method: FETCH, path: /x}
    expect: {status: 200}
""", 2, "request.method", "must be one of"),
    ("title: x\nsteps:" + GOOD_STEP + """
  - narration: No status
    request: {method: GET, path: /x}
    expect: {fields: {a: 1}}
""", 2, "expect.status", "HTTP status"),
    ("title: x\nsteps:" + """
  - narration: Bad keys
    keys: janitor keys of premium
    request: {method: GET, path: /x}
    expect: {status: 200}
""", 1, "keys", "-keys of <role>"),
    ("title: x\nsteps:" + """
  - narration: Unknown variable
    request: {method: GET, path: "/epayment/v1/payments/${reference}"}
    expect: {status: 200}
""", 1, "request", "${reference} is neither saved"),
    ("title: x\nsteps:" + """
  - narration: Typo
    request: {method: GET, path: /x, jsn: {}}
    expect: {status: 200}
""", 1, "request.jsn", "unknown field"),
    ("title: x\nsteps:" + """
  - request: {method: GET, path: /x}
    expect: {status: 200}
""", 1, "narration", "required"),
    ("title: x\nsteps:" + """
  - narration: Bad filter
    request: {method: GET, path: /x}
    expect: {status: 200}
    save: {token: "redirectUrl | upper"}
""", 1, "save.token", "unknown filter"),
    ("title: x\nsteps:" + """
  - narration: Bad day count
    request: {method: GET, path: /x}
    expect: {status: 200}
    save: {due: "now | days:three | date"}
""", 1, "save.due", "unknown filter"),
    ("title: x\nsteps:" + """
  - narration: Bad time zone
    request: {method: GET, path: /x}
    expect: {status: 200}
    save: {day: "now | date:Europe/Osl0"}
""", 1, "save.day", "unknown time zone"),
])
def test_a_broken_scenario_names_file_step_and_field(tmp_path, body, step, field, words):
    path = write(tmp_path, body)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(str(path))
    if step is not None:
        assert f", step {step}" in message
    assert f"field {field}" in message
    assert words in message


def test_invalid_yaml_is_a_clear_error(tmp_path):
    path = write(tmp_path, "title: x\nsteps:\n  - narration: a: b: c\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load(path)


def test_cli_lists_the_bundled_scenarios(capsys):
    assert cli_main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    for name in ISSUE_SIX:
        assert name in out


def test_cli_runs_a_scenario_in_plain_text_and_fails_on_a_mismatch(tmp_path, capsys):
    path = write(tmp_path, """
        title: One right, one wrong
        steps:
          - narration: Management keys cannot pay
            keys: management-keys of basic
            request:
              method: GET
              path: /epayment/v1/payments/some-reference-1
              msn: self-managed-1
            expect:
              status: 403
              headers: {Vipps-Sandbox-Rule: management-keys-never-act-on-behalf}
          - narration: This expectation is wrong on purpose
            request: {method: GET, path: /_sandbox/health}
            expect:
              status: 200
              fields: {status: broken}
        """)
    assert cli_main(["scenario", "run", str(path)]) == 1
    out = capsys.readouterr().out
    assert "\033[" not in out  # not a terminal: no colours
    assert "✓ Step 1. Management keys cannot pay" in out
    assert "reason: Management keys cannot act on behalf of merchants" in out
    assert "✗ Step 2. This expectation is wrong on purpose" in out
    assert '✗ status: expected "broken", got "ok"' in out
    assert "1 of 2 steps passed" in out


def test_cli_refuses_a_broken_file_with_exit_2(tmp_path, capsys):
    path = write(tmp_path, "title: x\nsteps:\n  - narration: n\n    request: {method: GET}\n    expect: {status: 1}\n")
    assert cli_main(["scenario", "run", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}, step 1 (n), field request.path" in err


def test_cli_names_the_bundled_scenarios_for_an_unknown_name(capsys):
    assert cli_main(["scenario", "run", "no-such-story"]) == 2
    assert "janitor-keys" in capsys.readouterr().err


def test_secrets_are_masked_in_the_output(tmp_path, capsys):
    path = write(tmp_path, """
        title: Token
        steps:
          - narration: A token
            keys: partner-keys of premium
            request: {method: POST, path: /accesstoken/get}
            expect:
              status: 200
              fields: {access_token: {exists: true}, token_type: Bearer}
            save: {token: access_token}
          - narration: The saved token, checked by value
            keys: partner-keys of premium
            request: {method: POST, path: /accesstoken/get}
            expect:
              status: 200
              fields: {access_token: "${token}"}
        """)
    cli_main(["scenario", "run", str(path)])
    out = capsys.readouterr().out
    assert "eyJ" not in out  # no JWT printed, only its last 4 characters
    assert "access_token: expected {\"exists\": true}, got (present)" in out


@pytest.mark.parametrize(("document", "path", "expected"), [
    ({"a": {"b": [1, {"c": 2}]}}, "a.b[1].c", 2),
    ({"a": {"b": [1, {"c": 2}]}}, "$.a.b.0", 1),
    ([{"x": 1}], "[0].x", 1),
    ({"a": None}, "a", None),
    ({"a": 1}, "b", MISSING),
    ({"a": [1]}, "a[3]", MISSING),
])
def test_json_paths(document, path, expected):
    assert lookup(document, path) == expected if expected is not MISSING else lookup(document, path) is MISSING


@pytest.mark.parametrize(("expected", "actual", "ok"), [
    ({"contains": "abc"}, "xxabcxx", True),
    ({"contains": {"a": 1}}, [{"a": 1, "b": 2}], True),
    ({"contains": [{"a": 1}, {"a": 2}]}, [{"a": 1}, {"a": 3}], False),
    ({"exists": False}, MISSING, True),
    ({"oneOf": [1, 2]}, 3, False),
    ({"length": 2}, [1, 2], True),
    ({"gte": 5}, 4, False),
    (1, True, False),  # JSON true is not 1
    ("x", "x", True),
])
def test_matchers(expected, actual, ok):
    assert matches(expected, actual) is ok


async def test_a_sandbox_with_an_admin_token_needs_it_for_the_control_plane():
    from sandbox.core.settings import Settings
    from sandbox.scenarios.runner import StepError
    from sandbox.server import RunningSandbox

    running = RunningSandbox(Settings(port=0, prod_port=0, admin_token="scenario-admin-token"))
    await running.start()
    try:
        scenario = load(next(p for p in bundled() if p.stem == "keys-leaked"))
        with pytest.raises(StepError, match="admin token"):
            await run_async(scenario, running.test_url, running.prod_url)
        result = await run_async(scenario, running.test_url, running.prod_url, admin_token="scenario-admin-token")
        assert result.ok, [(s.step.number, s.error, s.checks) for s in result.steps if not s.ok]
    finally:
        await running.stop()


def test_colours_only_on_a_terminal():
    import io

    from sandbox.scenarios.report import Printer

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal, pipe = Terminal(), io.StringIO()
    for out in (terminal, pipe):
        Printer(out).line(Printer(out).paint("✓ passed", "ok"))
    assert terminal.getvalue() == "\033[32m✓ passed\033[0m\n"
    assert pipe.getvalue() == "✓ passed\n"


@pytest.mark.parametrize(("keys", "words"), [
    ("partner-keys of nobody", "no partner has the role 'nobody'"),
    ("merchant-keys of 99999999", "no merchant keys of 99999999"),
    ("management-keys of ${msn.premium-shop-1}", "no partner or merchant has the role"),
])
def test_a_key_spec_naming_an_unknown_role_is_a_broken_file_before_step_1(tmp_path, capsys, keys, words):
    """Step 1 changes the sandbox (a clock move): it must not run when step 2 names keys nobody has."""
    path = write(tmp_path, f"""
        title: Unknown keys
        steps:
          - narration: Move the clock
            request: {{method: POST, path: /_sandbox/clock, json: {{advanceSeconds: 1}}}}
            expect: {{status: 200}}
          - narration: Keys of nobody
            keys: "{keys}"
            request: {{method: GET, path: /epayment/v1/payments/x}}
            expect: {{status: 200}}
        """)
    assert cli_main(["scenario", "run", str(path), "--no-colour"]) == 2
    captured = capsys.readouterr()
    assert f"{path}, step 2 (Keys of nobody), field keys: " in captured.err
    assert words in captured.err
    assert "Step 1." not in captured.out  # nothing ran


async def test_unknown_keys_are_refused_before_step_1_against_a_url_too(sandbox, tmp_path):
    path = write(tmp_path, """
        title: Unknown keys
        steps:
          - narration: Move the clock
            request: {method: POST, path: /_sandbox/clock, json: {advanceSeconds: 3600}}
            expect: {status: 200}
          - narration: Keys of nobody
            keys: partner-keys of nobody
            request: {method: GET, path: /epayment/v1/payments/x}
            expect: {status: 200}
        """)
    assert (await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})).status == 200
    before = (await sandbox.request("GET", "/_sandbox/clock", "test")).json
    with pytest.raises(ScenarioError, match=r"step 2 \(Keys of nobody\), field keys: no partner has the role"):
        await run_async(load(path), base_url=sandbox.url("test"))
    assert (await sandbox.request("GET", "/_sandbox/clock", "test")).json == before


@pytest.mark.parametrize(("matcher", "words"), [
    ("{containz: 1}", "unknown matcher 'containz' (did you mean contains?)"),
    ("{Exists: true}", "unknown matcher 'Exists' (did you mean exists?)"),
    ("{one_of: [1, 2]}", "did you mean oneOf?"),
    ("{contains: a, exists: true}", "exactly one key, not 2"),
])
def test_a_mistyped_matcher_is_a_broken_file_naming_the_field(tmp_path, matcher, words):
    path = write(tmp_path, f"""
        title: Typo
        steps:
          - narration: Health
            request: {{method: GET, path: /_sandbox/health}}
            expect:
              status: 200
              fields: {{$: {matcher}}}
        """)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    assert "step 1 (Health), field expect.fields.$: " in str(caught.value)
    assert words in str(caught.value)


@pytest.mark.parametrize(("fields", "ok"), [
    ('{$: {status: ok, environment: test}}', True),        # keys that look nothing like matchers: a literal
    ('{$: {status: broken, environment: test}}', False),
    ('{$: {equals: {status: ok, environment: test}}}', True),
    ('{status: {equals: ok}}', True),
])
async def test_literal_objects_still_compare_for_equality(sandbox, tmp_path, fields, ok):
    path = write(tmp_path, f"""
        title: Literal
        steps:
          - narration: Health
            request: {{method: GET, path: /_sandbox/health}}
            expect:
              status: 200
              fields: {fields}
        """)
    result = await run_async(load(path), base_url=sandbox.url("test"))
    assert result.ok is ok


@pytest.mark.parametrize(("moment", "zone", "day"), [
    ("2026-12-01T23:30:00Z", "Europe/Oslo", "2026-12-02"),  # 00:30 in Oslo: the next ledger date
    ("2026-12-01T22:30:00Z", "Europe/Oslo", "2026-12-01"),
    ("2026-06-30T21:59:59+00:00", "Europe/Helsinki", "2026-07-01"),  # summer time: UTC+3
    ("2026-06-30T21:59:59+00:00", "Europe/Copenhagen", "2026-06-30"),
])
def test_the_date_filter_in_a_time_zone_gives_the_local_date(moment, zone, day):
    from sandbox.scenarios.paths import apply_filter

    assert apply_filter(moment, f"date:{zone}") == day
    assert apply_filter(moment, "date") == moment[:10]


@pytest.mark.parametrize(("moment", "days", "day"), [
    ("2026-12-30T23:30:00.000000Z", 3, "2027-01-02"),
    ("2026-03-01T00:00:00Z", -1, "2026-02-28"),
    ("2026-03-28T23:30:00+01:00", 1, "2026-03-29"),  # an offset: shifted, then written in UTC
])
def test_the_days_filter_shifts_a_timestamp_before_the_date_filter(moment, days, day):
    from sandbox.scenarios.paths import MISSING, apply_filter

    shifted = apply_filter(moment, f"days:{days}")
    assert apply_filter(shifted, "date") == day
    assert apply_filter("not a time", "days:3") is MISSING


async def test_the_recurring_story_books_its_charges_in_the_ledger_on_the_local_date():
    """The Recurring story's last steps read the ledger on the Oslo date of the third charge; this checks, from the
    sandbox's own state, that the run charged three charges in production and failed one."""
    from sandbox.apis.recurring.routes import RECURRING
    from sandbox.core.settings import Settings
    from sandbox.server import RunningSandbox

    running = RunningSandbox(Settings(port=0, prod_port=0))
    await running.start()
    try:
        scenario = load(next(p for p in bundled() if p.stem == "recurring-partner"))
        result = await run_async(scenario, running.test_url, running.prod_url)
        assert result.ok, [(s.step.number, s.error, [c for c in s.checks if not c.ok]) for s in result.steps
                           if not s.ok]
        charges = running.app[RECURRING].charges.values()
        assert sorted(c.status for c in charges) == ["CHARGED", "CHARGED", "CHARGED", "FAILED"]
        assert {str(c.env) for c in charges} == {"production"}
    finally:
        await running.stop()
