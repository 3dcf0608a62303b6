"""ePayment Express: the create-time rules, the simulated user's details, and the dynamic shipping callback.

Express is a WALLET payment with `profile.scope` exactly "name address email phoneNumber" and `shipping` with
`fixedOptions` or `dynamicOptions` (never both). The user picks a shipping option on the landing page; approve
adds its cost to the payment (`amount` and `authorizedAmount`), and GET returns `shippingDetails` and
`userDetails` as the spec's GetPaymentResponse has them.

The dynamic callback (`POST {callbackUrl}`, the spec's merchant-dynamic-shipping-callback) is sent like a
webhook delivery: only to URLs the outgoing-URL rules allow (sandbox/gateway/targets.py: never the sandbox's
own listeners or control plane, no metadata or reserved addresses, private ones only with
--webhook-allow-private), with every connection's addresses checked again (GuardedResolver), never following a
redirect, and carrying the delivery header the front door refuses on /_sandbox/ (sandbox/gateway/delivery_guard.py).
Knows nothing of aiohttp.web: its client only.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from sandbox.apis.epayment.rules import SPEC, problem, scope_values
from sandbox.core.errors import Detail, Problem, ValidationProblem
from sandbox.gateway import user_picker
from sandbox.gateway.delivery_guard import delivery_headers
from sandbox.gateway.targets import GuardedResolver, Rules, TargetError, parse

#: "Not fewer values, not more. Anything else fails" (features.md, Express): the scope Express needs.
EXPRESS_SCOPE = frozenset({"name", "address", "email", "phoneNumber"})
#: UNCERTAIN: the docs give no timeout for the dynamic callback; 10 s, like a webhook delivery.
CALLBACK_TIMEOUT = 10.0
CALLBACK_MAX_BYTES = 256 * 1024  # a bigger answer is a failed callback
FIELD_MAX = 200
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MSISDN = _MSISDN = user_picker.MSISDN  # the one definition, shared with the pages' test-user picker


def is_express(body: dict) -> bool:
    return body.get("shipping") is not None


def check_create(body: dict) -> None:
    """The Express rules at create, after the schema (which has checked each ShippingGroup's shape):
    fixedOptions XOR dynamicOptions (neither: 4140; both: a code-less 400), WALLET (4160), the scope (4080),
    and fixed groups that make sense (a code-less 400: no empty group, one group per brand and type, unique
    option ids, the payment's currency)."""
    shipping = body.get("shipping")
    if not isinstance(shipping, dict):
        return
    fixed, dynamic = shipping.get("fixedOptions"), shipping.get("dynamicOptions")
    if fixed is not None and dynamic is not None:
        raise ValidationProblem([Detail("shipping", "Send fixedOptions or dynamicOptions, never both.")])
    if fixed is None and dynamic is None:
        raise problem("4140", "Express (shipping) needs shipping.fixedOptions or shipping.dynamicOptions.",
                      details=[Detail("shipping", "fixedOptions or dynamicOptions is required.")])
    if body["paymentMethod"]["type"] != "WALLET":
        raise problem("4160", "Express (shipping) works only with paymentMethod WALLET.",
                      details=[Detail("paymentMethod.type", "Invalid payment method type")])
    values = scope_values(body.get("profile"))
    if len(values) != len(EXPRESS_SCOPE) or set(values) != EXPRESS_SCOPE:
        raise problem("4080", "Express (shipping) needs profile.scope with exactly name, address, email and "
                      "phoneNumber (not fewer values, not more).", details=[Detail("profile.scope", "Invalid scope")])
    if fixed is not None:
        why = groups_problem(fixed, body["amount"]["currency"])
        if why is not None:
            raise ValidationProblem([Detail("shipping.fixedOptions", why)])


def groups_problem(groups: object, currency: str) -> str | None:
    """What is wrong with a list of shipping groups (fixed, or a callback's answer), or None."""
    if not isinstance(groups, list) or not groups:
        return "At least one shipping group is needed."
    kinds, ids = set(), set()
    for group in groups:
        errors = SPEC.errors("ShippingGroup", group)
        if errors:
            return f"A shipping group does not match the spec's ShippingGroup: {errors[0][0]}: {errors[0][1]}"
        kind = (group["type"], group["brand"])
        if kind in kinds:
            return f"Two shipping groups have brand {kind[1]} and type {kind[0]}: one group per brand and type."
        kinds.add(kind)
        if not group["options"]:
            return f"The shipping group {kind[1]} {kind[0]} has no options."
        for option in group["options"]:
            if option["id"] in ids:
                return f"The shipping option id {option['id']!r} is used twice."
            ids.add(option["id"])
            if option["amount"]["currency"] != currency:
                return f"The shipping option {option['id']!r} is in {option['amount']['currency']}, the payment in " \
                       f"{currency}."
            if option["amount"]["value"] < 0:
                return f"The shipping option {option['id']!r} has a negative amount."
    return None


def ordered(items: list[dict]) -> list[dict]:
    """Groups or options as the app shows them: by priority (lower first), else as given."""
    return sorted(items, key=lambda item: item.get("priority", 0) if isinstance(item.get("priority"), int) else 0)


def default_option(groups: list[dict]) -> dict:
    """The option pre-selected: the default option of the default group, else any default option, else the
    first option of the first group."""
    groups = ordered(groups)
    for group in sorted(groups, key=lambda g: not g.get("isDefault")):
        for option in ordered(group["options"]):
            if option.get("isDefault"):
                return option
    return ordered(groups[0]["options"])[0]


def find_option(groups: list[dict], option_id: str) -> dict | None:
    return next((o for g in groups for o in g["options"] if o["id"] == option_id), None)


# -- the simulated user's details (a hook: the test users of a later version replace `default_user`) -------------
FIRST_NAMES = ("Ada", "Kari", "Ola", "Nora", "Emil", "Sofie", "Jonas", "Ingrid")
LAST_NAMES = ("Lovelace", "Nordmann", "Hansen", "Johansen", "Larsen", "Berg", "Dahl", "Lund")
HOME = {"NO": ("Robert Levins gate 5", "0154", "Oslo"), "DK": ("Vesterbrogade 1", "1620", "København V"),
        "FI": ("Mannerheimintie 1", "00100", "Helsinki")}
PHONE_PREFIX = {"NO": "479", "DK": "452", "FI": "35840"}
PHONE_LENGTH = {"NO": 10, "DK": 10, "FI": 12}


@dataclass(slots=True)
class User:
    """What the landing page asks for (and prefills): the user's name, contact and address."""

    firstName: str  # noqa: N815 (the spec's field names)
    lastName: str  # noqa: N815
    email: str
    mobileNumber: str  # noqa: N815
    address: dict = field(default_factory=dict)  # addressLine1, addressLine2?, city, country, postCode

    def details(self) -> dict:
        """The spec's UserDetails."""
        return {"email": self.email, "firstName": self.firstName, "lastName": self.lastName,
                "mobileNumber": self.mobileNumber, "addresses": [dict(self.address)]}


def default_user(msn: str, reference: str, phone: str | None, market: str, test_user=None,
                 market_users: list | None = None) -> User:
    """The details the landing page prefills. `test_user` (a sandbox.core.model.User) gives them; without one,
    one of `market_users` with an address, chosen by a hash of the sales unit and the phone number (or the
    reference), so the same payment always gets the same user; without test users, plausible made-up details."""
    digest = hashlib.blake2b(f"{msn}/{phone or reference}".encode(), digest_size=8).digest()
    market = market if market in HOME else "NO"
    if test_user is None and not phone:
        with_address = [u for u in market_users or [] if u.addresses]
        if with_address:
            test_user = with_address[digest[0] % len(with_address)]
    if test_user is not None:
        return from_test_user(test_user, market)
    first, last = FIRST_NAMES[digest[0] % len(FIRST_NAMES)], LAST_NAMES[digest[1] % len(LAST_NAMES)]
    if not phone:
        prefix = PHONE_PREFIX[market]
        number = str(int.from_bytes(digest[2:], "big")).zfill(PHONE_LENGTH[market])
        phone = prefix + number[: PHONE_LENGTH[market] - len(prefix)]
    line1, post_code, city = HOME[market]
    email = f"{first}.{last}@example.com".lower()
    return User(first, last, email, phone, {"addressLine1": line1, "city": city, "country": market,
                                            "postCode": post_code})


def from_test_user(user, market: str) -> User:
    """A test user's details as the landing page's (the default address; its unit, after a newline, is line 2).
    A user with no address gets empty address fields: the tester types one."""
    address = {"addressLine1": "", "city": "", "country": market, "postCode": ""}
    if user.addresses:
        first = user.addresses[0]
        line1, _, line2 = first["street_address"].partition("\n")
        address.update(addressLine1=line1, city=first["region"], postCode=first["postal_code"])
        if line2:
            address["addressLine2"] = line2
    return User(user.given_name, user.family_name, user.email, user.phone_number, address)


USER_FIELDS = ("firstName", "lastName", "email", "mobileNumber")
ADDRESS_FIELDS = ("addressLine1", "addressLine2", "postCode", "city")


def user_from_form(form: dict, defaults: User, locked_phone: str | None) -> User:
    """The user's details as posted (a field left out keeps its default), checked: 400 naming each bad field.
    The country is always the sales unit's ("the shipping address must be in the same country as the sales
    unit"); with `locked_phone` (landingPagePhoneNumberLocked) the phone number is that one, whatever is posted."""
    def value(name: str, default: str) -> str:
        given = form.get(name)
        return given.strip() if isinstance(given, str) else default

    user = User(*(value(name, getattr(defaults, name)) for name in USER_FIELDS),
                address={name: value(name, defaults.address.get(name, "")) for name in ADDRESS_FIELDS})
    user.address["country"] = defaults.address["country"]
    if not user.address["addressLine2"]:
        del user.address["addressLine2"]
    if locked_phone:
        user.mobileNumber = locked_phone
    bad = [Detail(name, "Required.") for name in ("firstName", "lastName", "email", "mobileNumber")
           if not getattr(user, name)]
    bad += [Detail(name, "Required.") for name in ("addressLine1", "postCode", "city") if not user.address[name]]
    bad += [Detail(name, f"At most {FIELD_MAX} characters.") for name in USER_FIELDS
            if len(getattr(user, name)) > FIELD_MAX]
    bad += [Detail(name, f"At most {FIELD_MAX} characters.") for name, text in user.address.items()
            if len(text) > FIELD_MAX]
    if user.email and not _EMAIL.fullmatch(user.email):
        bad.append(Detail("email", "An e-mail address, such as ada@example.com."))
    if user.mobileNumber and not _MSISDN.fullmatch(user.mobileNumber):
        bad.append(Detail("mobileNumber", "The country code and the number, digits only (4791234567)."))
    if bad:
        raise Problem(400, "Bad Request", "The user's details are incomplete or malformed.", details=bad,
                      rule="express-user-details-invalid")
    return user


def shipping_details(address: dict, option: dict) -> dict:
    """The spec's ShippingDetails for the chosen option."""
    return {"address": dict(address), "shippingCost": option["amount"]["value"], "shippingOptionId": option["id"],
            "shippingOptionName": option["name"]}


# -- the dynamic callback ----------------------------------------------------------------------------------------
@dataclass(slots=True)
class Offer:
    """What the merchant's callback answered for one address: groups, or that it cannot ship there, or an error."""

    address: dict
    groups: list[dict] | None = None
    cannot_ship: bool = False
    error: str | None = None


def callback_body(reference: str, address: dict) -> dict:
    """The spec's DynamicShippingGroupsRequest (its field names, capitalised as the spec has them)."""
    body = {"reference": reference, "AddressLine1": address["addressLine1"], "City": address["city"],
            "PostCode": address["postCode"], "Country": address["country"]}
    if address.get("addressLine2"):
        body["AddressLine2"] = address["addressLine2"]
    return body


def check_callback_target(rules: Rules, url: str) -> str | None:
    """Why the sandbox will not call this callback URL (the outgoing-URL rules without DNS), or None."""
    try:
        rules.check_static(parse(url))
    except TargetError as exc:
        return str(exc)
    return None


async def fetch_groups(rules: Rules, dynamic: dict, reference: str, currency: str, address: dict,
                       timeout: float = CALLBACK_TIMEOUT) -> Offer:
    """POSTs the address to the merchant's callback; 200 {"groups": [...]} is an offer, 400 "cannot ship there"."""
    url = dynamic["callbackUrl"]
    try:
        target = parse(url)
        rules.check_static(target)
    except TargetError as exc:
        return Offer(address, error=f"The sandbox does not call this callback URL: {exc}")
    headers = {"Content-Type": "application/json;charset=UTF-8", "Accept": "application/json",
               **delivery_headers()}
    if dynamic.get("callbackAuthorizationToken"):
        headers["Authorization"] = dynamic["callbackAuthorizationToken"]  # verbatim, as the spec says
    data = json.dumps(callback_body(reference, address)).encode()
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(rules, target), limit=1, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                URL(url, encoded=True), data=data, headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            status = response.status
            raw = await response.content.read(CALLBACK_MAX_BYTES + 1)
    except TimeoutError:
        return Offer(address, error=f"The merchant's shipping callback gave no answer within {timeout:g} s.")
    except (aiohttp.ClientError, OSError) as exc:
        return Offer(address, error=f"The merchant's shipping callback could not be reached ({type(exc).__name__}).")
    if status == 400:
        return Offer(address, cannot_ship=True)
    if status != 200:
        return Offer(address, error=f"The merchant's shipping callback answered HTTP {status} (200 with groups, or "
                     "400 when it cannot ship to the address, are expected).")
    if len(raw) > CALLBACK_MAX_BYTES:
        return Offer(address, error=f"The merchant's shipping callback answered more than {CALLBACK_MAX_BYTES} bytes.")
    try:
        answer = json.loads(raw)
    except ValueError:
        return Offer(address, error="The merchant's shipping callback did not answer JSON.")
    groups = answer.get("groups") if isinstance(answer, dict) else None
    why = groups_problem(groups, currency)
    if why is not None:
        return Offer(address, error=f"The merchant's shipping callback answered no usable groups: {why}")
    return Offer(address, groups=groups)
