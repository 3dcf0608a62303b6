"""A test user's profile as the Userinfo and Login APIs return it: the claims each consented scope gives.

Shared because the same person is read in three places: Login's userinfo and id_token, the Userinfo API
(`/vipps-userinfo-api/userinfo/{sub}`, for subs from ePayment payments and Recurring agreements), and the
consent screens that list what a scope shares. The scope names and claims follow the Login reference:
`name` gives name, given_name and family_name; `address` with no address on file gives an object of empty
strings; `gender` is not available in the test environment.
"""

from __future__ import annotations

import uuid

from sandbox.core.model import Env, User

#: scope -> the claims it gives (the Login API's scope table).
SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "name": ("name", "given_name", "family_name"),
    "phoneNumber": ("phone_number", "phone_number_verified"),
    "email": ("email", "email_verified"),
    "address": ("address", "other_addresses"),
    "birthDate": ("birthdate",),
    "nin": ("nin",),
    "gender": ("gender",),
    "delegatedConsents": ("delegatedConsents",),
}
#: What a consent screen says each scope shares, in the user's words.
SCOPE_TEXT: dict[str, str] = {
    "name": "your name", "phoneNumber": "your phone number", "email": "your email address",
    "address": "your addresses", "birthDate": "your date of birth", "nin": "your national identity number",
    "gender": "your gender", "delegatedConsents": "your consents to the merchant's terms",
    "accountNumbers": "your account numbers",
}
EMPTY_ADDRESS = {"address_type": "", "country": "", "formatted": "", "postal_code": "", "region": "",
                 "street_address": ""}
#: Shown instead of each value once the 168 hours after consent have passed (the Userinfo API's rule).
EXPIRED = "[Expired]"


def subject(msn: str, phone_number: str) -> str:
    """The user's `sub` for one sales unit: stable per (sales unit, user), so another sales unit's sub differs."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{msn}/{phone_number}"))


def scopes_of(scope: str | None) -> list[str]:
    """A space-separated scope string as a list, without empty parts or repeats."""
    seen: list[str] = []
    for value in (scope or "").split(" "):
        if value and value not in seen:
            seen.append(value)
    return seen


def _address(entry: dict, default: bool) -> dict:
    return {**EMPTY_ADDRESS, **entry, "default": default}


def claims(user: User, scopes: list[str], env: Env) -> dict:
    """The claims `scopes` give for `user` (without sub and sid, which the caller adds)."""
    out: dict = {}
    for scope in scopes:
        if scope == "name":
            out.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
        elif scope == "phoneNumber":
            out.update(phone_number=user.phone_number, phone_number_verified=True)
        elif scope == "email":
            out.update(email=user.email, email_verified=user.email_verified)
        elif scope == "address":
            addresses = user.addresses or []
            out["address"] = _address(addresses[0], True) if addresses else {**EMPTY_ADDRESS}
            out["other_addresses"] = [_address(entry, False) for entry in addresses[1:]]
        elif scope == "birthDate":
            out["birthdate"] = user.birthdate
        elif scope == "nin":
            out["nin"] = user.nin
        elif scope == "gender" and env is Env.PRODUCTION:
            out["gender"] = "unspecified"
    return out


def expired(values: dict) -> dict:
    """The same claims after the 168 hours: every value reads "[Expired]" (objects keep their keys)."""
    def blank(value: object) -> object:
        if isinstance(value, dict):
            return {key: blank(inner) for key, inner in value.items()}
        if isinstance(value, list):
            return [blank(inner) for inner in value]
        return EXPIRED
    return {key: blank(value) for key, value in values.items()}
