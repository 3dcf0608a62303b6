"""The service registry: what one API package offers another, by name, without an import between them.

API packages never import one another (docs/architecture.md). When one needs another's behaviour (Checkout
creates its payment as an ePayment payment, under the same reference, so capture, cancel and refund go through
the ePayment API), the offering package registers a callable in `runtime.services` at its `setup`, and the user
looks it up by name at call time. Events travel the other way (`runtime.listeners`: Checkout follows the
payment's `epayment.*` events).

The names, with what they take and give (env is an Env, msn and reference strings):

- EPAYMENT_CREATE `(env, msn, body, idempotency_key, origin) -> (status, reply)`: ePayment's
  `POST /epayment/v1/payments` with this body (validated by the ePayment spec and rules, exactly as a merchant's
  call); the errors are ePayment's typed errors.
- EPAYMENT_VIEW `(env, msn, reference) -> dict | None`: the payment as `GET /epayment/v1/payments/{reference}`
  answers it, or None when there is none.
- EPAYMENT_APPROVE `(env, msn, reference, phone) -> None`: the user approves (CREATED -> AUTHORIZED).
- EPAYMENT_REJECT `(env, msn, reference) -> None`: the user rejects (CREATED -> ABORTED); nothing when it no longer
  is CREATED.
- EPAYMENT_EXPIRE `(env, msn, reference) -> None`: the payment expires now (CREATED -> EXPIRED); nothing when it no
  longer is CREATED.
- RECURRING_DRAFT `(env, msn, body, idempotency_key, origin) -> (status, reply)`: Recurring's
  `POST /recurring/v3/agreements` with this body (DraftAgreementV3, validated as a merchant's call).
- RECURRING_APPROVE `(env, msn, agreement_id, phone) -> None`: the user approves (PENDING -> ACTIVE).
- RECURRING_REJECT `(env, msn, agreement_id) -> None`: the user rejects (PENDING -> STOPPED); nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

EPAYMENT_CREATE = "epayment.create_payment"
EPAYMENT_VIEW = "epayment.view_payment"
EPAYMENT_APPROVE = "epayment.approve_payment"
EPAYMENT_REJECT = "epayment.reject_payment"
EPAYMENT_EXPIRE = "epayment.expire_payment"
RECURRING_DRAFT = "recurring.draft_agreement"
RECURRING_APPROVE = "recurring.approve_agreement"
RECURRING_REJECT = "recurring.reject_agreement"


class ServiceMissing(RuntimeError):
    """A package asked for a service no package registered (the offering API is not in the app's PACKAGES)."""


def service(services: Mapping[str, Callable[..., Any]], name: str) -> Callable[..., Any]:
    """The registered callable `name`; ServiceMissing, naming it, when no package offers it."""
    found = services.get(name)
    if found is None:
        raise ServiceMissing(f"no package registered the service {name!r}")
    return found
