"""Every emulated row of the documented error-code table (sandbox.apis.epayment.error_codes) reached by a request.

Table-driven: each row marked emulated has a request here that should cause it, sent through the real server;
the answer must have the row's status, the ePayment problem body (RFC 7807 with extraDetails) and the row's
ErrorCode and title. The rows not emulated must say why and be listed in docs/reference/fidelity.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from epayment_support import BASE, Merchant, assert_problem, create_body, merchant, new_key

from sandbox.apis.epayment.error_codes import BY_CODE, ERROR_CODES
from sandbox.testing import Reply, SandboxClient

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400
RECEIPT = {"orderLines": [{"name": "Socks", "id": "1", "totalAmount": 10000, "totalAmountExcludingTax": 8000,
                           "totalTaxAmount": 2000, "taxPercentage": 25}], "bottomLine": {"currency": "NOK"}}

EXPRESS_GROUPS = [{"type": "HOME_DELIVERY", "brand": "POSTEN", "options": [
    {"id": "home", "name": "Home delivery", "amount": {"currency": "NOK", "value": 9900}}]}]

Scenario = Callable[[SandboxClient], Awaitable[Reply]]
SCENARIOS: dict[str, Scenario] = {}


def reaches(code: str):
    def register(scenario: Scenario) -> Scenario:
        assert code not in SCENARIOS, code
        SCENARIOS[code] = scenario
        return scenario
    return register


def later(sandbox: SandboxClient, shop: Merchant, days: float) -> None:
    """Moves the virtual clock on (the caller's token lives an hour on it, so it gets a new one)."""
    sandbox.runtime.clock.advance(days * DAY)
    shop.forget_token()


def expires_in(sandbox: SandboxClient, seconds: float) -> str:
    return (sandbox.runtime.clock.now() + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- 4xxx: the request -------------------------------------------------------------------------------------
@reaches("4010")
async def capture_key_reused(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-4010-a", 1000)
    assert (await shop.capture("code-4010-a", 300, key="cap-4010")).status == 200
    return await shop.capture("code-4010-a", 200, key="cap-4010")


@reaches("4020")
async def create_key_reused(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-4020-a"), key="create-4020")).status == 201
    return await shop.create(create_body("code-4020-b"), key="create-4020")


@reaches("4040")
async def amount_with_decimals(sandbox):
    return await merchant(sandbox).create(create_body("code-4040-a", 1000.5))


@reaches("4050")
async def bad_customer_token(sandbox):
    return await merchant(sandbox).create(create_body("code-4050-a", flow="PUSH_MESSAGE",
                                                      customer={"customerToken": "not a token"}))


@reaches("4060")
async def bad_personal_qr(sandbox):
    return await merchant(sandbox).create(create_body("code-4060-a", flow="PUSH_MESSAGE",
                                                      customer={"personalQr": "4712345678"}))


@reaches("4070")
async def bad_phone_number(sandbox):
    return await merchant(sandbox).create(create_body("code-4070-a", flow="PUSH_MESSAGE",
                                                      customer={"phoneNumber": "+47 123 45 678"}))


@reaches("4080")
async def unknown_scope(sandbox):
    return await merchant(sandbox).create(create_body("code-4080-a", profile={"scope": "name shoeSize"}))


@reaches("4090")
async def script_return_url(sandbox):
    return await merchant(sandbox).create(create_body("code-4090-a", returnUrl="javascript:alert(1)"))


@reaches("4100")
async def six_metadata_pairs(sandbox):
    return await merchant(sandbox).create(create_body("code-4100-a", metadata={f"k{n}": "v" for n in range(6)}))


@reaches("4110")
async def duplicate_metadata_key(sandbox):
    shop = merchant(sandbox)
    text = json.dumps(create_body("code-4110-a", metadata={"order": "1"}))
    text = text.replace('{"order": "1"}', '{"order": "1", "order": "2"}')
    return await sandbox.request("POST", BASE, "test", data=text,
                                 headers=await shop.headers({"Idempotency-Key": new_key(),
                                                             "Content-Type": "application/json"}))


@reaches("4120")
async def long_metadata_key(sandbox):
    return await merchant(sandbox).create(create_body("code-4120-a", metadata={"k" * 101: "v"}))


@reaches("4130")
async def long_metadata_value(sandbox):
    return await merchant(sandbox).create(create_body("code-4130-a", metadata={"k": "v" * 501}))


@reaches("4140")
async def web_redirect_without_return_url(sandbox):
    body = create_body("code-4140-a")
    del body["returnUrl"]
    return await merchant(sandbox).create(body)


@reaches("4150")
async def reference_exists(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-4150-a"))).status == 201
    return await shop.create(create_body("code-4150-a", 2000))


@reaches("4160")
async def card_in_test(sandbox):
    return await merchant(sandbox).create(create_body("code-4160-a", paymentMethod={"type": "CARD"}))


# -- 5xxx: the merchant's configuration ------------------------------------------------------------------
@reaches("5010")
async def blocked_sources_in_norway(sandbox):
    return await merchant(sandbox).create(create_body(
        "code-5010-a", paymentMethod={"type": "WALLET", "blockedSources": ["COMMERCIAL_CARDS"]}))


@reaches("5020")
async def express_not_enabled(sandbox):
    shop = merchant(sandbox)
    sandbox.runtime.settings.express_disabled = (shop.msn,)  # as `serve --express-disabled MSN` sets it
    return await shop.create(create_body("code-5020-a", profile={"scope": "name address email phoneNumber"},
                                         shipping={"fixedOptions": EXPRESS_GROUPS}))


@reaches("5030")
async def nin_scope(sandbox):
    return await merchant(sandbox).create(create_body("code-5030-a", profile={"scope": "name nin"}))


@reaches("5040")
async def wrong_currency(sandbox):
    return await merchant(sandbox, "premium-dk-1").create(create_body("code-5040-a", 1000, "NOK"))


@reaches("5050")
async def long_living_not_approved(sandbox):
    return await merchant(sandbox, "restricted-no").create(
        create_body("code-5050-a", expiresAt=expires_in(sandbox, 2 * 3600), receipt=RECEIPT))


@reaches("5070")
async def payments_not_allowed(sandbox):
    return await merchant(sandbox, "login-only").create(create_body("code-5070-a"))


@reaches("5080")
async def push_message_not_approved(sandbox):
    return await merchant(sandbox, "restricted-no").create(create_body("code-5080-a", flow="PUSH_MESSAGE"))


@reaches("5090")
async def unknown_reference(sandbox):
    return await merchant(sandbox).get("code-5090-never-made")


@reaches("5100")
async def magic_refund_123(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-5100-a", 1000)
    await shop.capture("code-5100-a", 1000)
    return await shop.refund("code-5100-a", 123)


# -- 6xxx: the payment ----------------------------------------------------------------------------------
@reaches("6010")
async def amount_too_small(sandbox):
    return await merchant(sandbox).create(create_body("code-6010-a", 99))


@reaches("6020")
async def refund_before_capture(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6020-a", 1000)
    return await shop.refund("code-6020-a", 100)


@reaches("6030")
async def cancel_after_the_capture_deadline(sandbox):
    shop = merchant(sandbox, "restricted-dk")  # 14 days without late capture
    await shop.authorized("code-6030-a", 1000, "DKK")
    later(sandbox, shop, 15)
    return await shop.cancel("code-6030-a")


@reaches("6040")
async def cancel_after_full_capture(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6040-a", 1000)
    await shop.capture("code-6040-a", 1000)
    return await shop.cancel("code-6040-a")


@reaches("6050")
async def cancel_expired(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-6050-a"))).status == 201
    await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/code-6050-a/expire", "test")
    return await shop.cancel("code-6050-a")


@reaches("6060")
async def cancel_transaction_only_after_authorization(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6060-a", 1000)
    return await shop.cancel("code-6060-a", {"cancelTransactionOnly": True})


@reaches("6070")
async def capture_after_cancel(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6070-a", 1000)
    assert (await shop.cancel("code-6070-a")).status == 200
    return await shop.capture("code-6070-a", 100)


@reaches("6080")
async def capture_before_reservation(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-6080-a"))).status == 201
    return await shop.capture("code-6080-a", 100)


@reaches("6090")
async def capture_too_much(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6090-a", 1000)
    return await shop.capture("code-6090-a", 1001)


@reaches("6100")
async def capture_after_14_days_in_denmark(sandbox):
    shop = merchant(sandbox, "restricted-dk")
    await shop.authorized("code-6100-a", 1000, "DKK")
    later(sandbox, shop, 15)
    return await shop.capture("code-6100-a", 1000, currency="DKK")


@reaches("6110")
async def expires_too_late(sandbox):
    return await merchant(sandbox).create(create_body("code-6110-a", expiresAt=expires_in(sandbox, 61 * DAY),
                                                      receipt=RECEIPT))


@reaches("6120")
async def expires_too_soon(sandbox):
    return await merchant(sandbox).create(create_body("code-6120-a", expiresAt=expires_in(sandbox, 300),
                                                      receipt=RECEIPT))


@reaches("6130")
async def long_living_without_receipt(sandbox):
    return await merchant(sandbox).create(create_body("code-6130-a", expiresAt=expires_in(sandbox, 2 * 3600)))


@reaches("6140")
async def partial_capture_not_allowed(sandbox):
    shop = merchant(sandbox, "restricted-fi")
    await shop.authorized("code-6140-a", 1000, "EUR")
    return await shop.capture("code-6140-a", 400, currency="EUR")


@reaches("6150")
async def refund_too_much(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6150-a", 1000)
    await shop.capture("code-6150-a", 600)
    return await shop.refund("code-6150-a", 601)


@reaches("6170")
async def capture_after_full_capture(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6170-a", 1000)
    await shop.capture("code-6170-a", 1000)
    return await shop.capture("code-6170-a", 1)


@reaches("6180")
async def refund_after_full_refund(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6180-a", 1000)
    await shop.capture("code-6180-a", 1000)
    await shop.refund("code-6180-a", 1000)
    return await shop.refund("code-6180-a", 1)


@reaches("6200")
async def capture_rejected(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-6200-a"))).status == 201
    await sandbox.request("POST", f"/_sandbox/payments/{shop.msn}/code-6200-a/reject", "test")
    return await shop.capture("code-6200-a", 100)


@reaches("6210")
async def refund_in_a_wrong_state(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-6210-a"))).status == 201
    return await shop.refund("code-6210-a", 100)


@reaches("6220")
async def refund_after_365_days(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("code-6220-a", 1000)
    await shop.capture("code-6220-a", 1000)
    later(sandbox, shop, 366)
    return await shop.refund("code-6220-a", 100)


@reaches("6230")
async def approve_twice(sandbox):
    shop = merchant(sandbox)
    assert (await shop.create(create_body("code-6230-a"))).status == 201
    assert (await shop.force_approve("code-6230-a")).status == 200
    return await shop.force_approve("code-6230-a")


# -- 10xxx: force approve in test -----------------------------------------------------------------------
def magic(code: str, value: int) -> Scenario:
    async def scenario(sandbox):
        shop = merchant(sandbox)
        assert (await shop.create(create_body(f"code-{code}-a", value))).status == 201
        return await shop.force_approve(f"code-{code}-a")
    return scenario


for _code, _value in (("10010", 151), ("10020", 183), ("10030", 197), ("10040", 186), ("10070", 184)):
    reaches(_code)(magic(_code, _value))

@reaches("10060")
async def force_approve_express(sandbox):
    shop = merchant(sandbox)
    body = create_body("code-10060-a", profile={"scope": "name address email phoneNumber"},
                       shipping={"fixedOptions": EXPRESS_GROUPS})
    assert (await shop.create(body)).status == 201
    return await shop.force_approve("code-10060-a")


EMULATED = [row.code for row in ERROR_CODES if row.emulated]


def test_every_emulated_row_has_a_request_and_no_other_row_does():
    assert sorted(SCENARIOS, key=int) == EMULATED


@pytest.mark.parametrize("code", EMULATED)
async def test_the_request_gets_the_documented_code(sandbox, code):
    row = BY_CODE[code]
    reply = await SCENARIOS[code](sandbox)
    body = assert_problem(reply, row.status, code)  # status, problem+json, the spec's Problem, traceId, code
    assert body["title"] == row.title
    assert body["type"] == f"https://httpstatuses.io/{row.status}"
    assert body["detail"] and body["instance"].startswith("/v1/")


# -- the rows that are not emulated: listed in the fidelity notes, with their reason ------------------------
START, END = "<!-- error-codes-not-emulated:start -->", "<!-- error-codes-not-emulated:end -->"


def not_emulated_block() -> str:
    lines = ["| Code | Title | Why not |", "|---|---|---|"]
    for row in ERROR_CODES:
        if not row.emulated:
            why = row.not_emulated_reason.replace("|", "\\|")
            lines.append(f"| {row.code} | {row.title} | {'cannot be: ' if row.emulated is None else ''}{why} |")
    return "\n".join(lines)


def test_the_fidelity_notes_list_every_row_not_emulated():
    text = (ROOT / "docs" / "reference" / "fidelity.md").read_text()
    found = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    expected = not_emulated_block()
    assert found, f"docs/reference/fidelity.md needs this block:\n{START}\n{expected}\n{END}"
    assert found.group(1) == expected, f"update the block in docs/reference/fidelity.md to:\n{expected}"
