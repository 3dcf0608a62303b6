"""Key sets as plain dicts: what `vipps-sandbox keys --json`, /_sandbox/keys and the pytest plugin return."""

from __future__ import annotations

from sandbox.core.model import Env, KeyType
from sandbox.core.world import World

FIELDS = ("type", "environment", "client_id", "client_secret", "subscription_key_primary",
          "subscription_key_secondary", "owner", "msns", "description")


def keyset_rows(world: World, key_type: KeyType | None = None, env: Env | None = None,
                msn: str | None = None) -> list[dict]:
    rows = []
    for keyset in world.keys.values():
        if key_type is not None and keyset.type is not key_type:
            continue
        if env is not None and keyset.environment is not env:
            continue
        msns = world.reach(keyset)
        if msn is not None and msn not in msns:
            continue
        rows.append({
            "type": str(keyset.type), "environment": str(keyset.environment), "client_id": keyset.client_id,
            "client_secret": keyset.client_secret, "subscription_key_primary": keyset.subscription_key_primary,
            "subscription_key_secondary": keyset.subscription_key_secondary, "owner": keyset.owner,
            "msns": msns, "description": world.describe(keyset),
        })
    return rows


def table(rows: list[dict]) -> str:
    """A readable table for people; secrets are shown whole because this is a local sandbox."""
    headers = ["type", "env", "owner", "client_id", "client_secret", "subscription_key_primary", "msns"]
    lines = [[r["type"], r["environment"], r["owner"], r["client_id"], r["client_secret"],
              r["subscription_key_primary"] or "-", ",".join(r["msns"]) or "-"] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for line, row in zip(lines, rows, strict=True):
        out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))
        out.append("    " + row["description"])
    return "\n".join(out)
