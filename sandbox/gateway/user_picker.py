"""Who the simulated user is: the test-user picker the simulated-user pages share, and reading its answer.

ePayment's landing page (who pays) and Recurring's confirmation page (who approves the agreement) both let the
tester pick one of the market's test users (the fixture's `users` table) or type any phone number. API packages
never import one another, so the picker lives here, once: the same select, the same field, the same rule that a
typed number wins over the select, and the same 400 for a malformed number. No script: a plain form.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence

from sandbox.core.errors import Detail, Problem
from sandbox.core.model import User
from sandbox.core.world import World

#: A phone number as the apps and the APIs write it: the country code and the number, digits only (4791234567).
MSISDN = re.compile(r"[1-9][0-9]{7,14}")
#: The picker's look; a page adds it to its own CSS (sandbox/gateway/page_shell.py's frame has none of it).
PICKER_CSS = ("fieldset{border:1px solid #ddd;border-radius:8px;margin:0 0 1rem;padding:.5rem .75rem}"
              "label{display:block;margin:.35rem 0}.field input,.field select{display:block;width:100%;"
              "box-sizing:border-box;padding:.35rem;font-size:1rem}")


def market_users(world: World, market: str | None) -> list[User]:
    """The test users of a sales unit's market, in fixture order (Norway when the unit is unknown)."""
    return world.market_users.get(market or "NO", [])


def preselected(world: World, users: Sequence[User], phone: str | None) -> str | None:
    """The test user a page preselects: the one `phone` (the number the merchant sent) belongs to, else the first
    of the market's (None when the fixture has none)."""
    if world.user(phone) is not None:
        return phone
    return users[0].phone_number if users else None


def user_options(users: Sequence[User], selected: str | None) -> str:
    """The <option>s of the test-user select: each user's name and number, `selected` preselected."""
    esc = html.escape
    return "".join(f"<option value=\"{esc(u.phone_number)}\" data-role=\"{esc(u.role)}\""
                   f"{' selected' if u.phone_number == selected else ''}>{esc(u.name)} ({esc(u.phone_number)})"
                   "</option>" for u in users)


def picker_fields(world: World, users: Sequence[User], phone: str | None, legend: str, css_class: str) -> str:
    """A fieldset: a select of `users` (named `payer`) and a field to type a phone number instead (`phoneNumber`;
    the typed number wins when there is one). `phone` is the number the merchant sent: its test user is
    preselected, or, when it is no test user's, it is prefilled in the field."""
    esc = html.escape
    parts = [f"<fieldset class=\"{esc(css_class)}\" data-{esc(css_class)}><legend>{esc(legend)}</legend>"]
    if users:
        parts.append(f"<label class=\"field\">Test user<select name=\"payer\">"
                     f"{user_options(users, preselected(world, users, phone))}</select></label>")
    typed = phone if phone and world.user(phone) is None else ""
    parts.append(f"<label class=\"field\">Or type a phone number<input name=\"phoneNumber\" value=\"{esc(typed)}\" "
                 "inputmode=\"numeric\" autocomplete=\"tel\" placeholder=\"4791234567\"></label></fieldset>")
    return "".join(parts)


def check_msisdn(number: str, rule: str) -> str:
    """`number`, or 400 (sandbox problem with `rule`) when it is not an MSISDN."""
    if not MSISDN.fullmatch(number):
        raise Problem(400, "Bad Request", "The phone number must be an MSISDN: the country code and the number, "
                      "digits only (4791234567).", details=[Detail("phoneNumber", "Not an MSISDN.")], rule=rule)
    return number


def chosen_phone(fields: Mapping, rule: str) -> str | None:
    """The phone number of the user the form names: the typed `phoneNumber`, else the chosen test user (`payer`),
    else None (a request with neither, such as an older client's). 400 (`rule`) for a malformed number."""
    typed, picked = fields.get("phoneNumber"), fields.get("payer")
    phone = (typed.strip() if isinstance(typed, str) else "") or (picked.strip() if isinstance(picked, str) else "")
    return check_msisdn(phone, rule) if phone else None
