"""Benchmark (run by hand): the Login API's token exchange, and its discovery and JWKS against a bare handler.

    python bench/login.py [--seconds 5] [--codes 20000]

Goals (issue 16):
- the token exchange (a code for tokens, the RS256 id_token signature included) at least 1,000 per second: measured
  in the backend (no HTTP, per CPU second of the process), and over HTTP from another process (an aiohttp client,
  16 connections, Basic auth);
- discovery and JWKS, served from prepared bytes, at least 0.8 of a bare aiohttp handler returning the same bytes
  (wrk, or an aiohttp client process without it; alternating pairs in the same run, the median pair kept).
The token exchange is printed beside the rate of its RS256 signature alone, the baseline bench/run.py's rows use.
`figures()` is what bench/run.py calls for its Login rows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import bare_app, free_port, get_pairs, machine, pair_note  # noqa: E402

from sandbox.apis.login.clients import Client  # noqa: E402
from sandbox.apis.login.routes import LOGIN  # noqa: E402
from sandbox.core.model import Env, KeyType  # noqa: E402
from sandbox.core.settings import Settings  # noqa: E402
from sandbox.server import RunningSandbox  # noqa: E402

PREFIX = "/access-management-1.0/access/"
REDIRECT = "http://127.0.0.1/callback"


def make_codes(login, client_id: str, phone: str, count: int) -> list[str]:
    codes = []
    for _ in range(count):
        login_id = login.authorize(Env.TEST, {"response_type": "code", "client_id": client_id, "scope": "openid name",
                                              "state": "bench-state", "redirect_uri": REDIRECT, "nonce": "n"})
        location = login.consent(login_id, phone)
        codes.append(location.split("code=", 1)[1].split("&", 1)[0])
    return codes


HTTP_CLIENT = """
import asyncio, json, sys, time, aiohttp
codes = json.load(open(sys.argv[1]))
url, auth = sys.argv[2], sys.argv[3]
async def main():
    errors = 0
    queue = list(codes)
    async with aiohttp.ClientSession() as s:
        async def worker():
            nonlocal errors
            while queue:
                code = queue.pop()
                body = "grant_type=authorization_code&code=" + code + "&redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback"
                async with s.post(url, data=body, headers={"Authorization": auth,
                                  "Content-Type": "application/x-www-form-urlencoded"}) as r:
                    await r.read()
                    errors += r.status != 200
        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(16)))
        elapsed = time.monotonic() - started
    print(json.dumps({"rps": len(codes) / elapsed, "errors": errors}))
asyncio.run(main())
"""


async def figures(running: RunningSandbox, codes: int, seconds: float, rounds: int) -> dict:
    """The token exchange's rate in the backend (per CPU second of this process) and over HTTP (wall clock, from
    another process), beside the rate of the RS256 signature alone (the same claims, the same key, CPU time);
    discovery and JWKS against a bare handler serving the same bytes (alternating pairs, the median kept)."""
    login = running.app[LOGIN]
    world = login.runtime.world
    keyset = next(k for k in world.keys.values() if k.type is KeyType.MERCHANT and k.environment is Env.TEST)
    phone = world.users_by_role["no-user"].phone_number
    client = Client(keyset, keyset.owner)
    origin = running.test_url
    result: dict = {"codes": codes}

    replies = [login.exchange_code(client, {"code": code, "redirect_uri": REDIRECT}, origin)
               for code in make_codes(login, keyset.client_id, phone, codes)]
    login.signer.sign(replies[0].claims)  # not timed: the key is made on first use
    started = time.process_time()  # CPU time, here and below: on a shared machine the wall clock counts the others
    for reply in replies:
        login.signer.sign(reply.claims)
    result["sign"] = codes / (time.process_time() - started)

    pending = make_codes(login, keyset.client_id, phone, codes)
    started = time.process_time()
    for code in pending:
        login.exchange_code(client, {"code": code, "redirect_uri": REDIRECT}, origin).finish(login.signer)
    result["backend"] = codes / (time.process_time() - started)

    pending = make_codes(login, keyset.client_id, phone, codes)
    basic = "Basic " + base64.b64encode(f"{keyset.client_id}:{keyset.client_secret}".encode()).decode()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(pending, handle)
    try:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", HTTP_CLIENT, handle.name,
                                                    origin + PREFIX + "oauth2/token", basic,
                                                    stdout=asyncio.subprocess.PIPE)
        http = json.loads((await proc.communicate())[0])
    finally:
        Path(handle.name).unlink()
    assert http["errors"] == 0, http
    result["http"] = http["rps"]

    for name, path, body in (
            ("discovery", PREFIX + ".well-known/openid-configuration", login.documents.for_origin(origin)),
            ("JWKS", PREFIX + ".well-known/jwks.json", login.signer.jwks_bytes)):
        def handler(request: web.Request, body: bytes = body) -> web.Response:
            return web.Response(body=body, content_type="application/json", headers={"Cache-Control": "max-age=3600"})

        async with bare_app({"/doc": handler}) as bare_url:
            result[name] = await get_pairs(origin + path, {}, bare_url + "/doc", rounds, seconds)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5, help="seconds of each load of discovery and JWKS")
    parser.add_argument("--rounds", type=int, default=3, help="alternating pairs (sandbox, bare); median kept")
    parser.add_argument("--codes", type=int, default=20000)
    args = parser.parse_args()
    print(machine())
    running = RunningSandbox(Settings(port=free_port(), prod_port=free_port()))
    await running.start()
    try:
        result = await figures(running, args.codes, args.seconds / args.rounds, args.rounds)
    finally:
        await running.stop()
    print(f"RS256 signature alone (the same claims, per CPU second): {result['sign']:,.0f}/s")
    print(f"token exchange, backend (RS256 included, per CPU second): {result['backend']:,.0f}/s (goal >= 1,000)")
    print(f"token exchange over HTTP (another process, 16 connections): {result['http']:,.0f}/s (goal >= 1,000)")
    for name in ("discovery", "JWKS"):
        ratio, ours, base, spread = result[name]
        print(f"{name}: {ours['rps']:,.0f}/s vs bare {base['rps']:,.0f}/s = {ratio:.2f} (goal >= 0.8; "
              f"{pair_note(args.rounds, spread, ours, base)})")


if __name__ == "__main__":
    asyncio.run(main())
