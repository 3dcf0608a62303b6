"""`vipps-sandbox serve` imports aiohttp with the system CAs of its client TLS contexts deferred until the server
listens (sandbox/core/system_cas.py): outgoing HTTPS still verifies against them, whether the first connection
comes before the warm-up loaded them or after.

SSL_CERT_FILE stands in for the system bundle: OpenSSL's default verify paths read it, so a receiver with a
certificate of a CA made here is trusted exactly when the system CAs were loaded into the client's context.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from epayment_support import create_body
from tls_support import client_env

from sandbox.core.ca import Authority
from sandbox.core.keys_listing import keyset_rows
from sandbox.core.model import Env, KeyType
from sandbox.core.world import World
from sandbox.fixture import store
from sandbox.testing import output_tail, spawn

ROOT = Path(__file__).resolve().parents[2]
CREATED = "epayments.payment.created.v1"

#: Run in a fresh interpreter: aiohttp is imported under deferred(), as `serve` does (sandbox/cli.py load_server).
ON_FIRST_USE = r"""
import asyncio, json, ssl, sys
from sandbox.core import system_cas

with system_cas.deferred():
    import aiohttp
    from aiohttp import web
stray = ssl.create_default_context()  # made outside: loads the CAs at once, as ever
with system_cas.deferred():
    skipped = ssl.create_default_context()  # the control: its own start back, so it never loads them
skipped.__dict__.clear()
system_cas._pending.remove(skipped)


async def main(ca_dir):
    from pathlib import Path
    from sandbox.core.ca import Authority
    result = {"pending_before": system_cas.pending(), "stray": stray.cert_store_stats()["x509_ca"]}
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=Authority(Path(ca_dir)).server_context())
    await site.start()
    url = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as resp:  # aiohttp's default verified context, its CAs not loaded yet
            result["status"], result["body"] = resp.status, await resp.text()
        result["pending_after"] = system_cas.pending()
        try:
            async with session.get(url, ssl=skipped):
                result["control"] = "accepted"
        except aiohttp.ClientConnectorCertificateError:
            result["control"] = "refused"
    await runner.cleanup()
    print(json.dumps(result))


asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    made = Authority(tmp_path / "ca")
    made.ensure()
    return made


def test_a_deferred_context_loads_the_system_cas_on_its_first_connection(authority: Authority) -> None:
    env = client_env(SSL_CERT_FILE=str(authority.cert_path))
    done = subprocess.run([sys.executable, "-c", ON_FIRST_USE, str(authority.directory)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["pending_before"] == 2  # aiohttp.connector's verified and unverified contexts
    assert result["stray"] == 1  # a context made outside deferred() is untouched
    assert (result["status"], result["body"]) == (200, "ok")  # verified with the CA of SSL_CERT_FILE
    assert result["pending_after"] == 0  # the first connection loaded them for both
    assert result["control"] == "refused"  # without them the same receiver is not trusted: the check is real


def test_load_gives_the_cas_and_the_contexts_own_methods_back() -> None:
    code = ("import ssl, json\nfrom sandbox.core import system_cas\n"
            "with system_cas.deferred():\n    context = ssl.create_default_context()\n"
            "before = (context.cert_store_stats()['x509_ca'], sorted(context.__dict__))\n"
            "system_cas.load()\n"
            "print(json.dumps([before, context.cert_store_stats()['x509_ca'], sorted(context.__dict__), "
            "system_cas.pending(), 'set_default_verify_paths' in ssl.SSLContext.__dict__]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before, loaded, attributes, pending, patched = json.loads(done.stdout)
    assert before == [0, ["wrap_bio", "wrap_socket"]]
    if Path(__import__("ssl").get_default_verify_paths().cafile or "/nonexistent").exists():
        assert loaded > 0  # the machine's bundle, as ssl.create_default_context() would have had it
    assert (attributes, pending, patched) == ([], 0, False)  # nothing left of the deferral


def keys(msn_role: str = "premium-shop-1") -> tuple[dict, str]:
    world = World(store.read(store.default_fixture_path()))  # the bundled fixture, as the spawned serve has it
    msn = next(u.msn for u in world.sales_units.values() if u.role == msn_role)
    return keyset_rows(world, KeyType.MERCHANT, Env.TEST, msn)[0], msn


@pytest.mark.parametrize("trusted", [True, False])
async def test_serve_delivers_webhooks_over_https_verified_by_the_system_cas(authority: Authority,
                                                                          trusted: bool) -> None:
    """The real `python -m sandbox serve`: a webhook to an HTTPS receiver whose CA is the system's (SSL_CERT_FILE)
    arrives; with another bundle it is refused. Registered and triggered at once, before or after the warm-up."""
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=authority.server_context())
    await site.start()
    receiver = f"https://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    other = Authority(authority.directory.parent / "other")
    other.ensure()
    bundle = authority.cert_path if trusted else other.cert_path
    proc, url, _ = await spawn([], env=client_env(SSL_CERT_FILE=str(bundle)), cwd=str(ROOT))
    try:
        keyset, msn = keys()
        async with aiohttp.ClientSession() as session:
            async with session.post(url + "/accesstoken/get", headers={
                    "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                    "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}) as resp:
                assert resp.status == 200, resp.status
                token = (await resp.json())["access_token"]
            auth = {"Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"],
                    "Merchant-Serial-Number": msn}
            async with session.post(url + "/webhooks/v1/webhooks", headers=auth,
                                    json={"url": receiver, "events": [CREATED]}) as resp:
                assert resp.status == 201, resp.status  # not the body: it holds the webhook's secret
            async with session.post(url + "/epayment/v1/payments", json=create_body("order-cas-1"),
                                    headers={**auth, "Idempotency-Key": "idem-cas-1"}) as resp:
                assert resp.status in (200, 201), await resp.text()
            attempts: list[dict] = []
            for _ in itertools.repeat(None, 250):
                async with session.get(url + "/_sandbox/webhooks/deliveries") as resp:
                    attempts = (await resp.json())["attempts"]
                if attempts:
                    break
                await asyncio.sleep(0.02)
        assert attempts, output_tail(proc)
        outcomes = [(attempt["outcome"], attempt["status"]) for attempt in attempts]
        if trusted:
            assert [event["reference"] for event in received] == ["order-cas-1"], outcomes
            assert outcomes[0] == ("delivered", 200)
        else:
            assert received == [], "a receiver no system CA vouches for was trusted"
            assert outcomes[0] == ("failed", None)  # no answer: the TLS handshake was refused
    finally:
        proc.terminate()
        await proc.wait()
        await runner.cleanup()
