"""The strict switch (--userinfo-strict-subscription-key): an Ocp-Apim-Subscription-Key on the Userinfo API is a 401,
as the Recurring and eCom guides say, while the spec requires it (the default accepts both: fidelity notes)."""

from __future__ import annotations

import pytest
from epayment_support import merchant
from userinfo_support import assert_error, read, shared_payment

from sandbox.cli import build_parser, serve_settings
from sandbox.core.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, userinfo_strict_subscription_key=True)


async def test_the_strict_switch_makes_a_subscription_key_a_401(sandbox):
    assert sandbox.runtime.settings.userinfo_strict_subscription_key
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-user"]
    sub = await shared_payment(shop, "userinfo-0009", user.phone_number, "name")
    assert_error(await read(shop, sub), 401, "userinfo-subscription-key-refused")
    reply = await read(shop, sub, drop=("Ocp-Apim-Subscription-Key",))
    assert reply.status == 200 and reply.json["name"] == user.name
    # the other APIs still need it
    assert (await shop.get("userinfo-0009")).status == 200


def test_the_flag_and_the_environment_variable_set_it(monkeypatch):
    parser = build_parser()
    assert not serve_settings(parser.parse_args(["serve"])).userinfo_strict_subscription_key
    assert serve_settings(parser.parse_args(["serve", "--userinfo-strict-subscription-key"])
                          ).userinfo_strict_subscription_key
    monkeypatch.setenv("VIPPS_SANDBOX_USERINFO_STRICT_SUBSCRIPTION_KEY", "yes")
    assert serve_settings(build_parser().parse_args(["serve"])).userinfo_strict_subscription_key
