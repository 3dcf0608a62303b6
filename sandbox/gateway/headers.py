"""Header names the hot path reads, as multidict's istr.

A case-insensitive lookup with an istr skips folding the name on every call; the value is
the name as written, so messages quote it unchanged.
"""

from __future__ import annotations

from multidict import istr

AUTHORIZATION = istr("Authorization")
HOST = istr("Host")
CONTENT_LENGTH = istr("Content-Length")
MERCHANT_SERIAL_NUMBER = istr("Merchant-Serial-Number")
SUBSCRIPTION_KEY = istr("Ocp-Apim-Subscription-Key")
CLIENT_ID = istr("client_id")
CLIENT_SECRET = istr("client_secret")
SYSTEM_HEADERS = (istr("Vipps-System-Name"), istr("Vipps-System-Version"), istr("Vipps-System-Plugin-Name"),
                  istr("Vipps-System-Plugin-Version"))
SANDBOX_DECISION = istr("Vipps-Sandbox-Decision")
SANDBOX_RULE = istr("Vipps-Sandbox-Rule")
SANDBOX_REASON = istr("Vipps-Sandbox-Reason")
SANDBOX_WARNING = istr("Vipps-Sandbox-Warning")
