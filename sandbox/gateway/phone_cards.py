"""What the virtual phone shows, as data: each API contributes cards for one phone number.

The phone page (sandbox/phone/) belongs to no API: it asks every registered source for the cards of a
number (pending payment requests, agreements to confirm, CIBA login requests, consent screens) and renders
them in one place. API packages never import one another, so they meet here: a package's setup calls
`add_phone_source(app, source)`, and the source returns `PhoneCard`s built from its own backend.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from sandbox.core.claims import SCOPE_TEXT, scopes_of


@dataclass(frozen=True)
class PhoneAction:
    """A button on a card: a form that POSTs `fields` to a same-origin `action`, or a link (`href`)."""

    label: str
    css: str  # "approve" or "reject": the look, and what the tests click
    action: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    disabled: bool = False
    href: str | None = None


@dataclass(frozen=True)
class PhoneInput:
    """A field the user fills in before approving (for example the maximum amount of a VARIABLE agreement)."""

    name: str
    label: str
    value: str = ""


@dataclass(frozen=True)
class PhoneCard:
    """One thing waiting for the user. `lines` are plain text (escaped when rendered); `data` become data-*
    attributes, so tests and trainers can find a card by its reference or agreement id."""

    kind: str  # "payment", "agreement", "ciba", "consent"
    title: str  # who asks: the sales unit's name
    lines: tuple[str, ...] = ()
    actions: tuple[PhoneAction, ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    amount: str | None = None
    refusal: tuple[str, str] | None = None  # (error code, what the user is told) when approving cannot work
    inputs: tuple[PhoneInput, ...] = ()
    order: float = 0.0  # when it arrived: the phone lists oldest first
    #: The consent screen of a request that asks for profile data: (scope, what it shares), from `consent_of`.
    consent: tuple[tuple[str, str], ...] = ()


def consent_of(scope: str | None) -> tuple[tuple[str, str], ...]:
    """What a consent screen lists for a request's scope: (scope, what it shares in the user's words, from
    core/claims.py SCOPE_TEXT), in the order asked; `openid` and unknown values share nothing and are not listed."""
    return tuple((value, SCOPE_TEXT[value]) for value in scopes_of(scope) if value in SCOPE_TEXT)


#: (request, phone number) -> that number's cards in the request's environment.
PhoneSource = Callable[[web.Request, str], list[PhoneCard]]
PHONE_SOURCES: web.AppKey[list[PhoneSource]] = web.AppKey("phone_sources", list)


def add_phone_source(app: web.Application, source: PhoneSource) -> None:
    """Called from a package's setup: the phone will show what `source` returns."""
    if PHONE_SOURCES not in app:
        app[PHONE_SOURCES] = []
    app[PHONE_SOURCES].append(source)


def cards_for(request: web.Request, number: str) -> list[PhoneCard]:
    """Every source's cards for `number`, oldest first."""
    cards = [card for source in request.app.get(PHONE_SOURCES, []) for card in source(request, number)]
    return sorted(cards, key=lambda card: card.order)


def consent_html(who: str, consent: tuple[tuple[str, str], ...]) -> str:
    """The consent screen (a phone card's, a landing page's): what `who` asks the user to share. All or nothing, as
    in the app: approving shares every item, rejecting shares none."""
    esc = html.escape
    items = "".join(f"<li data-scope=\"{esc(scope)}\">{esc(text)}</li>" for scope, text in consent)
    return (f"<div class=\"consent\" data-consent><p>{esc(who)} asks you to share:</p><ul>{items}</ul>"
            "<p><small>All or nothing: approving shares all of it, rejecting none.</small></p></div>")


def _action_html(action: PhoneAction, inputs: str) -> str:
    esc = html.escape
    if action.href is not None:
        return f"<p><a class=\"{esc(action.css)}\" href=\"{esc(action.href)}\">{esc(action.label)}</a></p>"
    hidden = "".join(f"<input type=\"hidden\" name=\"{esc(name)}\" value=\"{esc(value)}\">"
                     for name, value in action.fields)
    disabled = " disabled" if action.disabled else ""
    return (f"<form method=\"post\" action=\"{esc(action.action)}\" style=\"display:inline\">{hidden}"
            f"{inputs if action.css == 'approve' else ''}"
            f"<button class=\"{esc(action.css)}\" type=\"submit\"{disabled}>{esc(action.label)}</button></form>")


def card_html(card: PhoneCard) -> str:
    """One card as a fieldset; its inputs go into the Approve form."""
    esc = html.escape
    data = "".join(f" data-{esc(name)}=\"{esc(value)}\"" for name, value in card.data)
    parts = [f"<fieldset class=\"request\" data-kind=\"{esc(card.kind)}\"{data}><legend>{esc(card.title)}</legend>"]
    if card.amount is not None:
        parts.append(f"<p class=\"amount\">{esc(card.amount)}</p>")
    parts.extend(f"<p class=\"description\">{esc(line)}</p>" for line in card.lines)
    if card.consent:
        parts.append(consent_html(card.title, card.consent))
    if card.refusal is not None:
        parts.append(f"<div class=\"why\" data-error-code=\"{esc(card.refusal[0])}\">{esc(card.refusal[1])}</div>")
    inputs = "".join(f"<label class=\"field\">{esc(field.label)}<input name=\"{esc(field.name)}\" "
                     f"value=\"{esc(field.value)}\"></label>" for field in card.inputs)
    parts.extend(_action_html(action, inputs) for action in card.actions)
    parts.append("</fieldset>")
    return "".join(parts)
