"""Settings of one sandbox instance; the CLI and the pytest plugin both build one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: The environment variable of the admin token (sandbox/gateway/admin.py), here so that the commands that only
#: name it (readiness, scenario) need not import the gateway, and with it aiohttp.
ADMIN_TOKEN_VAR = "VIPPS_SANDBOX_ADMIN_TOKEN"


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080  # the test environment ("apitest")
    prod_port: int = 8081  # the production environment ("api")
    fixture: Path | None = None  # None: the bundled default fixture
    seed: int | None = None  # serve a fixture generated in memory from this seed instead
    strict_headers: bool = False  # partner keys without Vipps-System-* headers get a 400, not a warning
    # The spec types /miami/v1/token's expires_in as a string, the docs show the number 900.
    # UNCERTAIN in the reference; numbers by default, strings with this switch.
    miami_expires_in_as_string: bool = False
    # The Azure AD directory POST /accesstoken/get's refusals name (AADSTS700016). The test name is the Vipps
    # FAQ's ('VIPPS-TEST'); the production name is documented nowhere (UNCERTAIN, chosen).
    token_directory_test: str = "VIPPS-TEST"
    token_directory_production: str = "VIPPS"
    admin_token: str | None = None
    request_log_size: int = 1000
    state: Path | None = None  # a directory: crash-safe journal + snapshots (opt-in)
    id_seed: int | None = None  # makes run-time ids and secrets reproducible
    snapshot_dir: Path | None = None  # the only directory /_sandbox/snapshot and restore use (see ops/snapshots.py)
    rate_limits: bool = False  # the ePayment API's documented rate limits (sandbox/gateway/rate_limits.py)
    # Webhook URLs on private, link-local and unique-local addresses (and *.localhost names), for receivers
    # on a LAN; off by default (sandbox/gateway/targets.py). Metadata and unspecified addresses never.
    webhook_allow_private: bool = False
    # The webhook inboxes (POST /_sandbox/inbox/{name}): at most this many inboxes, messages per inbox and
    # bytes in all (the oldest go first), and bytes per message (more is a 413).
    inbox_count: int = 100
    inbox_messages: int = 1000
    inbox_bytes: int = 16 * 1024 * 1024
    inbox_message_bytes: int = 256 * 1024
    # When a Report API ledger date ends, in the merchant's local time ("HH:MM"; the docs: "Normally, a ledger
    # date lasts from midnight to midnight in the timezone of the merchant", other cutoffs such as 04:00 exist).
    ledger_cutoff: str = "00:00"
    # The AUTHORIZED webhook carries the create request's Idempotency-Key, as the documentation's examples show
    # (UNCERTAIN: no rule says so); off: AUTHORIZED carries no idempotencyKey, like ABORTED and EXPIRED.
    webhook_authorized_key: bool = True
    # Sales units (MSNs) not enabled for Express: a create with `shipping` gets ErrorCode 5020. UNCERTAIN: no
    # Management configuration flag says whether a unit may use Express, so by default every unit may.
    express_disabled: tuple[str, ...] = ()
    # Host header values served besides loopback names, IP addresses, --host and the Vipps host names
    # (sandbox/gateway/hosts.py): e.g. a docker compose service name; ".example.test" takes its subdomains too,
    # "*" takes any host (DNS rebinding protection off).
    allowed_hosts: tuple[str, ...] = ()
    head_timeout: float = 10.0  # seconds to send a request's line and headers, from its first byte
    body_timeout: float = 30.0  # seconds a request body may go without a byte while the sandbox waits for it
    keepalive_timeout: float = 75.0  # seconds an idle keep-alive connection stays open between requests
    # Recurring API: the minimum days between today and a charge's due date (None: the 3.1.2 spec's 1 in test,
    # 2 in production; UNCERTAIN, the sources disagree), and the sales units allowed UNSCHEDULED charges (besides
    # those whose configuration has unscheduledChargesAllowed).
    recurring_due_min_days: int | None = None
    recurring_unscheduled_msns: frozenset[str] = field(default_factory=frozenset)
    # Idempotency records (ePayment and Recurring, sandbox/core/idempotency.py): how long an Idempotency-Key is
    # honoured on the virtual clock (UNCERTAIN: no reference says; 30 days), and at most how many records one
    # sales unit keeps per environment (the oldest go first), so memory stays bounded.
    idempotency_retention_seconds: float = 30 * 86400.0
    idempotency_max_per_unit: int = 100_000
    # HTTPS and proxy mode (sandbox/core/ca.py, sandbox/gateway/proxy.py): the TLS port serving both environments
    # (SNI and Host pick one), the proxy port (CONNECT to the Vipps host names only), and the CA's directory
    # (None: the --state directory, else the user's data directory).
    tls_port: int | None = None
    proxy_port: int | None = None
    ca_dir: Path | None = None
    # Userinfo API: an Ocp-Apim-Subscription-Key is accepted with or without (the spec requires it; the Recurring and
    # eCom guides say it gives a 401: UNCERTAIN). With this switch, sending it is a 401.
    userinfo_strict_subscription_key: bool = False
    # issue 18: the Order Management API in the test environment. The sources disagree (the agent toolkit: "no
    # Order Management in the test environment"; the spec and the quick start: apitest). UNCERTAIN: on by default;
    # off, every Order Management path is the gateway's 404 in test.
    order_management_test: bool = True
    # Login API (issue 16). CIBA's polling `interval` in seconds (the docs: 5); the docs example's `"nonce": ""`
    # in an id_token when the client sent none (off: it breaks openid-client, next-apis.md section 9);
    # Ocp-Apim-Subscription-Key on Login's userinfo is a 401 (the docs say so: 3d; off: ignored); how long a
    # Login access token reaches userinfo (the docs: ~10 minutes, although expires_in says 3599).
    login_ciba_interval: int = 5
    login_empty_nonce: bool = False
    login_userinfo_refuses_subscription_key: bool = True
    login_userinfo_window: int = 600
