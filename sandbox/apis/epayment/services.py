"""What the ePayment API offers other API packages through the service registry (sandbox/core/services.py).

Checkout v3 makes its payments as ePayment payments under the session's reference; it cannot import this
package, so `register` puts these callables in `runtime.services` at setup. Each is the backend's own method,
with the same rules as the merchant's call or the user's click.
"""

from __future__ import annotations

from sandbox.apis.epayment.backend import PaymentsBackend, State
from sandbox.core import services
from sandbox.core.model import Env


def register(payments: PaymentsBackend) -> None:
    def view(env: Env, msn: str, reference: str) -> dict | None:
        payment = payments.payments.get((env, msn, reference))
        return None if payment is None else payments.view(payment)

    def approve(env: Env, msn: str, reference: str, phone: str | None) -> None:
        payments.approve(payments.find(env, msn, reference), phone, payer=phone)

    def ended(action):
        def end(env: Env, msn: str, reference: str) -> None:
            payment = payments.payments.get((env, msn, reference))
            if payment is not None and payment.state is State.CREATED:
                action(payment)
        return end

    payments.runtime.services.update({
        services.EPAYMENT_CREATE: payments.create,
        services.EPAYMENT_VIEW: view,
        services.EPAYMENT_APPROVE: approve,
        services.EPAYMENT_REJECT: ended(payments.reject),
        services.EPAYMENT_EXPIRE: ended(payments.expire),
    })
