"""docs/examples/docker-compose.yml: its shape, then the same setup run under podman.

No compose tool runs here, so the podman test does what compose would with the file's own values: a
network on which the sandbox has the file's aliases, its sysctls, environment, volumes and command, and an
app container (this image again, for its Python, as another uid) with the app service's environment and
volumes, calling the sandbox by the real host names.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import yaml
from podman_support import Podman

from sandbox.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docs" / "examples" / "docker-compose.yml"
HOSTS = {"apitest.vipps.no", "api.vipps.no"}
CA_FILE = "vipps-sandbox-ca.pem"
TLS_FLAGS = {"--tls-port", "--ca-dir"}  # serve's flags for HTTPS (issue 17), added beside this example


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def mounts(service: dict) -> dict[str, tuple[str, str]]:
    """{container path: (volume name, options)} of a service's short-syntax volumes."""
    found = {}
    for entry in service["volumes"]:
        name, path, *options = entry.split(":")
        found[path] = (name, options[0] if options else "rw")
    return found


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_the_compose_file_names_image_ports_aliases_and_volumes():
    spec = compose()
    vipps, app = spec["services"]["vipps"], spec["services"]["app"]
    assert vipps["image"]
    assert (COMPOSE.parent / vipps["build"]["context"] / "Dockerfile").resolve() == ROOT / "Dockerfile"
    assert set(vipps["networks"]["default"]["aliases"]) == HOSTS
    assert {"8080:8080", "8081:8081"} <= set(vipps["ports"])
    assert any(port.endswith(":443") for port in vipps["ports"])
    command = vipps["command"]
    assert command[:2] == ["vipps-sandbox", "serve"] and flag(command, "--host") == "0.0.0.0"
    assert flag(command, "--tls-port") == "443"
    # uid 10001 binds 443 only where unprivileged ports start at 0 (inside the service's network namespace).
    assert str(vipps["sysctls"]["net.ipv4.ip_unprivileged_port_start"]) == "0"
    # Every flag is one serve knows.
    _, unknown = build_parser().parse_known_args(command[1:])
    assert not unknown, unknown
    assert vipps["environment"]["VIPPS_SANDBOX_ADMIN_TOKEN"]

    ca_dir = flag(command, "--ca-dir")
    sandbox_mounts, app_mounts = mounts(vipps), mounts(app)
    ca_volume = sandbox_mounts[ca_dir][0]
    assert sandbox_mounts["/data"][0] in spec["volumes"] and ca_volume in spec["volumes"]
    assert flag(command, "--state").startswith("/data/")
    app_ca = next(path for path, (name, _) in app_mounts.items() if name == ca_volume)
    assert app_mounts[app_ca][1] == "ro"
    assert sandbox_mounts["/data"][0] not in {name for name, _ in app_mounts.values()}  # state holds secrets
    for variable in ("NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        assert app["environment"][variable] == f"{app_ca}/{CA_FILE}"
    assert app["depends_on"]["vipps"]["condition"] == "service_healthy"


def yaml_blocks(page: str) -> list:
    text = (ROOT / "docs" / page).read_text()
    return [yaml.safe_load(block) for block in re.findall(r"^```yaml\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)]


def test_the_guide_shows_the_file_and_services_snippets_that_parse():
    """docs/guides/container.md: its compose excerpt says what the file says; its Actions snippets (and
    docs/ci.md's) parse as YAML, so a workflow copied from them loads."""
    snippets = yaml_blocks("guides/container.md")
    assert yaml_blocks("ci.md")
    excerpt = next(snippet for snippet in snippets if "services" in snippet and "vipps" in snippet["services"])
    full = compose()["services"]["vipps"]
    shown = excerpt["services"]["vipps"]
    for key in ("image", "command", "sysctls", "networks"):
        assert shown[key] == full[key], key
    assert set(shown["ports"]) == set(full["ports"]) and set(shown["volumes"]) == set(full["volumes"])
    assert set(excerpt["volumes"]) == set(compose()["volumes"])
    actions = [snippet for snippet in snippets if "jobs" in snippet or "services" in snippet and "steps" in snippet]
    assert len(actions) == 2
    for snippet in actions:
        services = (snippet["jobs"]["test"] if "jobs" in snippet else snippet)["services"]
        assert {"8080:8080", "8081:8081"} <= set(services["vipps"]["ports"])
        assert services["vipps"]["env"]["VIPPS_SANDBOX_ADMIN_TOKEN"]


# Runs in the app container: the real host names over the compose network, plain, then HTTPS if served.
APP_SCRIPT = """
import json, os, ssl, sys, urllib.request
for url, env in (("http://apitest.vipps.no:8080", "test"), ("http://api.vipps.no:8081", "production"),
                 ("http://vipps:8080", "test")):
    body = json.load(urllib.request.urlopen(url + "/_sandbox/health", timeout=5))
    assert body["environment"] == env, (url, body)
if sys.argv[1] == "tls":
    context = ssl.create_default_context()  # trusts SSL_CERT_FILE, the CA from the shared volume
    for host, env in (("apitest.vipps.no", "test"), ("api.vipps.no", "production")):
        body = json.load(urllib.request.urlopen(f"https://{host}/_sandbox/health", timeout=5, context=context))
        assert body["environment"] == env, (host, body)
    ca = os.path.dirname(os.environ["SSL_CERT_FILE"])
    keys = [os.path.join(ca, name) for name in os.listdir(ca) if name.endswith(".key")]
    assert keys and not any(os.access(key, os.R_OK) for key in keys), keys  # the app trusts, never signs
print("ok")
"""


def test_the_compose_setup_under_podman(built, names):
    podman, tag, _ = built
    spec = compose()
    vipps, app = spec["services"]["vipps"], spec["services"]["app"]
    run_id = uuid.uuid4().hex[:8]
    network = f"vipps-sandbox-test-{run_id}"
    volume = {name: f"vipps-sandbox-test-{run_id}-{name}" for name in spec["volumes"]}
    podman("network", "create", network)
    try:
        serve_help = podman.text("run", "--rm", "--network", "none", tag, "vipps-sandbox", "serve", "--help")
        tls = all(name in serve_help for name in TLS_FLAGS)
        command = vipps["command"] if tls else []  # without the TLS flags: the image's own CMD
        sandbox = names()
        args = ["run", "--detach", "--name", sandbox, "--health-interval", "disable", "--network", network]
        args += [f"--network-alias={alias}" for alias in vipps["networks"]["default"]["aliases"]]
        args += [f"--network-alias={service}" for service in ("vipps",)]  # compose adds the service name
        args += [f"--sysctl={key}={value}" for key, value in vipps["sysctls"].items()]
        args += [f"--env={key}={value}" for key, value in vipps["environment"].items()]
        args += [f"--volume={volume[name]}:{path}" for path, (name, _) in mounts(vipps).items()]
        podman(*args, tag, *command)
        healthy(podman, sandbox)  # what `condition: service_healthy` waits for

        # A new named volume starts as the image's /ca: uid 10001's, readable by the app.
        ca_dir = flag(vipps["command"], "--ca-dir")
        assert podman.text("exec", sandbox, "stat", "-c", "%u %a", ca_dir) == "10001 755"
        # The sysctl lets the non-root sandbox bind 443 (serve does it itself when it has --tls-port).
        if not tls:
            podman("exec", sandbox, "python", "-c", "import socket; socket.socket().bind(('0.0.0.0', 443))")

        app_args = ["run", "--rm", "--network", network, "--user", "20002:20002"]
        app_args += [f"--env={key}={value}" for key, value in app["environment"].items()]
        app_args += [f"--volume={volume[name]}:{path}:{options}" for path, (name, options) in mounts(app).items()]
        result = podman(*app_args, tag, "python", "-c", APP_SCRIPT, "tls" if tls else "plain", check=False)
        output = (result.stdout + result.stderr).decode(errors="replace")
        assert result.returncode == 0 and "ok" in output, output + podman("logs", sandbox).stderr.decode()
        assert tls, "serve lost " + " or ".join(sorted(TLS_FLAGS)) + ": the compose example's HTTPS on 443 needs them"
    finally:
        for name in names_made(podman, network):
            podman("rm", "--force", "--volumes", "--time", "0", name, check=False)
        podman("network", "rm", "--force", network, check=False)
        podman("volume", "rm", "--force", *volume.values(), check=False)


def healthy(podman: Podman, name: str, seconds: float = 30) -> None:
    """The image's HEALTHCHECK, run until it passes (podman here has no timer to run it)."""
    deadline = time.monotonic() + seconds
    while podman("healthcheck", "run", name, check=False).returncode != 0:
        state = podman.text("inspect", "--format", "{{.State.Status}}", name, check=False)
        if state != "running" or time.monotonic() > deadline:
            logs = podman("logs", name, check=False)
            raise AssertionError(f"{name} is {state}, not healthy: {(logs.stdout + logs.stderr).decode()[-3000:]}")
        time.sleep(0.2)


def names_made(podman: Podman, network: str) -> list[str]:
    """Containers still on the test network (the app runs with --rm; this catches a timeout's leftovers)."""
    listed = podman.text("ps", "--all", "--filter", f"network={network}", "--format", "json", check=False)
    return [entry["Names"][0] for entry in json.loads(listed or "[]")]
