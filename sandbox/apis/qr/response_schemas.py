"""Every successful QR API response a test client sees is checked against qr.yaml.

The test client (sandbox/testing.py) calls `violations()` on each reply. Nothing is patched: the sandbox's
answers match the spec's schemas as they are (`url` and `qrImageUrl` are absolute URIs, checked as such).
"""

from __future__ import annotations

import re
from functools import cache

from sandbox.core.response_check import body_errors, checker
from sandbox.core.spec import SpecSchemas

#: (method, path) -> the schema of a 2xx body ("[X]" is an array of X). PUT and DELETE answer no body.
RESPONSES = [
    ("POST", re.compile(r"^/qr/v1$"), "OneTimePaymentQrResponse"),
    ("POST", re.compile(r"^/qr/v1/merchant-redirect$"), "MerchantRedirectQrResponse"),
    ("GET", re.compile(r"^/qr/v1/merchant-redirect$"), "MerchantRedirectQrResponseGetAll"),
    ("GET", re.compile(r"^/qr/v1/merchant-redirect/[^/]+$"), "MerchantRedirectQrResponse"),
    ("PUT", re.compile(r"^/qr/v1/merchant-redirect/[^/]+$"), "MerchantRedirectQrResponse"),
    ("GET", re.compile(r"^/qr/v1/merchant-callback$"), "[MerchantCallbackQr]"),
    ("GET", re.compile(r"^/qr/v1/merchant-callback/[^/]+$"), "MerchantCallbackQr"),
    ("POST", re.compile(r"^/qr/v1/exchange$"), "QrExchangeResponse"),
    ("POST", re.compile(r"^/qr/v1/exchange/customer$"), "CustomerExchangeResponse"),
]


@cache
def schemas() -> SpecSchemas:
    return SpecSchemas("qr.yaml", formats=True)


def item_errors(name: str, item: object) -> list[str]:
    return [f"{name}.{field}: {why}" for field, why in schemas().errors(name, item)]


def errors(schema: str, body: object) -> list[str]:
    return body_errors(schema, body, item_errors)


#: What is wrong with a QR API response; empty when it conforms or no schema applies.
violations = checker(RESPONSES, item_errors)
