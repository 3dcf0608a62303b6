"""The directory: partners, merchants, sales units, key sets and consents, held in memory.

Built from fixture tables, indexed for O(1) lookups, and mutable while the sandbox runs (key
regeneration, consents, new sales units). `tables()` gives it back as fixture tables for
snapshots.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from collections import defaultdict
from dataclasses import asdict

from sandbox.core.model import Consent, Env, KeySet, KeyType, Merchant, Partner, PricePackage, SalesUnit, User

SUBSCRIPTION_FIELDS = ("subscription_key_primary", "subscription_key_secondary")
#: Registered for every sales unit's Login client; any port on these two loopback hosts matches (RFC 8252 7.3).
LOGIN_DEFAULT_REDIRECT_URIS = ("http://127.0.0.1/callback", "http://localhost/callback")
SECRET_FIELDS = ("client_secret", *SUBSCRIPTION_FIELDS)
DIGEST_SUFFIX = "_sha256"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


class World:
    def __init__(self, tables: dict[str, list[dict]], known_keys: dict[str, dict] | None = None) -> None:
        """`known_keys` (client_id -> fixture key record) fills in secrets a snapshot kept only as digests."""
        #: Policy decisions already taken, by (route, client_id, key version, env, MSN); emptied on any change.
        self.decisions: dict[tuple, object] = {}
        meta = (tables.get("meta") or [{}])[0]
        self.meta = dict(meta)
        self.partners: dict[str, Partner] = {r["id"]: Partner(**r) for r in tables.get("partners", [])}
        self.merchants: dict[str, Merchant] = {}
        for record in tables.get("merchants", []):
            merchant = Merchant(**record)
            self.merchants[merchant.key] = merchant
        self.sales_units: dict[str, SalesUnit] = {}
        self.partner_msns: dict[str, list[str]] = defaultdict(list)
        self.merchant_msns: dict[str, list[str]] = defaultdict(list)
        for record in tables.get("sales_units", []):
            self.add_sales_unit(SalesUnit(**record))
        self.keys: dict[str, KeySet] = {}
        self.by_subscription_key: dict[str, str] = {}  # subscription key -> client_id
        self.by_subscription_digest: dict[str, str] = {}  # digest -> client_id, for keys restored as digests
        self.retired_secrets: dict[str, set[str]] = defaultdict(set)  # client_id -> digests of old secrets
        self.retired_subscription_keys: dict[str, str] = {}  # digest of an old subscription key -> client_id
        for record in tables.get("keys", []):
            record = dict(record)
            retired = record.pop("retired_secrets", [])
            retired_subs = record.pop("retired_subscription_keys", [])
            digests = {name[: -len(DIGEST_SUFFIX)]: record.pop(name) for name in list(record)
                       if name.endswith(DIGEST_SUFFIX)}
            keyset = KeySet(**record)
            keyset.type, keyset.environment = KeyType(keyset.type), Env(keyset.environment)
            for name, value in digests.items():  # a value the snapshot left out: the fixture may know it
                known = (known_keys or {}).get(keyset.client_id, {}).get(name)
                if known is not None and digest(known) == value:
                    setattr(keyset, name, known)
                else:
                    keyset.digests[name] = value
            self.add_keys(keyset)
            self.retired_secrets[keyset.client_id].update(retired)
            for old in retired_subs:
                self.retired_subscription_keys[old] = keyset.client_id
        self.consents: set[tuple[str, str]] = {
            (r["accounting_partner_id"], r["merchant"]) for r in tables.get("consents", [])
        }
        self.price_packages: dict[str, list[PricePackage]] = defaultdict(list)
        for record in tables.get("price_packages", []):
            self.price_packages[record["partner_id"]].append(PricePackage(**record))
        #: The test users by phone number (MSISDN) and by role: O(1) either way.
        self.users: dict[str, User] = {}
        self.users_by_role: dict[str, User] = {}
        self.market_users: dict[str, list[User]] = defaultdict(list)
        for record in tables.get("users", []):
            user = User(**copy.deepcopy(record))
            self.users[user.phone_number] = user
            if user.role:
                self.users_by_role[user.role] = user
            self.market_users[user.market].append(user)
        #: Login clients' settings beyond the defaults, by client_id (the fixture's optional `login_clients`
        #: table, the control plane's /_sandbox/login/clients): {"redirect_uris": [...], "basic_only": bool}.
        self.login_clients: dict[str, dict] = {
            r["client_id"]: {"redirect_uris": list(r.get("redirect_uris", [])), "basic_only": bool(r.get("basic_only"))}
            for r in tables.get("login_clients", [])}

    def redirect_uris(self, client_id: str) -> list[str]:
        """The Login redirect URIs registered for these (merchant) keys: the two loopback defaults, then more."""
        extra = self.login_clients.get(client_id, {}).get("redirect_uris", [])
        return [*LOGIN_DEFAULT_REDIRECT_URIS, *(uri for uri in extra if uri not in LOGIN_DEFAULT_REDIRECT_URIS)]

    def user(self, phone_number: str | None) -> User | None:
        """The test user with this phone number (an MSISDN, 4791234567), if there is one."""
        return self.users.get(phone_number) if phone_number else None

    # -- mutation ---------------------------------------------------------------------------
    def add_sales_unit(self, unit: SalesUnit) -> None:
        self.decisions.clear()  # the directory changed: policy answers may too
        self.sales_units[unit.msn] = unit
        self.merchant_msns[unit.merchant].append(unit.msn)
        if unit.partner_id:
            self.partner_msns[unit.partner_id].append(unit.msn)

    def add_keys(self, keyset: KeySet) -> None:
        self.decisions.clear()  # the directory changed: policy answers may too
        self.keys[keyset.client_id] = keyset
        for sub in (keyset.subscription_key_primary, keyset.subscription_key_secondary):
            if sub:
                self.by_subscription_key[sub] = keyset.client_id
        for name in SUBSCRIPTION_FIELDS:
            if name in keyset.digests:
                self.by_subscription_digest[keyset.digests[name]] = keyset.client_id

    # -- credentials --------------------------------------------------------------------------------
    def subscription_owner(self, key: str) -> str | None:
        """The client_id whose (current) subscription key this is."""
        owner = self.by_subscription_key.get(key)
        if owner is None and self.by_subscription_digest:
            owner = self.by_subscription_digest.get(digest(key))
        return owner

    def retired_subscription_owner(self, key: str) -> str | None:
        """The client_id this subscription key belonged to before it was regenerated."""
        return self.retired_subscription_keys.get(digest(key)) if self.retired_subscription_keys else None

    def secret_matches(self, keyset: KeySet, secret: str) -> bool:
        if keyset.client_secret is not None:
            return hmac.compare_digest(secret.encode(), keyset.client_secret.encode())
        known = keyset.digests.get("client_secret")
        return known is not None and hmac.compare_digest(digest(secret), known)

    def secret_was_retired(self, client_id: str, secret: str) -> bool:
        retired = self.retired_secrets.get(client_id)
        return bool(retired) and digest(secret) in retired

    def replace_secret(self, keyset: KeySet, new: str) -> None:
        """A new client_secret; the old one is remembered (as a digest) to say it was regenerated."""
        self.decisions.clear()  # the directory changed: policy answers may too
        old = digest(keyset.client_secret) if keyset.client_secret is not None else keyset.digests.get("client_secret")
        if old:
            self.retired_secrets[keyset.client_id].add(old)
        keyset.client_secret = new
        keyset.digests.pop("client_secret", None)
        keyset.secret_version += 1

    def replace_subscription_key(self, keyset: KeySet, which: str, new: str) -> None:
        """A new primary or secondary subscription key; the other keeps working."""
        self.decisions.clear()  # the directory changed: policy answers may too
        name = f"subscription_key_{which}"
        old = getattr(keyset, name)
        old_digest = digest(old) if old is not None else keyset.digests.pop(name, None)
        if old is not None:
            self.by_subscription_key.pop(old, None)
        if old_digest is not None:
            self.by_subscription_digest.pop(old_digest, None)
            self.retired_subscription_keys[old_digest] = keyset.client_id
        setattr(keyset, name, new)
        self.by_subscription_key[new] = keyset.client_id

    def has_subscription_key(self, keyset: KeySet, which: str) -> bool:
        name = f"subscription_key_{which}"
        return getattr(keyset, name) is not None or name in keyset.digests

    def grant_consent(self, accounting_partner_id: str, merchant: str) -> None:
        self.decisions.clear()  # the directory changed: policy answers may too
        self.consents.add((accounting_partner_id, merchant))

    def revoke_consent(self, accounting_partner_id: str, merchant: str) -> bool:
        self.decisions.clear()  # the directory changed: policy answers may too
        try:
            self.consents.remove((accounting_partner_id, merchant))
        except KeyError:
            return False
        return True

    # -- questions the policy asks ---------------------------------------------------------------
    def reach(self, keyset: KeySet) -> list[str]:
        """The MSNs these keys may act for or manage (for accounting keys: read reports of)."""
        if keyset.type is KeyType.MERCHANT:
            return [keyset.owner]
        if keyset.type is KeyType.ACCOUNTING:
            return [msn for partner, merchant in sorted(self.consents) if partner == keyset.owner
                    for msn in self.merchant_msns.get(merchant, [])]
        if keyset.type is not KeyType.MERCHANT_LEVEL and keyset.owner in self.partners:
            return list(self.partner_msns.get(keyset.owner, []))
        return list(self.merchant_msns.get(keyset.owner, []))  # a merchant's own management or merchant-level keys

    def can_reach(self, keyset: KeySet, msn: str) -> bool:
        """O(1) for the common cases: is this MSN within these keys' reach?"""
        unit = self.sales_units.get(msn)
        if unit is None:
            return False
        if keyset.type is KeyType.MERCHANT:
            return keyset.owner == msn
        if keyset.type is KeyType.ACCOUNTING:
            return (keyset.owner, unit.merchant) in self.consents
        if keyset.type is not KeyType.MERCHANT_LEVEL and keyset.owner in self.partners:
            return unit.partner_id == keyset.owner
        return unit.merchant == keyset.owner  # a merchant's own management keys, merchant-level keys

    def is_active(self, msn: str) -> bool:
        unit = self.sales_units.get(msn)
        return unit is not None and self.merchants[unit.merchant].active

    def describe(self, keyset: KeySet) -> str:
        """One plain sentence on what these keys are and what they open."""
        msns = self.reach(keyset)
        units = f"{len(msns)} sales unit{'s' if len(msns) != 1 else ''}"
        if keyset.type is KeyType.MERCHANT:
            unit = self.sales_units[keyset.owner]
            return (f"Merchant keys of sales unit {unit.msn} ({unit.name}), {keyset.environment}: "
                    f"act for this one sales unit only")
        if keyset.type is KeyType.PARTNER:
            partner = self.partners[keyset.owner]
            if partner.act_on_behalf_approved:
                return f"Partner keys of {partner.name} ({partner.level}): act on behalf of its {units}"
            return (f"Partner keys of {partner.name} ({partner.level}): manage its {units}, "
                    f"but not approved to act on behalf of them")
        if keyset.type is KeyType.MANAGEMENT:
            if keyset.owner in self.partners:
                partner = self.partners[keyset.owner]
                return f"Management keys of {partner.name} ({partner.level}): manage its {units}, never move money"
            merchant = self.merchants[keyset.owner]
            return f"Management keys of merchant {merchant.name}: manage its own {units}, never move money"
        if keyset.type is KeyType.MERCHANT_LEVEL:
            merchant = self.merchants[keyset.owner]
            return (f"Merchant-level keys of merchant {merchant.name} (Donations): read donations, its own "
                    f"ledgers and donations.* webhooks for its {units}, never move money")
        partner = self.partners[keyset.owner]
        return (f"Accounting keys of {partner.name}: read the Report API for the {units} "
                f"of merchants that consented")

    # -- persistence ------------------------------------------------------------------------------
    def tables(self, secrets: bool = True) -> dict[str, list[dict]]:
        """The directory as fixture tables. With `secrets=False` (snapshots) every client secret and
        subscription key is replaced by its SHA-256 digest: it still works after a restore, and the
        fixture fills in the values it knows."""
        retired_subs: dict[str, list[str]] = defaultdict(list)
        for old, client_id in self.retired_subscription_keys.items():
            retired_subs[client_id].append(old)
        keys = []
        for keyset in self.keys.values():
            record = keyset.as_record()
            record["retired_secrets"] = sorted(self.retired_secrets.get(keyset.client_id, ()))
            record["retired_subscription_keys"] = sorted(retired_subs.get(keyset.client_id, ()))
            for name in SECRET_FIELDS:
                if not secrets and record[name] is not None:
                    record[name + DIGEST_SUFFIX] = digest(record[name])
                    record[name] = None
                elif name in keyset.digests:
                    record[name + DIGEST_SUFFIX] = keyset.digests[name]
            keys.append(record)
        return copy.deepcopy({
            "meta": [self.meta],
            "partners": [asdict(p) for p in self.partners.values()],
            "merchants": [asdict(m) for m in self.merchants.values()],
            "sales_units": [asdict(u) for u in self.sales_units.values()],
            "keys": keys,
            "consents": [asdict(Consent(p, m)) for p, m in sorted(self.consents)],
            "price_packages": [asdict(pp) for pps in self.price_packages.values() for pp in pps],
            "users": [asdict(u) for u in self.users.values()],
            "login_clients": [{"client_id": client_id, **settings}
                              for client_id, settings in self.login_clients.items()],
        })
