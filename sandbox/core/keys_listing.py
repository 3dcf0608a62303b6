"""Key sets as plain dicts: what `vipps-sandbox keys --json`, /_sandbox/keys and the pytest plugin return."""

from __future__ import annotations

import textwrap

from sandbox.core.model import Env, KeySet, KeyType
from sandbox.core.world import World

FIELDS = ("type", "environment", "client_id", "client_secret", "subscription_key_primary",
          "subscription_key_secondary", "owner", "role", "msns", "description", "redirect_uris")
#: The table never grows wider than this, whatever the fixture holds.
WIDTH = 120


class UnknownRole(ValueError):
    """A role filter naming no key set's owner; the message lists the roles there are."""

    def __init__(self, role: str, known: list[str]) -> None:
        super().__init__(f"no key set belongs to the role {role!r}; the roles are: {', '.join(known)}")
        self.role, self.known = role, known


def owner_role(world: World, keyset: KeySet) -> str | None:
    """The fixture's stable nickname of the keys' owner (a partner, a merchant or a sales unit), if it has one."""
    owner = keyset.owner
    holder = world.partners.get(owner) or world.merchants.get(owner) or world.sales_units.get(owner)
    return (holder.role or None) if holder is not None else None


def roles(world: World) -> list[str]:
    """Every role that owns a key set, sorted: the values `role` filters accept."""
    return sorted({role for keyset in world.keys.values() if (role := owner_role(world, keyset))})


def keyset_rows(world: World, key_type: KeyType | None = None, env: Env | None = None,
                msn: str | None = None, role: str | None = None) -> list[dict]:
    """Raises UnknownRole when `role` is given and no key set's owner has it."""
    if role is not None and role not in roles(world):
        raise UnknownRole(role, roles(world))
    rows = []
    for keyset in world.keys.values():
        if key_type is not None and keyset.type is not key_type:
            continue
        if env is not None and keyset.environment is not env:
            continue
        owned_by = owner_role(world, keyset)
        if role is not None and owned_by != role:
            continue
        msns = world.reach(keyset)
        if msn is not None and msn not in msns:
            continue
        rows.append({
            "type": str(keyset.type), "environment": str(keyset.environment), "client_id": keyset.client_id,
            "client_secret": keyset.client_secret, "subscription_key_primary": keyset.subscription_key_primary,
            "subscription_key_secondary": keyset.subscription_key_secondary, "owner": keyset.owner,
            "role": owned_by, "msns": msns, "description": world.describe(keyset),
            # Login: the sales unit's own keys are its OAuth client; other key types have no redirect URIs.
            "redirect_uris": world.redirect_uris(keyset.client_id) if keyset.type is KeyType.MERCHANT else [],
        })
    return rows


def masked(secret: str | None) -> str:
    """The last 4 characters of a secret: enough to tell key sets apart, not to use them."""
    return "…" + secret[-4:] if secret else "-"


def table(rows: list[dict]) -> str:
    """A table for people, at most WIDTH columns. Each key set takes one line of what tells it apart and
    what is copied (type, environment, role, owner, client_id in full), then indented lines with its
    masked secrets, the MSNs it reaches and what it opens; long lines wrap, nothing is cut."""
    headers = ["type", "env", "role", "owner", "client_id"]
    # One owner's key sets together, by role (then owner), each type's test keys before production's.
    kinds, envs = [str(t) for t in KeyType], [str(e) for e in Env]
    rows = sorted(rows, key=lambda r: (r["role"] is None, r["role"] or "", r["owner"], kinds.index(r["type"]),
                                       envs.index(r["environment"])))
    lines = [[r["type"], r["environment"], r["role"] or "-", r["owner"], r["client_id"]] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    count = f"{len(rows)} key set{'s' if len(rows) != 1 else ''}."
    out = [f"{count} Secrets show their last 4 characters only; full values: vipps-sandbox keys --json"]
    out.append("")
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    for line, row in zip(lines, rows, strict=True):
        # a client_id is never wrapped or cut: it is the last column, so only a fixture with absurdly long
        # owners or roles could push it past WIDTH, and then the line stays whole rather than lose the id
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        subscription = (f"subscription keys {masked(row['subscription_key_primary'])} (primary), "
                        f"{masked(row['subscription_key_secondary'])} (secondary)"
                        if row["subscription_key_primary"] or row["subscription_key_secondary"]
                        else "no subscription key")
        reach = ", ".join(row["msns"]) or "none"
        for text in (f"client_secret {masked(row['client_secret'])}, {subscription}; "
                     f"MSN{'s' if len(row['msns']) != 1 else ''} {reach}", row["description"]):
            out.extend(textwrap.wrap(text, WIDTH, initial_indent="    ", subsequent_indent="      ",
                                     break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)
