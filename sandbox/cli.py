"""The `vipps-sandbox` command: serve, keys, users, fixture generate, scenario, ca."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
from pathlib import Path
from types import ModuleType

from sandbox.core.keys_listing import keyset_rows, table
from sandbox.core.model import Env, KeyType
from sandbox.core.settings import Settings
from sandbox.core.users_listing import MARKETS, user_rows
from sandbox.core.users_listing import table as users_table
from sandbox.core.world import World
from sandbox.fixture import store
from sandbox.fixture.shape import MIN_PARTNERS
from sandbox.readiness import cli as readiness_cli
from sandbox.scenarios import args as scenario_args

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vipps-sandbox", description="A local sandbox of the Vipps MobilePay APIs.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the test and production environments")
    serve.add_argument("--host", default="127.0.0.1")
    # Environment variables give the defaults, so the Docker image's CMD stays one fixed command.
    serve.add_argument("--port", type=int, default=os.environ.get("VIPPS_SANDBOX_PORT", "8080"),
                       help="port of the test environment (apitest; default $VIPPS_SANDBOX_PORT or 8080)")
    serve.add_argument("--prod-port", type=int, default=os.environ.get("VIPPS_SANDBOX_PROD_PORT", "8081"),
                       help="port of the production environment (api; default $VIPPS_SANDBOX_PROD_PORT or 8081)")
    serve.add_argument("--fixture", type=Path, default=os.environ.get("VIPPS_SANDBOX_FIXTURE") or None,
                       help="TinyDB fixture file (default: $VIPPS_SANDBOX_FIXTURE, else the bundled one)")
    serve.add_argument("--seed", type=int, help="serve a fixture generated in memory from this seed")
    serve.add_argument("--strict-headers", action="store_true",
                       help="refuse partner-key calls without the Vipps-System-* headers")
    serve.add_argument("--admin-token", help="bearer token for /_sandbox/ when not on loopback (default: "
                       "$VIPPS_SANDBOX_ADMIN_TOKEN, else generated and printed); prefer the variable: other users "
                       "of the machine see command lines in `ps`")
    serve.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                       help="a Host header value to serve besides loopback names, IP addresses, --host and the "
                       "Vipps host names, e.g. a docker compose service name (.example.test: that domain and its "
                       "subdomains; *: any host); repeatable, added to $VIPPS_SANDBOX_ALLOWED_HOSTS")
    serve.add_argument("--head-timeout", type=positive_float, default=Settings.head_timeout, metavar="SECONDS",
                       help="seconds a client has to send a request's line and headers (default %(default)s)")
    serve.add_argument("--body-timeout", type=positive_float, default=Settings.body_timeout, metavar="SECONDS",
                       help="seconds a request body may pause while the sandbox reads it (default %(default)s)")
    serve.add_argument("--snapshot-dir", type=Path, help="the only directory POST /_sandbox/snapshot and restore use "
                       "(default: DIR/snapshots with --state, else a temporary one)")
    serve.add_argument("--request-log-size", type=positive_int, default=1000, help="entries kept in the request log")
    serve.add_argument("--state", type=Path, default=os.environ.get("VIPPS_SANDBOX_STATE") or None,
                       help="directory for crash-safe state: a journal fsynced before each response, plus snapshots")
    serve.add_argument("--id-seed", type=int, help="make run-time ids and secrets reproducible")
    serve.add_argument("--rate-limits", action=argparse.BooleanOptionalAction,
                       default=os.environ.get("VIPPS_SANDBOX_RATE_LIMITS", "").strip().lower() in TRUE_WORDS,
                       help="apply the ePayment API's documented rate limits (default: $VIPPS_SANDBOX_RATE_LIMITS, "
                       "one of 1/true/yes/on)")
    serve.add_argument("--webhook-allow-private", action=argparse.BooleanOptionalAction,
                       default=os.environ.get("VIPPS_SANDBOX_WEBHOOK_ALLOW_PRIVATE", "").strip().lower() in TRUE_WORDS,
                       help="accept webhook URLs on private and link-local addresses, for receivers on your LAN "
                       "(default: $VIPPS_SANDBOX_WEBHOOK_ALLOW_PRIVATE, one of 1/true/yes/on)")
    serve.add_argument("--webhook-authorized-key", action=argparse.BooleanOptionalAction,
                       default=os.environ.get("VIPPS_SANDBOX_WEBHOOK_AUTHORIZED_KEY", "1").strip().lower()
                       in TRUE_WORDS,
                       help="the AUTHORIZED webhook carries the create request's Idempotency-Key, as the "
                       "documentation's examples show; --no-webhook-authorized-key leaves it out (default: on, "
                       "or $VIPPS_SANDBOX_WEBHOOK_AUTHORIZED_KEY, one of 1/true/yes/on)")
    serve.add_argument("--express-disabled", action="append", default=[], metavar="MSN",
                       help="a sales unit not enabled for Express: its create with shipping gets ErrorCode 5020 "
                       "(repeatable; default: every unit may use Express)")
    defaults = Settings()
    serve.add_argument("--inbox-count", type=positive_int, default=defaults.inbox_count,
                       help=f"webhook inboxes kept; the one written least recently goes first "
                       f"(default {defaults.inbox_count})")
    serve.add_argument("--inbox-messages", type=positive_int, default=defaults.inbox_messages,
                       help=f"messages kept per inbox; the oldest goes first (default {defaults.inbox_messages})")
    serve.add_argument("--inbox-bytes", type=positive_int, default=defaults.inbox_bytes,
                       help=f"bytes kept in all inboxes; the oldest messages go first (default {defaults.inbox_bytes})")
    serve.add_argument("--inbox-message-bytes", type=positive_int, default=defaults.inbox_message_bytes,
                       help=f"bytes one inbox message may have; more is a 413 (default {defaults.inbox_message_bytes})")

    serve.add_argument("--recurring-due-min-days", type=non_negative_int,
                       default=os.environ.get("VIPPS_SANDBOX_RECURRING_DUE_MIN_DAYS") or None, metavar="DAYS",
                       help="Recurring API: the fewest days between today and a charge's due date, in both "
                       "environments (default: $VIPPS_SANDBOX_RECURRING_DUE_MIN_DAYS, else the 3.1.2 spec's 1 in "
                       "test and 2 in production)")
    serve.add_argument("--recurring-unscheduled", action="append", default=[], metavar="MSN",
                       help="Recurring API: a sales unit allowed UNSCHEDULED charges, besides those whose "
                       "configuration has unscheduledChargesAllowed; repeatable, added to "
                       "$VIPPS_SANDBOX_RECURRING_UNSCHEDULED (MSNs separated by commas)")
    add_tls_arguments(serve)

    serve.add_argument("--userinfo-strict-subscription-key", action=argparse.BooleanOptionalAction,
                       default=os.environ.get("VIPPS_SANDBOX_USERINFO_STRICT_SUBSCRIPTION_KEY", "").strip().lower()
                       in TRUE_WORDS,
                       help="Userinfo API: an Ocp-Apim-Subscription-Key header is a 401 (the Recurring guide's rule) "
                       "instead of accepted with or without (default: off, or "
                       "$VIPPS_SANDBOX_USERINFO_STRICT_SUBSCRIPTION_KEY, one of 1/true/yes/on)")
    # issue 18: Order Management's test availability (UNCERTAIN, the sources disagree)
    serve.add_argument("--no-order-management-test", dest="order_management_test", action="store_false",
                       help="Order Management API: production only (default: served in both environments)")

    keys = commands.add_parser("keys", help="list the key sets of a fixture (secrets masked; --json: full values)")
    keys.add_argument("--json", action="store_true", help="every field in full, secrets included, as JSON")
    keys.add_argument("--type", choices=[str(t) for t in KeyType])
    keys.add_argument("--env", choices=[str(e) for e in Env])
    keys.add_argument("--role", help="only the key sets whose owner has this role (e.g. premium, premium-shop-1)")
    keys.add_argument("--fixture", type=Path, default=os.environ.get("VIPPS_SANDBOX_FIXTURE") or None,
                      help="TinyDB fixture file (default: $VIPPS_SANDBOX_FIXTURE, else the bundled one), as serve")
    keys.add_argument("--seed", type=int, help="a fixture generated from this seed, as serve --seed")

    users = commands.add_parser("users", help="list the test users of a fixture (--json: every field)")
    users.add_argument("--json", action="store_true", help="every field, as JSON")
    users.add_argument("--market", choices=MARKETS, help="only the users of this market")
    users.add_argument("--fixture", type=Path, default=os.environ.get("VIPPS_SANDBOX_FIXTURE") or None,
                       help="TinyDB fixture file (default: $VIPPS_SANDBOX_FIXTURE, else the bundled one), as serve")
    users.add_argument("--seed", type=int, help="a fixture generated from this seed, as serve --seed")

    fixture = commands.add_parser("fixture", help="fixture tools")
    fixture_commands = fixture.add_subparsers(dest="fixture_command", required=True)
    gen = fixture_commands.add_parser("generate", help="write a fixture generated from a seed")
    gen.add_argument("--seed", type=int, required=True)
    gen.add_argument("--partners", type=int, default=MIN_PARTNERS)
    gen.add_argument("--merchants", type=int, default=10)
    gen.add_argument("--out", type=Path, required=True)
    scenario_args.add_parser(commands)
    readiness_cli.add_parser(commands)

    ca = commands.add_parser("ca", help="the sandbox's CA certificate (made on first use) and how to trust it")
    add_ca_dir_argument(ca)
    ca.add_argument("--state", type=Path, default=os.environ.get("VIPPS_SANDBOX_STATE") or None,
                    help="the --state directory serve uses, whose CA this is when --ca-dir is not given (default: "
                    "$VIPPS_SANDBOX_STATE)")
    ca.add_argument("--path", action="store_true", help="print only the CA certificate's path")
    return parser


# -- HTTPS and proxy mode (sandbox/core/ca.py, sandbox/gateway/proxy.py) ---------------------------------------
def add_ca_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-dir", type=Path, default=os.environ.get("VIPPS_SANDBOX_CA_DIR") or None, metavar="DIR",
                        help="directory of the sandbox's CA (vipps-sandbox-ca.pem, vipps-sandbox-ca.key) and its TLS "
                        "certificate, made on first use (default: $VIPPS_SANDBOX_CA_DIR, else the --state directory, "
                        "else $XDG_DATA_HOME/vipps-sandbox or ~/.local/share/vipps-sandbox)")


def add_tls_arguments(serve: argparse.ArgumentParser) -> None:
    serve.add_argument("--tls-port", type=port_number, default=os.environ.get("VIPPS_SANDBOX_TLS_PORT") or None,
                       metavar="N", help="also serve HTTPS on this port, both environments (SNI and the Host header "
                       "pick one: apitest.vipps.no is test, api.vipps.no production, any other name test) with a "
                       "certificate of the sandbox's CA (default: $VIPPS_SANDBOX_TLS_PORT; none)")
    serve.add_argument("--proxy-port", type=port_number, default=os.environ.get("VIPPS_SANDBOX_PROXY_PORT") or None,
                       metavar="N", help="also serve an HTTP proxy on this port for HTTPS_PROXY: CONNECT "
                       "apitest.vipps.no:443 and api.vipps.no:443 (and http:// requests to them) are served by the "
                       "sandbox itself, every other host gets a 403; it never connects anywhere (default: "
                       "$VIPPS_SANDBOX_PROXY_PORT; none)")
    add_ca_dir_argument(serve)


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, not {text[:30]!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, not {value}")
    return value


def with_tls(settings: Settings, args: argparse.Namespace) -> Settings:
    """The serve settings with the TLS port, the proxy port and the CA directory of the flags."""
    settings.tls_port, settings.proxy_port, settings.ca_dir = args.tls_port, args.proxy_port, args.ca_dir
    return settings


def print_ca(args: argparse.Namespace) -> int:
    """`vipps-sandbox ca`: makes the CA if there is none yet, prints its certificate's path (and how to trust it)."""
    from sandbox.core.ca import Authority, CAError, ca_directory, trust_hints  # cryptography's x509: only here

    authority = Authority(ca_directory(args.ca_dir, args.state))
    try:
        made = authority.ensure()
    except CAError as exc:
        print(f"vipps-sandbox: error: {exc}", file=sys.stderr)
        return 2
    cert = authority.cert_path.resolve()
    if args.path:
        print(cert)
    else:
        if made:
            print(f"Made a new CA in {authority.directory} (its key, {authority.key_path.name}, is readable by you "
                  "only).\n")
        print(trust_hints(cert), end="")
    return 0


def tables_for(fixture: Path | None, seed: int | None) -> dict:
    if seed is not None:
        from sandbox.fixture.generate import generate  # the generators (and Faker): only when generating

        return generate(seed)
    return store.read(fixture or store.default_fixture_path())


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def serve_settings(args: argparse.Namespace) -> Settings:
    """The Settings of `vipps-sandbox serve`, from its flags and their environment variables."""
    from sandbox.gateway.hosts import ALLOWED_HOSTS_VAR, parse_allowed_hosts  # aiohttp: see main

    allowed = parse_allowed_hosts(os.environ.get(ALLOWED_HOSTS_VAR)) + tuple(args.allowed_host)
    return with_tls(Settings(
                    host=args.host, port=args.port, prod_port=args.prod_port, fixture=args.fixture, seed=args.seed,
                    strict_headers=args.strict_headers,
                    admin_token=args.admin_token or os.environ.get("VIPPS_SANDBOX_ADMIN_TOKEN") or None,
                    snapshot_dir=args.snapshot_dir, request_log_size=args.request_log_size, state=args.state,
                    id_seed=args.id_seed, rate_limits=args.rate_limits, allowed_hosts=allowed,
                    head_timeout=args.head_timeout, body_timeout=args.body_timeout,
                    webhook_allow_private=args.webhook_allow_private, inbox_count=args.inbox_count,
                    inbox_messages=args.inbox_messages, inbox_bytes=args.inbox_bytes,
                    inbox_message_bytes=args.inbox_message_bytes, webhook_authorized_key=args.webhook_authorized_key,
                    express_disabled=tuple(args.express_disabled),
                    recurring_due_min_days=args.recurring_due_min_days,
                    recurring_unscheduled_msns=unscheduled_msns(args.recurring_unscheduled),
                    userinfo_strict_subscription_key=args.userinfo_strict_subscription_key,
                    order_management_test=args.order_management_test), args)


def unscheduled_msns(flags: list[str]) -> frozenset[str]:
    """--recurring-unscheduled MSN (repeatable) and $VIPPS_SANDBOX_RECURRING_UNSCHEDULED ("123456,654321")."""
    listed = (os.environ.get("VIPPS_SANDBOX_RECURRING_UNSCHEDULED") or "").split(",") + list(flags)
    msns = frozenset(text.strip() for text in listed if text.strip())
    for msn in msns:
        if not (msn.isascii() and msn.isdigit() and len(msn) <= 20):
            raise ValueError(f"--recurring-unscheduled takes MSNs (digits), not {msn[:30]!r}")
    return msns


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of days, not {text[:30]!r}") from None
    if not 0 <= value <= 730:
        raise argparse.ArgumentTypeError(f"must be from 0 to 730 days, not {value}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def load_server() -> ModuleType:
    """sandbox.server, for `serve`: imported with aiohttp's client TLS contexts waiting for the system CAs until the
    server listens (sandbox/core/system_cas.py: ~35 ms of the start). `import sandbox.cli` loads no aiohttp, so
    the other commands import it, when they need it, as usual."""
    from sandbox.core import dataclass_code, system_cas

    with system_cas.deferred(), dataclass_code.kept():  # and dataclasses' methods compiled once, not every start
        from sandbox import server
    return server


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            gc.disable()  # until the server is warm: what starting makes lives as long as it (server.settle_heap)
            serve_forever = load_server().serve_forever
            settings = serve_settings(args)
            if args.admin_token:
                print("vipps-sandbox: warning: --admin-token shows in the process list (ps) to every user of this "
                      "machine; set VIPPS_SANDBOX_ADMIN_TOKEN instead.", file=sys.stderr, flush=True)
            try:
                asyncio.run(serve_forever(settings))
            except KeyboardInterrupt:
                pass
            return 0
        if args.command == "keys":
            world = World(tables_for(args.fixture, args.seed))
            rows = keyset_rows(world, KeyType(args.type) if args.type else None, Env(args.env) if args.env else None,
                               role=args.role)
            print(json.dumps(rows, indent=2) if args.json else table(rows))
            return 0
        if args.command == "users":
            from sandbox.fixture.users import AGE_DAY as FIXTURE_DAY

            world = World(tables_for(args.fixture, args.seed))
            rows = user_rows(world, args.market, FIXTURE_DAY)
            print(json.dumps(rows, indent=2) if args.json else users_table(rows))
            return 0
        if args.command == "fixture":
            from sandbox.fixture.generate import generate

            store.write(generate(args.seed, args.partners, args.merchants), args.out)
            print(f"wrote {args.out}")
            return 0
        if args.command == "readiness":
            return readiness_cli.main(args)
        if args.command == "ca":
            return print_ca(args)
        if args.command == "scenario":
            from sandbox.scenarios import cli as scenario_cli  # the runner pulls in aiohttp's client

            return scenario_cli.main(args)
    except (store.FixtureError, ValueError, OSError) as exc:
        print(f"vipps-sandbox: error: {exc}", file=sys.stderr)
        return 2
    return 1
