"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sandbox.model import Env, KeySet
from sandbox.policy import Decision, RoutePolicy
from sandbox.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


@dataclass(slots=True)
class CallContext:
    """What the middleware learned about one request before the handler runs."""

    env: Env
    route: RoutePolicy | None = None
    keyset: KeySet | None = None
    decision: Decision | None = None
    msn: str | None = None
    warnings: list[str] = field(default_factory=list)
    missing_system_headers: list[str] = field(default_factory=list)


CALL = web.RequestKey("call", CallContext)


def call(request: web.Request) -> CallContext:
    return request[CALL]


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
