"""What the Recurring API offers other API packages through the service registry (sandbox/core/services.py).

Checkout v3's subscription sessions make a Recurring agreement; Checkout cannot import this package, so `register`
puts these callables in `runtime.services` at setup. Each is the backend's own method, with the same rules as the
merchant's call or the user's click on the confirmation page.
"""

from __future__ import annotations

from sandbox.apis.recurring.backend import RecurringBackend
from sandbox.core import services
from sandbox.core.model import Env


def register(recurring: RecurringBackend) -> None:
    def approve(env: Env, msn: str, agreement_id: str, phone: str | None) -> None:
        recurring.approve(recurring.agreement(env, msn, agreement_id), phone)

    def reject(env: Env, msn: str, agreement_id: str) -> None:
        agreement = recurring.agreements.get((env, msn, agreement_id))
        if agreement is not None and agreement.status == "PENDING":
            recurring.reject(agreement)

    recurring.runtime.services.update({
        services.RECURRING_DRAFT: recurring.draft,
        services.RECURRING_APPROVE: approve,
        services.RECURRING_REJECT: reject,
    })
