"""The two Recurring settings from the command line: --recurring-due-min-days and --recurring-unscheduled (and
their environment variables), parsed as `vipps-sandbox serve` parses them and served for real."""

from __future__ import annotations

import pytest
from recurring_support import assert_problem, charge_body, draft_body, merchant, recurring_unit

from sandbox.cli import build_parser, main, serve_settings
from sandbox.testing import started


def settings_of(*flags: str):
    settings = serve_settings(build_parser().parse_args(["serve", "--port", "0", "--prod-port", "0", *flags]))
    return settings


async def test_the_flags_change_the_minimum_due_days_and_the_unscheduled_allow_list(monkeypatch):
    monkeypatch.delenv("VIPPS_SANDBOX_RECURRING_DUE_MIN_DAYS", raising=False)
    monkeypatch.delenv("VIPPS_SANDBOX_RECURRING_UNSCHEDULED", raising=False)
    defaults = settings_of()
    assert defaults.recurring_due_min_days is None and defaults.recurring_unscheduled_msns == frozenset()
    async with started(defaults) as sandbox:
        msn = recurring_unit(sandbox)
    async with started(settings_of("--recurring-due-min-days", "0", "--recurring-unscheduled", msn)) as sandbox:
        shop = merchant(sandbox, "test", msn)
        agreement_id = await shop.active(draft_body(pricing={"type": "FLEXIBLE", "currency": "NOK"}))
        reply = await shop.charge(agreement_id, charge_body(sandbox, days=0))  # due today: 0 days ahead is enough
        assert reply.status == 201, reply.text
        body = {"amount": 4200, "description": "Taxi ride", "transactionType": "DIRECT_CAPTURE", "type": "UNSCHEDULED"}
        reply = await shop.charge(agreement_id, body)
        assert reply.status == 201, reply.text
    async with started(settings_of("--recurring-due-min-days", "7")) as sandbox:  # both environments
        for env in ("test", "production"):
            shop = merchant(sandbox, env, msn)
            agreement_id = await shop.active()
            assert_problem(await shop.charge(agreement_id, charge_body(sandbox, days=6)), 400, "charge-due-too-soon")
            assert (await shop.charge(agreement_id, charge_body(sandbox, days=7))).status == 201


def test_the_environment_variables_and_bad_values(monkeypatch, capsys):
    monkeypatch.setenv("VIPPS_SANDBOX_RECURRING_DUE_MIN_DAYS", "3")
    monkeypatch.setenv("VIPPS_SANDBOX_RECURRING_UNSCHEDULED", "123456, 654321")
    settings = settings_of("--recurring-unscheduled", "111111")
    assert settings.recurring_due_min_days == 3
    assert settings.recurring_unscheduled_msns == frozenset({"123456", "654321", "111111"})
    assert settings_of("--recurring-due-min-days", "1").recurring_due_min_days == 1  # the flag wins
    for bad in ("-1", "731", "two"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["serve", "--recurring-due-min-days", bad])
        assert "--recurring-due-min-days" in capsys.readouterr().err
    monkeypatch.delenv("VIPPS_SANDBOX_RECURRING_DUE_MIN_DAYS")
    assert main(["serve", "--port", "0", "--recurring-unscheduled", "not-an-msn"]) == 2
    assert "--recurring-unscheduled takes MSNs" in capsys.readouterr().err
