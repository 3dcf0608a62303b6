"""The simulated user of the Recurring API: the agreement confirmation page and the /_sandbox/recurring control plane.

`vippsConfirmationUrl` opens the confirmation page in both environments (production has no force accept): the
same simulated user as ePayment's landing page, with the product, price, interval, campaign and initial charge,
and Approve / Reject. Its token is signed with the runtime's landing key and bound to one agreement. The control
plane lets CI act as the user (approve, reject, stop), let an agreement expire, and force a charge's outcome.
"""

from __future__ import annotations

import html
import re

from aiohttp import web

from sandbox.apis.recurring.backend import Agreement, RecurringBackend
from sandbox.apis.recurring.rules import iso, problem
from sandbox.core.errors import Detail, Problem
from sandbox.core.urls import browser_view, is_safe_link
from sandbox.gateway import user_picker
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_security import policy
from sandbox.gateway.page_shell import money, page
from sandbox.gateway.phone_cards import (
    PhoneAction,
    PhoneCard,
    PhoneInput,
    add_phone_source,
    consent_html,
    consent_of,
)

#: The rule of the 400 for a phone number that is not an MSISDN (the confirmation page, the control plane).
PHONE_RULE = "recurring-phone-invalid"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return page(title, body, status, user_picker.PICKER_CSS)


async def _form(request: web.Request) -> dict:
    """The token and the user's choices, from the query string, a form or a JSON body."""
    fields: dict = dict(request.query)
    if request.method == "POST":
        if request.content_type == "application/json":
            body = await read_json(request)
            if isinstance(body, dict):
                fields.update(body)
        else:
            try:
                fields.update(await request.post())
            except (ValueError, UnicodeDecodeError, AssertionError) as exc:
                raise Problem(400, "Bad Request", f"The form body could not be read: {exc}",
                              details=[Detail("body", "Send token as a form field, a query parameter or JSON.")]) \
                    from exc
    token = fields.get("token")
    if not token or not isinstance(token, str):
        raise Problem(400, "Bad Request", "The token query parameter (from vippsConfirmationUrl) is missing.",
                      details=[Detail("token", "Required.")])
    return fields


def _max_amount(fields: dict) -> int | None:
    value = fields.get("maxAmount")
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise Problem(400, "Bad Request", "maxAmount must be a whole number of minor units.",
                      details=[Detail("maxAmount", "Must be an integer")]) from exc


def _confirmation_html(request: web.Request, recurring: RecurringBackend, agreement: Agreement, token: str) -> str:
    world = request.app[RUNTIME].world
    unit = world.sales_units.get(agreement.msn)
    shop = unit.name if unit else agreement.msn
    esc = html.escape
    pricing = agreement.pricing
    currency = pricing["currency"]
    if pricing["type"] == "LEGACY":
        price = money(pricing["amount"], currency)
    elif pricing["type"] == "VARIABLE":
        price = f"variable, up to {money(pricing.get('maxAmount', pricing['suggestedMaxAmount']), currency)}"
    else:
        price = "flexible: the merchant charges what you use"
    interval = agreement.interval
    every = (f"every {interval['count']} {interval['unit'].lower()}(s)" if interval else "pay per use")
    parts = [f"<p class=\"shop\" data-msn=\"{esc(agreement.msn)}\"><strong>{esc(shop)}</strong></p>",
             f"<h1 class=\"product\">{esc(agreement.product_name)}</h1>"]
    if agreement.product_description:
        parts.append(f"<p class=\"description\">{esc(agreement.product_description)}</p>")
    parts.append(f"<p class=\"amount\" data-pricing=\"{esc(pricing['type'])}\">{esc(price)}</p>"
                 f"<p class=\"interval\">{esc(every)}</p>")
    campaign = agreement.campaign
    if campaign is not None:
        until = (iso(campaign["end"])[:10] if "end" in campaign else campaign.get("eventText")
                 or f"{campaign['period']['count']} {campaign['period']['unit'].lower()}(s)")
        parts.append(f"<p class=\"campaign\" data-campaign=\"{esc(campaign['type'])}\">Campaign: "
                     f"{esc(money(campaign['price'], currency))} ({esc(str(until))})</p>")
    if agreement.initial_charge is not None:
        charge = recurring.charges.get((agreement.env, agreement.msn, agreement.initial_charge))
        if charge is not None:
            parts.append(f"<p class=\"initial-charge\">Pay now: {esc(money(charge.amount, currency))} "
                         f"({esc(charge.description)})</p>")
    parts.append(f"<p><small>Agreement {esc(agreement.id)} &middot; {esc(str(agreement.env))} environment</small></p>")
    if agreement.status != "PENDING":
        parts.append(f"<p class=\"state\">This agreement is <strong>{esc(agreement.status)}</strong>.</p>")
        return "".join(parts)
    if consent_of(agreement.scope):  # scope: the consent screen comes with the agreement, as in the app
        parts.append(consent_html(shop, consent_of(agreement.scope)))
    refused = recurring.refusal(agreement)
    if refused is not None:
        parts.append(f"<div class=\"why\" data-failure-reason=\"{esc(refused[0])}\">The initial charge will fail: "
                     f"{esc(refused[1])}</div>")
    hidden = f"<input type=\"hidden\" name=\"token\" value=\"{esc(token)}\">"
    choose = ""
    if pricing["type"] == "VARIABLE":
        choose = (f"<p><label>Max amount per interval (minor units) <input name=\"maxAmount\" type=\"number\" "
                  f"min=\"1\" value=\"{pricing['suggestedMaxAmount']}\"></label></p>")
    who = user_picker.picker_fields(world, user_picker.market_users(world, unit.market if unit else None),
                                    agreement.phone, "Who approves", "approver")
    parts.append(f"<form method=\"post\" action=\"/_sandbox/recurring/confirm/approve\" class=\"agree\">"
                 f"{hidden}{who}{choose}<button class=\"approve\" type=\"submit\">Approve</button></form>"
                 f"<form method=\"post\" action=\"/_sandbox/recurring/confirm/reject\" style=\"display:inline\">"
                 f"{hidden}<button class=\"reject\" type=\"submit\">Reject</button></form>")
    return "".join(parts)


def _back_to_phone(fields: dict) -> str | None:
    """Where Approve and Reject on the virtual phone go back to: that phone's page (a fixed, same-origin path)."""
    number = fields.get("backToPhone")
    return f"/_sandbox/phone/{number}" if isinstance(number, str) and PHONE_NUMBER.fullmatch(number) else None


PHONE_NUMBER = re.compile(r"[1-9][0-9]{7,14}")


def _price_line(agreement: Agreement) -> str:
    """The price and the interval, in the words the confirmation page uses."""
    pricing, interval = agreement.pricing, agreement.interval
    currency = pricing["currency"]
    if pricing["type"] == "LEGACY":
        price = money(pricing["amount"], currency)
    elif pricing["type"] == "VARIABLE":
        price = f"variable, up to {money(pricing.get('maxAmount', pricing['suggestedMaxAmount']), currency)}"
    else:
        price = "flexible: the merchant charges what you use"
    every = f"every {interval['count']} {interval['unit'].lower()}(s)" if interval else "pay per use"
    return f"{price}, {every}"


def _phone_cards(request: web.Request, recurring: RecurringBackend, number: str) -> list[PhoneCard]:
    """What the virtual phone shows of Recurring: the agreements drafted for this number that wait for the user, with
    Approve (a VARIABLE agreement asks for the maximum amount) and Reject. Each posts to the confirmation page's
    approve or reject, as this phone's user, and comes back to the phone. A scope asked for shows its consent."""
    world = request.app[RUNTIME].world
    cards = []
    for agreement in recurring.pending_for(call(request).env, number):
        unit = world.sales_units.get(agreement.msn)
        hidden = (("token", recurring.token(agreement)), ("backToPhone", number))
        lines = [agreement.product_name, _price_line(agreement)]
        if agreement.product_description:
            lines.insert(1, agreement.product_description)
        charge = recurring.charges.get((agreement.env, agreement.msn, agreement.initial_charge or ""))
        if charge is not None:
            lines.append(f"Pay now: {money(charge.amount, agreement.pricing['currency'])} ({charge.description})")
        inputs = ()
        if agreement.pricing["type"] == "VARIABLE":
            inputs = (PhoneInput("maxAmount", "Max amount per interval (minor units)",
                                 str(agreement.pricing["suggestedMaxAmount"])),)
        consent = consent_of(agreement.scope)
        refused = recurring.refusal(agreement)
        cards.append(PhoneCard(
            "agreement", unit.name if unit else agreement.msn, lines=tuple(lines),
            actions=(PhoneAction("Approve and share" if consent else "Approve", "approve",
                                 "/_sandbox/recurring/confirm/approve", (*hidden, ("phoneNumber", number))),
                     PhoneAction("Reject", "reject", "/_sandbox/recurring/confirm/reject", hidden)),
            data=(("agreement-id", agreement.id), ("msn", agreement.msn), ("pricing", agreement.pricing["type"])),
            refusal=(refused[0], f"The initial charge will fail: {refused[1]}") if refused else None,
            inputs=inputs, consent=consent, order=agreement.created))
    return cards


def setup(app: web.Application, key: web.AppKey) -> None:
    """Registers the simulated user's routes; `key` finds the RecurringBackend on the app."""

    def redirected(page: web.Response, agreement: Agreement) -> web.Response:
        if agreement.redirect_url and is_safe_link(agreement.redirect_url):
            page.headers["Content-Security-Policy"] = policy([f"{browser_view(agreement.redirect_url).scheme}:"])
        return page

    async def confirm(request: web.Request) -> web.Response:
        recurring: RecurringBackend = request.app[key]
        fields = await _form(request)
        agreement = recurring.by_token(fields["token"])
        page = _page("Vipps MobilePay sandbox: confirm agreement",
                     _confirmation_html(request, recurring, agreement, fields["token"]))
        return redirected(page, agreement)

    def answered(agreement: Agreement, word: str) -> web.Response:
        # Checked again here, as a browser reads it (a snapshot may hold anything): never a script or data URL.
        if agreement.redirect_url and is_safe_link(agreement.redirect_url):
            raise web.HTTPSeeOther(agreement.redirect_url)
        return _page(f"Agreement {word}", f"<p class=\"state\">Agreement <strong>{html.escape(agreement.status)}"
                     "</strong>. You can close this page.</p>")

    async def confirm_approve(request: web.Request) -> web.Response:
        recurring: RecurringBackend = request.app[key]
        fields = await _form(request)
        agreement = recurring.by_token(fields["token"])
        phone = user_picker.chosen_phone(fields, PHONE_RULE) if agreement.status == "PENDING" else None
        recurring.approve(agreement, phone, _max_amount(fields))
        back = _back_to_phone(fields)
        if back:
            raise web.HTTPSeeOther(back)
        return answered(agreement, "approved")

    async def confirm_reject(request: web.Request) -> web.Response:
        recurring: RecurringBackend = request.app[key]
        fields = await _form(request)
        agreement = recurring.by_token(fields["token"])
        recurring.reject(agreement)
        back = _back_to_phone(fields)
        if back:
            raise web.HTTPSeeOther(back)
        return answered(agreement, "rejected")

    def control(action: str):
        async def handler(request: web.Request) -> web.Response:
            recurring: RecurringBackend = request.app[key]
            agreement = recurring.agreement(call(request).env, request.match_info["msn"],
                                            request.match_info["agreementId"])
            if action == "approve":
                body = await read_json(request)
                if body is not None and not isinstance(body, dict):
                    raise Problem(400, "Bad Request", "The body must be a JSON object such as "
                                  "{\"phoneNumber\": \"4712345678\", \"maxAmount\": 20000}, or empty.",
                                  details=[Detail("body", "Must be an object")])
                body = body or {}
                if not isinstance(body.get("phoneNumber", ""), str):
                    raise Problem(400, "Bad Request", "phoneNumber, when there is one, is a string such as "
                                  "\"4712345678\".", details=[Detail("phoneNumber", "A string.")], rule=PHONE_RULE)
                recurring.approve(agreement, user_picker.chosen_phone({"phoneNumber": body.get("phoneNumber")},
                                                                      PHONE_RULE), _max_amount(body))
            else:
                getattr(recurring, {"stop": "user_stop"}.get(action, action))(agreement)
            return web.json_response(recurring.agreement_view(agreement, f"{request.scheme}://{request.host}"))
        handler.__doc__ = f"CI acts as the user: {action} the agreement, in this port's environment."
        return handler

    async def outcome(request: web.Request) -> web.Response:
        """Forces a PENDING or DUE charge's outcome now: {"outcome": CHARGED|RESERVED|FAILED, "failureReason"?}."""
        recurring: RecurringBackend = request.app[key]
        info = request.match_info
        charge = recurring.charge(call(request).env, info["msn"], info["agreementId"], info["chargeId"])
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("outcome"), str):
            raise problem("validation-error", "Send {\"outcome\": \"CHARGED\" | \"RESERVED\" | \"FAILED\"}.",
                          details=[Detail("outcome", "Required")])
        reason = body.get("failureReason")
        recurring.force_outcome(charge, body["outcome"], reason if isinstance(reason, str) else None)
        return web.json_response(recurring.view_charge(charge))

    add_phone_source(app, lambda request, number: _phone_cards(request, request.app[key], number))
    router = routes(app)
    router.add_get("/_sandbox/recurring/confirm", confirm, name="sandbox.recurring.confirm")
    router.add_post("/_sandbox/recurring/confirm/approve", confirm_approve, name="sandbox.recurring.confirm.approve")
    router.add_post("/_sandbox/recurring/confirm/reject", confirm_reject, name="sandbox.recurring.confirm.reject")
    for action in ("approve", "reject", "expire", "stop"):
        router.add_post(f"/_sandbox/recurring/{{msn}}/agreements/{{agreementId}}/{action}", control(action),
                        name=f"sandbox.recurring.agreements.{action}")
    router.add_post("/_sandbox/recurring/{msn}/agreements/{agreementId}/charges/{chargeId}/outcome", outcome,
                    name="sandbox.recurring.charges.outcome")
