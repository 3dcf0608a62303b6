"""The directory: partners, merchants, sales units, key sets and consents, held in memory.

Built from fixture tables, indexed for O(1) lookups, and mutable while the sandbox runs (key
regeneration, consents, new sales units). `tables()` gives it back as fixture tables for
snapshots.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import asdict

from sandbox.model import Consent, Env, KeySet, KeyType, Merchant, Partner, PricePackage, SalesUnit


class World:
    def __init__(self, tables: dict[str, list[dict]]) -> None:
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
        self.by_subscription_key: dict[str, str] = {}
        self.retired_secrets: dict[str, set[str]] = defaultdict(set)
        self.retired_subscription_keys: dict[str, str] = {}
        for record in tables.get("keys", []):
            record = dict(record)
            retired = record.pop("retired_secrets", [])
            keyset = KeySet(**record)
            keyset.type, keyset.environment = KeyType(keyset.type), Env(keyset.environment)
            self.add_keys(keyset)
            self.retired_secrets[keyset.client_id].update(retired)
        self.consents: set[tuple[str, str]] = {
            (r["accounting_partner_id"], r["merchant"]) for r in tables.get("consents", [])
        }
        self.price_packages: dict[str, list[PricePackage]] = defaultdict(list)
        for record in tables.get("price_packages", []):
            self.price_packages[record["partner_id"]].append(PricePackage(**record))

    # -- mutation ---------------------------------------------------------------------------
    def add_sales_unit(self, unit: SalesUnit) -> None:
        self.sales_units[unit.msn] = unit
        self.merchant_msns[unit.merchant].append(unit.msn)
        if unit.partner_id:
            self.partner_msns[unit.partner_id].append(unit.msn)

    def add_keys(self, keyset: KeySet) -> None:
        self.keys[keyset.client_id] = keyset
        for sub in (keyset.subscription_key_primary, keyset.subscription_key_secondary):
            if sub:
                self.by_subscription_key[sub] = keyset.client_id

    def grant_consent(self, accounting_partner_id: str, merchant: str) -> None:
        self.consents.add((accounting_partner_id, merchant))

    def revoke_consent(self, accounting_partner_id: str, merchant: str) -> bool:
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
        if keyset.owner in self.partners:
            return list(self.partner_msns.get(keyset.owner, []))
        return list(self.merchant_msns.get(keyset.owner, []))  # a merchant's own management keys

    def can_reach(self, keyset: KeySet, msn: str) -> bool:
        """O(1) for the common cases: is this MSN within these keys' reach?"""
        unit = self.sales_units.get(msn)
        if unit is None:
            return False
        if keyset.type is KeyType.MERCHANT:
            return keyset.owner == msn
        if keyset.type is KeyType.ACCOUNTING:
            return (keyset.owner, unit.merchant) in self.consents
        if keyset.owner in self.partners:
            return unit.partner_id == keyset.owner
        return unit.merchant == keyset.owner

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
        partner = self.partners[keyset.owner]
        return (f"Accounting keys of {partner.name}: read the Report API for the {units} "
                f"of merchants that consented")

    # -- persistence ------------------------------------------------------------------------------
    def tables(self) -> dict[str, list[dict]]:
        keys = []
        for keyset in self.keys.values():
            record = keyset.as_record()
            record["retired_secrets"] = sorted(self.retired_secrets.get(keyset.client_id, ()))
            keys.append(record)
        return copy.deepcopy({
            "meta": [self.meta],
            "partners": [asdict(p) for p in self.partners.values()],
            "merchants": [asdict(m) for m in self.merchants.values()],
            "sales_units": [asdict(u) for u in self.sales_units.values()],
            "keys": keys,
            "consents": [asdict(Consent(p, m)) for p, m in sorted(self.consents)],
            "price_packages": [asdict(pp) for pps in self.price_packages.values() for pp in pps],
        })
