"""Domain events every API may publish and every consumer may read, whatever API the money moved in.

An API publishes its own events (`epayment.captured`, `recurring.charge-captured`, ...) for its own webhooks;
when money moves, it also publishes one of these, so a consumer (the Report API's ledgers) learns about a new
API without changing: adding an API changes nothing in another API's package.

Payload of MONEY_CAPTURED and MONEY_REFUNDED (`money_event` builds it):

- `env`: "test" or "production"; `msn`: the sales unit the money is for;
- `pspReference`: this movement's id (unique per movement); `reference`: the merchant's id for the order
  (an ePayment reference, a Recurring charge id / orderId);
- `amount`: {"currency", "value"} in minor units, always positive (a refund's direction is its kind);
- `timestamp`: epoch seconds on the virtual clock; `source`: the API, e.g. "recurring";
- `paymentDescription` and `phoneNumber`: what a ledger shows as GDPR-sensitive data, or None.
"""

from __future__ import annotations

MONEY_CAPTURED = "money.captured"
MONEY_REFUNDED = "money.refunded"


def money_event(*, env: str, msn: str, psp_reference: str, reference: str, value: int, currency: str,
                timestamp: float, source: str, description: str | None = None, phone: str | None = None) -> dict:
    return {"env": env, "msn": msn, "pspReference": psp_reference, "reference": reference,
            "amount": {"currency": currency, "value": value}, "timestamp": timestamp, "source": source,
            "paymentDescription": description, "phoneNumber": phone}


#: A user approved a request that asked for profile data (an ePayment payment's or a Recurring agreement's
#: `scope`, a Login consent). Payload (`profile_event` builds it): `env`, `msn`, `sub`, `phoneNumber`,
#: `scope` (the space-separated string asked for), `timestamp` (epoch seconds on the virtual clock, when the
#: user consented) and `source` (the API). The Userinfo API keeps these so it can answer for the sub.
PROFILE_SHARED = "profile.shared"


def profile_event(*, env: str, msn: str, sub: str, phone: str, scope: str, timestamp: float, source: str) -> dict:
    return {"env": env, "msn": msn, "sub": sub, "phoneNumber": phone, "scope": scope, "timestamp": timestamp,
            "source": source}


#: A receipt came with an order from another API (an ePayment create body's `receipt`): the Order Management API
#: keeps it, so `GET /order-management/v2/{paymentType}/{orderId}` answers it. Payload (`receipt_event` builds it):
#: `env`, `msn`, `paymentType` ("ecom" or "recurring"), `orderId` (the payment's reference), `receipt` (the
#: Receipt object as sent), `timestamp` (epoch seconds on the virtual clock) and `source` (the API).
ORDER_RECEIPT = "order.receipt"


def receipt_event(*, env: str, msn: str, payment_type: str, order_id: str, receipt: dict, timestamp: float,
                  source: str) -> dict:
    return {"env": env, "msn": msn, "paymentType": payment_type, "orderId": order_id, "receipt": receipt,
            "timestamp": timestamp, "source": source}
