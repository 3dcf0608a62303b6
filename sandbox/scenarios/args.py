"""The `vipps-sandbox scenario` arguments, apart from the runner so that `serve` need not import it."""

from __future__ import annotations

import os

from sandbox.core.settings import ADMIN_TOKEN_VAR


def add_parser(commands) -> None:
    scenario = commands.add_parser("scenario", help="narrated scenarios that show how the key types behave")
    sub = scenario.add_subparsers(dest="scenario_command", required=True)
    sub.add_parser("list", help="list the bundled scenarios")
    run = sub.add_parser("run", help="run a scenario (in-process unless a URL is given)")
    run.add_argument("scenario", help="a bundled scenario's name, or a path to a .yaml file")
    run.add_argument("--base-url", help="URL of a running sandbox's test environment (or its only URL)")
    run.add_argument("--prod-url", help="URL of a running sandbox's production environment")
    run.add_argument("--admin-token", default=os.environ.get(ADMIN_TOKEN_VAR),
                     help=f"the sandbox's admin token, when it is not bound to loopback (default: ${ADMIN_TOKEN_VAR})")
    run.add_argument("--no-colour", "--no-color", action="store_true", help="plain text even on a terminal")
