"""Tests written from the documentation's own examples and limits, not from the sandbox's code.

Sources: the ePayment "Errors" page (its two example bodies), the bundled epayment-1.8.1 spec's
CreatePaymentRequest examples and field descriptions, the payment-lifecycle page's capture deadlines, and the
Management 2.0.9 spec's sales-unit flags. Every value below is copied from those texts; where a limit is
given ("at most 5", "more than 10 minutes"), both sides of it are sent.
"""

from __future__ import annotations

import math
from datetime import timedelta

from epayment_support import BASE, assert_problem, create_body, error_code, merchant

DAY = 86400
RECEIPT = {"orderLines": [{"name": "Socks", "id": "1", "totalAmount": 1234, "totalAmountExcludingTax": 987,
                           "totalTaxAmount": 247, "taxPercentage": 25}], "bottomLine": {"currency": "NOK"}}


def ahead(sandbox, seconds: float) -> str:
    return (sandbox.runtime.clock.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_the_errors_page_format_example(sandbox):
    """The page's first example: a field error is 400 "Bad Request", "See extraDetails for further details",
    instance /v1/payments, and extraDetails naming `reference`, with no ErrorCode."""
    reply = await merchant(sandbox).create(create_body("short"))
    body = assert_problem(reply, 400)
    assert body["type"] == "https://httpstatuses.io/400" and body["title"] == "Bad Request"
    assert body["detail"] == "See extraDetails for further details" and body["instance"] == "/v1/payments"
    assert {d["name"] for d in body["extraDetails"]} == {"reference"}
    assert error_code(reply) is None


async def test_the_errors_page_domain_error_example(sandbox):
    """The page's second example, word for word: 6080 "Cannot capture before reservation"."""
    shop = merchant(sandbox)
    assert (await shop.create(create_body("577531734343670112"))).status == 201
    body = assert_problem(await shop.capture("577531734343670112", 100), 400, "6080")
    assert body["title"] == "Cannot capture before reservation"
    assert body["detail"] == ("The amount you tried to capture is not reserved. The user must accept the payment "
                              "before capture can be done.")
    assert body["instance"] == "/v1/payments/577531734343670112/capture"
    assert body["extraDetails"] == [{"name": "ErrorCode", "reason": "6080"}]


async def test_the_spec_create_examples_are_accepted(sandbox):
    """The spec's "example with personal Qr" and "example with user info" (minus the unquoted phone number,
    which the spec types as a string), on a sales unit approved to skip the landing page."""
    shop = merchant(sandbox)
    qr = {"amount": {"value": 1234, "currency": "NOK"}, "paymentMethod": {"type": "WALLET"},
          "customer": {"personalQr": "https://qr.vipps.no/p/4796844569"}, "reference": "acme-shop-123-order123abc",
          "userFlow": "PUSH_MESSAGE", "returnUrl": "https://example.com/redirect?reference=577531713174932058",
          "paymentDescription": "Purchase of socks"}
    assert (await shop.create(qr)).status == 201
    info = dict(qr, reference="acme-shop-123-order123abd", customer={"phoneNumber": "4796844569"},
                returnUrl="https://example.com/redirect?reference=577531713175705837",
                profile={"scope": "name phoneNumber address birthDate"})
    assert (await shop.create(info)).status == 201
    long_living = dict(info, reference="acme-shop-123-order123abe", expiresAt=ahead(sandbox, 3 * DAY),
                       receipt=RECEIPT, profile=None)
    del long_living["profile"]
    assert (await shop.create(long_living)).status == 201
    qr_personal = dict(qr, reference="acme-shop-123-order123abf",
                       customer={"personalQr": "https://qr.vipps.no/28/2/01/031/4712345678?v=1"})
    assert (await shop.create(qr_personal)).status == 201


async def test_metadata_limits_both_sides(sandbox):
    """Spec Metadata: "Key length is limited to 100 characters, and value length is limited to 500
    characters. Max capacity is 5 key-value pairs." The spec's example (key1..key3) passes through to GET."""
    shop = merchant(sandbox)
    example = {"key1": "value1", "key2": "value2", "key3": "value3"}
    assert (await shop.create(create_body("order-meta-0001", metadata=example))).status == 201
    assert (await shop.get("order-meta-0001")).json["metadata"] == example
    at_limit = {"k" * 100: "v" * 500, **{f"key{n}": "v" for n in range(4)}}
    assert (await shop.create(create_body("order-meta-0002", metadata=at_limit))).status == 201
    over = [({**at_limit, "one-more": "v"}, "4100"), ({"k" * 101: "v"}, "4120"), ({"k": "v" * 501}, "4130")]
    for n, (metadata, code) in enumerate(over):
        assert_problem(await shop.create(create_body(f"order-meta-01{n}0", metadata=metadata)), 400, code)


async def test_expires_at_limits_both_sides(sandbox):
    """Spec expiresAt: "more than 10 minutes and less than 60 days in the future. If ExpiresAt is set,
    receipt also must be set." Long-living needs approval (the unit of role restricted-no lacks it: 5050)."""
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"freeze": True})
    clock = sandbox.runtime.clock
    clock.advance(math.ceil(clock.time()) - clock.time())  # a whole second, so the RFC 3339 text is exact
    shop = merchant(sandbox)
    cases = [(600, "6120"), (601, None), (60 * DAY - 1, None), (60 * DAY, "6110")]
    for n, (seconds, code) in enumerate(cases):
        reply = await shop.create(create_body(f"order-ll-000{n}", expiresAt=ahead(sandbox, seconds), receipt=RECEIPT))
        if code is None:
            assert reply.status == 201, reply.text
        else:
            assert_problem(reply, 400, code, field="expiresAt")
    assert_problem(await shop.create(create_body("order-ll-0009", expiresAt=ahead(sandbox, 3600))), 400, "6130",
                   field="receipt")
    restricted = merchant(sandbox, "restricted-no")
    assert_problem(await restricted.create(create_body("order-ll-0010", expiresAt=ahead(sandbox, 3600),
                                                       receipt=RECEIPT)), 400, "5050")
    assert (await restricted.create(create_body("order-ll-0011"))).status == 201, "without expiresAt it is fine"


async def test_push_message_needs_skip_landing_page(sandbox):
    """Errors page 5080 "PUSH_MESSAGE not allowed": the sales unit needs approval to skip the landing page."""
    assert (await merchant(sandbox).create(create_body("order-push-0001", flow="PUSH_MESSAGE"))).status == 201
    for role in ("restricted-no", "restricted-dk", "restricted-fi"):
        unit = sandbox.runtime.world.sales_units[sandbox.msn_role(role)]
        reply = await merchant(sandbox, role).create(create_body("order-push-0002", 1000, unit.currency,
                                                                 flow="PUSH_MESSAGE"))
        assert_problem(reply, 400, "5080", field="userFlow")
        assert (await merchant(sandbox, role).create(create_body("order-push-0003", 1000, unit.currency))).status \
            == 201, "the landing page flow is allowed"


async def test_scope_values(sandbox):
    """Spec ProfileRequest: space-separated name, address, email, phoneNumber, birthDate, nin."""
    shop = merchant(sandbox)
    reply = await shop.create(create_body("order-scope-001", profile={"scope": "name address email phoneNumber "
                                                                                "birthDate"}))
    assert reply.status == 201
    assert_problem(await shop.create(create_body("order-scope-002", profile={"scope": "openid"})), 400, "4080")
    assert_problem(await shop.create(create_body("order-scope-003", profile={"scope": "name,email"})), 400, "4080")
    assert_problem(await shop.create(create_body("order-scope-004", profile={"scope": "nin"})), 400, "5030")


async def test_blocked_sources_only_in_denmark_and_finland(sandbox):
    """Spec BlockedPaymentSources: "Applies only for Danish and Finnish markets" (errors page 5010)."""
    method = {"type": "WALLET", "blockedSources": ["COMMERCIAL_CARDS"]}
    assert (await merchant(sandbox, "premium-dk-1").create(create_body("order-block-01", 1000, "DKK",
                                                                       paymentMethod=method))).status == 201
    assert (await merchant(sandbox, "premium-fi-1").create(create_body("order-block-02", 1000, "EUR",
                                                                       paymentMethod=method))).status == 201
    assert_problem(await merchant(sandbox).create(create_body("order-block-03", paymentMethod=method)), 400, "5010")


async def test_capture_deadlines_per_market(sandbox):
    """Lifecycle page: Norway 180 days; Denmark and Finland 14 days "unless late capture is activated (up to
    180 days)"; past the deadline "returns HTTP 400" (6100)."""
    cases = [("premium-shop-1", "NOK", 179, None), ("premium-shop-1", "NOK", 181, "6100"),
             ("restricted-dk", "DKK", 13, None), ("restricted-dk", "DKK", 15, "6100"),
             ("restricted-fi", "EUR", 15, "6100"), ("premium-dk-1", "DKK", 15, None),
             ("premium-fi-1", "EUR", 179, None), ("premium-fi-1", "EUR", 181, "6100")]
    for n, (role, currency, days, code) in enumerate(cases):
        shop = merchant(sandbox, role)
        shop.forget_token()  # the clock moved on in the case before
        await shop.authorized(f"order-late-00{n}", 1000, currency)
        sandbox.runtime.clock.advance(days * DAY)
        shop.forget_token()
        reply = await shop.capture(f"order-late-00{n}", 1000, currency=currency)
        if code is None:
            assert reply.status == 200, (role, days, reply.text)
        else:
            assert_problem(reply, 400, code)


async def test_partial_capture_flag(sandbox):
    """Management 2.0.9 partialCaptureAllowed: relevant in Denmark and Finland; Norwegian units all have it."""
    for role, currency, allowed in (("premium-dk-1", "DKK", True), ("restricted-dk", "DKK", False),
                                    ("restricted-fi", "EUR", False), ("restricted-no", "NOK", True)):
        shop = merchant(sandbox, role)
        await shop.authorized(f"order-part-{role}", 1000, currency)
        reply = await shop.capture(f"order-part-{role}", 400, currency=currency)
        if allowed:
            assert reply.status == 200, (role, reply.text)
        else:
            assert_problem(reply, 400, "6140")
            assert (await shop.capture(f"order-part-{role}", 1000, currency=currency)).status == 200, \
                "the full amount may be captured"


async def test_duplicate_metadata_keys_from_the_raw_body(sandbox):
    """FEATURES (Metadata): "Duplicate keys are rejected" (4110); a body without duplicates is fine."""
    shop = merchant(sandbox)
    headers = await shop.headers({"Idempotency-Key": "dup-1", "Content-Type": "application/json"})
    text = ('{"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"}, '
            '"reference": "order-dup-00001", "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/r", '
            '"metadata": {"a": "1", "b": "2", "a": "3"}}')
    assert_problem(await sandbox.request("POST", BASE, "test", data=text, headers=headers), 400, "4110")
    headers["Idempotency-Key"] = "dup-2"
    text = text.replace('"a": "3"', '"c": "3"')
    assert (await sandbox.request("POST", BASE, "test", data=text, headers=headers)).status == 201
