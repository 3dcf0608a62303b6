"""What scenario output must never show: secrets, recognised by their field's name and by their value.

By name: a field or header whose name ends in secret, password, token, authorization, subscription key,
api key or login code (`client_secret`, `access_token`, `Ocp-Apim-Subscription-Key`, `Authorization`).
Names that merely contain such a word are not secrets: `token_type` is "Bearer", and prints as it is.
By value: every secret the runner has seen (key sets from /_sandbox/keys, tokens it got, secrets in
responses and in the headers it sent, the admin token), wherever it turns up, plus anything shaped like
a JWT or like the credentials after `Bearer ` / `Basic `. The scheme word itself stays readable.

A masked secret keeps its last 4 characters (enough to tell two apart, not to use one), as the
dashboard and `vipps-sandbox keys` show them.
"""

from __future__ import annotations

import re

SECRET_NAME = re.compile(r"(?:^|_)(?:secret|password|passwd|token|authorization"
                         r"|subscription_key(?:_primary|_secondary)?|api_key|apikey|login_code|otp)$")
#: `Bearer <token68>` (RFC 7235): a credentials string long enough that it cannot be an ordinary word.
SCHEME = re.compile(r"\b(Bearer|Basic)(\s+)([A-Za-z0-9._~+/-]{20,}=*)", re.IGNORECASE)
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
#: Shorter values are not remembered as secrets: replacing them everywhere would mask harmless text.
MIN_LENGTH = 8


def is_secret_name(name: str) -> bool:
    """`client_secret`, `clientSecret`, `Ocp-Apim-Subscription-Key`, `access_token`: yes. `token_type`: no."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip()).replace("-", "_").replace(" ", "_").lower()
    return bool(SECRET_NAME.search(snake))


def is_secret_path(path: str) -> bool:
    """A JSON path whose last field is secret by name (`items[0].client_secret`, `access_token`)."""
    parts = [part for part in re.split(r"[.\[\]$]", path) if part and not part.isdigit()]
    return bool(parts) and is_secret_name(parts[-1])


def hide(secret: str) -> str:
    """The last 4 characters of a secret; a short one (a wrong secret typed in a scenario) not at all."""
    return "…" + secret[-4:] if len(secret) >= 12 else "…"


def hide_whole(value: str) -> str:
    """A value that is a secret as a whole; `Bearer <token>` keeps its scheme word."""
    match = re.fullmatch(r"(Bearer|Basic)(\s+)(\S+)", value.strip(), re.IGNORECASE)
    if match:
        return f"{match[1]}{match[2]}{hide(match[3])}"
    return hide(value) if value else value


class Secrets:
    """The secrets one scenario run has seen, shared by the runner (which learns them) and the printer."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self._ordered: list[str] | None = []

    def add(self, value: object) -> None:
        if isinstance(value, str):
            value = value.strip()
            match = re.fullmatch(r"(?:Bearer|Basic)\s+(\S+)", value, re.IGNORECASE)
            if match:
                value = match[1]
            if len(value) >= MIN_LENGTH and value not in self.known:
                self.known.add(value)
                self._ordered = None

    def learn(self, document: object, secret: bool = False) -> None:
        """Remembers every string under a secret-named field, at any depth (lists of key sets, token replies)."""
        if isinstance(document, dict):
            for key, value in document.items():
                self.learn(value, secret or is_secret_name(str(key)))
        elif isinstance(document, list):
            for item in document:
                self.learn(item, secret)
        elif secret:
            self.add(document)

    def learn_headers(self, headers: dict) -> None:
        for name, value in headers.items():
            if is_secret_name(str(name)):
                self.add(value)

    def redact_text(self, text: str) -> str:
        """Free text with every known secret, JWT and scheme credentials masked; nothing else changes."""
        if self._ordered is None:
            self._ordered = sorted(self.known, key=len, reverse=True)  # a longer secret before its parts
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, hide(secret))
        text = JWT.sub(lambda m: hide(m[0]), text)
        return SCHEME.sub(lambda m: f"{m[1]}{m[2]}{hide(m[3])}", text)

    def redact(self, value: object, secret: bool = False) -> object:
        """A JSON-like value with its secrets masked: whole strings under secret names, known secrets anywhere."""
        if isinstance(value, str):
            return hide_whole(value) if secret else self.redact_text(value)
        if isinstance(value, dict):
            return {key: self.redact(item, secret or is_secret_name(str(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact(item, secret) for item in value]
        return value
