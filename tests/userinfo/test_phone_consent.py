"""The virtual phone's agreements and consent screens: a Recurring agreement drafted for a user's number waits on
that user's phone with Approve and Reject (a VARIABLE one asks for the maximum amount), and a payment or agreement
that asks for profile data lists what approving shares (all or nothing). In real headless Chromium, and over HTTP;
what the user shared then reads back from the Userinfo API."""

from __future__ import annotations

import html

from browser_support import chromium, needs_chromium, new_page
from epayment_support import create_body, merchant
from recurring_support import draft_body
from recurring_support import merchant as recurring_merchant
from recurring_support import partner as recurring_partner
from userinfo_support import read

from sandbox.core.claims import SCOPE_TEXT


def variable(phone: str, **extra) -> dict:
    return draft_body(pricing={"type": "VARIABLE", "suggestedMaxAmount": 30000, "currency": "NOK"},
                      phoneNumber=phone, **extra)


async def phone_page(sandbox, number: str, env: str = "test") -> str:
    async with sandbox.session.get(sandbox.url(env) + f"/_sandbox/phone/{number}") as resp:
        assert resp.status == 200
        return await resp.text()


@needs_chromium
async def test_the_phone_confirms_agreements_and_shows_the_consent_it_shares(sandbox):
    caller = recurring_merchant(sandbox)
    world = sandbox.runtime.world
    user, other = world.users_by_role["no-user"], world.users_by_role["no-several-addresses"]
    drafted = {}
    for name, body in (("shared", draft_body(phoneNumber=user.phone_number, scope="name email")),
                       ("variable", variable(user.phone_number)),
                       ("rejected", draft_body(phoneNumber=user.phone_number, productName="Weekly Crossword")),
                       ("elsewhere", draft_body(phoneNumber=other.phone_number))):
        reply = await caller.draft(body)
        assert reply.status == 201, reply.text
        drafted[name] = reply.json["agreementId"]
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        assert await page.locator("fieldset.request[data-kind=agreement]").count() == 3
        assert await page.locator(f"[data-agreement-id={drafted['elsewhere']}]").count() == 0
        shared = page.locator(f"[data-agreement-id={drafted['shared']}]")
        consent = shared.locator("[data-consent]")
        assert await consent.locator("li").all_inner_texts() == [SCOPE_TEXT["name"], SCOPE_TEXT["email"]]
        assert "All or nothing" in await consent.inner_text()
        assert "MyNews Digital" in await shared.inner_text() and "499.00 NOK" in await shared.inner_text()
        await shared.locator("button.approve").click()
        await page.wait_for_url(f"**/_sandbox/phone/{user.phone_number}")
        assert await page.locator(f"[data-agreement-id={drafted['shared']}]").count() == 0
        card = page.locator(f"[data-agreement-id={drafted['variable']}]")
        assert await card.locator("[data-consent]").count() == 0  # asks for nothing: no consent screen
        await card.locator("input[name=maxAmount]").fill("25000")
        await card.locator("button.approve").click()
        await page.wait_for_url(f"**/_sandbox/phone/{user.phone_number}")
        await page.locator(f"[data-agreement-id={drafted['rejected']}] button.reject").click()
        await page.locator("[data-empty]").wait_for()
        assert errors == []
    agreement = (await caller.get(drafted["shared"])).json
    assert agreement["status"] == "ACTIVE"
    body = (await read(caller, agreement["sub"])).json
    assert body["name"] == user.name and body["email"] == user.email
    variable_agreement = (await caller.get(drafted["variable"])).json
    assert variable_agreement["status"] == "ACTIVE" and variable_agreement["pricing"]["maxAmount"] == 25000
    assert "sub" not in variable_agreement
    assert (await caller.get(drafted["rejected"])).json["status"] == "STOPPED"
    assert (await caller.get(drafted["elsewhere"])).json["status"] == "PENDING"


@needs_chromium
async def test_a_payment_s_consent_screen_on_the_phone_then_the_merchant_reads_the_profile(sandbox):
    shop = merchant(sandbox)
    user = sandbox.runtime.world.users_by_role["no-several-addresses"]
    body = create_body("consent-0001", flow="PUSH_MESSAGE", customer={"phoneNumber": user.phone_number},
                       profile={"scope": "name address"})
    assert (await shop.create(body)).status == 201
    async with chromium() as browser:
        page, errors = await new_page(browser)
        await page.goto(sandbox.url("test") + f"/_sandbox/phone/{user.phone_number}")
        card = page.locator("[data-reference=consent-0001]")
        assert await card.locator("[data-consent] li").all_inner_texts() == [SCOPE_TEXT["name"],
                                                                            SCOPE_TEXT["address"]]
        assert await card.locator("button.approve").inner_text() == "Approve and share"
        await card.locator("button.approve").click()
        await page.locator("[data-empty]").wait_for()
        assert errors == []
    sub = (await shop.get("consent-0001")).json["profile"]["sub"]
    shared = (await read(shop, sub)).json
    assert shared["name"] == user.name and len(shared["other_addresses"]) == len(user.addresses) - 1


async def test_over_http_rejecting_the_consent_shares_nothing_and_environments_stay_apart(sandbox):
    world = sandbox.runtime.world
    user = world.users_by_role["no-user"]
    test_caller, prod_caller = recurring_merchant(sandbox), recurring_partner(sandbox)
    agreement_id = (await test_caller.draft(draft_body(phoneNumber=user.phone_number, scope="address"))
                    ).json["agreementId"]
    prod_id = (await prod_caller.draft(draft_body(phoneNumber=user.phone_number))).json["agreementId"]
    page = await phone_page(sandbox, user.phone_number)
    assert agreement_id in page and prod_id not in page and 'data-scope="address"' in page
    assert prod_id in await phone_page(sandbox, user.phone_number, "production")
    start = page.index(f'data-agreement-id="{agreement_id}"')
    form = page[page.index('action="/_sandbox/recurring/confirm/reject"', start):]
    token = html.unescape(form.split('name="token" value="', 1)[1].split('"', 1)[0])
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/recurring/confirm/reject",
                                    data={"token": token, "backToPhone": user.phone_number},
                                    allow_redirects=False) as resp:
        assert resp.status == 303 and resp.headers["Location"] == f"/_sandbox/phone/{user.phone_number}"
    agreement = (await test_caller.get(agreement_id)).json
    assert agreement["status"] == "STOPPED" and "sub" not in agreement
    assert agreement_id not in await phone_page(sandbox, user.phone_number)
    # backToPhone is a phone number or nothing: never a way to send the browser elsewhere
    other = (await test_caller.draft(draft_body(phoneNumber=user.phone_number))).json["agreementId"]
    page = await phone_page(sandbox, user.phone_number)
    form = page[page.index('action="/_sandbox/recurring/confirm/reject"', page.index(other)):]
    token = html.unescape(form.split('name="token" value="', 1)[1].split('"', 1)[0])
    async with sandbox.session.post(sandbox.url("test") + "/_sandbox/recurring/confirm/reject",
                                    data={"token": token, "backToPhone": "//evil.example"},
                                    allow_redirects=False) as resp:
        assert resp.headers.get("Location") != "//evil.example"


async def test_the_landing_and_confirmation_pages_show_the_consent_screen_too(sandbox):
    """Opened from redirectUrl or vippsConfirmationUrl (no phone), the pages list what approving shares; a request
    that asks for nothing shows none."""
    shop, caller = merchant(sandbox), recurring_merchant(sandbox)
    for reference, profile in (("consent-0002", {"scope": "email birthDate"}), ("consent-0003", None)):
        body = create_body(reference, **({"profile": profile} if profile else {}))
        landing = (await shop.create(body)).json["redirectUrl"]
        async with sandbox.session.get(landing) as resp:
            page = await resp.text()
        if profile:
            assert 'data-scope="email"' in page and 'data-scope="birthDate"' in page
            assert html.escape(SCOPE_TEXT["birthDate"]) in page and "All or nothing" in page
        else:
            assert "data-consent" not in page
    for scope in ("address nin", None):
        reply = await caller.draft(draft_body(**({"scope": scope} if scope else {})))
        assert reply.status == 201, reply.text
        async with sandbox.session.get(reply.json["vippsConfirmationUrl"]) as resp:
            page = await resp.text()
        assert ('data-scope="nin"' in page and 'data-scope="address"' in page) if scope else "data-consent" not in page
