"""The vocabulary shared by every module: environments, key types and the fixture's records.

Records are plain dataclasses so the policy and the backends can reason about them without
knowing anything of HTTP or TinyDB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from enum import StrEnum


class Env(StrEnum):
    TEST = "test"
    PRODUCTION = "production"


class KeyType(StrEnum):
    MERCHANT = "merchant"
    PARTNER = "partner"
    MANAGEMENT = "management"
    ACCOUNTING = "accounting"
    #: Donations: keys of an organisation (a merchant), not of a sales unit; production only (reference 1a).
    MERCHANT_LEVEL = "merchant-level"


#: Key types whose tokens come from POST /miami/v1/token and carry no subscription key.
MIAMI_KEY_TYPES = frozenset({KeyType.MANAGEMENT, KeyType.ACCOUNTING, KeyType.MERCHANT_LEVEL})

MARKET_CURRENCY = {"NO": "NOK", "DK": "DKK", "FI": "EUR"}


@dataclass
class Partner:
    id: str
    name: str
    level: str  # "Partner", "Partner Plus" or "Partner Premium"
    act_on_behalf_approved: bool
    accounting: bool = False  # also an accounting partner (with a separate key set)
    role: str = ""  # a stable nickname used by scenarios, e.g. "premium"


@dataclass
class Merchant:
    scheme: str  # business:NO:ORG, business:DK:CVR or business:FI:Y-tunnus
    id: str
    name: str
    country: str
    status: str  # ACTIVE or DEACTIVATED
    created_at: str
    updated_at: str
    address: dict = field(default_factory=dict)
    role: str = ""

    @property
    def key(self) -> str:
        return f"{self.scheme}/{self.id}"

    @property
    def active(self) -> bool:
        return self.status == "ACTIVE"


@dataclass
class SalesUnit:
    msn: str
    name: str
    merchant: str  # Merchant.key
    partner_id: str | None
    market: str
    currency: str
    configuration: dict
    created_at: str
    settlement_bank_account: dict = field(default_factory=dict)
    role: str = ""


@dataclass
class KeySet:
    type: KeyType
    environment: Env
    client_id: str
    client_secret: str | None  # None only when restored from a snapshot that holds just its digest
    subscription_key_primary: str | None
    subscription_key_secondary: str | None
    owner: str  # partner id, MSN, or merchant key (a merchant's own management keys, merchant-level keys)
    secret_version: int = 1
    #: SHA-256 digests standing in for values a snapshot did not keep (snapshots never hold secrets).
    digests: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict:
        record = asdict(self)
        record.pop("digests")
        record["type"] = str(self.type)
        record["environment"] = str(self.environment)
        return record


@dataclass
class PricePackage:
    id: str
    partner_id: str
    name: str
    market: str
    fee_basis_points: int
    description: str = ""


@dataclass
class Consent:
    accounting_partner_id: str
    merchant: str  # Merchant.key


@dataclass
class User:
    """A test user: the person who pays, logs in and shares a profile (the fixture's `users` table)."""

    phone_number: str  # an MSISDN as the APIs write it: 4791234567, 4512345678, 358401234567
    given_name: str
    family_name: str
    email: str
    email_verified: bool
    addresses: list[dict]  # Userinfo's address shape (address_type, street_address, ...); the first is the default
    birthdate: str  # YYYY-MM-DD
    nin: str  # fødselsnummer, CPR (10 digits) or HETU, with valid check digits
    market: str
    role: str = ""

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    def age(self, on: date) -> int:
        born = date.fromisoformat(self.birthdate)
        return on.year - born.year - ((on.month, on.day) < (born.month, born.day))
