"""Customer tokens: who scanned a merchant callback QR, as the user.checked-in.v1 webhook names them.

The QR API issues one when a user checks in (sandbox/apis/qr/); the QR exchange operation
(`POST /qr/v1/exchange/customer`) turns it into the user's MSISDN, and Login's CIBA may accept it as the
user's identifier (`login_hint`). API packages never import one another, so the tokens live here, on the
runtime (`runtime.customer_tokens`), for any API to resolve:

    token = runtime.customer_tokens.issue(env, msn, phone, now, merchant_qr_id="kasse-1")
    holder = runtime.customer_tokens.resolve(token, env, now)  # None: unknown, expired or another environment

A token is valid 15 minutes (the QR API guide: "The customerToken is valid 15 min") on the virtual clock. It is
a credential of sorts (it names a person to the merchant), so it is never in snapshots, the journal or logs: a
restart or a reset forgets every token. Expired ones leave through a heap ordered by expiry, never a scan.
"""

from __future__ import annotations

import heapq
import secrets
from dataclasses import dataclass

from sandbox.core.model import Env

CUSTOMER_TOKEN_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class CustomerToken:
    """What a customer token stands for: a user (phone number) who checked in at a sales unit's QR code."""

    env: Env
    msn: str
    phone: str
    issued_at: float
    expires_at: float
    merchant_qr_id: str | None = None


class CustomerTokens:
    """The live customer tokens of one sandbox, by token."""

    def __init__(self) -> None:
        self._tokens: dict[str, CustomerToken] = {}
        self._expiry: list[tuple[float, str]] = []

    def issue(self, env: Env, msn: str, phone: str, now: float, *, merchant_qr_id: str | None = None,
              lifetime: float = CUSTOMER_TOKEN_SECONDS) -> str:
        self.prune(now)
        token = secrets.token_urlsafe(32)  # random even with --id-seed: a credential, never reproducible
        self._tokens[token] = CustomerToken(env, msn, phone, now, now + lifetime, merchant_qr_id)
        heapq.heappush(self._expiry, (now + lifetime, token))
        return token

    def resolve(self, token: str, env: Env, now: float) -> CustomerToken | None:
        """The holder of a live token of this environment; None for an unknown, expired or foreign one."""
        holder = self._tokens.get(token)
        if holder is None or holder.env is not env or holder.expires_at <= now:
            return None
        return holder

    def prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, token = heapq.heappop(self._expiry)
            holder = self._tokens.get(token)
            if holder is not None and holder.expires_at <= now:
                del self._tokens[token]

    def clear(self) -> None:
        self._tokens.clear()
        self._expiry.clear()

    def __len__(self) -> int:
        return len(self._tokens)
