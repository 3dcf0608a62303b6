"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from sandbox.model import Env, KeySet
from sandbox.policy import Decision, RoutePolicy
from sandbox.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)


@dataclass
class CallContext:
    """What the middleware learned about one request before the handler runs."""

    env: Env
    route: RoutePolicy | None = None
    keyset: KeySet | None = None
    decision: Decision | None = None
    msn: str | None = None
    warnings: list[str] = field(default_factory=list)


def call(request: web.Request) -> CallContext:
    return request["call"]


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
