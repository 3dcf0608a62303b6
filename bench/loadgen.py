"""A mixed load on a running sandbox, from its own process: tokens, create, approve, capture, refund, GETs, reports.

    python bench/loadgen.py --test-url http://127.0.0.1:8080 --prod-url http://127.0.0.1:8081 --seconds 60

Workers repeat one payment's life (create, approve as the user, two partial captures, a partial refund,
GET and events), plus tokens and Report API reads, plus requests that MUST fail (capture before
approval, over-refund) with the status the API gives for them. After --grow-fraction of the time no new
payments are made (the working set stops growing) and the load keeps going on the existing ones.
Prints one JSON object: counts per operation and status, unexpected answers, latencies (p50/p99), and
what every payment should add up to, so the caller can check it against the server's event logs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import statistics
import sys
import time
from collections import defaultdict

import aiohttp

#: operation -> statuses that are right for it
EXPECTED = {"token": {200}, "flow-create": {201}, "flow-approve": {200}, "flow-capture": {200},
            "create": {201}, "approve": {200}, "capture": {200}, "refund": {200}, "get": {200},
            "events": {200}, "ledgers": {200}, "feed": {200}, "capture-before-approval": {400},
            "over-refund": {400}}


class Load:
    def __init__(self, args) -> None:
        self.args = args
        self.urls = {"test": args.test_url, "production": args.prod_url}
        self.counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.unexpected: list[dict] = []
        self.payments: dict[str, dict] = {}  # "env/msn/reference" -> expected aggregate
        self.ids = itertools.count()
        self.rng = random.Random(args.seed)
        self.tokens: dict[str, dict] = {}

    async def call(self, session, op: str, method: str, url: str, **kw) -> tuple[int, object]:
        started = time.perf_counter()
        try:
            async with session.request(method, url, **kw) as resp:
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            status, text = 599, repr(exc)
        self.latency[op].append(time.perf_counter() - started)
        self.counts[op][status] += 1
        if status not in EXPECTED[op] and len(self.unexpected) < 50:
            self.unexpected.append({"op": op, "status": status, "url": url, "body": text[:300]})
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, None

    async def token(self, session, name: str, keyset: dict) -> dict:
        env = keyset["environment"]
        if keyset["type"] in ("management", "accounting"):
            auth = aiohttp.BasicAuth(keyset["client_id"], keyset["client_secret"])
            _, body = await self.call(session, "token", "POST", self.urls[env] + "/miami/v1/token", auth=auth,
                                      data="grant_type=client_credentials",
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
            headers = {"Authorization": "Bearer " + body["access_token"]}
        else:
            _, body = await self.call(session, "token", "POST", self.urls[env] + "/accesstoken/get", headers={
                "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]})
            headers = {"Authorization": "Bearer " + body["access_token"],
                       "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
        self.tokens[name] = headers
        return headers

    async def prepare(self, session) -> None:
        async with session.get(self.urls["test"] + "/_sandbox/keys") as resp:
            keys = await resp.json()
        async with session.get(self.urls["test"] + "/_sandbox/building") as resp:
            building = await resp.json() if resp.status == 200 else {}
        premium = next((p["id"] for p in building.get("partners", []) if p.get("role") == "premium"), None)
        partner = next(k for k in keys if k["type"] == "partner" and (premium is None or k["owner"] == premium)
                       and k["msns"])
        self.prod_msn = partner["msns"][0]
        merchant = next(k for k in keys if k["type"] == "merchant" and k["environment"] == "test")
        self.test_msn = merchant["owner"]
        self.prod_merchant = next(k for k in keys if k["type"] == "merchant" and k["environment"] == "production"
                                  and k["owner"] == self.prod_msn)
        self.keysets = {"partner": partner, "merchant-test": merchant, "merchant-prod": self.prod_merchant}
        for name, keyset in self.keysets.items():
            await self.token(session, name, keyset)
        _, ledgers = await self.call(session, "ledgers", "GET", self.urls["production"] + "/settlement/v1/ledgers",
                                     headers=self.tokens["merchant-prod"])
        self.ledger_id = ledgers["items"][0]["ledgerId"] if ledgers and ledgers.get("items") else ""

    def auth(self, env: str) -> tuple[dict, str]:
        if env == "test":
            return self.tokens["merchant-test"], self.test_msn
        return self.tokens["partner"] | {"Merchant-Serial-Number": self.prod_msn}, self.prod_msn

    async def life(self, session, env: str) -> None:
        """One payment from creation to a partial refund; the expected aggregate is recorded."""
        n = next(self.ids)
        reference = f"load-{self.args.seed}-{n:08d}"
        url, (headers, msn) = self.urls[env], self.auth(env)
        amount = 1000 + (n % 50) * 100
        status, _ = await self.call(session, "create", "POST", f"{url}/epayment/v1/payments",
                                    headers=headers | {"Idempotency-Key": f"c-{reference}"}, json={
                                        "amount": {"currency": "NOK", "value": amount},
                                        "paymentMethod": {"type": "WALLET"}, "reference": reference,
                                        "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"})
        if status != 201:
            return
        key = f"{env}/{msn}/{reference}"
        expected = self.payments[key] = {"amount": amount, "authorized": 0, "captured": 0, "refunded": 0,
                                         "cancelled": 0}
        if n % 7 == 0:  # must fail: nothing is reserved yet
            await self.call(session, "capture-before-approval", "POST",
                            f"{url}/epayment/v1/payments/{reference}/capture", json={
                                "modificationAmount": {"currency": "NOK", "value": 100}},
                            headers=headers | {"Idempotency-Key": f"cb-{reference}"})
        status, _ = await self.call(session, "approve", "POST", f"{url}/_sandbox/payments/{msn}/{reference}/approve")
        if status != 200:
            return
        expected["authorized"] = amount
        first, second = amount // 2, amount // 4
        for i, value in enumerate((first, second)):
            status, _ = await self.call(session, "capture", "POST", f"{url}/epayment/v1/payments/{reference}/capture",
                                        json={"modificationAmount": {"currency": "NOK", "value": value}},
                                        headers=headers | {"Idempotency-Key": f"k{i}-{reference}"})
            if status == 200:
                expected["captured"] += value
        status, _ = await self.call(session, "refund", "POST", f"{url}/epayment/v1/payments/{reference}/refund",
                                    json={"modificationAmount": {"currency": "NOK", "value": 100}},
                                    headers=headers | {"Idempotency-Key": f"r-{reference}"})
        if status == 200:
            expected["refunded"] += 100
        await self.reads(session, env, reference)

    async def reads(self, session, env: str, reference: str) -> None:
        url, (headers, _) = self.urls[env], self.auth(env)
        await self.call(session, "get", "GET", f"{url}/epayment/v1/payments/{reference}", headers=headers)
        await self.call(session, "events", "GET", f"{url}/epayment/v1/payments/{reference}/events", headers=headers)

    async def steady(self, session) -> None:
        """No new payments: reads, a refund that must fail, tokens and reports on the existing ones."""
        key = self.rng.choice(list(self.payments))
        env, _, reference = key.split("/")
        url, (headers, _) = self.urls[env], self.auth(env)
        await self.reads(session, env, reference)
        await self.call(session, "over-refund", "POST", f"{url}/epayment/v1/payments/{reference}/refund",
                        json={"modificationAmount": {"currency": "NOK", "value": 10_000_000}},
                        headers=headers | {"Idempotency-Key": f"o-{next(self.ids)}"})

    async def reports(self, session) -> None:
        headers = self.tokens["merchant-prod"]
        await self.call(session, "ledgers", "GET", self.urls["production"] + "/settlement/v1/ledgers", headers=headers)
        if self.ledger_id:  # the newest page of the ledger's feed
            await self.call(session, "feed", "GET", f"{self.urls['production']}/report/v2/ledgers/{self.ledger_id}/"
                            "funds/feed", headers=headers)

    async def flow(self, session, env: str) -> None:
        """--mode flow: create, approve as the user, capture it all; nothing else."""
        n = next(self.ids)
        reference = f"flow-{self.args.seed}-{n:08d}"
        url, (headers, msn) = self.urls[env], self.auth(env)
        status, _ = await self.call(session, "flow-create", "POST", f"{url}/epayment/v1/payments",
                                    headers=headers | {"Idempotency-Key": f"c-{reference}"}, json={
                                        "amount": {"currency": "NOK", "value": 1000},
                                        "paymentMethod": {"type": "WALLET"}, "reference": reference,
                                        "userFlow": "WEB_REDIRECT", "returnUrl": "https://example.com/back"})
        if status == 201:
            status, _ = await self.call(session, "flow-approve", "POST",
                                        f"{url}/_sandbox/payments/{msn}/{reference}/approve")
        if status == 200:
            await self.call(session, "flow-capture", "POST", f"{url}/epayment/v1/payments/{reference}/capture",
                            json={"modificationAmount": {"currency": "NOK", "value": 1000}},
                            headers=headers | {"Idempotency-Key": f"k-{reference}"})

    async def worker(self, session, w: int, grow_until: float, stop: float) -> None:
        if self.args.mode == "flow":
            while time.monotonic() < stop:
                await self.flow(session, self.args.env)
            return
        for i in itertools.count():
            now = time.monotonic()
            if now >= stop:
                return
            if i % 25 == 24:  # a fresh token now and then, as a real client would
                name = self.rng.choice(list(self.keysets))
                await self.token(session, name, self.keysets[name])
            if i % 10 == 9:
                await self.reports(session)
            if now < grow_until or not self.payments:
                await self.life(session, "production" if (w + i) % 2 else "test")
            else:
                await self.steady(session)

    async def run(self) -> dict:
        connector = aiohttp.TCPConnector(limit=self.args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            await self.prepare(session)
            started = time.monotonic()
            grow_until = started + self.args.seconds * self.args.grow_fraction
            stop = started + self.args.seconds
            await asyncio.gather(*(self.worker(session, w, grow_until, stop) for w in range(self.args.concurrency)))
            elapsed = time.monotonic() - started
        return self.summary(elapsed)

    def summary(self, elapsed: float) -> dict:
        def pct(samples: list[float], q: float) -> float:
            ordered = sorted(samples)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

        return {"seconds": elapsed, "requests": sum(sum(c.values()) for c in self.counts.values()),
                "counts": {op: dict(c) for op, c in self.counts.items()}, "unexpected": self.unexpected,
                "unexpected_count": sum(n for op, c in self.counts.items() for s, n in c.items()
                                        if s not in EXPECTED[op]),
                "latency_ms": {op: {"p50": round(statistics.median(s) * 1000, 3), "p99": round(pct(s, 0.99), 3)}
                               for op, s in self.latency.items() if s},
                "flows_per_second": self.counts["flow-capture"].get(200, 0) / elapsed if elapsed else 0.0,
                "payments": self.payments, "ledgerId": self.ledger_id, "msns": [self.test_msn, self.prod_msn],
                "merchantProd": self.prod_merchant["client_id"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-url", required=True)
    parser.add_argument("--prod-url", required=True)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--grow-fraction", type=float, default=0.5, help="share of the time new payments are made")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("mixed", "flow"), default="mixed",
                        help="flow: only create -> approve -> capture, for the flow-rate benchmark")
    parser.add_argument("--env", choices=("test", "production"), default="test", help="where --mode flow pays")
    args = parser.parse_args()
    json.dump(asyncio.run(Load(args).run()), sys.stdout)


if __name__ == "__main__":
    main()
