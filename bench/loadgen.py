"""A mixed load on a running sandbox, from its own process: ePayment, Recurring, Checkout, Login CIBA, Webhooks, Report.

    python bench/loadgen.py --test-url http://127.0.0.1:8080 --prod-url http://127.0.0.1:8081 --seconds 60

Workers take turns at one payment's life (create, approve as the user, two partial captures, a partial
refund, GET and events), one agreement's (draft, approve as the user, GET, charges; bench/load_apis.py)
and one checkout session's (create, pay on the hosted page, GET, capture its payment), plus tokens and
Report API reads, plus requests that MUST fail (capture before approval, over-refund, a charge due too
soon, capturing a charged charge, CIBA for a user under 15) with the status the API gives for them.
Beside them: CIBA logins polled at the pace the API asks, the virtual clock moved a day at a time so that
charges fall due (then captured and refunded by the merchant), and a webhook receiver registered in both
environments that checks every delivery's signature. After --grow-fraction of the time nothing new is made
(the working set stops growing; new agreements stop a third of that earlier, when the clock jumps a week so
that every charge falls due and is settled first) and the load keeps going on the existing objects.
Prints one JSON object: counts per operation and status, unexpected answers, latencies (p50/p99), and what
every payment, agreement, charge and session should add up to, the webhooks and callbacks expected and
received, and the CIBA tokens, so the caller can check it all against the server.
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
from load_apis import EXPECTED as MORE_EXPECTED
from load_apis import Checkout, Ciba, Clock, Receiver, Recurring, RWLock, covered, register_hooks

#: operation -> statuses that are right for it
EXPECTED = MORE_EXPECTED | {"token": {200}, "flow-create": {201}, "flow-approve": {200}, "flow-capture": {200},
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
        self.wrongs = 0  # right status, wrong content (see `wrong`)
        self.lock, self.ciba_gate = RWLock(), RWLock()  # see bench/load_apis.py: the clock takes both
        self.clock, self.recurring, self.checkout = Clock(self), Recurring(self), Checkout(self)
        self.ciba, self.receiver = Ciba(self), Receiver()
        self.hooks_expected: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.callbacks_expected: dict[str, int] = defaultdict(int)

    def wrong(self, op: str, why: str) -> None:
        """An answer with the right status but the wrong content: counted as unexpected."""
        self.wrongs += 1
        if len(self.unexpected) < 50:
            self.unexpected.append({"op": op, "wrong": why})

    def hook(self, env: str, msn: str, event: str) -> None:
        """One webhook the receiver should get, if the soak's registration covers this sales unit."""
        if event and covered(self, env, msn):
            self.hooks_expected[env][event] += 1

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
        self.partner_msns = list(partner["msns"])
        self.keysets = {"partner": partner, "merchant-test": merchant, "merchant-prod": self.prod_merchant}
        for name, keyset in self.keysets.items():
            await self.token(session, name, keyset)
        _, ledgers = await self.call(session, "ledgers", "GET", self.urls["production"] + "/settlement/v1/ledgers",
                                     headers=self.tokens["merchant-prod"])
        self.ledger_id = ledgers["items"][0]["ledgerId"] if ledgers and ledgers.get("items") else ""
        if self.args.mode == "flow":
            return
        # Recurring: a sales unit of the partner whose configuration allows it (Management API), the test
        # merchant's own when it does; Checkout and Login: the production payments' sales unit.
        self.recurring_msn = ""
        for msn in sorted(self.partner_msns, key=lambda m: m != self.test_msn):
            _, unit = await self.call(session, "management", "GET", f"{self.urls['production']}/management/v1/"
                                      f"sales-units/{msn}", headers=self.tokens["partner"])
            if unit and unit["configuration"].get("recurringAllowed") and any(
                    k["type"] == "merchant" and k["environment"] == "test" and k["owner"] == msn for k in keys):
                self.recurring_msn = msn
                break
        self.checkout_msn = self.prod_msn
        by_owner = {(k["environment"], k["owner"]): k for k in keys if k["type"] == "merchant"}
        self.keysets |= {"recurring-test": by_owner[("test", self.recurring_msn)],
                         "checkout-test": by_owner[("test", self.checkout_msn)],
                         "checkout-production": by_owner[("production", self.checkout_msn)],
                         "login": by_owner[("test", self.checkout_msn)]}
        await self.token(session, "recurring-test", self.keysets["recurring-test"])
        await self.token(session, "checkout-test", self.keysets["checkout-test"])
        _, users = await self.call(session, "users", "GET", self.urls["test"] + "/_sandbox/users")
        self.adults = [u["phone_number"] for u in users if u["age"] >= 18]
        self.adults_no = [u["phone_number"] for u in users if u["age"] >= 18 and u["market"] == "NO"]
        self.minors = [u["phone_number"] for u in users if u["age"] < 15]
        await self.receiver.start()  # bench/load_receiver.py, in its own process
        await register_hooks(self, session)
        await self.clock.read(session)

    async def refresh_tokens(self, session) -> None:
        for name in list(self.tokens):
            await self.token(session, name, self.keysets[name])

    def epayment_auth(self, env: str, msn: str) -> dict:
        """ePayment headers for this sales unit: the partner's keys in production, its merchant keys in test."""
        if env == "production":
            return self.tokens["partner"] | {"Merchant-Serial-Number": msn}
        return self.tokens["merchant-test" if msn == self.test_msn else "checkout-test"]

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
        self.hook(env, msn, "epayments.payment.authorized.v1")
        first, second = amount // 2, amount // 4
        for i, value in enumerate((first, second)):
            status, _ = await self.call(session, "capture", "POST", f"{url}/epayment/v1/payments/{reference}/capture",
                                        json={"modificationAmount": {"currency": "NOK", "value": value}},
                                        headers=headers | {"Idempotency-Key": f"k{i}-{reference}"})
            if status == 200:
                expected["captured"] += value
                self.hook(env, msn, "epayments.payment.captured.v1")
        status, _ = await self.call(session, "refund", "POST", f"{url}/epayment/v1/payments/{reference}/refund",
                                    json={"modificationAmount": {"currency": "NOK", "value": 100}},
                                    headers=headers | {"Idempotency-Key": f"r-{reference}"})
        if status == 200:
            expected["refunded"] += 100
            self.hook(env, msn, "epayments.payment.refunded.v1")
        await self.reads(session, env, reference)

    async def reads(self, session, env: str, reference: str, headers: dict | None = None) -> None:
        url, headers = self.urls[env], headers or self.auth(env)[0]
        await self.call(session, "get", "GET", f"{url}/epayment/v1/payments/{reference}", headers=headers)
        await self.call(session, "events", "GET", f"{url}/epayment/v1/payments/{reference}/events", headers=headers)

    async def steady(self, session) -> None:
        """No new payments: reads, a refund that must fail, tokens and reports on the existing ones."""
        key = self.rng.choice(list(self.payments))
        env, msn, reference = key.split("/")
        url, headers = self.urls[env], self.epayment_auth(env, msn)
        await self.reads(session, env, reference, headers)
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
            env = "production" if (w + i) % 2 else "test"
            turn = (w * 3 + i) % 10  # 0-5 ePayment, 6-7 Recurring, 8-9 Checkout
            async with self.lock.shared():  # the clock moves only between steps (bench/load_apis.py)
                if i % 25 == 24:  # a fresh token now and then, as a real client would
                    name = self.rng.choice(list(self.tokens))
                    await self.token(session, name, self.keysets[name])
                if i % 10 == 9:
                    await self.reports(session)
                if self.recurring.to_settle and (turn in (6, 7) or now >= self.recurring_until):
                    await self.recurring.settle(session)  # after the week's jump: before anything else
                elif now < grow_until or not self.payments:
                    if turn < 6 or (turn < 8 and now >= self.recurring_until):
                        await self.life(session, env)
                    elif turn < 8:
                        await self.recurring.life(session, env)
                    else:
                        await self.checkout.life(session, env)
                elif turn < 6:
                    await self.steady(session)
                elif turn < 8:
                    await self.recurring.steady(session)
                else:
                    await self.checkout.steady(session)

    async def run(self) -> dict:
        connector = aiohttp.TCPConnector(limit=self.args.concurrency + self.args.ciba + 4)
        async with aiohttp.ClientSession(connector=connector) as session:
            await self.prepare(session)
            started = time.monotonic()
            grow_until = started + self.args.seconds * self.args.grow_fraction
            # New agreements stop a third of the growth earlier: the clock then jumps a week, every charge
            # falls due and is settled, all before the working set is fixed.
            self.recurring_until = grow_until - self.args.seconds * self.args.grow_fraction / 3
            stop = started + self.args.seconds
            tasks = [self.worker(session, w, grow_until, stop) for w in range(self.args.concurrency)]
            if self.args.mode == "mixed":
                tasks.append(self.clock.run(session, self.recurring_until, stop))
                tasks += [self.ciba.run(session, lane, stop) for lane in range(self.args.ciba)]
            await asyncio.gather(*tasks)
            elapsed = time.monotonic() - started
            if self.args.mode == "mixed":
                try:
                    await self.drain(session)
                finally:
                    await self.receiver.stop()
        return self.summary(elapsed)

    async def drain(self, session) -> None:
        """Waits (up to --drain seconds) for the webhooks and callbacks still on their way."""
        deadline, receiver = time.monotonic() + self.args.drain, self.receiver
        while True:
            await receiver.read(session)
            hooks = all(receiver.hooks.get(env, {}).get(event, 0) >= n for env, events in self.hooks_expected.items()
                        for event, n in events.items())
            if hooks and all(receiver.callbacks.get(env, 0) >= n for env, n in self.callbacks_expected.items()) \
                    or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.2)

    def summary(self, elapsed: float) -> dict:
        def pct(samples: list[float], q: float) -> float:
            ordered = sorted(samples)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

        body = {"seconds": elapsed, "requests": sum(sum(c.values()) for c in self.counts.values()),
                "counts": {op: dict(c) for op, c in self.counts.items()}, "unexpected": self.unexpected,
                "unexpected_count": self.wrongs + sum(n for op, c in self.counts.items() for s, n in c.items()
                                                      if s not in EXPECTED[op]),
                "latency_ms": {op: {"p50": round(statistics.median(s) * 1000, 3), "p99": round(pct(s, 0.99), 3)}
                               for op, s in self.latency.items() if s},
                "flows_per_second": self.counts["flow-capture"].get(200, 0) / elapsed if elapsed else 0.0,
                "payments": self.payments, "ledgerId": self.ledger_id, "msns": [self.test_msn, self.prod_msn],
                "merchantProd": self.prod_merchant["client_id"]}
        if self.args.mode == "mixed":
            receiver = self.receiver
            body |= {"recurringMsn": self.recurring_msn, "checkoutMsn": self.checkout_msn,
                     "agreements": self.recurring.agreements, "charges": self.recurring.charges,
                     "sessions": self.checkout.sessions, "clockAdvances": self.clock.advances,
                     "ciba": {"approved": self.ciba.approved, "tokens": self.ciba.tokens, "subs": len(self.ciba.subs)},
                     "webhooks": {"expected": self.hooks_expected, "received": receiver.hooks,
                                  "badSignatures": receiver.bad},
                     "callbacks": {"expected": self.callbacks_expected, "received": receiver.callbacks}}
        return body


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
    parser.add_argument("--advance-every", type=float, default=8.0,
                        help="real seconds between clock advances (a day each; a week once nothing new is made)")
    parser.add_argument("--ciba", type=int, default=4, help="CIBA logins in flight at a time")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds to wait for webhooks still on their way")
    args = parser.parse_args()
    json.dump(asyncio.run(Load(args).run()), sys.stdout)


if __name__ == "__main__":
    main()
