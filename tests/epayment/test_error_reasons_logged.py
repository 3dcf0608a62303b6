"""Every ePayment refusal says why in the sandbox's own layer (issue 12, point 2): a domain error names its
ErrorCode as the rule, a body the spec refuses names its fields, in the headers and in the request log."""

from __future__ import annotations

from epayment_support import create_body, merchant
from opaque_support import last_entry


async def test_a_domain_error_carries_its_error_code_as_the_rule(sandbox):
    shop = merchant(sandbox)
    await shop.authorized("reasons-0001", 1000)
    reply = await shop.refund("reasons-0001", 500)  # nothing captured yet: 6150 (refund more than captured)
    assert reply.status == 400, reply.text
    code = next(d["reason"] for d in reply.json["extraDetails"] if d["name"] == "ErrorCode")
    assert reply.headers["Vipps-Sandbox-Rule"] == f"epayment-error-{code}"
    assert reply.headers["Vipps-Sandbox-Reason"] == reply.json["detail"]
    entry = await last_entry(sandbox)
    assert entry["error"] == {"rule": f"epayment-error-{code}", "reason": reply.json["detail"]}, entry


async def test_a_body_the_spec_refuses_names_its_fields(sandbox):
    shop = merchant(sandbox)
    body = create_body("reasons-0002")
    body["amount"]["value"] = "ten"
    reply = await shop.create(body)
    assert reply.status == 400, reply.text
    assert reply.headers["Vipps-Sandbox-Rule"] == "request-invalid"
    reason = reply.headers["Vipps-Sandbox-Reason"]
    assert "amount.value" in reason, reason
    entry = await last_entry(sandbox)
    assert entry["error"]["rule"] == "request-invalid" and "amount.value" in entry["error"]["reason"], entry
