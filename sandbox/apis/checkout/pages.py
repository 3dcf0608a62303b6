"""The simulated user of the Checkout API: the hosted checkout page at the session's `checkoutFrontendUrl`.

The page shows the shop, the order and its amount, then what the real Checkout asks for, as the session's
`configuration.elements` says: the test user who pays (the shared picker, sandbox/gateway/user_picker.py), the
contact details (Full and PaymentAndContactInfo), the address and the session's fixed shipping options (Full),
and Pay / Cancel. Fields the merchant prefilled (`prefillCustomer`) come prefilled; a field left empty takes the
chosen test user's detail. Its token is signed with the runtime's landing key and bound to one session. No script.
"""

from __future__ import annotations

import html

from aiohttp import web

from sandbox.apis.checkout.backend import CREATED, CheckoutBackend, Session
from sandbox.apis.checkout.callbacks import fetch_options
from sandbox.core.errors import Detail, Problem
from sandbox.core.model import User
from sandbox.core.urls import browser_view, is_safe_link
from sandbox.gateway import user_picker
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_security import policy
from sandbox.gateway.page_shell import money, page

PHONE_RULE = "checkout-phone-invalid"
CONTACT_FIELDS = (("firstName", "First name"), ("lastName", "Last name"), ("email", "Email"))
ADDRESS_FIELDS = (("streetAddress", "Street address"), ("postalCode", "Postal code"), ("city", "City"),
                  ("country", "Country"))
PAGE_CSS = user_picker.PICKER_CSS + ".option{display:block;margin:.35rem 0}"


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return page(title, body, status, PAGE_CSS)


async def _form(request: web.Request) -> dict:
    fields: dict = dict(request.query)
    if request.method == "POST":
        try:
            fields.update(await request.post())
        except (ValueError, UnicodeDecodeError, AssertionError) as exc:
            raise Problem(400, "Bad Request", "The form body could not be read.",
                          details=[Detail("body", "Send the page's form fields.")]) from exc
    if not isinstance(fields.get("token"), str) or not fields["token"]:
        raise Problem(400, "Bad Request", "The token query parameter (from checkoutFrontendUrl) is missing.",
                      details=[Detail("token", "Required.")], rule="checkout-token-missing")
    return fields


def user_details(user: User | None, market: str) -> dict:
    """A test user's contact and address details, in Checkout's field names."""
    details = {"country": market}
    if user is None:
        return details
    details.update(firstName=user.given_name, lastName=user.family_name, email=user.email,
                   phoneNumber=user.phone_number)
    if user.addresses:
        first = user.addresses[0]
        details.update(streetAddress=first["street_address"].replace("\n", ", "), postalCode=first["postal_code"],
                       city=first["region"])
    return details


def _inputs(fields: tuple[tuple[str, str], ...], prefill: dict, placeholders: dict, legend: str, css: str) -> str:
    esc = html.escape
    parts = [f"<fieldset class=\"{css}\" data-{css}><legend>{esc(legend)}</legend>"]
    for name, label in fields:
        value, hint = prefill.get(name) or "", placeholders.get(name) or ""
        parts.append(f"<label class=\"field\">{esc(label)}<input name=\"{name}\" value=\"{esc(str(value))}\" "
                     f"placeholder=\"{esc(str(hint))}\"></label>")
    parts.append("</fieldset>")
    return "".join(parts)


def needs_offer(checkout: CheckoutBackend, session: Session, address: dict | None) -> bool:
    """A session with a dynamic-logistics callback asks the merchant for the options of the address first."""
    offered = session.offered
    return bool(session.dynamic_callback) and session.elements == "Full" and not (
        offered and address is not None and offered["address"] == address)


def _options(checkout: CheckoutBackend, session: Session, address: dict | None, notice: str | None) -> str:
    esc = html.escape
    why = f"<div class=\"why\" data-logistics-fallback>{esc(notice)}</div>" if notice else ""
    if needs_offer(checkout, session, address) and notice is None:
        return ("<p class=\"shipping-note\" data-dynamic-shipping>The shop offers its shipping options for your "
                "address: enter it, then Continue.</p>")
    options = checkout.options(session, address)
    if not options:
        return why
    default = next((o for o in options if o.get("isDefault")), options[0])
    parts = [why, "<fieldset class=\"shipping\" data-shipping><legend>Shipping</legend>"]
    for option in options:
        title = option.get("title") or option.get("type") or option.get("brand", "")
        checked = " checked" if option is default else ""
        parts.append(f"<label class=\"option\"><input type=\"radio\" name=\"shippingOption\" "
                     f"value=\"{esc(str(option['id']))}\"{checked}> {esc(str(option.get('brand', '')))} "
                     f"{esc(str(title))}: {esc(money(option['amount']['value'], option['amount']['currency']))}"
                     "</label>")
    parts.append("</fieldset>")
    return "".join(parts)


def _checkout_html(checkout: CheckoutBackend, session: Session, token: str, typed: dict | None = None,
                   address: dict | None = None, notice: str | None = None) -> str:
    """The page; `typed` (what the user already typed), `address` and `notice` (why the merchant's dynamic options
    are not used) when it comes back from the dynamic-logistics callback."""
    world = checkout.runtime.world
    unit = world.sales_units.get(session.msn)
    esc = html.escape
    parts = [f"<p class=\"shop\" data-msn=\"{esc(session.msn)}\"><strong>{esc(unit.name if unit else session.msn)}"
             "</strong></p>", f"<h1 class=\"description\">{esc(session.description)}</h1>",
             f"<p class=\"amount\" data-value=\"{session.value}\">{esc(money(session.value, session.currency))}</p>",
             f"<p><small>Checkout session {esc(session.reference)} &middot; {esc(str(session.env))} environment"
             "</small></p>"]
    if session.state != CREATED:
        parts.append(f"<p class=\"state\" data-state=\"{esc(session.state)}\">This session is "
                     f"<strong>{esc(session.state)}</strong>.</p>")
        return "".join(parts)
    market = unit.market if unit else "NO"
    users = user_picker.market_users(world, market)
    phone = session.prefill.get("phoneNumber")
    chosen = world.user(user_picker.preselected(world, users, phone))
    hints = user_details(chosen, market)
    hidden = f"<input type=\"hidden\" name=\"token\" value=\"{esc(token)}\">"
    values = {**session.prefill, **(typed or {})}
    form = [user_picker.picker_fields(world, users, values.get("phoneNumber") or phone, "Who pays", "payer")]
    if session.elements != "PaymentOnly":
        form.append(_inputs(CONTACT_FIELDS, values, hints, "Contact details", "contact"))
    if session.elements == "Full":
        form.append(_inputs(ADDRESS_FIELDS, values, hints, "Address", "address"))
        form.append(_options(checkout, session, address, notice))
    label = "Continue" if needs_offer(checkout, session, address) and notice is None else "Pay"
    parts.append(f"<form method=\"post\" action=\"/_sandbox/checkout/session/approve\" class=\"pay\">{hidden}"
                 f"{''.join(form)}<button class=\"approve\" type=\"submit\">{label}</button></form>"
                 f"<form method=\"post\" action=\"/_sandbox/checkout/session/cancel\" style=\"display:inline\">"
                 f"{hidden}<button class=\"reject\" type=\"submit\">Cancel</button></form>")
    return "".join(parts)


def _filled(fields: dict, names: tuple[tuple[str, str], ...], *defaults: dict) -> dict:
    """Each field as typed, else the first default that has it."""
    out = {}
    for name, _ in names:
        typed = fields.get(name)
        value = typed.strip() if isinstance(typed, str) else ""
        for default in defaults:
            value = value or str(default.get(name) or "")
        out[name] = value[:200]
    return out


def setup(app: web.Application, key: web.AppKey, rules_key: web.AppKey) -> None:
    """Registers the hosted checkout page; `key` finds the CheckoutBackend on the app, `rules_key` the callbacks
    (whose outgoing-URL rules the dynamic-logistics callback follows)."""

    def redirecting(response: web.Response, session: Session) -> web.Response:
        url = session.merchant_info.get("returnUrl")
        if is_safe_link(url):  # the form posts here, then the browser goes to the merchant's returnUrl
            response.headers["Content-Security-Policy"] = policy([f"{browser_view(url).scheme}:"])
        return response

    def answered(session: Session, word: str) -> web.Response:
        url = session.merchant_info.get("returnUrl")
        if is_safe_link(url):  # checked as a browser reads it: never a script or data URL
            raise web.HTTPSeeOther(url)
        return _page(f"Checkout {word}", f"<p class=\"state\">Checkout <strong>{html.escape(session.state)}"
                     "</strong>. You can close this page.</p>")

    async def show(request: web.Request) -> web.Response:
        checkout: CheckoutBackend = request.app[key]
        fields = await _form(request)
        session = checkout.by_token(fields["token"])
        return redirecting(_page("Vipps MobilePay sandbox: checkout",
                                 _checkout_html(checkout, session, fields["token"])), session)

    async def approve(request: web.Request) -> web.Response:
        checkout: CheckoutBackend = request.app[key]
        fields = await _form(request)
        session = checkout.by_token(fields["token"])
        world = checkout.runtime.world
        unit = world.sales_units.get(session.msn)
        market = unit.market if unit else "NO"
        phone = user_picker.chosen_phone(fields, PHONE_RULE) or user_picker.preselected(
            world, user_picker.market_users(world, market), session.prefill.get("phoneNumber"))
        user = user_details(world.user(phone), market)
        contact = address = None
        if session.elements != "PaymentOnly":
            contact = _filled(fields, CONTACT_FIELDS, session.prefill, user)
            contact["phoneNumber"] = phone or user.get("phoneNumber") or ""
        if session.elements == "Full":
            address = _filled(fields, ADDRESS_FIELDS, session.prefill, user)
        option = fields.get("shippingOption") if isinstance(fields.get("shippingOption"), str) else None
        if address is not None and needs_offer(checkout, session, address) and session.state == CREATED:
            # Ask the merchant for this address's options, then show the page again with them (no script).
            info = session.merchant_info
            options, notice = await fetch_options(request.app[rules_key].rules, str(session.dynamic_callback),
                                                  info["callbackAuthorizationToken"],
                                                  checkout.callback_address(address))
            if options is not None:
                notice = checkout.offer(session, address, options)
            typed = {**(contact or {}), **address}
            return redirecting(_page("Vipps MobilePay sandbox: checkout", _checkout_html(
                checkout, session, fields["token"], typed, address, notice)), session)
        checkout.pay(session, phone, contact or {}, address, option, f"{request.scheme}://{request.host}")
        return answered(session, "paid")

    async def cancel(request: web.Request) -> web.Response:
        checkout: CheckoutBackend = request.app[key]
        session = checkout.by_token((await _form(request))["token"])
        checkout.cancel(session)
        return answered(session, "cancelled")

    router = routes(app)
    router.add_get("/_sandbox/checkout/session", show, name="sandbox.checkout.page")
    router.add_post("/_sandbox/checkout/session/approve", approve, name="sandbox.checkout.approve")
    router.add_post("/_sandbox/checkout/session/cancel", cancel, name="sandbox.checkout.cancel")
