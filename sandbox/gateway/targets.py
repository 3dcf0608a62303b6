"""Where the sandbox may send a request to a URL a merchant chose: the outgoing-URL rules.

Used for webhook deliveries (sandbox/apis/webhooks, checked at registration and again at delivery) and for
ePayment Express's dynamic shipping callback (sandbox/apis/epayment/express.py, checked at create and again
on every callback). `Rules(..., what=...)` names the kind of request in the refusals' words.

A URL is an absolute RFC 3986 URI, ASCII only, stored, signed and sent exactly as given (so the
signature covers the very path and query on the wire). Its host decides the rest:

- public addresses over https;
- loopback (127.0.0.0/8, ::1, `localhost`) over http or https, for receivers on this machine, but
  never one of the sandbox's own listeners (any of its ports, on any address of this machine), except
  its inbox path /_sandbox/inbox/{name};
- private, link-local, shared (100.64/10) and unique-local addresses, and `*.localhost` names, only
  with `Settings.webhook_allow_private` (--webhook-allow-private), over http or https;
- never unspecified (0.0.0.0, ::), cloud metadata (169.254.169.254, fd00:ec2::254), multicast or
  reserved addresses.

No URL anywhere may name a /_sandbox/ path other than an inbox: another sandbox's control plane is a
control plane too. Host names are resolved on every delivery, by `GuardedResolver`, which hands the
HTTP client only addresses that pass, so a name that resolves somewhere refused (at first, or later:
DNS rebinding) is not delivered to; at registration a name is resolved only when the URL's port is
one of the sandbox's (a slow resolver then delays nothing else).
"""

from __future__ import annotations

import asyncio
import ipaddress
import posixpath
import re
import socket
from collections.abc import Callable, Collection
from dataclasses import dataclass
from urllib.parse import unquote

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: RFC 3986 characters: unreserved, reserved (gen-delims and sub-delims) and '%' of pct-encoded.
URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
ABSOLUTE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)"
                      r"(?:\?(?P<query>[^#]*))?(?:#(?P<fragment>.*))?", re.DOTALL)
HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^:\[\]]*)(?::(?P<port>[0-9]*))?")
LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
NUMERIC_LABEL = re.compile(r"(?:0[xX][0-9A-Fa-f]*|[0-9]+)")
INBOX_PATH = re.compile(r"/_sandbox/inbox/[A-Za-z0-9._~-]{1,64}")
DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
SHARED = ipaddress.ip_network("100.64.0.0/10")
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
RESOLVE_SECONDS = 2.0


class TargetError(ValueError):
    """A URL that may not be delivered to; the message says why, in plain words."""


@dataclass(frozen=True)
class Target:
    """A URL taken apart: what the Host header and the signature name, and where the client connects."""

    url: str
    scheme: str
    host: str  # lower case, IPv6 without brackets
    port: int  # explicit or the scheme's default
    path_and_query: str  # exactly as on the wire ("/" for an empty path)
    address: Address | None  # the host, when it is an IP literal

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse(url: str) -> Target:
    """An absolute http(s) URL as RFC 3986 spells it, without user credentials or a fragment."""
    if not url:
        raise TargetError("The URL is empty.")
    if not URI_CHARACTERS.fullmatch(url):
        raise TargetError("The URL holds characters a URL may not hold unescaped (spaces, control characters, "
                          "quotes, non-ASCII letters, ...): percent-encode them (RFC 3986).")
    if BAD_PERCENT.search(url):
        raise TargetError("The URL has a '%' that is not followed by two hexadecimal digits.")
    match = ABSOLUTE.fullmatch(url)
    if match is None:
        raise TargetError("The URL must be an absolute https:// URL with a host.")
    scheme = match["scheme"].lower()
    if scheme not in DEFAULT_PORTS:
        raise TargetError("The URL must be an absolute https:// URL with a host.")
    if match["fragment"] is not None:
        raise TargetError("The URL must not have a fragment ('#...'): it is never sent to the receiver.")
    authority = match["authority"]
    if "@" in authority:
        raise TargetError("The URL must not carry user credentials.")
    host_port = HOST_PORT.fullmatch(authority)
    if host_port is None or not host_port["host"]:
        raise TargetError("The URL must be an absolute https:// URL with a host.")
    port_text = host_port["port"]
    if port_text is not None:
        if not port_text or not 0 < int(port_text) < 65536:
            raise TargetError("The URL's port must be a number from 1 to 65535.")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS[scheme]
    host, address = _host(host_port["host"])
    path = match["path"] or "/"
    query = match["query"]
    if "[" in path + (query or "") or "]" in path + (query or ""):
        raise TargetError("The URL's path and query must not hold '[' or ']' unescaped (RFC 3986): write %5B, %5D.")
    return Target(url, scheme, host, port, path + (f"?{query}" if query is not None else ""), address)


def _host(text: str) -> tuple[str, Address | None]:
    if text.startswith("["):
        inner = text[1:-1]
        if "%" in inner:
            raise TargetError("The URL's IPv6 address must not carry a zone ('%...').")
        try:
            return str(ipaddress.IPv6Address(inner)), ipaddress.IPv6Address(inner)
        except ValueError as exc:
            raise TargetError(f"The URL's host '[{inner}]' is not an IPv6 address.") from exc
    name = text.lower()
    labels = name.split(".")
    if all(LABEL.fullmatch(label) for label in labels) and len(name) <= 253:
        if NUMERIC_LABEL.fullmatch(labels[-1]):  # as a browser would: a number is an IPv4 address
            try:
                address = ipaddress.IPv4Address(name)
            except ValueError as exc:
                raise TargetError(f"The URL's host '{name}' looks like an IPv4 address but is not one in the "
                                  "dotted form a.b.c.d.") from exc
            return str(address), address
        return name, None
    raise TargetError(f"The URL's host '{text[:80]}' is not a host name (letters, digits and '-' in labels "
                      "separated by '.', no trailing dot) or an IP address.")


def address_class(address: Address) -> str:
    """'public', 'loopback', 'private', 'metadata', 'unspecified' or 'reserved'."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return address_class(mapped)
        if address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64: the IPv4 address is the last 32 bits
            return address_class(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address in METADATA:
        return "metadata"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast or address.is_reserved or str(address) == "255.255.255.255":
        return "reserved"
    if address.is_link_local or address.is_private or address in SHARED:
        return "private"
    if address.is_global:
        return "public"
    return "reserved"


CLASS_WORDS = {
    "metadata": "a cloud metadata address",
    "unspecified": "the unspecified address (0.0.0.0 or ::), which names no receiver",
    "reserved": "a multicast, broadcast or reserved address",
    "private": "a private, link-local or shared address (start the sandbox with --webhook-allow-private to "
               "deliver to receivers on your LAN)",
}


class Rules:
    """The URL rules of one sandbox: its listeners (ports, read live) and whether private addresses are allowed."""

    def __init__(self, own_ports: Callable[[], Collection[int]], allow_private: bool = False,
                 what: str = "webhooks") -> None:
        self.own_ports = own_ports
        self.allow_private = allow_private
        self.what = what  # "webhooks", "shipping callbacks": what is (not) sent there, in the refusals

    def check_static(self, target: Target) -> None:
        """Everything that needs no DNS: scheme, path, the class of an IP literal and our own listeners."""
        if _control_plane_path(target.path_and_query):
            raise TargetError("The URL names the sandbox's control plane (/_sandbox/...): only an inbox, "
                              "/_sandbox/inbox/{name}, may receive " + self.what + ".")
        name = target.host
        if target.address is not None:
            self.check_address(target, target.address)
        elif name in LOOPBACK_NAMES:
            self._check_own(target, ipaddress.ip_address("127.0.0.1"))
        elif name.endswith(".localhost"):
            if not self.allow_private:
                raise TargetError(f"The URL's host '{name}' is a *.localhost name: use localhost or 127.0.0.1 "
                                  "for a receiver on this machine (or start the sandbox with "
                                  "--webhook-allow-private).")
        elif target.scheme == "http" and not self.allow_private:
            raise TargetError("The URL must use HTTPS. (The sandbox accepts http:// only on loopback hosts "
                              "such as 127.0.0.1 or localhost.)")

    def check_address(self, target: Target, address: Address) -> None:
        """One address the URL's host is (or resolves to), on the URL's port."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        kind = address_class(address)
        if kind in CLASS_WORDS and not (kind == "private" and self.allow_private):
            raise TargetError(f"The URL's host is {CLASS_WORDS[kind]}: {self.what} are not sent there.")
        if kind == "public" and target.scheme == "http":
            raise TargetError("The URL must use HTTPS. (The sandbox accepts http:// only on loopback hosts "
                              "such as 127.0.0.1 or localhost.)")
        self._check_own(target, address)

    def _check_own(self, target: Target, address: Address) -> None:
        """Any of the sandbox's ports on any address of this machine is the sandbox itself (e.g. with --host)."""
        if target.port in self.own_ports() and not INBOX_PATH.fullmatch(target.path_and_query.split("?", 1)[0]) \
                and _is_this_machine(address):
            raise TargetError(f"The URL points at the sandbox itself (port {target.port} on this machine): only "
                              "its inbox, /_sandbox/inbox/{name}, may receive " + self.what + " there.")

    async def check(self, target: Target, resolver: AbstractResolver) -> None:
        """The registration check: the static rules, then, for a host name on one of the sandbox's ports, every
        address it resolves to (where DNS answers: it may be this machine). Every delivery resolves again."""
        self.check_static(target)
        if target.address is not None or target.port not in self.own_ports():
            return
        try:
            results = await asyncio.wait_for(resolver.resolve(target.host, target.port, socket.AF_UNSPEC),
                                             RESOLVE_SECONDS)
        except (OSError, TimeoutError):
            return  # offline, or not resolvable now: resolved and checked again at every delivery
        finally:
            await resolver.close()
        for result in results:
            self.check_address(target, ipaddress.ip_address(result["host"].split("%", 1)[0]))


def _control_plane_path(path_and_query: str) -> bool:
    """Names /_sandbox/... as a server would route it (decoded, dot segments and repeated slashes removed)."""
    path = path_and_query.split("?", 1)[0]
    decoded = posixpath.normpath(re.sub("/+", "/", unquote(path)))
    under = decoded == "/_sandbox" or decoded.startswith("/_sandbox/")
    return under and not (INBOX_PATH.fullmatch(path) and not _is_dot_name(path_and_query))


def _is_dot_name(path_and_query: str) -> bool:
    path = path_and_query.split("?", 1)[0]
    return bool(INBOX_PATH.fullmatch(path)) and set(path.rsplit("/", 1)[1]) == {"."}


def _is_this_machine(address: Address) -> bool:
    """An address of one of this machine's interfaces: binding to it works only then."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
        return True
    except OSError:
        return False


class GuardedResolver(AbstractResolver):
    """Resolves a delivery's host and hands the client only the addresses the rules allow, on every connection."""

    def __init__(self, rules: Rules, target: Target, base: AbstractResolver | None = None) -> None:
        self.rules = rules
        self.target = target
        self.base = base if base is not None else ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        target = self.target
        allowed = []
        for result in await self.base.resolve(host, port, socket.AF_UNSPEC):
            try:
                self.rules.check_address(target, ipaddress.ip_address(result["host"].split("%", 1)[0]))
            except (TargetError, ValueError):
                continue
            allowed.append(result)
        if not allowed:
            raise OSError(f"{host} resolves to no address {self.rules.what} may be sent to")
        return allowed

    async def close(self) -> None:
        await self.base.close()
