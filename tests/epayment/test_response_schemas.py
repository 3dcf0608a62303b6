"""The test client's own spec check can fail: a body that breaks the spec is caught."""

from sandbox.apis.epayment.response_schemas import violations


def test_a_broken_get_payment_body_is_caught():
    assert violations("GET", "/epayment/v1/payments/abc-12345", 200, '{"state": "PAID"}')
    assert violations("GET", "/epayment/v1/payments/abc-12345/events", 200, '[{"name": "CREATED"}]')


def test_errors_and_other_routes_are_not_checked():
    assert violations("GET", "/epayment/v1/payments/abc-12345", 404, '{"state": "PAID"}') == []
    assert violations("GET", "/_sandbox/health", 200, '{"status": "ok"}') == []
