"""Who may talk to the sandbox from a browser: the Host header on every request, the Origin on control-plane
changes.

- **Host.** A page on a name the attacker controls can re-point that name at 127.0.0.1 (DNS rebinding): the
  browser then treats the sandbox as the attacker's own origin and lets the page read `/_sandbox/keys`. Its
  requests still carry the attacker's name in `Host`, so every request whose Host is not one the sandbox
  serves is refused (421). Served: loopback names and addresses (`localhost`, `*.localhost`, `127.0.0.1`,
  `[::1]`), any IP address (rebinding needs a name), `--host`, this machine's host name when listening on all
  interfaces, the Vipps host names (`apitest.vipps.no`, `api.vipps.no`: the Host header picks the
  environment), and `--allowed-host` / `VIPPS_SANDBOX_ALLOWED_HOSTS` (a name, `.suffix` for a domain and
  its subdomains, or `*` for any). A request without a Host header (HTTP/1.0) comes from no browser.
- **Origin.** A page on another origin can still make the user's browser *send* a request (a form post, a
  `fetch` in no-cors mode) without reading the answer. A state-changing control-plane request (POST, PUT,
  PATCH, DELETE under `/_sandbox`) is refused (403) when its `Origin` is not the sandbox's own (the scheme
  and the Host it was sent to), or, with no Origin, when `Sec-Fetch-Site` says another site or the `Referer`
  is another origin. Clients that are not browsers send none of these and are not affected. The APIs'
  own routes are called by servers, whatever page started the flow: no Origin rule there.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

from aiohttp import web

from sandbox.core import errors
from sandbox.core.errors import GatewayError, Problem, RenderContext, clip
from sandbox.core.net import is_loopback
from sandbox.core.settings import Settings
from sandbox.gateway.checks import HOST_ENVS
from sandbox.gateway.context import CallContext
from sandbox.gateway.headers import HOST
from sandbox.gateway.policy import deny

#: The Vipps host names (the Host header picks the environment: sandbox/gateway/checks.py resolve_env).
VIPPS_HOSTS = frozenset(HOST_ENVS)
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})
#: name[:port] or [IPv6][:port], as RFC 3986 allows in an authority (no userinfo).
HOST_VALUE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::([0-9]{1,5}))?")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
ALLOWED_HOSTS_VAR = "VIPPS_SANDBOX_ALLOWED_HOSTS"
ORIGIN = "Origin"
SEC_FETCH_SITE = "Sec-Fetch-Site"
REFERER = "Referer"


def split_host(value: str) -> tuple[str, str | None] | None:
    """(name, port) of a Host header value, the name lower-cased without a trailing dot; None if malformed."""
    match = HOST_VALUE.fullmatch(value.strip())
    if match is None:
        return None
    name, port = match.group(1).lower(), match.group(2)
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    if port is not None and not 0 < int(port) < 65536:
        return None
    return name.rstrip(".") or name, port


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def parse_allowed_hosts(text: str | None) -> tuple[str, ...]:
    """VIPPS_SANDBOX_ALLOWED_HOSTS: names separated by commas or spaces."""
    return tuple(name for name in re.split(r"[\s,]+", text or "") if name)


class HostRule:
    """The Host values one sandbox serves (see the module's docstring), with a verdict per header value kept."""

    def __init__(self, settings: Settings) -> None:
        self.any = "*" in settings.allowed_hosts
        names = {name.strip().lower().rstrip(".") for name in settings.allowed_hosts if name.strip() not in ("*", "")}
        self.suffixes = tuple(name for name in names if name.startswith("."))
        self.names = {name for name in names if not name.startswith(".")} | VIPPS_HOSTS
        bound = (settings.host or "").strip().lower()
        if bound in WILDCARD_BINDS:
            self.names.add(socket.gethostname().lower())  # `docker run --hostname`, a LAN name of this machine
        elif bound:
            self.names.add(bound.strip("[]").rstrip("."))
        self._verdicts: dict[str, GatewayError | None] = {}

    def allows(self, name: str) -> bool:
        if self.any or name in self.names or is_loopback(name) or _is_ip(name):
            return True
        return any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes)

    def verdict(self, request: web.Request) -> GatewayError | None:
        """None when the request's Host is served, else the error to answer with."""
        value = request.headers.get(HOST)  # a second Host header is the HTTP parser's 400 already
        if value is None or value == "":
            return None
        if value in self._verdicts:
            return self._verdicts[value]
        verdict = self._judge(value)
        if len(self._verdicts) < 256:  # a handful of Host values in practice; never unbounded
            self._verdicts[value] = verdict
        return verdict

    def _judge(self, value: str) -> GatewayError | None:
        parts = split_host(value)
        if parts is None:
            return GatewayError("Bad Request: the Host header is malformed.", status=400, rule="host-malformed")
        if self.allows(parts[0]):
            return None
        return GatewayError(
            f"Misdirected Request: the sandbox does not serve the host {clip(parts[0], 80)!r}. It serves loopback "
            "names, IP addresses, its --host and apitest.vipps.no / api.vipps.no; allow another name with "
            f"--allowed-host or {ALLOWED_HOSTS_VAR} (this guards against DNS rebinding).", status=421,
            rule="host-unknown")

    def refusal(self, request: web.Request) -> web.Response | None:
        """The gateway's answer to a request for a host the sandbox does not serve, else None."""
        error = self.verdict(request)
        if error is None:
            return None
        return errors.render(error, RenderContext(api="gateway", path=request.path))


def _origin_of(url: str) -> tuple[str, str, str] | None:
    """(scheme, host, port) of an Origin or Referer value, the default port filled in; None if not http(s)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    return scheme, host, str(port) if port is not None else DEFAULT_PORTS[scheme]


def _same_origin(url: str, host_header: str) -> bool:
    """The page that sent the request was served by this host: its origin's host and port are the Host's."""
    origin = _origin_of(url)
    target = split_host(host_header) if host_header else None
    if origin is None or target is None:
        return False
    scheme, host, port = origin
    return host == target[0] and port == (target[1] or DEFAULT_PORTS[scheme])


def cross_origin_reason(request: web.Request) -> str | None:
    """Why a state-changing control-plane request comes from another origin's page, else None."""
    if request.method not in STATE_CHANGING:
        return None
    headers = request.headers
    host = headers.get(HOST, "")
    origin = headers.get(ORIGIN)
    if origin is not None:
        if _same_origin(origin, host):
            return None
        shown = clip(origin, 80).translate(errors.CONTROL_CHARACTERS)
        return (f"The request comes from a page of another origin ({shown!r}): the control plane takes changes "
                "only from its own pages, or from clients that are not browsers (they send no Origin).")
    site = (headers.get(SEC_FETCH_SITE) or "").strip().lower()
    if site in ("cross-site", "same-site"):
        return (f"The request comes from a page of another site (Sec-Fetch-Site: {site}): the control plane takes "
                "changes only from its own pages, or from clients that are not browsers.")
    referer = headers.get(REFERER)
    if referer and not _same_origin(referer, host):
        return ("The request comes from a page of another origin (its Referer): the control plane takes changes "
                "only from its own pages, or from clients that are not browsers.")
    return None


def cross_origin_refusal(request: web.Request, ctx: CallContext) -> web.Response | None:
    """The 403 for a control-plane change sent by another origin's page, else None (called by the front door)."""
    reason = cross_origin_reason(request)
    if reason is None:
        return None
    ctx.decision = deny("cross-origin-refused", reason, 403)  # what the request log shows
    return errors.render(Problem(403, "Forbidden", reason, rule="cross-origin-refused"),
                         RenderContext(api="sandbox", path=request.path))
