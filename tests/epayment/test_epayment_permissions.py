"""The permission matrix for the ePayment routes: route x key type x environment x MSN case.

Expectations come from a small oracle written from the seed pages (api-keys.txt, partner-keys.txt),
not from sandbox.gateway.policy.decide:
- merchant keys act for their own sales unit only (the MSN header may be left out);
- partner keys act on behalf of connected sales units, and must say which with Merchant-Serial-Number;
- management keys manage, accounting keys read reports: neither may make payments;
- force approve exists only in the test environment.
Only merchant keys exist in the test environment (partner keys are production only).
"""

from __future__ import annotations

import pytest
from epayment_support import create_body

from sandbox.gateway.policy import EPAYMENT_ROUTES

KEY_CASES = [("test", "merchant"), ("production", "merchant"), ("production", "partner"),
             ("production", "management"), ("production", "accounting")]
MSN_CASES = ["own", "other", "missing"]
REFERENCE = "order-perm-0001"


def oracle(route_name: str, env: str, key_type: str, msn_case: str) -> str:
    """'ok', 'forbidden' or 'not-found' (the gateway's 404), from the seed pages' rules."""
    if route_name == "epayment.force_approve" and env == "production":
        return "not-found"
    if key_type in ("management", "accounting"):
        return "forbidden"
    if key_type == "merchant":
        return "forbidden" if msn_case == "other" else "ok"
    return "ok" if msn_case == "own" else "forbidden"  # partner keys: connected MSN, always sent


def keys_for(sandbox, env: str, key_type: str) -> dict:
    if key_type == "merchant":
        return sandbox.key("merchant", env, sandbox.msn_role("premium-shop-1"))
    if key_type == "partner":
        return sandbox.key("partner", env, owner=sandbox.partner_role("premium"))
    return sandbox.keys(key_type, env)[0]


def msn_for(sandbox, keyset: dict, case: str) -> str | None:
    if case == "missing":
        return None
    if case == "own":  # a Norwegian sales unit when the keys reach one, so the NOK create body fits
        preferred = sandbox.msn_role("premium-shop-1")
        return preferred if preferred in keyset["msns"] else keyset["msns"][0]
    world = sandbox.runtime.world
    return next(u.msn for u in world.sales_units.values()
                if u.msn not in keyset["msns"] and u.partner_id and u.partner_id != keyset["owner"]
                and world.is_active(u.msn))


def request_for(route_name: str) -> tuple[str, dict | None]:
    """A well-formed call on a reference that does not exist (create excepted), so 'ok' is the handler's answer."""
    base = "/epayment/v1/payments"
    amount = {"modificationAmount": {"currency": "NOK", "value": 100}}
    return {"epayment.create": (base, create_body(REFERENCE)),
            "epayment.get": (f"{base}/{REFERENCE}", None),
            "epayment.events": (f"{base}/{REFERENCE}/events", None),
            "epayment.capture": (f"{base}/{REFERENCE}/capture", amount),
            "epayment.refund": (f"{base}/{REFERENCE}/refund", amount),
            "epayment.cancel": (f"{base}/{REFERENCE}/cancel", {}),
            "epayment.force_approve": (f"/epayment/v1/test/payments/{REFERENCE}/approve", {})}[route_name]


@pytest.mark.parametrize("msn_case", MSN_CASES)
@pytest.mark.parametrize(("env", "key_type"), KEY_CASES)
@pytest.mark.parametrize("route", EPAYMENT_ROUTES, ids=lambda r: r.name)
async def test_epayment_permission_matrix(sandbox, route, env, key_type, msn_case):
    keyset = keys_for(sandbox, env, key_type)
    msn = msn_for(sandbox, keyset, msn_case)
    path, body = request_for(route.name)
    assert route.method in ("GET", "POST")
    reply = await sandbox.request(route.method, path, env, keyset=keyset, msn=msn, json_body=body,
                                  headers={"Idempotency-Key": "perm-1"})
    expected = oracle(route.name, env, key_type, msn_case)
    if expected == "not-found":
        assert reply.status == 404 and "responseInfo" in reply.json, reply.text
    elif expected == "forbidden":
        assert reply.status == 403, reply.text
        assert reply.headers.get("Vipps-Sandbox-Rule"), "every denial names its rule"
    elif route.name == "epayment.create":
        assert reply.status == 201, reply.text
    else:
        assert reply.status == 404, reply.text  # the handler ran: the reference is unknown
        assert {"name": "ErrorCode", "reason": "5090"} in reply.json["extraDetails"]

