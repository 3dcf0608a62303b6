"""The soak's merchant endpoint, in a process of its own: webhooks and Checkout's payment-completed callbacks.

    python bench/load_receiver.py      # prints its base URL, then serves until terminated

bench/loadgen.py starts it, POSTs the webhook registrations' secrets to /_secrets ({"<env>/<group>": secret}),
and GETs /_counts at the end. Every webhook's signature is checked as the Webhooks API's request-authentication
guide describes (HMAC-SHA256 over method, path and query, x-ms-date, host and the body's SHA-256, with the
registration's secret); every callback must carry its session's callbackAuthorizationToken. Counts per
environment and event; whatever fails a check is listed under "bad" instead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections import defaultdict

from aiohttp import web


class Receiver:
    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.hooks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # env -> event -> count
        self.callbacks: dict[str, int] = defaultdict(int)
        self.bad: list[str] = []

    def refuse(self, why: str) -> web.Response:
        if len(self.bad) < 20:
            self.bad.append(why)
        return web.Response(status=200)  # counted as bad, not retried

    async def hook(self, request: web.Request) -> web.Response:
        env, group, body = request.match_info["env"], request.match_info["group"], await request.read()
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        signed = f"POST\n{request.path_qs}\n{request.headers.get('x-ms-date')};{request.host};{digest}"
        secret = self.secrets.get(f"{env}/{group}", "")
        expected = base64.b64encode(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()).decode()
        signature = request.headers.get("Authorization", "").rsplit("Signature=", 1)[-1]
        if not secret or digest != request.headers.get("x-ms-content-sha256") or signature != expected:
            return self.refuse(f"a webhook to {env}/{group} with a bad signature")
        document = json.loads(body)
        event = document.get("eventType") or f"epayments.payment.{str(document.get('name')).lower()}.v1"
        if not event.startswith(group):
            return self.refuse(f"{event} delivered to the {group} registration")
        self.hooks[env][event] += 1
        return web.Response(status=200)

    async def callback(self, request: web.Request) -> web.Response:
        env, document = request.match_info["env"], await request.json()
        if request.headers.get("Authorization") != f"cb-{document.get('reference')}":
            return self.refuse(f"callback {document.get('reference')} without its token")
        self.callbacks[env] += 1
        return web.Response(status=200)

    async def set_secrets(self, request: web.Request) -> web.Response:
        self.secrets.update(await request.json())
        return web.Response(status=204)

    async def counts(self, request: web.Request) -> web.Response:
        return web.json_response({"hooks": self.hooks, "callbacks": self.callbacks, "bad": self.bad})


async def main() -> None:
    receiver = Receiver()
    app = web.Application(client_max_size=1 << 20)
    app.router.add_post("/hook/{env}/{group}", receiver.hook)
    app.router.add_post("/checkout/{env}", receiver.callback)
    app.router.add_post("/_secrets", receiver.set_secrets)
    app.router.add_get("/_counts", receiver.counts)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
