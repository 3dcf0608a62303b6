"""An unmodified client's whole ePayment flow against https://apitest.vipps.no, with `requests` or `httpx`.

Run in a subprocess whose environment has only HTTPS_PROXY and the library's CA variable (REQUESTS_CA_BUNDLE
for requests, SSL_CERT_FILE for httpx) pointing at the sandbox: the code below is what an integration would
have, with the real host name and no base URL to change. Prints one JSON line per step:
{"step", "status", "body"}.

Usage: python flow_client.py requests|httpx (keys in VIPPS_CLIENT_ID, VIPPS_CLIENT_SECRET,
VIPPS_SUBSCRIPTION_KEY, VIPPS_MSN; VIPPS_CURRENCY, VIPPS_REFERENCE).
"""

from __future__ import annotations

import json
import os
import sys
import uuid

BASE = "https://apitest.vipps.no"


def main() -> int:
    library = sys.argv[1]
    env = os.environ
    currency = env.get("VIPPS_CURRENCY", "NOK")
    reference = env.get("VIPPS_REFERENCE", f"proxy-{uuid.uuid4().hex[:12]}")
    if library == "requests":
        import requests

        client = requests.Session()
    else:
        import httpx

        client = httpx.Client(timeout=30)

    def step(name: str, method: str, path: str, headers: dict, body: object = None) -> dict:
        response = client.request(method, BASE + path, headers=headers, json=body)
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = response.text
        print(json.dumps({"step": name, "status": response.status_code, "body": parsed}), flush=True)
        return parsed if isinstance(parsed, dict) else {}

    token = step("token", "POST", "/accesstoken/get", {
        "client_id": env["VIPPS_CLIENT_ID"], "client_secret": env["VIPPS_CLIENT_SECRET"],
        "Ocp-Apim-Subscription-Key": env["VIPPS_SUBSCRIPTION_KEY"]})
    headers = {"Authorization": f"Bearer {token.get('access_token')}",
               "Ocp-Apim-Subscription-Key": env["VIPPS_SUBSCRIPTION_KEY"], "Merchant-Serial-Number": env["VIPPS_MSN"],
               "Vipps-System-Name": "proxy-proof", "Vipps-System-Version": "1.0"}
    step("create", "POST", "/epayment/v1/payments", {**headers, "Idempotency-Key": uuid.uuid4().hex}, {
        "amount": {"currency": currency, "value": 10000}, "paymentMethod": {"type": "WALLET"},
        "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://shop.example.com/return",
        "paymentDescription": "Through the proxy"})
    # The user's approval, as the sandbox's control plane gives it (on the same host name, through the proxy).
    step("approve", "POST", f"/_sandbox/payments/{env['VIPPS_MSN']}/{reference}/approve", {})
    step("capture", "POST", f"/epayment/v1/payments/{reference}/capture",
         {**headers, "Idempotency-Key": uuid.uuid4().hex},
         {"modificationAmount": {"currency": currency, "value": 10000}})
    step("get", "GET", f"/epayment/v1/payments/{reference}", headers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
