"""The error body formats of the real APIs, told apart by their fields; shared by the hostile-input and fuzz tests."""

from __future__ import annotations

import json

from sandbox.gateway.policy import Api


def shape(body: object) -> str:
    if not isinstance(body, dict):
        return "not-an-object"
    keys = set(body)
    if keys == {"statusCode", "message"}:
        return "gateway"
    if {"responseInfo", "result"} <= keys:
        return "apim"
    if keys == {"error", "error_description"} or keys == {"error", "error_description", "error_code"}:
        return "oauth"  # error_code: Login CIBA's invalid_user
    if keys == {"error", "error_description", "error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}:
        return "azure-ad"
    if keys == {"code", "message"}:
        return "report-401"
    if keys == {"type", "title", "status", "detail", "instance", "extraInfo"} and isinstance(body["status"], str):
        return "userinfo-error"  # the Userinfo spec's UserinfoError: its status is a string
    if {"errorCode", "errors"} <= keys and isinstance(body.get("errors"), dict):
        return "checkout-problem"  # CheckoutProblemDetails (ASP.NET ValidationProblemDetails)
    if {"type", "title", "status", "detail", "instance", "contextId"} <= keys and "traceId" not in keys:
        return "recurring-problem"  # ErrorV3, its type a recurring-api-problems#<identifier> URL
    if {"type", "title", "status", "detail", "instance"} <= keys and "traceId" not in keys:
        return "management-problem"
    if {"type", "title", "status", "traceId"} <= keys:
        return "problem"
    # issue 18: QrErrorResponse / Order Management's ErrorResponse, and the QR exchanges' {title, status, detail}
    if {"type", "title", "detail", "instance"} <= keys <= {"type", "title", "detail", "instance", "invalidParams"}:
        return "invalid-params-problem"
    if {"title", "status", "detail"} <= keys <= {"title", "status", "detail", "extraDetails"}:
        return "exchange-problem"
    return "unknown"


#: The bodies each API may refuse with: its own, or the gateway's (which answers before any API does).
SHAPES = {Api.TOKEN: {"oauth", "azure-ad", "gateway", "apim"}, Api.EPAYMENT: {"problem", "gateway", "apim"},
          Api.WEBHOOKS: {"problem", "gateway", "apim"}, Api.MANAGEMENT: {"management-problem", "gateway", "apim"},
          Api.REPORT: {"problem", "report-401", "gateway", "apim"}, Api.SANDBOX: {"problem", "gateway", "apim"},
          Api.RECURRING: {"recurring-problem", "gateway", "apim"}, Api.USERINFO: {"userinfo-error", "gateway", "apim"},
          Api.QR: {"invalid-params-problem", "exchange-problem", "gateway", "apim"},
          Api.ORDER_MANAGEMENT: {"invalid-params-problem", "gateway", "apim"}, Api.LOGIN: {"oauth", "gateway", "apim"},
          Api.DONATIONS: {"problem", "gateway", "apim"},  # UNCERTAIN: the generic Vipps problem (no spec)
          Api.CHECKOUT: {"checkout-problem", "gateway", "apim"}}
#: API routes a user's browser opens, which answer their refusals as HTML pages: Login's authorize (an unknown
#: client or redirect_uri gets an error page, never a redirect).
BROWSER_PAGES = frozenset({"login.auth"})
JSON_TYPES = ("application/json", "application/problem+json")


def error_format_problem(api: Api, content_type: str, body: bytes | str) -> str | None:
    """None when a 4xx body is in this API's format; otherwise what is wrong with it."""
    if content_type.split(";")[0].strip() not in JSON_TYPES:
        return f"content type {content_type!r} is not JSON"
    try:
        kind = shape(json.loads(body))
    except ValueError:
        return "the body is not JSON"
    return None if kind in SHAPES[api] else f"a {kind} body is not a {api} error"
