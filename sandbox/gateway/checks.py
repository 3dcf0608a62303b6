"""The gateway's checks, in the real order: environment, headers, subscription key, token, policy.

The front door (sandbox/gateway/front_door.py) runs them for every request; every error is rendered
through sandbox.core.errors.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.core import errors
from sandbox.core.errors import (
    Detail,
    GatewayError,
    GatewayNotFound,
    Problem,
    RenderContext,
    SandboxError,
    printable,
)
from sandbox.core.model import Env, KeyType
from sandbox.core.net import sni_name
from sandbox.core.runtime import Runtime
from sandbox.gateway.admission import LIMIT as ADMISSION_LIMIT
from sandbox.gateway.admission import Admission
from sandbox.gateway.bodies import check_depth, is_json_type
from sandbox.gateway.context import RUNTIME, CallContext
from sandbox.gateway.headers import (
    AUTHORIZATION,
    CLIENT_ID,
    CLIENT_SECRET,
    CONTENT_LENGTH,
    HOST,
    MERCHANT_SERIAL_NUMBER,
    SANDBOX_DECISION,
    SANDBOX_RULE,
    SANDBOX_WARNING,
    SUBSCRIPTION_KEY,
    SYSTEM_HEADERS,
)
from sandbox.gateway.policy import ROUTES, Api, Auth, RoutePolicy, decide, deny, environment_decision
from sandbox.gateway.rate_limits import LIMITS, RateLimiter
from sandbox.ops import faults
from sandbox.ops.requestlog import header_fields

log = logging.getLogger("sandbox")

HOST_ENVS = {"apitest.vipps.no": Env.TEST, "api.vipps.no": Env.PRODUCTION}
SYSTEM_HEADER_MAX = 30
#: Where an API's spec allows longer Vipps-System-* values (order-management.yaml: maxLength 100).
SYSTEM_HEADER_MAX_BY_API = {Api.ORDER_MANAGEMENT: 100}
MSN_PATTERN = re.compile(r"^[0-9]{4,10}$")
MAX_BODY = 1024 * 1024  # the app's client_max_size
MISSING_SUBSCRIPTION_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key "
                            "when making requests to an API.")
INVALID_SUBSCRIPTION_KEY = ("Access denied due to invalid subscription key. Make sure to provide a valid key for an "
                            "active subscription.")


#: The catch-all route's name (sandbox/gateway/front_door.py): paths and methods no other route serves.
UNMATCHED = "gateway.unmatched"
UNKNOWN_PATH = "Resource not found. No API of the sandbox serves this path."
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_HOST_SEEN: dict[str, Env | None] = {}


def resolve_env(request: web.Request, runtime: Runtime) -> Env:
    """The Host header decides when it names a Vipps host; otherwise the port the request came in on (on the TLS
    port and through the proxy, the TLS server name)."""
    header = request.headers.get(HOST) or ""
    if header in _HOST_SEEN:
        env = _HOST_SEEN[header]
    else:
        env = HOST_ENVS.get(header.split(":", 1)[0].strip().lower())
        if len(_HOST_SEEN) < 256:  # a handful of Host values in practice; never unbounded
            _HOST_SEEN[header] = env
    if env is not None:
        return env
    protocol = request._protocol  # the connection's: its port and TLS name hold for all its requests
    env = getattr(protocol, "connection_env", None)
    if env is None:
        env = connection_env(request.transport, runtime)
        if hasattr(protocol, "connection_env"):  # sandbox/gateway/lowlevel.py's handler keeps it
            protocol.connection_env = env
    return env


def connection_env(transport, runtime: Runtime) -> Env:
    """The environment of a connection whose Host names no Vipps host: its local port's, else (the TLS port and
    the proxy's tunnels serve both environments) the name the client asked for (SNI), else the test environment
    (sandbox/core/ca.py, sandbox/gateway/proxy.py)."""
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if sockname and len(sockname) >= 2:
        env = runtime.port_env.get(sockname[1])
        if env is not None:
            return env
        return HOST_ENVS.get(sni_name(transport.get_extra_info("ssl_object")) or "", Env.TEST)
    return Env.TEST


def check_system_headers(request: web.Request, ctx: CallContext) -> list[str]:
    """Each Vipps-System-* header is at most 30 characters (100 where the API's spec says so). Returns the ones
    missing or empty."""
    missing = []
    getall = request.headers.getall
    limit = SYSTEM_HEADER_MAX if ctx.route is None else SYSTEM_HEADER_MAX_BY_API.get(ctx.route.api, SYSTEM_HEADER_MAX)
    for name in SYSTEM_HEADERS:
        values = getall(name, None)  # every copy, in order: values[0] is what headers.get(name) gives
        if values is None:
            missing.append(name)
            continue
        if values[0] == "":
            missing.append(name)
        # A header sent twice is checked whole: the long copy must not hide behind a short one.
        if (len(values[0]) if len(values) == 1 else max(map(len, values))) > limit:
            raise Problem(400, "Bad Request", f"The {name} header is longer than {limit} characters.",
                          details=[Detail(name, f"The field {name} must be at most {limit} characters.")],
                          rule="system-header-too-long")
    return missing


def partner_header_warning(request: web.Request, ctx: CallContext, missing: list[str]) -> None:
    """Vipps asks partners to send the Vipps-System-* headers: warn, or refuse in strict mode."""
    if not missing:
        return
    if request.app[RUNTIME].settings.strict_headers:
        raise Problem(400, "Bad Request", f"Partner keys must send the {missing[0]} header (strict mode).",
                      details=[Detail(missing[0], "Required for partners and plugins.")],
                      rule="system-headers-required")
    ctx.warnings.append("Partner keys should send " + ", ".join(missing) + ".")


def parse_msn(request: web.Request) -> str | None:
    value = request.headers.get(MERCHANT_SERIAL_NUMBER)
    if value is None or value == "":
        return None
    if not MSN_PATTERN.fullmatch(value):
        raise Problem(400, "Bad Request", "The Merchant-Serial-Number header must be 4 to 10 digits.",
                      details=[Detail("Merchant-Serial-Number", "The field must match '^[0-9]{4,10}$'.")],
                      rule="msn-malformed")
    return value


def unverified_flow(token: str | None) -> str | None:
    """The `flow` claim of a refused token, read without trusting it: it only picks which 401 the caller gets
    (a stale miami token is told it is stale, not that a subscription key is missing)."""
    if not token:
        return None
    import jwt  # imported on first use (sandbox/gateway/tokens.py warm)

    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("flow"))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        return None


def authenticate(request: web.Request, runtime: Runtime, ctx: CallContext):
    """The gateway's credential checks for a bearer route; returns the caller's key set."""
    if ctx.replayed is not None:  # a --state journal entry, replayed as the identity it was acknowledged as
        return ctx.replayed
    header = request.headers.get(AUTHORIZATION, "")
    token = header[7:].strip() if header.startswith("Bearer ") else None
    claims = keyset = None
    token_error: GatewayError | None = None
    if token:
        try:
            claims, keyset = runtime.tokens.verify(token, ctx.env)
        except GatewayError as exc:
            token_error = exc
    owner_id = None
    flow = claims.flow if claims is not None else unverified_flow(token)
    sub = request.headers.get(SUBSCRIPTION_KEY)
    keyless = False  # the Userinfo API: a call without a subscription key (the sources disagree: fidelity notes)
    if ctx.route is not None and ctx.route.key_optional:
        if sub is not None and runtime.settings.userinfo_strict_subscription_key:
            raise Problem(401, "Unauthorized", "The Userinfo API must not be sent an Ocp-Apim-Subscription-Key "
                          "header.", rule="userinfo-subscription-key-refused",
                          reason="Strict mode (--userinfo-strict-subscription-key): the Recurring and eCom guides say "
                          "a subscription key on the Userinfo API is a 401; the Userinfo spec says it is required. "
                          "By default the sandbox accepts both.")
        keyless = not sub
    if flow != "miami" and not keyless:  # /miami/v1/token tokens are used without a subscription key
        owner_id = subscription_key_owner(sub, runtime, ctx.env)
    if token is None:
        raise GatewayError("Access denied due to missing or malformed token. Send 'Authorization: Bearer <token>'.",
                           rule="token-missing")
    if token_error is not None:
        raise token_error
    assert claims is not None and keyset is not None
    if claims.flow == "standard" and owner_id != keyset.client_id and not keyless:  # owner_id was looked up above
        raise GatewayError("The subscription key does not belong to the keys that issued the access token.",
                           rule="subscription-key-mismatch")
    return keyset


def subscription_key_owner(sub: str | None, runtime: Runtime, env: Env) -> str:
    """The client_id whose subscription key this is, in this environment; the gateway's 401 otherwise."""
    if not sub:
        raise GatewayError(MISSING_SUBSCRIPTION_KEY, rule="subscription-key-missing")
    world = runtime.world
    owner_id = world.subscription_owner(sub)
    if owner_id is None:
        rule, reason = "subscription-key-invalid", INVALID_SUBSCRIPTION_KEY
        if world.retired_subscription_owner(sub) is not None:
            rule = "keys-regenerated"
            reason += " This subscription key was regenerated and no longer works."
        raise GatewayError(reason, rule=rule)
    if world.keys[owner_id].environment is not env:
        raise GatewayError(INVALID_SUBSCRIPTION_KEY + " (It belongs to the other environment.)",
                           rule="keys-stay-in-their-environment")
    return owner_id


def credentials_refused(reason: str, rule: str) -> Problem:
    """A 401 in the route's own format (Checkout answers its CheckoutProblemDetails for bad credentials)."""
    return Problem(401, "Unauthorized", reason, rule=rule)


def authenticate_client_headers(request: web.Request, runtime: Runtime, ctx: CallContext):
    """Auth.CLIENT_HEADERS (Checkout v3): the keys themselves as headers, no access token. An Authorization
    header (the official SDK sends an empty `Bearer`) plays no part. Returns the caller's key set.

    Management, accounting and merchant-level keys have no subscription key: a known client_id of theirs with its
    right secret goes on to the policy, which refuses them with the reason (not a 401 about a subscription key)."""
    if ctx.replayed is not None:
        return ctx.replayed
    headers = request.headers
    client_id, secret = headers.get(CLIENT_ID) or "", headers.get(CLIENT_SECRET) or ""
    world = runtime.world
    keyset = world.keys.get(client_id) if client_id else None
    miami_keys = keyset is not None and keyset.type in (KeyType.MANAGEMENT, KeyType.ACCOUNTING, KeyType.MERCHANT_LEVEL)
    owner_id = None if miami_keys else subscription_key_owner(headers.get(SUBSCRIPTION_KEY), runtime, ctx.env)
    if not client_id or not secret:
        missing = "client_id" if not client_id else "client_secret"
        raise credentials_refused(f"The {missing} header is missing or empty: this API takes the keys themselves "
                                  "as headers (client_id, client_secret, Ocp-Apim-Subscription-Key).",
                                  "credentials-missing")
    if keyset is None:  # never quoted: a client_secret sent as the client_id would be echoed
        raise credentials_refused("The client_id is not known to the sandbox.", "unknown-client-id")
    if not secret.isascii():  # header bytes that are no text (surrogates): no secret looks like that
        raise credentials_refused("The client_secret does not match the client_id.", "client-secret-wrong")
    if not world.secret_matches(keyset, secret):
        if world.secret_was_retired(client_id, secret):
            raise credentials_refused("This client_secret was regenerated and no longer works; use the new one.",
                                      "keys-regenerated")
        raise credentials_refused("The client_secret does not match the client_id.", "client-secret-wrong")
    if owner_id is not None and owner_id != keyset.client_id:
        raise GatewayError("The subscription key does not belong to the client_id sent.",
                           rule="subscription-key-mismatch")
    return keyset


def check_body_size(request: web.Request) -> None:
    """An announced body over the limit gets its 413 at once, whether or not the handler reads the body."""
    if CONTENT_LENGTH not in request.headers:  # GETs: nothing to check (chunked bodies are capped on read)
        return
    length = request.content_length
    if length is not None and length > MAX_BODY:
        raise Problem(413, "Payload Too Large", f"The request body is {length} bytes; the limit is {MAX_BODY} bytes.",
                      rule="body-too-large")


def method_not_allowed(request: web.Request) -> Problem:
    return Problem(405, "Method Not Allowed", f"{request.method} is not allowed on {request.path}.",
                   rule="method-not-allowed")


def route_of(request: web.Request) -> RoutePolicy | None:
    """The policy entry of the route the request matched; None for the catch-all (see `unmatched`)."""
    info = request.match_info
    if info.http_exception is not None:  # only when a route is registered outside the front door's catch-all
        exc = info.http_exception
        if exc.status == 405:
            raise method_not_allowed(request)
        raise GatewayNotFound(UNKNOWN_PATH, rule="unknown-path")
    name = info.route.name
    return None if name == UNMATCHED else ROUTES[name]


CONNECT_ON_PLAIN_PORT = ("Resource not found. This port serves the API directly, it is not a proxy: send CONNECT "
                         "to the sandbox's proxy port (vipps-sandbox serve --proxy-port), or call this port's paths.")


async def unmatched(request: web.Request) -> SandboxError:
    """For a request only the catch-all matched: 405 when some route serves the path with other methods,
    else the gateway's 404 (a CONNECT on a port that is not the proxy's gets one saying where it belongs)."""
    if request.method == "CONNECT":
        return GatewayNotFound(CONNECT_ON_PLAIN_PORT, rule="connect-not-a-proxy")
    for resource in request.app.router.resources():
        if resource.name == UNMATCHED:
            continue
        _, allowed = await resource.resolve(request)
        if allowed:
            return method_not_allowed(request)
    return GatewayNotFound(UNKNOWN_PATH, rule="unknown-path")


async def check_rate_limit(request: web.Request, ctx: CallContext, route: RoutePolicy, runtime: Runtime,
                           limiter: RateLimiter) -> None:
    """The documented per-reference limits (sandbox/gateway/rate_limits.py): a 429 like the gateway's when exceeded."""
    limit = LIMITS[route.name]
    params, body_field = limit.counted()
    parts: list[object] = [request.match_info.get(name) for name in params]
    if body_field is not None:  # create: a body without the field is refused later (or names a new resource)
        try:
            body = json.loads(await request.read())
        except (ValueError, RecursionError):
            return
        parts.append(body.get(body_field) if isinstance(body, dict) else None)
    if any(not isinstance(part, str) or not limit.reference_is_valid(part) for part in parts):
        return  # the handler refuses it (400); only real references get a window
    reference = "|".join(parts)  # type: ignore[arg-type]
    who = ctx.msn if limit.keyed_by == "msn" else request.headers.get(SUBSCRIPTION_KEY)
    retry_after = limiter.take((route.name, ctx.env, who, reference), limit, runtime.clock.time())
    if retry_after is not None:
        raise errors.rate_limited(retry_after, "rate-limited")


def render_context(request: web.Request, ctx: CallContext) -> RenderContext:
    """Made only when there is an error to render; "gateway" when no route matched."""
    return RenderContext(api=ctx.route.api if ctx.route is not None else "gateway", path=request.path)


def admit(request: web.Request, ctx: CallContext, runtime: Runtime, route: RoutePolicy,
          admission_key: tuple | None) -> None:
    """The synchronous checks: body size, system headers, environment, credentials, policy. Raises the refusal;
    on success `ctx` holds the verdict, kept under `admission_key` (when given) for the request's repeats."""
    ctx.route = route
    check_body_size(request)
    missing = check_system_headers(request, ctx)
    if ctx.env not in route.envs:
        env_denial = ctx.decision = environment_decision(route, ctx.env)
        assert env_denial is not None
        raise GatewayNotFound(env_denial.reason, rule=env_denial.rule)
    # The gateway authenticates access tokens and Checkout's raw keys; Login's client credentials (Auth.CLIENT)
    # and its user tokens (Auth.USER) are checked by the Login backend, against the same policy.
    if route.auth is Auth.BEARER or route.auth is Auth.CLIENT_HEADERS:
        msn = parse_msn(request)
        if route.auth is Auth.BEARER:
            keyset = ctx.keyset = authenticate(request, runtime, ctx)
            if keyset.type is KeyType.PARTNER:
                partner_header_warning(request, ctx, missing)
        else:  # the official SDK sends the Vipps-System-* headers empty here: never refused for that
            keyset = ctx.keyset = authenticate_client_headers(request, runtime, ctx)
        world = runtime.world
        memo = (route.name, keyset.client_id, keyset.secret_version, ctx.env, msn)
        decision = world.decisions.get(memo)
        if decision is None:  # the same caller asks the same thing again and again: decide once
            decision = decide(route, keyset, ctx.env, msn, world)
            if len(world.decisions) < ADMISSION_LIMIT:
                world.decisions[memo] = decision
        ctx.decision = decision
        if not decision.allowed:
            if decision.status == 401:
                raise GatewayError(decision.reason, rule=decision.rule)
            raise errors.Denied(decision.reason, decision.rule, status=decision.status, detail=decision.detail)
        ctx.msn = decision.msn
    ctx.missing_system_headers = missing
    if admission_key is not None:
        keep_admission(request, ctx, runtime, route, admission_key)


def keep_admission(request: web.Request, ctx: CallContext, runtime: Runtime, route: RoutePolicy, key: tuple) -> None:
    """The verdict on a request just let through, for its repeats (sandbox/gateway/admission.py): a bearer
    request's, while its token is valid; a request without credentials to a route that takes none, for good."""
    world = runtime.world
    if len(world.decisions) >= ADMISSION_LIMIT:  # requests that never repeat (a request id header): start afresh
        world.decisions.clear()
    headers = request.headers
    logged_msn, presented = header_fields(headers, request.path)
    if route.auth is Auth.BEARER:
        claims = runtime.tokens.cached_claims(headers.get(AUTHORIZATION, "")[7:].strip())
        if claims is None or ctx.keyset is None or ctx.decision is None:
            return
    elif route.auth is Auth.NONE and presented is None and CLIENT_ID not in headers and AUTHORIZATION not in headers:
        claims = None
    else:
        return
    world.decisions[key] = Admission(ctx.keyset, ctx.decision, ctx.msn, ctx.missing_system_headers,
                                     tuple(ctx.warnings), claims, logged_msn, presented, headers.get(HOST), ctx.env)


async def through_gateway(request: web.Request, handler: Handler, ctx: CallContext, runtime: Runtime,
                          book: faults.FaultBook | None, read_body: bool = False,
                          route: RoutePolicy | None = None, admission_key: tuple | None = None
                          ) -> web.StreamResponse:
    """The gateway's checks, then the handler; every error rendered in its API's format (by sandbox.core.errors).
    With read_body (journaled requests), the body is read before the handler runs, so one too large to keep
    is refused before anything changes, whether or not the handler reads it. `route` is the policy entry of the
    route whose handler this is, bound when the front door wrapped it; without one it is looked up (route_of).

    A repeat of a request let through before (ctx.admission, sandbox/gateway/admission.py) skips the synchronous
    checks, whose verdict it carries; with `admission_key`, a request these checks let through is kept as one."""
    try:
        admission = ctx.admission
        if admission is not None:
            admitted(ctx, route, admission)  # type: ignore[arg-type]
        else:
            if route is None:
                route = route_of(request)
            if route is None:
                raise await unmatched(request)
            admit(request, ctx, runtime, route, admission_key)
        if read_body or waits(request, runtime, route, book):
            await asynchronous_checks(request, ctx, runtime, route, book, read_body)
        response = await handler(request)
    except Exception as exc:
        response = failure(exc, request, ctx)
    return labelled(response, ctx)


def admitted(ctx: CallContext, route: RoutePolicy, admission: Admission) -> None:
    """A repeat's context, from its admission: what `admit` found the first time."""
    ctx.route = route
    ctx.keyset, ctx.decision, ctx.msn = admission.keyset, admission.decision, admission.msn
    ctx.missing_system_headers = admission.missing
    if admission.warnings:
        ctx.warnings.extend(admission.warnings)


def waits(request: web.Request, runtime: Runtime, route: RoutePolicy, book: faults.FaultBook | None) -> bool:
    """Whether any of the asynchronous checks applies: a JSON body, a rate limit, injected faults."""
    return (request.body_exists and is_json_type(request.content_type)) \
        or (runtime.rate_limiter is not None and route.name in LIMITS) or (book is not None and bool(book.rules))


async def asynchronous_checks(request: web.Request, ctx: CallContext, runtime: Runtime, route: RoutePolicy,
                              book: faults.FaultBook | None, read_body: bool) -> None:
    if request.body_exists and is_json_type(request.content_type):
        check_depth(await request.read())  # every JSON body, before anything parses or keeps it
    if runtime.rate_limiter is not None and route.name in LIMITS:
        await check_rate_limit(request, ctx, route, runtime, runtime.rate_limiter)
    if read_body:
        await request.read()  # kept by aiohttp: the handler's read() gets the same bytes
    if book is not None and book.rules:
        await faults.before_handler(request, ctx, book)  # injected faults (sandbox/ops/faults.py)


def failure(exc: Exception, request: web.Request, ctx: CallContext) -> web.StreamResponse:
    """The answer to what the checks or the handler raised, in the route's format (never a traceback); a redirect
    (an HTTPException below 400) is raised again. Called from an `except` block."""
    if isinstance(exc, SandboxError):
        if isinstance(exc, errors.OpaqueDenial):  # let through, then hidden by the backend: a denial, explained
            ctx.decision = deny(str(exc.rule), exc.reason, exc.status)
        return errors.render(exc, render_context(request, ctx))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        title = errors.HTTP_TITLES.get(exc.status, "Error")
        return errors.render(Problem(exc.status, title, exc.reason or title), render_context(request, ctx))
    log.exception("unhandled error on %s %s", request.method, printable(request.path, 200))
    return errors.render(Problem(500, "Internal Server Error", "The sandbox failed unexpectedly."),
                         render_context(request, ctx))


def labelled(response: web.StreamResponse, ctx: CallContext) -> web.StreamResponse:
    """The Vipps-Sandbox-Decision (and -Warning) headers of an answer."""
    if ctx.decision is not None:
        response.headers[SANDBOX_DECISION] = "allow" if ctx.decision.allowed else "deny"
    elif SANDBOX_RULE in response.headers and response.status >= 400:
        response.headers[SANDBOX_DECISION] = "deny"  # refused before any policy decision (a bad token)
    elif ctx.route is not None and ctx.route.api is not Api.SANDBOX and response.status < 400:
        response.headers[SANDBOX_DECISION] = "allow"  # the token endpoints
    if ctx.warnings:
        response.headers[SANDBOX_WARNING] = errors.header_safe(" ".join(ctx.warnings))
    return response
