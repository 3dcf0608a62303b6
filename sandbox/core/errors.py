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
    """An OAuth2-style token endpoint error: `{"error": ..., "error_description": ...}`.

    `code` adds Login CIBA's `error_code` (`invalid_user`, `old_app`); `description` is what the body says when
    it must say less than `reason` (the sandbox's own explanation, for its headers and the request log)."""

    def __init__(self, error: str, reason: str, *, status: int = 401, rule: str | None = None,
                 code: str | None = None, description: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(reason, status=status, rule=rule)
        self.error = error
        self.code = code
        self.description = description
        if headers:
            self.headers = headers


#: The OAuth `error` of a Login API refusal raised as a generic problem (a body too large, a wrong method).
OAUTH_ERRORS_BY_STATUS = {401: "invalid_client", 403: "access_denied", 404: "not_found", 405: "invalid_request",
                          413: "invalid_request", 429: "slow_down", 500: "server_error"}


def oauth_body(error: OAuthError) -> dict:
    body = {"error": error.error, "error_description": error.description or error.reason}
    if error.code:
        body["error_code"] = error.code
    return body


#: Azure AD's answers at POST /accesstoken/get (the identity provider behind the gateway), by AADSTS code:
#: (HTTP status, OAuth2 `error`, the description before its Trace/Correlation/Timestamp tail). 700016 is the
#: Vipps FAQ's example (common-errors FAQ, 2022: HTTP 400, directory 'VIPPS-TEST'); the others are Azure AD's
#: own texts and statuses (Microsoft Entra error reference), not shown in any Vipps source (UNCERTAIN).
AADSTS = {
    700016: (400, "unauthorized_client",
             "Application with identifier '{app}' was not found in the directory '{directory}'. This can happen if "
             "the application has not been installed by the administrator of the tenant or consented to by any "
             "user in the tenant. You may have sent your authentication request to the wrong tenant."),
    7000215: (401, "invalid_client",
              "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
              "value, not the client secret ID, for a secret added to app '{app}'."),
    900144: (400, "invalid_request", "The request body must contain the following parameter: 'client_id'."),
    7000218: (401, "invalid_client",
              "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."),
}
#: Where Azure AD quotes an identifier that matched nothing, the sandbox writes this instead: a client_secret
#: sent as the client_id (they are easily swapped) must never come back in a body (docs/reference/fidelity.md).
NOT_SHOWN = "(not shown by the sandbox)"
AAD_ERROR_URI = "https://login.windows.net/error?code={code}"  # the host of the FAQ's example


@dataclass(frozen=True, slots=True)
class IdentityMoment:
    """What Azure AD stamps on each refusal: the time ("2022-11-17 11:37:08Z", from the virtual clock) and two
    uuids (from sandbox/core/ids.py)."""

    timestamp: str
    trace_id: str
    correlation_id: str


class IdentityError(SandboxError):
    """A refusal by the identity provider (Azure AD) at POST /accesstoken/get: rendered as Azure AD's body for
    `code` (AADSTS above). `reason` is the sandbox's own plain words, for its headers and log only; `app` is a
    client id that matched a key set (never a value that matched nothing)."""

    def __init__(self, code: int, reason: str, *, rule: str, moment: IdentityMoment, directory: str = "",
                 app: str = NOT_SHOWN) -> None:
        status, error, _ = AADSTS[code]
        super().__init__(reason, status=status, rule=rule)
        self.code, self.error, self.moment, self.directory, self.app = code, error, moment, directory, app


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


#: Checkout's errorCode for a problem raised without one (by the gateway or a shared module), by status. The spec
#: requires the field but documents no values: these names are the sandbox's (UNCERTAIN, docs/reference/fidelity.md).
CHECKOUT_ERROR_CODES = {400: "ValidationError", 401: "Unauthorized", 403: "Forbidden", 404: "SessionNotFound",
                        405: "MethodNotAllowed", 409: "Conflict", 413: "PayloadTooLarge",
                        415: "UnsupportedMediaType", 429: "TooManyRequests", 500: "InternalServerError"}


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


def _checkout_body(error: Problem, ctx: RenderContext) -> dict:
    """CheckoutProblemDetails (ASP.NET's ValidationProblemDetails): `errorCode` and `errors` {field: [messages]}
    are required; each Detail becomes one message under its field."""
    errors: dict[str, list[str]] = {}
    for detail in error.details:
        errors.setdefault(detail.name, []).append(detail.reason)
    title, detail = error.title, error.detail
    if isinstance(error, ValidationProblem):  # ASP.NET's own words for a model that fails validation
        title, detail = "One or more validation errors occurred.", "See errors for further details."
    return {"type": f"https://httpstatuses.io/{error.status}", "title": title, "status": error.status,
            "detail": detail, "instance": ctx.path,
            "errorCode": error.code or CHECKOUT_ERROR_CODES.get(error.status, "Error"), "errors": errors}


def _identity_body(error: IdentityError) -> dict:
    """Azure AD's error body, field for field as the Vipps FAQ shows it (and the official SDK types it,
    `AccessTokenError`)."""
    text = AADSTS[error.code][2].format(app=error.app, directory=error.directory)
    moment = error.moment
    description = (f"AADSTS{error.code}: {text}\r\nTrace ID: {moment.trace_id}\r\nCorrelation ID: "
                   f"{moment.correlation_id}\r\nTimestamp: {moment.timestamp}")
    return {"error": error.error, "error_description": description, "error_codes": [error.code],
            "timestamp": moment.timestamp, "trace_id": moment.trace_id, "correlation_id": moment.correlation_id,
            "error_uri": AAD_ERROR_URI.format(code=error.code)}


def _userinfo_body(error: Problem) -> dict:
    """The Userinfo spec's UserinfoError: {type, title, status (a string!), detail, instance (an id for
    troubleshooting), extraInfo (an object of objects)}, sent as application/json."""
    return {"type": f"https://httpstatuses.io/{error.status}", "title": error.title, "status": str(error.status),
            "detail": error.detail, "instance": str(uuid.uuid4()),
            "extraInfo": {d.name: {"reason": d.reason} for d in error.details}}


#: The QR API's exchange operations answer {title, status, detail, extraDetails}; its other operations, and the
#: Order Management API, QrErrorResponse / ErrorResponse: {type, title, detail, instance, invalidParams} (issue 18).
VALIDATION_TYPE = "https://datatracker.ietf.org/doc/html/rfc7231#section-6.5.1"
EXCHANGE_PATHS = ("/qr/v1/exchange",)


def _invalid_params_body(error: Problem, ctx: RenderContext) -> dict:
    """QrErrorResponse and Order Management's ErrorResponse (their specs' examples: `instance` a traceparent)."""
    details = [{"name": d.name, "reason": d.reason} for d in error.details]
    if ctx.api == "qr" and ctx.path.startswith(EXCHANGE_PATHS):
        body: dict = {"title": error.title, "status": error.status, "detail": error.detail}
        if details:
            body["extraDetails"] = details
        return body
    body = {"type": VALIDATION_TYPE if error.status == 400 else f"https://httpstatuses.io/{error.status}",
            "title": error.title, "detail": error.detail, "instance": trace_id()}
    if details:
        body["invalidParams"] = details
    return body


def _problem_body(error: Problem, ctx: RenderContext) -> dict:
    if ctx.api in ("qr", "ordermanagement"):
        return _invalid_params_body(error, ctx)
    if ctx.api == "recurring":
        return _recurring_body(error, ctx)
    if ctx.api == "checkout":
        return _checkout_body(error, ctx)
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
    elif isinstance(error, IdentityError):
        body = _identity_body(error)
    elif isinstance(error, OAuthError):
        body = oauth_body(error)
    elif isinstance(error, Problem):
        if ctx.api == "login":  # the Login API answers every refusal in the OAuth format
            body = {"error": OAUTH_ERRORS_BY_STATUS.get(error.status, "invalid_request"),
                    "error_description": error.detail}
        elif ctx.api == "token":
            # /accesstoken/get answers errors in the Azure AD style, not as problems.
            kind = "unauthorized_client" if error.status in (401, 403) else "invalid_request"
            body = {"error": kind, "error_description": error.detail}
        elif ctx.api == "report" and error.status == 401:
            body = {"code": "Unauthorized", "message": error.detail}
        elif ctx.api == "userinfo":
            body = _userinfo_body(error)
        else:
            body = _problem_body(error, ctx)
            # QR, Order Management and Checkout declare their error bodies as application/json (issue 18)
            content_type = "application/json" if ctx.api in ("qr", "ordermanagement", "checkout") \
                else "application/problem+json"
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
