"""Typed errors, and the one place that renders them into the real APIs' error bodies.

Handlers and backends raise; `render` (called only by the gateway, the admin-token check and
sandbox/gateway/lowlevel.py) picks the body format from the API the route belongs to, so no module ever
builds an error body by hand.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field

from aiohttp import web

# ---------------------------------------------------------------------------------------------
# Exceptions
# ---------------------------------------------------------------------------------------------


class SandboxError(Exception):
    """Base of every error the sandbox answers with. `reason` is plain words for people."""

    status: int = 400
    #: Extra response headers this error brings (a 429's Retry-After).
    headers: dict[str, str] | None = None

    def __init__(self, reason: str, *, status: int | None = None, rule: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        self.rule = rule


class GatewayError(SandboxError):
    """An error from the API gateway (Azure APIM): `{"statusCode": 401, "message": ...}`."""

    status = 401


class GatewayNotFound(SandboxError):
    """The gateway's 404 for a path it does not serve (for example a production-only API in test)."""

    status = 404


def rate_limited(retry_after: int, rule: str) -> GatewayError:
    """The gateway's 429 (an injected fault or a documented rate limit), with its Retry-After."""
    error = GatewayError(f"Rate limit is exceeded. Try again in {retry_after} seconds.", status=429, rule=rule)
    error.headers = {"Retry-After": str(retry_after)}
    return error


class OAuthError(SandboxError):
    """An OAuth2-style token endpoint error: `{"error": ..., "error_description": ...}`."""

    def __init__(self, error: str, reason: str, *, status: int = 401, rule: str | None = None) -> None:
        super().__init__(reason, status=status, rule=rule)
        self.error = error


@dataclass
class Detail:
    """One entry of `extraDetails`: a field name (or "ErrorCode") and why."""

    name: str
    reason: str


class Problem(SandboxError):
    """An RFC 7807 problem. `code` becomes the `{"name":"ErrorCode","reason":code}` detail.

    `detail` is what the caller's body says; `reason`, when given, is what only the sandbox's own layer
    says (the Vipps-Sandbox-Reason header and the request log), for a body that must say less."""

    def __init__(self, status: int, title: str, detail: str, *, code: str | None = None,
                 details: list[Detail] | None = None, rule: str | None = None, reason: str | None = None) -> None:
        super().__init__(reason or detail, status=status, rule=rule)
        self.title = title
        self.detail = detail
        self.code = code
        self.details = list(details or [])


class Denied(Problem):
    """A valid caller that the key-type policy does not allow here: 403 with the rule's reason. With `detail`
    (an opaque 404), the body says only that, and the reason goes to the sandbox's headers and log."""

    def __init__(self, reason: str, rule: str, *, status: int = 403, detail: str | None = None) -> None:
        super().__init__(status, HTTP_TITLES.get(status, "Forbidden"), detail or reason, rule=rule, reason=reason)


class OpaqueDenial(Problem):
    """A deliberately opaque answer from a backend, after the gateway let the call through: the caller's body is
    the one given for something that does not exist (the real API's privacy rule), while `rule` and `reason`
    say why, in plain words, to the sandbox's own layer only (Vipps-Sandbox-* headers, the request log). The
    gateway turns the call's decision to deny (sandbox/gateway/checks.py)."""

    def __init__(self, status: int, title: str, detail: str, *, rule: str, reason: str,
                 code: str | None = None) -> None:
        super().__init__(status, title, detail, code=code, rule=rule, reason=reason)


class ValidationProblem(Problem):
    """A request that fails the spec's schema: 400 naming each field."""

    def __init__(self, details: list[Detail]) -> None:
        fields = "; ".join(f"{d.name}: {d.reason}" for d in details[:5]) + ("; ..." if len(details) > 5 else "")
        super().__init__(400, "Bad Request", "See extraDetails for further details", details=details,
                         rule="request-invalid", reason=f"The request does not match the API's spec: {fields}")


@dataclass(slots=True)
class RenderContext:
    """What the renderer needs to know about the request that failed."""

    api: str  # a policy.Api value, or "gateway" for unmatched paths
    path: str
    extra_headers: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

HTTP_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Payload Too Large",
               415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
               503: "Service Unavailable"}
API_PREFIXES = {"epayment": "/epayment", "webhooks": "/webhooks"}
#: The Recurring API's ErrorV3 (its problems page): `type` is this URL plus `#<problem identifier>`.
RECURRING_PROBLEMS = "https://developer.vippsmobilepay.com/docs/APIs/recurring-api/recurring-api-problems"
#: The identifier of a Recurring problem raised without one (by the gateway or a shared module), by its status.
RECURRING_IDENTIFIERS = {400: "validation-error", 401: "not-authorized", 403: "not-authorized",
                         404: "resource-not-found", 409: "conflict", 415: "unsupported-media-type"}


def trace_id() -> str:
    """A W3C traceparent string, as the real APIs put in `traceId`."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def _gateway_body(status: int, message: str) -> dict:
    return {"statusCode": status, "message": message}


def _apim_not_found_body(message: str) -> dict:
    return {"responseInfo": {"responseCode": 404, "responseMessage": "Not Found"}, "result": {"message": message}}


def _recurring_body(error: Problem, ctx: RenderContext) -> dict:
    """ErrorV3: {type, title, status, detail, instance, contextId, extraDetails[{name, reason}]}. A problem's `code`
    is its problem identifier (sandbox/apis/recurring/rules.py); "invalid-json" for a body that is not JSON."""
    identifier = error.code or (
        "invalid-json" if error.status == 400 and error.detail.startswith("The body is not valid JSON")
        else RECURRING_IDENTIFIERS.get(error.status, "operation-failed"))
    body = {"type": f"{RECURRING_PROBLEMS}#{identifier}", "title": error.title, "status": error.status,
            "detail": error.detail, "instance": ctx.path, "contextId": str(uuid.uuid4())}
    if error.details:
        body["extraDetails"] = [{"name": d.name, "reason": d.reason} for d in error.details]
    return body


def _problem_body(error: Problem, ctx: RenderContext) -> dict:
    if ctx.api == "recurring":
        return _recurring_body(error, ctx)
    if ctx.api == "management":
        body = {"type": f"https://httpstatuses.io/{error.status}", "title": error.title, "status": error.status,
                "detail": error.detail, "instance": f"urn:uuid:{uuid.uuid4()}"}
        extras = [{"key": d.name, "value": d.reason} for d in error.details]
        if error.code:
            extras.append({"key": "ErrorCode", "value": error.code})
        if extras:
            body["extraDetails"] = extras
        return body
    prefix = API_PREFIXES.get(ctx.api, "")
    instance = ctx.path[len(prefix):] if prefix and ctx.path.startswith(prefix) else ctx.path
    body = {"type": f"https://httpstatuses.io/{error.status}", "title": error.title, "status": error.status,
            "detail": error.detail, "instance": instance, "traceId": trace_id()}
    extras = [{"name": d.name, "reason": d.reason} for d in error.details]
    if error.code:
        extras.append({"name": "ErrorCode", "reason": error.code})
    if extras or ctx.api in ("epayment", "webhooks"):
        body["extraDetails"] = extras
    return body


def render(error: SandboxError, ctx: RenderContext) -> web.Response:
    """Turns an error into the response the real API would give for it."""
    content_type = "application/json"
    if isinstance(error, GatewayNotFound):
        body = _apim_not_found_body(error.reason)
    elif isinstance(error, GatewayError):
        if ctx.api == "report" and error.status == 401:
            body = {"code": "Unauthorized", "message": error.reason}
        else:
            body = _gateway_body(error.status, error.reason)
    elif isinstance(error, OAuthError):
        body = {"error": error.error, "error_description": error.reason}
    elif isinstance(error, Problem):
        if ctx.api == "token":
            # /accesstoken/get answers errors in the Azure AD style, not as problems.
            kind = "unauthorized_client" if error.status in (401, 403) else "invalid_request"
            body = {"error": kind, "error_description": error.detail}
        elif ctx.api == "report" and error.status == 401:
            body = {"code": "Unauthorized", "message": error.detail}
        else:
            body = _problem_body(error, ctx)
            content_type = "application/problem+json"
    else:
        body = _gateway_body(error.status, error.reason)
    headers = dict(ctx.extra_headers)
    if error.headers:
        headers.update(error.headers)
    if error.rule:
        headers["Vipps-Sandbox-Reason"] = header_safe(error.reason)
        headers["Vipps-Sandbox-Rule"] = error.rule
    return web.Response(status=error.status, text=json.dumps(body), content_type=content_type, headers=headers)


def header_safe(text: str, limit: int = 400) -> str:
    """Header values must be single-line latin-1 and short; reasons are kept to that."""
    text = clip(text, limit).translate(CONTROL_CHARACTERS)  # user input quoted in a reason may hold NUL, CR, LF
    return text.encode("latin-1", "replace").decode("latin-1")


CONTROL_CHARACTERS = {code: " " for code in (*range(0x20), 0x7F)}


def clip(value: str, limit: int = 60) -> str:
    """User input quoted back in a message, cut to a readable length."""
    return value if len(value) <= limit else value[: limit - 3] + "..."


def printable(value: str, limit: int = 8) -> str:
    """A value that failed a check, fit for a log line or a message: its first `limit` characters (then "…"),
    with control characters escaped (\\n, \\x00), so it can neither forge a line nor leak a whole credential
    sent in the wrong place."""
    head = value[:limit].encode("unicode_escape").decode("ascii") if not value[:limit].isprintable() else value[:limit]
    return head + ("…" if len(value) > limit else "")
