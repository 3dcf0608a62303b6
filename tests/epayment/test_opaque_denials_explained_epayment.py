"""ePayment's opaque 404 5090, explained by the sandbox (issue 12, point 2).

A reference of another sales unit, or of the other environment, gets the very 404 of a reference that does
not exist: the caller learns nothing. The sandbox's own layer (Vipps-Sandbox-* headers, the request log)
says deny, and why.
"""

from __future__ import annotations

from epayment_support import create_body, merchant
from opaque_support import assert_absent, assert_explained, assert_same_for_the_caller


async def test_an_unknown_reference_is_a_not_found(sandbox):
    shop = merchant(sandbox)
    reply = await shop.get("never-made-0001")
    assert reply.status == 404
    await assert_absent(sandbox, reply, "payment-not-found", "never-made-0001")


async def test_another_sales_units_reference_looks_unknown_but_is_explained(sandbox):
    owner, other = merchant(sandbox, "premium-shop-1"), merchant(sandbox, "premium-shop-2")
    before = {"get": await other.get("opaque-ref-0001"), "events": await other.events("opaque-ref-0001"),
              "capture": await other.capture("opaque-ref-0001", 100, key="opaque-cap-1")}
    assert (await owner.create(create_body("opaque-ref-0001"))).status == 201
    after = {"get": await other.get("opaque-ref-0001"), "events": await other.events("opaque-ref-0001"),
             "capture": await other.capture("opaque-ref-0001", 100, key="opaque-cap-2")}
    for call, reply in after.items():
        assert reply.status == 404, (call, reply.text)
        assert_same_for_the_caller(reply, before[call])
        await assert_explained(sandbox, reply, "payment-of-another-sales-unit", "opaque-ref-0001", owner.msn,
                               other.msn)


async def test_the_other_environments_reference_looks_unknown_but_is_explained(sandbox):
    test_shop, prod_shop = merchant(sandbox, env="test"), merchant(sandbox, env="production")
    assert (await test_shop.create(create_body("opaque-env-0001"))).status == 201
    reply = await prod_shop.get("opaque-env-0001")
    assert reply.status == 404
    await assert_explained(sandbox, reply, "payment-in-the-other-environment", "opaque-env-0001", "test")
