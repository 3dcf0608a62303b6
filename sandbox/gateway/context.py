"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.core.model import Env, KeySet
from sandbox.core.runtime import Runtime
from sandbox.gateway.policy import Decision, RoutePolicy

if TYPE_CHECKING:
    from sandbox.gateway.admission import Admission
    from sandbox.ops.fault_rule import FaultRule

RUNTIME = web.AppKey("runtime", Runtime)


@dataclass(slots=True)
class CallContext:
    """What the front door (sandbox/gateway/front_door.py) learned about one request; opened for every request."""

    env: Env
    route: RoutePolicy | None = None
    keyset: KeySet | None = None
    decision: Decision | None = None
    msn: str | None = None
    warnings: list[str] = field(default_factory=list)
    missing_system_headers: list[str] = field(default_factory=list)
    admin: Decision | None = None  # the admin-token decision, for control-plane requests
    fault: FaultRule | None = None  # the injected fault that fired on this request
    #: Only for a --state journal entry replayed at start (sandbox/ops/persistence.py): the key set it was
    #: acknowledged as. The gateway's checks then skip the credential checks, and only those.
    replayed: KeySet | None = None
    #: A repeat of a request the gateway let through (sandbox/gateway/admission.py): its kept verdict.
    admission: Admission | None = None


CALL = web.RequestKey("call", CallContext)


def call(request: web.Request) -> CallContext:
    return request[CALL]


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
