"""The app factory: one aiohttp application serving both environments.

Which environment a request belongs to is decided per request (Host header, else the port it
came in on), so the same app works behind two ports, in-process under pytest, and in Docker.
"""

from __future__ import annotations

from types import ModuleType

from aiohttp import web

from sandbox.apis.checkout import routes as checkout
from sandbox.apis.donations import routes as donations
from sandbox.apis.epayment import routes as epayment
from sandbox.apis.login import routes as login
from sandbox.apis.management import routes as management
from sandbox.apis.ordermanagement import routes as ordermanagement
from sandbox.apis.qr import routes as qr
from sandbox.apis.recurring import routes as recurring
from sandbox.apis.report import routes as report
from sandbox.apis.token import routes as token
from sandbox.apis.userinfo import routes as userinfo
from sandbox.apis.webhooks import routes as webhooks
from sandbox.control import routes as control
from sandbox.core.runtime import Runtime
from sandbox.core.settings import Settings
from sandbox.dashboard import routes as dashboard
from sandbox.gateway.admin import ADMIN_TOKEN_GENERATED, ensure_admin_token
from sandbox.gateway.checks import MAX_BODY, UNMATCHED
from sandbox.gateway.context import RUNTIME
from sandbox.gateway.front_door import FRONT_DOOR, FrontDoor, add_catch_all, bypassing_message, unguarded_routes
from sandbox.gateway.policy import ROUTES
from sandbox.ops import persistence
from sandbox.phone import routes as phone
from sandbox.readiness import routes as readiness

#: Every package that serves routes, in the order they register. Adding an API adds one line here
#: (and its entries in sandbox/gateway/policy.py); see docs/architecture.md.
PACKAGES = (
    token,
    epayment,
    recurring,
    management,
    report,
    webhooks,
    userinfo,
    qr,  # issue 18
    ordermanagement,  # issue 18
    login,
    donations,
    checkout,
    control,
    phone,
    readiness,
    dashboard,
)


class PolicyMissing(RuntimeError):
    """A route without an entry in sandbox/gateway/policy.py: the app refuses to start."""


def check_policy_coverage(app: web.Application) -> None:
    bypassing = unguarded_routes(app)
    if bypassing:
        raise PolicyMissing(bypassing_message(bypassing[0]))
    names = {route.name for route in app.router.routes() if route.name and route.name != UNMATCHED}
    unnamed = [route for route in app.router.routes() if not route.name and route.method != "HEAD"]
    if unnamed:
        raise PolicyMissing(f"route {unnamed[0].method} {unnamed[0].resource} has no name, so no policy entry")
    missing = sorted(names - set(ROUTES))
    if missing:
        raise PolicyMissing(f"routes without a policy entry in sandbox/gateway/policy.py: {', '.join(missing)}")


def package_of(module: ModuleType) -> str:
    """sandbox.apis.epayment.routes -> "epayment"; sandbox.control.routes -> "control"."""
    return module.__name__.split(".")[-2]


def check_served_by(app: web.Application, module: ModuleType, before: int) -> None:
    """The routes a package just registered (those after the first `before`) must be the ones the policy table
    says it serves."""
    package = package_of(module)
    for route in list(app.router.routes())[before:]:
        entry = ROUTES.get(route.name or "")
        if entry is None:
            continue  # entries that are missing are reported by check_policy_coverage, with all the others
        if entry.package != package:
            raise PolicyMissing(f"route {route.name} is registered by the {package} package, but "
                                f"sandbox/gateway/policy.py says the {entry.package} package serves it")


def create_app(settings: Settings | None = None, runtime: Runtime | None = None) -> web.Application:
    settings = settings or Settings()
    app = web.Application(client_max_size=MAX_BODY)
    app[RUNTIME] = runtime or Runtime(settings)
    door = app[FRONT_DOOR] = FrontDoor(app[RUNTIME])
    app[ADMIN_TOKEN_GENERATED] = ensure_admin_token(app[RUNTIME].settings)
    for module in PACKAGES:
        registered = len(app.router.routes())
        module.setup(app)
        check_served_by(app, module, registered)
    add_catch_all(app)
    check_policy_coverage(app)
    if settings.state is not None:
        persistence.enable(app, settings.state)
    door.attach(app)  # the request log, fault book and journal exist now
    return app
