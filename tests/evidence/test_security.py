"""Attacks that must be refused, and secrets that must never leak (request log, stdout, snapshots, the journal).

Forged JWTs (alg none, HS256 with the public key, kid swap, expiry, nbf, other environment) are in
tests/token/test_jwt_forgery.py; here: regenerated keys, tenancy, the control plane off loopback, and leaks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization

from sandbox.apis.report.ledger import ledger_id_for
from sandbox.core.ca import CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY, LOCK

PAY = "/epayment/v1/payments"


def create_body(reference: str, currency: str = "NOK") -> dict:
    return {"amount": {"currency": currency, "value": 1000}, "paymentMethod": {"type": "WALLET"},
            "reference": reference, "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"}


def refused(reply, status: int, rule: str | None = None) -> None:
    assert reply.status == status, reply.text
    assert reply.headers.get("Vipps-Sandbox-Decision", "deny") == "deny"
    if rule is not None:
        assert reply.headers["Vipps-Sandbox-Rule"] == rule, reply.headers


# -- keys regenerated -----------------------------------------------------------------------------------------


async def test_a_token_from_regenerated_keys_is_refused(sandbox):
    keyset = sandbox.key("merchant", "test")
    token = await sandbox.token(keyset)
    reply = await sandbox.request("POST", f"/_sandbox/keys/{keyset['client_id']}/regenerate", "test")
    assert reply.status == 200 and reply.json["client_secret"] != keyset["client_secret"]
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    refused(await sandbox.request("GET", f"{PAY}/regen-ref-0001", "test", headers=headers), 401, "keys-regenerated")
    # the old secret no longer gets a token; the new one does
    old = await sandbox.request("POST", "/accesstoken/get", "test", headers={
        "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
        "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
    assert old.status == 401, old.text
    fresh = sandbox.key("merchant", "test", owner=keyset["owner"])
    reply = await sandbox.request("GET", f"{PAY}/regen-ref-0001", "test", keyset=fresh)
    assert reply.status == 404  # through the gateway: the payment just does not exist


async def test_a_regenerated_subscription_key_is_refused(sandbox):
    keyset = sandbox.key("merchant", "test")
    token = await sandbox.token(keyset)
    reply = await sandbox.request("POST", f"/_sandbox/keys/{keyset['client_id']}/regenerate-subscription-key",
                                  "test", json_body={"which": "primary"})
    assert reply.status == 200, reply.text
    headers = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    refused(await sandbox.request("GET", f"{PAY}/regen-ref-0002", "test", headers=headers), 401, "keys-regenerated")


async def test_regenerated_miami_keys_are_refused(sandbox):
    keyset = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    token = await sandbox.token(keyset)
    reply = await sandbox.request("POST", f"/_sandbox/keys/{keyset['client_id']}/regenerate", "production")
    assert reply.status == 200
    refused(await sandbox.request("GET", "/management/v1/sales-units", "production",
                                  headers={"Authorization": f"Bearer {token}"}), 401, "keys-regenerated")


# -- tenancy ---------------------------------------------------------------------------------------------------


async def test_partner_a_cannot_reach_partner_bs_merchant(sandbox):
    premium = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    foreign = sandbox.msn_role("dual-shop-1")
    assert foreign not in premium["msns"]
    reply = await sandbox.request("POST", PAY, "production", keyset=premium, msn=foreign,
                                  json_body=create_body("tenancy-ref-0001"), headers={"Idempotency-Key": "t-1"})
    refused(reply, 403, "partner-keys-connected-sales-units-only")
    owner = sandbox.key("merchant", "production", msn=foreign)  # B's merchant sees no such payment
    assert (await sandbox.request("GET", f"{PAY}/tenancy-ref-0001", "production", keyset=owner)).status == 404
    # and reading a payment of B's merchant is refused the same way, not a 404 that leaks existence
    refused(await sandbox.request("GET", f"{PAY}/tenancy-ref-0001", "production", keyset=premium, msn=foreign),
            403, "partner-keys-connected-sales-units-only")


async def test_partner_a_cannot_read_partner_bs_payment_by_reference(sandbox):
    """Even with its own MSN, a partner never sees a payment of another sales unit with the same reference."""
    dual_shop = sandbox.msn_role("dual-shop-1")
    dual = sandbox.key("merchant", "production", msn=dual_shop)
    reply = await sandbox.request("POST", PAY, "production", keyset=dual, json_body=create_body("tenancy-ref-0002"),
                                  headers={"Idempotency-Key": "t-2"})
    assert reply.status == 201, reply.text
    premium = sandbox.key("partner", "production", owner=sandbox.partner_role("premium"))
    own = sandbox.msn_role("premium-shop-1")
    reply = await sandbox.request("GET", f"{PAY}/tenancy-ref-0002", "production", keyset=premium, msn=own)
    assert reply.status == 404, reply.text


async def test_merchant_keys_with_a_foreign_msn(sandbox):
    keyset = sandbox.key("merchant", "test")
    other = next(k for k in sandbox.keys("merchant", "test") if k["owner"] != keyset["owner"])
    reply = await sandbox.request("POST", PAY, "test", keyset=keyset, msn=other["owner"],
                                  json_body=create_body("tenancy-ref-0003"), headers={"Idempotency-Key": "t-3"})
    refused(reply, 403, "merchant-keys-own-sales-unit-only")
    assert reply.json["status"] == 403 and "traceId" in reply.json  # the ePayment problem format


async def test_accounting_partner_without_consent(sandbox):
    accountant = sandbox.key("accounting", "production", owner=sandbox.partner_role("accountant"))
    not_consented = sandbox.msn_role("dual-shop-1")
    consented = sandbox.msn_role("premium-shop-1")
    ok = await sandbox.request("GET", f"/report/v2/ledgers/{ledger_id_for(consented)}/funds/feed", "production",
                               keyset=accountant)
    assert ok.status == 200, ok.text
    reply = await sandbox.request("GET", f"/report/v2/ledgers/{ledger_id_for(not_consented)}/funds/feed",
                                  "production", keyset=accountant)
    assert reply.status == 404, reply.text
    assert reply.json["detail"] == "No such ledgerId"
    listed = await sandbox.request("GET", "/settlement/v1/ledgers", "production", keyset=accountant)
    assert ledger_id_for(not_consented) not in {item["ledgerId"] for item in listed.json["items"]}


async def test_a_management_key_cannot_make_a_payment(sandbox):
    keyset = sandbox.key("management", "production", owner=sandbox.partner_role("basic"))
    msn = keyset["msns"][0]
    reply = await sandbox.request("POST", PAY, "production", keyset=keyset, msn=msn,
                                  json_body=create_body("tenancy-ref-0004"), headers={"Idempotency-Key": "t-4"})
    refused(reply, 403, "management-keys-never-act-on-behalf")
    assert reply.json["status"] == 403
    assert "tenancy-ref-0004" not in str(await sandbox.request("GET", "/_sandbox/payments", "production"))


# -- the control plane off loopback ------------------------------------------------------------------------------


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the control plane then needs the admin token)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
        address = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


async def test_control_plane_off_loopback_needs_the_admin_token():
    from sandbox.core.settings import Settings
    from sandbox.server import RunningSandbox

    address = non_loopback_address() or "0.0.0.0"  # as in Docker: every interface
    running = RunningSandbox(Settings(host=address, port=0, prod_port=0, admin_token="s3cret-admin-token-xyz"))
    await running.start()
    try:
        async with aiohttp.ClientSession() as session:
            for method, path in (("POST", "/_sandbox/reset"), ("GET", "/_sandbox/keys"), ("GET", "/_sandbox/requests"),
                                 ("POST", "/_sandbox/snapshot"), ("POST", "/_sandbox/clock"),
                                 ("POST", "/_sandbox/keys/x/regenerate")):
                for auth in (None, "Bearer wrong", "Basic s3cret-admin-token-xyz", "Bearer "):
                    headers = {"Authorization": auth} if auth else {}
                    async with session.request(method, running.test_url + path, headers=headers) as resp:
                        body = await resp.json(content_type=None)
                        assert resp.status == 401, (method, path, auth, body)
                        assert resp.headers["Vipps-Sandbox-Rule"] in ("admin-token-required", "admin-token-wrong")
            async with session.get(running.test_url + "/_sandbox/keys",
                                   headers={"Authorization": "Bearer s3cret-admin-token-xyz"}) as resp:
                assert resp.status == 200
            async with session.get(running.test_url + "/_sandbox/health") as resp:
                assert resp.status == 200  # the health check stays open
    finally:
        await running.stop()


# -- secrets never leak ---------------------------------------------------------------------------------------


def secrets_of(keys: list[dict]) -> set[str]:
    out = set()
    for k in keys:
        out |= {k["client_secret"], k["subscription_key_primary"], k["subscription_key_secondary"]}
    return {s for s in out if s}


def leaks(text: str, secrets: set[str]) -> list[str]:
    """Every secret found whole, or any 8-character piece beyond its last four characters."""
    found = []
    for secret in secrets:
        # A JWT's header and claims are only encoded (their base64 pieces turn up in any base64 text); its
        # signature is what makes it a credential, so that is what is searched for, whole or in pieces.
        head = secret.rsplit(".", 1)[1][:-4] if secret.count(".") == 2 else secret[:-4]
        pieces = [head[i:i + 8] for i in range(0, max(1, len(head) - 7), 4)] if len(head) >= 8 else [head]
        if secret in text or any(p and p in text for p in pieces):
            found.append(secret[-4:])
    return found


async def traffic(base: dict[str, str], keys: dict[str, dict], tokens: dict[str, str]) -> None:
    """Every kind of credential through every door, right and wrong, in both environments."""
    async with aiohttp.ClientSession() as session:
        for name, keyset in keys.items():
            env = keyset["environment"]
            url = base[env]
            if keyset["type"] in ("management", "accounting", "merchant-level"):
                basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
                # merchant-level keys (Donations) ask for their scope; every miami key also tries a wrong secret
                form = "grant_type=client_credentials" + (
                    "&scope=donations:read" if keyset["type"] == "merchant-level" else "")
                async with session.post(url + "/miami/v1/token", data=form, headers={
                        "Authorization": f"Basic {basic}",
                        "Content-Type": "application/x-www-form-urlencoded"}) as resp:
                    tokens[name] = (await resp.json())["access_token"]
                wrong = base64.b64encode(f"{keyset['client_id']}:wrong".encode()).decode()
                async with session.post(url + "/miami/v1/token", data=form, headers={
                        "Authorization": f"Basic {wrong}", "Content-Type": "application/x-www-form-urlencoded"}):
                    pass
                auth = {"Authorization": "Bearer " + tokens[name]}
            else:
                creds = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                         "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
                async with session.post(url + "/accesstoken/get", headers=creds) as resp:
                    tokens[name] = (await resp.json())["access_token"]
                async with session.post(url + "/accesstoken/get", headers=creds | {"client_secret": "wrong"}):
                    pass
                auth = {"Authorization": "Bearer " + tokens[name],
                        "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
            for path in (PAY + "/leak-ref-0001", "/management/v1/sales-units", "/settlement/v1/ledgers",
                         "/webhooks/v1/webhooks", "/donations/v1/agreements/leak-agreement",
                         "/donations/v1/reports/payments?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z"):
                for use in (base["test"], base["production"]):
                    async with session.get(use + path, headers=auth | {"Merchant-Serial-Number": "1234"}):
                        pass
            async with session.post(url + PAY, headers=auth | {"Idempotency-Key": "leak-1"},
                                    json=create_body(f"leak-ref-{name}")):
                pass
            async with session.post(url + "/donations/v1/agreements/leak-agreement/stop", headers=auth):
                pass  # a journaled kind of write, had it succeeded
            await checkout_traffic(session, base, keyset, name)
            # a secret sent where it does not belong: as a bearer token and as a subscription key
            async with session.get(url + PAY + "/leak-ref-0002", headers={
                    "Authorization": "Bearer " + keyset["client_secret"],
                    "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"] or keyset["client_secret"]}):
                pass


async def login_traffic(session: aiohttp.ClientSession, url: str, keyset: dict, phone: str) -> set[str]:
    """The Login API's secrets through its doors: a code, tokens and an id_token (Basic and post), a replayed code,
    CIBA; returns them, to be searched for like the other tokens."""
    prefix = url + "/access-management-1.0/access/oauth2/"
    found = {keyset["client_secret"]}
    async with session.post(url + f"/_sandbox/login/clients/{keyset['client_id']}",
                            json={"redirectUris": ["https://shop.example/login/callback"]}) as resp:
        assert resp.status == 200, await resp.text()
    for auth in ("basic", "post"):
        query = urlencode({"response_type": "code", "client_id": keyset["client_id"], "scope": "openid name",
                           "state": "leak-state-1", "redirect_uri": "http://127.0.0.1:5000/callback"})
        async with session.get(prefix + "auth?" + query, allow_redirects=False) as resp:
            login_id = parse_qs(urlsplit(resp.headers["Location"]).query)["login"][0]
        async with session.post(url + "/_sandbox/login/approve", json={"loginId": login_id,
                                                                        "phoneNumber": phone}) as resp:
            code = parse_qs(urlsplit((await resp.json())["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:5000/callback"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth == "basic":
            basic = base64.b64encode(f"{keyset['client_id']}:{keyset['client_secret']}".encode()).decode()
            headers["Authorization"] = "Basic " + basic
        else:
            form |= {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"]}
        for _ in range(2):  # the second is a replayed code: refused, and logged
            async with session.post(prefix + "token", data=urlencode(form), headers=headers) as resp:
                if resp.status == 200:
                    body = await resp.json()
        found |= {code, body["access_token"], body["id_token"]}
        async with session.get(url + "/vipps-userinfo-api/userinfo/",
                               headers={"Authorization": "Bearer " + body["access_token"]}) as resp:
            assert resp.status == 200
    ciba_form = {"login_hint": f"urn:msisdn:{phone}", "scope": "openid", "client_id": keyset["client_id"],
                 "client_secret": keyset["client_secret"]}
    async with session.post(url + "/vipps-login-ciba/api/backchannel/authentication", data=urlencode(ciba_form),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        auth_req_id = (await resp.json())["auth_req_id"]
    async with session.post(url + "/_sandbox/login/ciba/approve", json={"auth_req_id": auth_req_id}) as resp:
        assert resp.status == 200
    poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id,
            "client_id": keyset["client_id"], "client_secret": keyset["client_secret"]}
    await asyncio.sleep(5)  # the documented interval: polled sooner, it would be slow_down
    async with session.post(prefix + "token", data=urlencode(poll),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
        body = await resp.json()
        found |= {body["access_token"], body["id_token"]}
    return found


async def checkout_traffic(session: aiohttp.ClientSession, base: dict[str, str], keyset: dict, name: str) -> None:
    """Checkout v3 takes the client_secret itself as a header (no token): right and wrong, in both environments,
    on create (journaled with --state), GET and expire, as the official SDK sends it (an empty bearer)."""
    raw = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"], "Authorization": "Bearer ",
           "Merchant-Serial-Number": (keyset.get("msns") or ["1234"])[0]}
    if keyset.get("subscription_key_primary"):
        raw["Ocp-Apim-Subscription-Key"] = keyset["subscription_key_primary"]
    body = {"type": "PAYMENT", "reference": f"leak-chk-{name}",
            "merchantInfo": {"callbackUrl": "https://example.com/cb", "returnUrl": "https://example.com/r",
                             "callbackAuthorizationToken": "cbtok"},
            "transaction": {"amount": {"currency": "NOK", "value": 1000}, "paymentDescription": "leak check"}}
    for use in (base["test"], base["production"]):
        for headers in (raw, raw | {"client_secret": keyset["client_secret"][::-1]}):
            async with session.post(use + "/checkout/v3/session", headers=headers, json=body):
                pass
            async with session.get(use + f"/checkout/v3/session/leak-chk-{name}", headers=headers):
                pass
            async with session.post(use + f"/checkout/v3/session/leak-chk-{name}/expire", headers=headers):
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The CA's own files, which live in the --state directory when no --ca-dir is given: not journal or snapshot.
CA_FILES = frozenset({CA_CERT, CA_KEY, LEAF_CERT, LEAF_KEY, LOCK})


def state_text(directory: Path) -> str:
    """What the sandbox wrote to the --state directory (its journal and snapshots), the CA's own files left out."""
    files = sorted(path for path in directory.rglob("*") if path.is_file() and path.name not in CA_FILES)
    return "\n".join(f"== {path.name}\n" + path.read_text("utf-8", "replace") for path in files)


def private_key_forms(path: Path) -> set[str]:
    """A P-256 key file's secret in the forms it could leak in: the PEM body's characters that encode the private
    scalar (the ASN.1 header before it is the same for every P-256 key, the public point after it is public), and
    the scalar itself in hex, base64 and base64url (a JWK's "d")."""
    pem = path.read_text()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    forms = {body[48:90], scalar.hex(), base64.b64encode(scalar).decode(),
             base64.urlsafe_b64encode(scalar).rstrip(b"=").decode()}
    assert base64.b64decode(body)[36:68] == scalar  # the PKCS8 layout the slice above assumes
    return forms


def key_leaks(text: str, forms: set[str]) -> list[str]:
    """Any 16 characters in a row of any form of a private key (64 bits or more: never found by chance)."""
    return [form[:4] for form in forms
            if any(form[i:i + 16] in text for i in range(0, len(form) - 15, 4))]


async def tls_traffic(tls: str, proxy: str, ca: Path, keyset: dict) -> None:
    """Calls over the sandbox's TLS port and through its proxy (as https://apitest.vipps.no), so the CA's leaf is in
    use while the log, the journal and the output are written."""
    context = ssl.create_default_context(cafile=str(ca))
    creds = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
             "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
    async with aiohttp.ClientSession() as session:
        async with session.get(tls + "/_sandbox/health", ssl=context, server_hostname="apitest.vipps.no",
                               headers={"Host": "apitest.vipps.no"}) as resp:
            assert resp.status == 200, await resp.text()
        async with session.post("https://apitest.vipps.no/accesstoken/get", proxy=proxy, ssl=context,
                                headers=creds) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["access_token"]
        auth = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"],
                "Idempotency-Key": "leak-tls-1"}
        async with session.post("https://apitest.vipps.no" + PAY, proxy=proxy, ssl=context, headers=auth,
                                json=create_body("leak-tls-ref-1")) as resp:
            assert resp.status == 201, await resp.text()
        async with session.get(tls + "/_sandbox/nothing-here", ssl=context, server_hostname="api.vipps.no",
                               headers={"Host": "api.vipps.no"}):
            pass


async def collect(tmp_path: Path) -> dict:
    """Serves `python -m sandbox serve` as a subprocess, sends traffic, and gathers what could leak."""
    port, prod_port, tls_port, proxy_port = free_port(), free_port(), free_port(), free_port()
    env = {name: value for name, value in os.environ.items() if name not in ("VIPPS_SANDBOX_CA_DIR", "HTTPS_PROXY")}
    env["PYTHONUNBUFFERED"] = "1"
    # The CA goes where it goes by default with --state and no --ca-dir: into the state directory, beside the journal.
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port",
                             str(prod_port), "--snapshot-dir", str(tmp_path), "--state", str(tmp_path / "state"),
                             "--tls-port", str(tls_port), "--proxy-port", str(proxy_port)],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parents[2])
    base = {"test": f"http://127.0.0.1:{port}", "production": f"http://127.0.0.1:{prod_port}"}
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.get(base["test"] + "/_sandbox/health") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
            async with session.get(base["test"] + "/_sandbox/keys") as resp:
                all_keys = await resp.json()
            keys = {}
            for row in all_keys:  # one key set of each type and environment
                keys.setdefault(f"{row['type']}-{row['environment']}", row)
            tokens: dict[str, str] = {}
            await traffic(base, keys, tokens)
            state_dir = tmp_path / "state"
            await tls_traffic(f"https://127.0.0.1:{tls_port}", f"http://127.0.0.1:{proxy_port}", state_dir / CA_CERT,
                              keys["merchant-test"])
            ca_keys = private_key_forms(state_dir / CA_KEY) | private_key_forms(state_dir / LEAF_KEY)
            async with session.get(base["test"] + "/_sandbox/users") as resp:
                adult = next(user for user in await resp.json() if user["role"] == "no-user")
            login = await login_traffic(session, base["test"], keys["merchant-test"], adult["phone_number"])
            client_id = keys["merchant-test"]["client_id"]
            async with session.post(base["test"] + f"/_sandbox/keys/{client_id}/regenerate") as resp:
                regenerated = (await resp.json())["client_secret"]
            async with session.get(base["test"] + "/_sandbox/requests?limit=100000") as resp:
                request_log = await resp.text()
            async with session.post(base["test"] + "/_sandbox/snapshot", json={"name": "leak-check"}) as resp:
                assert resp.status == 200, await resp.text()
                snapshot_path = Path((await resp.json())["path"])
                snapshot, snapshot_mode = snapshot_path.read_text(), snapshot_path.stat().st_mode
            journal = state_text(tmp_path / "state")
            async with session.post(base["test"] + "/_sandbox/restore", json={"name": "leak-check"}) as resp:
                assert resp.status == 200, await resp.text()  # with --state, a restore compacts at once
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode("utf-8", "replace")
    state = journal + state_text(tmp_path / "state")
    return {"keys": secrets_of(list(keys.values())) | {regenerated}, "tokens": set(tokens.values()) | login,
            "state": state, "ca_keys": ca_keys,
            "snapshot_mode": snapshot_mode, "types": {row["type"] for row in keys.values()},
            "count": (len(tokens), len(keys)), "request_log": request_log, "output": output, "snapshot": snapshot}


@pytest.fixture(scope="module")
def leaked(tmp_path_factory):
    return asyncio.run(collect(tmp_path_factory.mktemp("snapshots")))


def test_the_leak_search_saw_traffic(leaked):
    tokens, keys = leaked["count"]
    assert tokens == keys >= 6 and len(leaked["request_log"]) > 1000 and json.loads(leaked["snapshot"])
    assert leaked["types"] >= {"merchant", "partner", "management", "accounting", "merchant-level"}
    assert "serving the test environment" in leaked["output"]
    assert leaks("x" + next(iter(leaked["keys"])) + "x", leaked["keys"])  # the search itself can find one
    # the CA served: calls came over TLS (the port and the proxy's tunnels), and its key search can find a key
    assert '"scheme": "https"' in leaked["request_log"] and '"proxied": true' in leaked["request_log"]
    assert len(leaked["ca_keys"]) == 8 and key_leaks("x" + next(iter(leaked["ca_keys"])) + "x", leaked["ca_keys"])
    assert "The sandbox's CA certificate" in leaked["output"]


def test_no_secret_or_token_in_the_request_log(leaked):
    assert not leaks(leaked["request_log"], leaked["keys"] | leaked["tokens"])
    assert not key_leaks(leaked["request_log"], leaked["ca_keys"]), "the CA's or the TLS leaf's private key"


def test_no_secret_or_token_on_stdout_or_stderr(leaked):
    assert not leaks(leaked["output"], leaked["keys"] | leaked["tokens"]), leaked["output"][-2000:]
    assert not key_leaks(leaked["output"], leaked["ca_keys"]), "the CA's or the TLS leaf's private key"


def test_no_token_in_a_snapshot(leaked):
    assert not leaks(leaked["snapshot"], leaked["tokens"])
    assert not key_leaks(leaked["snapshot"], leaked["ca_keys"]), "the CA's or the TLS leaf's private key"


def test_no_secret_or_token_in_the_state_files(leaked):
    """--state journals every acknowledged change (headers it needs to replay, never credentials)."""
    assert "Idempotency-Key" in leaked["state"]  # the journal did record the traffic
    assert "/_sandbox/login/clients/" in leaked["state"]  # a Login client's redirect URIs are kept, its flows not
    assert "== snapshot" in leaked["state"]  # and the restore compacted it into a snapshot
    assert not leaks(leaked["state"], leaked["tokens"] | leaked["keys"])
    # the CA lives in the state directory (no --ca-dir): its key stays in its own 0600 file, never in the journal
    assert not key_leaks(leaked["state"], leaked["ca_keys"]), "the CA's or the TLS leaf's private key"


def test_a_snapshot_is_readable_by_its_owner_only(leaked):
    """Snapshots hold the directory (with digests, not secrets); still, nobody else on the machine reads them."""
    assert leaked["snapshot_mode"] & 0o077 == 0, oct(leaked["snapshot_mode"])


def test_no_client_secret_or_subscription_key_in_a_snapshot(leaked):
    """Snapshots keep SHA-256 digests of secrets, never the secrets (sandbox/core/world.py World.tables)."""
    found = leaks(leaked["snapshot"], leaked["keys"])
    assert not found, f"client secrets or subscription keys in the snapshot (last 4: {found})"
