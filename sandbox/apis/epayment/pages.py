"""The simulated user of the ePayment API: landing page, QR code and the /_sandbox/payments control plane.

The landing page is what the user's browser opens from `redirectUrl`; it works in both
environments (production has no force approve). The control plane lets CI act as the user.
"""

from __future__ import annotations

import html
import io
from urllib.parse import quote

from aiohttp import web

from sandbox.apis.epayment import express
from sandbox.apis.epayment.backend import Payment, PaymentsBackend, State
from sandbox.core.errors import Detail, Problem
from sandbox.core.urls import browser_view, is_safe_link
from sandbox.gateway import user_picker
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.order_details import order_details, order_details_html
from sandbox.gateway.page_security import policy
from sandbox.gateway.page_shell import money, page
from sandbox.gateway.phone_cards import PhoneAction, PhoneCard, add_phone_source, consent_html, consent_of
from sandbox.gateway.user_picker import user_options

#: What the landing page adds to the shared frame (sandbox/gateway/page_shell.py): the Express fields.
LANDING_CSS = (user_picker.PICKER_CSS + "input[readonly]{background:#f3f3f3}"
               ".option small{color:#666}.total{font-weight:600}.update,.pick{background:#eee}")


def _backend(request: web.Request, key: web.AppKey) -> PaymentsBackend:
    return request.app[key]


async def _token(request: web.Request) -> str:
    """The landing token, from the query string, a form field or a JSON body."""
    token = request.query.get("token")
    if not token and request.method == "POST":
        if request.content_type == "application/json":
            body = await read_json(request)
            token = body.get("token") if isinstance(body, dict) else None
        else:
            try:
                token = (await request.post()).get("token")  # type: ignore[assignment]
            except (ValueError, UnicodeDecodeError, AssertionError) as exc:  # e.g. multipart without a boundary
                raise Problem(400, "Bad Request", f"The form body could not be read: {exc}",
                              details=[Detail("body", "Send token as a form field, a query parameter or JSON.")]) \
                    from exc
    if not token or not isinstance(token, str):
        raise Problem(400, "Bad Request", "The token query parameter (from the payment's redirectUrl) is missing.",
                      details=[Detail("token", "Required.")])
    return token


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return page(title, body, status, LANDING_CSS)


def _landing_html(request: web.Request, payments: PaymentsBackend, payment: Payment, token: str,
                  express_part: str | None = None) -> str:
    world = request.app[RUNTIME].world
    unit = world.sales_units.get(payment.msn)
    shop = unit.name if unit else payment.msn
    merchant = world.merchants[unit.merchant].name if unit and unit.merchant in world.merchants else ""
    amount = money(payment.value, payment.currency)
    esc = html.escape
    parts = [f"<p class=\"shop\" data-msn=\"{esc(payment.msn)}\"><strong>{esc(shop)}</strong>"
             f"{'<br><small>' + esc(merchant) + '</small>' if merchant else ''}</p>",
             f"<p class=\"amount\">{esc(amount)}</p>"]
    if payment.description:
        parts.append(f"<p class=\"description\">{esc(payment.description)}</p>")
    parts.append(f"<p><small>Reference {esc(payment.reference)} &middot; {esc(str(payment.env))} environment"
                 "</small></p>")
    details = order_details(request, payment.env, payment.msn, "ecom", payment.reference)  # Order Management's
    if details is not None:
        parts.append(order_details_html(details))
    if payment.state is not State.CREATED:
        parts.append(f"<p class=\"state\">This payment is <strong>{esc(str(payment.state))}</strong>.</p>")
        return "".join(parts)
    consent = consent_of(payment.scope)
    if consent:  # profile.scope: the consent screen comes with the payment, as in the app
        parts.append(consent_html(shop, consent))
    refused = payments.refusal(payment)
    if refused is not None:
        parts.append(f"<div class=\"why\" data-error-code=\"{esc(refused[0])}\">This payment cannot be approved: "
                     f"{esc(refused[1])}</div>")
    disabled = " disabled" if refused is not None else ""
    hidden = f"<input type=\"hidden\" name=\"token\" value=\"{esc(token)}\">"
    if express_part is not None:
        parts.append(express_part)
        parts.append(f"<form method=\"post\" action=\"/_sandbox/landing/reject\">{hidden}"
                     "<button class=\"reject\" type=\"submit\">Reject</button></form>")
        return "".join(parts)
    parts.append(f"<form method=\"post\" action=\"/_sandbox/landing/approve\" class=\"pay\">{hidden}"
                 f"{_payer_fields(payments, payment, unit.market if unit else 'NO', world)}"
                 f"<button class=\"approve\" type=\"submit\"{disabled}>Approve</button></form>"
                 f"<form method=\"post\" action=\"/_sandbox/landing/reject\" style=\"display:inline\">{hidden}"
                 "<button class=\"reject\" type=\"submit\">Reject</button></form>")
    return "".join(parts)


def _payer_fields(payments: PaymentsBackend, payment: Payment, market: str, world) -> str:
    """Who pays: the shared test-user picker (sandbox/gateway/user_picker.py). With
    landingPagePhoneNumberLocked, the payment's number, read-only."""
    esc = html.escape
    locked = payments.phone_locked(payment)
    if locked:
        return (f"<label class=\"field\">Paying with phone number<input name=\"phoneNumber\" value=\"{esc(locked)}\" "
                "readonly data-locked></label>")
    return user_picker.picker_fields(world, user_picker.market_users(world, market), payment.phone, "Who pays",
                                     "payer")


def chosen_payer(payments: PaymentsBackend, payment: Payment, fields: dict) -> str | None:
    """The phone number of who pays, from the landing form (user_picker.chosen_phone: the typed number, else the
    chosen test user, else None). 400 for a malformed number, or one other than the payment's when the sales unit
    locks the landing page to it."""
    phone = user_picker.chosen_phone(fields, "landing-phone-invalid")
    if phone is None:
        return None
    locked = payments.phone_locked(payment)
    if locked and phone != locked:
        raise Problem(400, "Bad Request", "This sales unit locks the landing page to the payment's phone number.",
                      details=[Detail("phoneNumber", "Locked.")], rule="landing-phone-locked")
    return phone


_LABELS = {"firstName": "First name", "lastName": "Last name", "email": "E-mail", "mobileNumber": "Mobile number",
           "addressLine1": "Address", "addressLine2": "Address, line 2 (optional)", "postCode": "Post code",
           "city": "City"}
_AUTOCOMPLETE = {"firstName": "given-name", "lastName": "family-name", "email": "email", "mobileNumber": "tel",
                 "addressLine1": "address-line1", "addressLine2": "address-line2", "postCode": "postal-code",
                 "city": "address-level2"}


def _input(name: str, value: str, locked: bool = False) -> str:
    esc = html.escape
    extra = " readonly data-locked" if locked else ""
    required = "" if name == "addressLine2" else " required"
    return (f"<label class=\"field\">{esc(_LABELS[name])}<input name=\"{name}\" value=\"{esc(value)}\" "
            f"autocomplete=\"{_AUTOCOMPLETE[name]}\"{required}{extra}></label>")


def _express_form(payment: Payment, token: str, user: express.User, locked: str | None, groups: list[dict] | None,
                  signed_offer: str | None, trouble: str, refused: bool = False, users: tuple = ()) -> str:
    """The Express part of the landing page: the user's details and address, the shipping options with the total
    each gives, and Approve (one form; with dynamic options a second button fetches the options again)."""
    esc = html.escape
    dynamic = payment.shipping is not None and "dynamicOptions" in payment.shipping
    parts = [f"<form method=\"post\" action=\"/_sandbox/landing/approve\" class=\"express\" data-express>"
             f"<input type=\"hidden\" name=\"token\" value=\"{esc(token)}\">",
             "<fieldset class=\"user\"><legend>Your details</legend>",
             *([f"<label class=\"field\">Test user<select name=\"payer\">{user_options(users, user.mobileNumber)}"
                "</select></label><button class=\"pick\" type=\"submit\" formaction=\"/_sandbox/landing\" "
                "formmethod=\"get\" name=\"pick\" value=\"1\">Use this test user</button>"]
               if users and not locked else []),
             *(_input(name, getattr(user, name), locked=(name == "mobileNumber" and bool(locked)))
               for name in express.USER_FIELDS),
             "</fieldset><fieldset class=\"address\"><legend>Delivery address</legend>",
             *(_input(name, user.address.get(name, "")) for name in express.ADDRESS_FIELDS),
             f"<p class=\"country\">Country: <strong data-country>{esc(user.address['country'])}</strong></p>"]
    if dynamic:
        parts.append("<button class=\"update\" type=\"submit\" formaction=\"/_sandbox/landing\" formmethod=\"get\" "
                     "name=\"update\" value=\"1\">Update shipping options</button>")
    parts.append("</fieldset>")
    approvable = groups is not None and not trouble and not refused
    if trouble:
        parts.append(trouble)
    if groups is not None:
        chosen = express.default_option(groups)
        parts.append("<fieldset class=\"shipping\" data-shipping><legend>Shipping</legend>")
        for group in express.ordered(groups):
            kind = group["type"].replace("_", " ").lower()
            parts.append(f"<fieldset class=\"group\" data-brand=\"{esc(group['brand'])}\" "
                         f"data-type=\"{esc(group['type'])}\"><legend>{esc(group['brand'].title())} &middot; "
                         f"{esc(kind)}</legend>")
            for option in express.ordered(group["options"]):
                cost = option["amount"]["value"]
                notes = " &middot; ".join(esc(str(option[k])) for k in ("estimatedDelivery", "meta") if option.get(k))
                checked = " checked" if option is chosen else ""
                parts.append(f"<label class=\"option\" data-option-id=\"{esc(option['id'])}\"><input type=\"radio\" "
                             f"name=\"shippingOptionId\" value=\"{esc(option['id'])}\"{checked}> "
                             f"{esc(option['name'])}: <span data-cost>{esc(money(cost, payment.currency))}</span>, "
                             f"total <strong data-total>{esc(money(payment.value + cost, payment.currency))}"
                             f"</strong>{' <small>' + notes + '</small>' if notes else ''}</label>")
            parts.append("</fieldset>")
        parts.append("</fieldset>")
        total = payment.value + chosen["amount"]["value"]
        parts.append(f"<p class=\"total\" data-total-default>Total with {esc(chosen['name'])}: "
                     f"{esc(money(total, payment.currency))} (the order, "
                     f"{esc(money(payment.value, payment.currency))}, "
                     "plus the shipping option you choose).</p>")
    if signed_offer:
        parts.append(f"<input type=\"hidden\" name=\"offer\" value=\"{esc(signed_offer)}\">")
    disabled = "" if approvable else " disabled"
    parts.append(f"<button class=\"approve\" type=\"submit\"{disabled}>Approve</button></form>")
    return "".join(parts)


async def _express_part(payments: PaymentsBackend, payment: Payment, token: str, query) -> str:
    """The landing page's Express form: the user's details (as last submitted by "Update", else the defaults),
    and the fixed options, or the dynamic callback's answer for that address."""
    esc = html.escape
    locked = payments.phone_locked(payment)
    picked = query.get("payer") if query.get("pick") and not locked else None
    defaults = payments.express_user(payment, picked)
    unit = payments.runtime.world.sales_units.get(payment.msn)
    users = tuple(payments.runtime.world.market_users.get(unit.market if unit else "NO", []))
    refused = payments.refusal(payment) is not None  # a magic amount: shown above the form, Approve stays off
    trouble = ""
    try:  # "Use this test user" starts again from that user's details; "Update" keeps what was typed
        user = express.user_from_form({} if picked else dict(query), defaults, locked)
    except Problem as exc:
        shown = "; ".join(f"{d.name}: {d.reason}" for d in exc.details)
        return _express_form(payment, token, defaults, locked, None, None,
                             f"<div class=\"why\" data-user-invalid>Check your details: {esc(shown)}</div>", refused,
                             users)
    groups, signed = payments.fixed_groups(payment), None
    if groups is None:
        offer = await payments.offer(payment, user.address)
        if offer.cannot_ship:
            trouble = ("<div class=\"why\" data-cannot-ship>The merchant cannot ship to this address. Change the "
                       "address and update the shipping options.</div>")
        elif offer.error:
            trouble = f"<div class=\"why\" data-callback-error>{esc(offer.error)}</div>"
        else:
            groups, signed = offer.groups, payments.sign_offer(payment, offer)
    return _express_form(payment, token, user, locked, groups, signed, trouble, refused, users)


async def _fields(request: web.Request) -> dict:
    """The approve request's fields: a form's, or a JSON body's."""
    if request.content_type == "application/json":
        body = await read_json(request)
        return body if isinstance(body, dict) else {}
    try:
        return dict(await request.post())
    except (ValueError, UnicodeDecodeError, AssertionError):
        return {}


def _back_to_phone(fields: dict) -> str | None:
    """Where Approve and Reject on the virtual phone go back to: that phone's page (a fixed, same-origin path)."""
    number = fields.get("backToPhone")
    return f"/_sandbox/phone/{number}" if isinstance(number, str) and user_picker.MSISDN.fullmatch(number) else None


def _phone_cards(request: web.Request, payments: PaymentsBackend, number: str) -> list[PhoneCard]:
    """What the virtual phone shows of ePayment: the user's pending payment requests with Approve and Reject
    (each form posts to the landing page's approve or reject, and comes back to the phone)."""
    world = request.app[RUNTIME].world
    cards = []
    for payment in payments.pending_for(call(request).env, number):
        unit = world.sales_units.get(payment.msn)
        token = payments.landing_token(payment)
        hidden = (("token", token), ("backToPhone", number))
        refused = payments.refusal(payment)
        if payment.express:  # Express asks for details and a shipping option: the landing page does that
            first = PhoneAction("Open (Express: details and shipping)", "open",
                                href=f"/_sandbox/landing?token={quote(token)}")
        else:
            first = PhoneAction("Approve and share" if consent_of(payment.scope) else "Approve", "approve",
                                "/_sandbox/landing/approve", (*hidden, ("payer", number)), disabled=refused is not None)
        cards.append(PhoneCard(
            "payment", unit.name if unit else payment.msn,
            lines=(payment.description,) if payment.description else (),
            actions=(first, PhoneAction("Reject", "reject", "/_sandbox/landing/reject", hidden)),
            data=(("reference", payment.reference), ("msn", payment.msn)),
            amount=money(payment.value, payment.currency), refusal=refused, consent=consent_of(payment.scope),
            order=payment.expires_at))  # every payment of a flow lives as long: expiry orders by arrival
    return cards


def express_choice(payments: PaymentsBackend, payment: Payment, fields: dict) -> tuple[express.User, dict]:
    """The user's details and shipping option from the landing page's form (or a JSON body): a field left out
    keeps its default, no option means the pre-selected one. Dynamic options come from the signed offer."""
    user = express.user_from_form(fields, payments.express_user(payment), payments.phone_locked(payment))
    groups = payments.fixed_groups(payment)
    if groups is None:
        address, groups = payments.read_offer(payment, fields.get("offer"))
        if address != user.address:
            raise Problem(400, "Bad Request", "The address changed after the shipping options were offered: update "
                          "the shipping options, then approve.", details=[Detail("addressLine1", "Changed")],
                          rule="express-address-changed")
    option_id = fields.get("shippingOptionId")
    option = express.find_option(groups, option_id) if isinstance(option_id, str) and option_id \
        else express.default_option(groups)
    if option is None:
        raise Problem(400, "Bad Request", "That shipping option was not offered for this payment.",
                      details=[Detail("shippingOptionId", "Not one of the offered options.")],
                      rule="express-option-unknown")
    return user, option


def setup(app: web.Application, key: web.AppKey) -> None:
    """Registers the simulated user's routes; `key` finds the PaymentsBackend on the app."""

    async def landing(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        token = await _token(request)
        payment = payments.by_token(token)
        part = None
        if payment.express and payment.state is State.CREATED:
            part = await _express_part(payments, payment, token, request.query)
        page = _page("Vipps MobilePay sandbox: approve payment",
                     _landing_html(request, payments, payment, token, part))
        if payment.return_url and is_safe_link(payment.return_url):
            # Approve posts here and is redirected on to the returnUrl: the policy's form-action must allow it.
            page.headers["Content-Security-Policy"] = policy([f"{browser_view(payment.return_url).scheme}:"])
        return page

    async def landing_approve(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        payment = payments.by_token(await _token(request))
        choice, payer = None, None
        if payment.express and payment.state is State.CREATED:
            choice = express_choice(payments, payment, await _fields(request))
        elif payment.state is State.CREATED:
            payer = chosen_payer(payments, payment, await _fields(request))
        payments.approve(payment, choice=choice, payer=payer)
        back = _back_to_phone(await _fields(request))
        if back:
            raise web.HTTPSeeOther(back)
        # Checked again here, as a browser reads it (a snapshot may hold anything): never a script or data URL.
        if payment.return_url and is_safe_link(payment.return_url):
            raise web.HTTPSeeOther(payment.return_url)
        return _page("Payment approved", "<p class=\"state\">Payment <strong>AUTHORIZED</strong>. "
                     "You can close this page.</p>")

    async def landing_reject(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        payment = payments.by_token(await _token(request))
        payments.reject(payment)
        back = _back_to_phone(await _fields(request))
        if back:
            raise web.HTTPSeeOther(back)
        back = (f"<p><a href=\"{html.escape(payment.return_url)}\">Back to the merchant</a></p>"
                if payment.return_url and is_safe_link(payment.return_url) else "")
        return _page("Payment rejected", f"<p class=\"state\">Payment <strong>ABORTED</strong>.</p>{back}")

    async def qr(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        token = await _token(request)
        payments.by_token(token)
        target = f"{request.scheme}://{request.host}/_sandbox/landing?token={quote(token)}"
        import segno  # only the QR code needs it (~10 ms to import): on first use

        code = segno.make(target, error="m")
        buffer = io.BytesIO()
        if request.query.get("format", "svg") == "png":
            try:
                size = int(request.query.get("size", "1024"))
            except ValueError as exc:
                raise Problem(400, "Bad Request", "size must be a whole number of pixels.",
                              details=[Detail("size", "Must be an integer.")]) from exc
            scale = max(1, min(size, 2000) // code.symbol_size(scale=1)[0])
            code.save(buffer, kind="png", scale=scale)
            return web.Response(body=buffer.getvalue(), content_type="image/png")
        code.save(buffer, kind="svg", scale=8, xmldecl=False)
        return web.Response(body=buffer.getvalue(), content_type="image/svg+xml")

    async def control_approve(payments: PaymentsBackend, payment: Payment, body: object = None) -> None:
        """Approve as the user with the defaults, or as the user of `{"phoneNumber": ...}` (a test user's number
        gives Express that user's details); dynamic Express asks the merchant's callback first."""
        if body is not None and (not isinstance(body, dict) or not isinstance(body.get("phoneNumber", ""), str)):
            raise Problem(400, "Bad Request", "The body, when there is one, is {\"phoneNumber\": \"4791234567\"}.",
                          details=[Detail("phoneNumber", "A string.")], rule="control-approve-body-invalid")
        payer = chosen_payer(payments, payment, {"phoneNumber": (body or {}).get("phoneNumber")}) \
            if payment.state is State.CREATED else None
        choice = None
        if payment.express and payment.state is State.CREATED and (payer or payments.fixed_groups(payment) is None):
            user = payments.express_user(payment, payer)
            if not user.address.get("addressLine1"):
                raise Problem(409, "Conflict", f"The test user {payer} has no address, and Express needs a delivery "
                              "address: approve on the landing page and type one.", rule="express-user-no-address")
            groups = payments.fixed_groups(payment)
            if groups is not None:
                payments.approve(payment, choice=(user, express.default_option(groups)))
                return
            offer = await payments.offer(payment, user.address)
            if offer.cannot_ship:
                raise Problem(409, "Conflict", f"The merchant's shipping callback cannot ship to the user's address "
                              f"({user.address['addressLine1']}, {user.address['postCode']} {user.address['city']}).",
                              rule="express-cannot-ship")
            if offer.error or offer.groups is None:
                raise Problem(502, "Bad Gateway", offer.error or "No shipping groups.", rule="express-callback-failed")
            choice = (user, express.default_option(offer.groups))
        payments.approve(payment, choice=choice, payer=payer)

    def control(action: str):
        async def handler(request: web.Request) -> web.Response:
            payments = _backend(request, key)
            reference = request.match_info["reference"]
            payment = payments.find(call(request).env, request.match_info["msn"], reference)
            if action == "approve":
                await control_approve(payments, payment, await read_json(request))
            else:
                getattr(payments, action)(payment)
            return web.json_response(payments.view(payment))
        handler.__doc__ = f"CI acts as the user: {action} the payment, in this port's environment."
        return handler

    add_phone_source(app, lambda request, number: _phone_cards(request, _backend(request, key), number))
    router = routes(app)
    router.add_get("/_sandbox/landing", landing, name="sandbox.landing")
    router.add_post("/_sandbox/landing/approve", landing_approve, name="sandbox.landing.approve")
    router.add_post("/_sandbox/landing/reject", landing_reject, name="sandbox.landing.reject")
    router.add_get("/_sandbox/qr", qr, name="sandbox.qr")
    for action in ("approve", "reject", "expire"):
        router.add_post(f"/_sandbox/payments/{{msn}}/{{reference}}/{action}", control(action),
                        name=f"sandbox.payments.{action}")
