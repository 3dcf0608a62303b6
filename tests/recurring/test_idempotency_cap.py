"""A sales unit keeps at most Settings.idempotency_max_per_unit idempotency records, the oldest going first (here
3): an evicted key is new again, a kept one still replays, and each sales unit has its own cap."""

from __future__ import annotations

import pytest
from epayment_support import create_body
from epayment_support import merchant as epayment_merchant
from recurring_support import draft_body, merchant

from sandbox.core.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(port=0, prod_port=0, idempotency_max_per_unit=3)


async def test_a_sales_unit_keeps_at_most_the_cap_the_oldest_going_first(sandbox):
    shop = merchant(sandbox)
    ids = [(await shop.draft(draft_body(), key=f"cap-{n}")).json["agreementId"] for n in range(5)]
    newest = await shop.draft(draft_body(), key="cap-4")
    assert newest.json["agreementId"] == ids[4]  # kept: a replay
    oldest = await shop.draft(draft_body(), key="cap-0")
    assert oldest.status == 201 and oldest.json["agreementId"] not in ids  # evicted: the key is new again
    other = epayment_merchant(sandbox)  # another sales unit (and API) has its own cap
    for n in range(3):
        assert (await other.create(create_body(f"cap-{n:04d}"), key=f"e-cap-{n}")).status == 201
    assert (await other.create(create_body("cap-0000"), key="e-cap-0")).status == 201  # still a replay
    assert (await shop.draft(draft_body(), key="cap-4")).json["agreementId"] == ids[4]


