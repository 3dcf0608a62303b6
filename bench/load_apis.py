"""The soak's load on the APIs beyond ePayment: Recurring, Checkout, Login CIBA, the clock and webhooks.

Used by bench/loadgen.py (mixed mode); each class takes the `Load` for its HTTP calls, tokens and counts.
What every object should end as is recorded here, in plain JSON, for the soak's books
(tests/evidence/test_soak.py): agreements and charges, checkout sessions, CIBA tokens, webhooks expected.
The merchant's endpoint for webhooks and callbacks is bench/load_receiver.py, in a process of its own.

The virtual clock moves while the load runs (`Clock`), so that recurring charges fall due and are charged.
A clock advance also expires tokens, pending logins and unpaid payments, so the load is coordinated, not
left to chance: every worker's step holds `Load.lock` shared and every CIBA login `Load.ciba_gate` shared;
the clock takes both exclusively (no new steps or logins start while it waits), advances, fetches fresh
tokens, and only then lets the load go on. Each outcome is therefore exact, never "one of several".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

DAY = 86400
#: operation -> statuses that are right for it (merged into loadgen's EXPECTED)
EXPECTED = {
    "management": {200}, "users": {200}, "clock": {200}, "webhook-register": {201},
    "rec-draft": {201}, "rec-approve": {200}, "rec-get": {200}, "rec-charge": {201}, "rec-cancel": {204},
    "rec-capture": {204}, "rec-refund": {204}, "rec-get-charge": {200}, "rec-list-charges": {200},
    "rec-capture-charged": {400}, "rec-charge-too-soon": {400},
    "chk-create": {200}, "chk-pay": {303}, "chk-get": {200}, "chk-capture": {200},
    "ciba-start": {200}, "ciba-minor": {400}, "ciba-approve": {200}, "ciba-reject": {200},
    "ciba-slow-down": {400}, "ciba-pending": {400}, "ciba-token": {200}, "ciba-denied": {400},
    "ciba-again": {400}, "userinfo": {200},
}
#: The webhook events the soak registers for, in both environments.
HOOK_EVENTS = ("epayments.payment.authorized.v1", "epayments.payment.captured.v1", "epayments.payment.refunded.v1",
               "recurring.agreement-activated.v1", "recurring.charge-reserved.v1", "recurring.charge-captured.v1",
               "recurring.charge-refunded.v1", "recurring.charge-failed.v1", "recurring.charge-canceled.v1")
MAGIC_FAILURE = 151  # a test-environment amount whose charge fails ("insufficient funds")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
LOGIN = "/access-management-1.0/access/"


class RWLock:
    """Many holders shared, or one exclusive; a waiting exclusive holder stops new shared ones (no starving)."""

    def __init__(self) -> None:
        self.cond = asyncio.Condition()
        self.readers = 0
        self.writing = False
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def shared(self):
        async with self.cond:
            await self.cond.wait_for(lambda: not self.writing and not self.waiting)
            self.readers += 1
        try:
            yield
        finally:
            async with self.cond:
                self.readers -= 1
                self.cond.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self):
        async with self.cond:
            self.waiting += 1
            try:
                await self.cond.wait_for(lambda: not self.writing and self.readers == 0)
            finally:
                self.waiting -= 1
            self.writing = True
        try:
            yield
        finally:
            async with self.cond:
                self.writing = False
                self.cond.notify_all()


def parse_now(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


def midnight(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp()


class Clock:
    """The virtual clock as the load knows it, and the task that moves it (1 day per step, a week once no new
    agreements are made, so that every charge still waiting falls due at once)."""

    def __init__(self, load) -> None:
        self.load = load
        self.virtual = 0.0  # the virtual time at `mono`
        self.mono = 0.0
        self.advances = 0

    def now(self) -> float:
        return self.virtual + (time.monotonic() - self.mono)

    def today(self) -> date:
        return datetime.fromtimestamp(self.now(), UTC).date()

    def set(self, body: dict | None) -> None:
        if body and "now" in body:
            self.virtual, self.mono = parse_now(body["now"]), time.monotonic()

    async def read(self, session) -> None:
        _, body = await self.load.call(session, "clock", "GET", self.load.urls["test"] + "/_sandbox/clock")
        self.set(body)

    async def run(self, session, jump_at: float, stop: float) -> None:
        every, jumped = self.load.args.advance_every, False
        while True:
            now = time.monotonic()
            wake = now + every if jumped else min(now + every, jump_at)  # the week's jump as agreements stop
            if wake >= stop - 1:
                return
            await asyncio.sleep(max(wake - now, 0))
            steady = time.monotonic() >= jump_at
            seconds = 7 * DAY if steady and not jumped else DAY
            jumped = jumped or steady
            async with self.load.ciba_gate.exclusive(), self.load.lock.exclusive():
                _, body = await self.load.call(session, "clock", "POST", self.load.urls["test"] + "/_sandbox/clock",
                                               json={"advanceSeconds": seconds})
                self.set(body)
                self.advances += 1
                await self.load.refresh_tokens(session)  # those of before may have expired on the virtual clock
                self.load.recurring.fell_due(self.now())


class Recurring:
    """Agreements drafted, approved by the user (control plane) and charged; charges fall due as the clock moves.

    Each agreement gets a DIRECT_CAPTURE and a RESERVE_CAPTURE charge; in test every fourth also one of the
    magic amount that fails, every fifth one that is cancelled before it is due. Once due (the clock), the
    direct one is CHARGED (every other one then partly refunded), the reserved one is captured in two halves
    and partly refunded (every third only half captured)."""

    def __init__(self, load) -> None:
        self.load = load
        self.ids = itertools.count()
        self.agreements: dict[str, dict] = {}  # "env/msn/agreementId" -> what it should be
        self.charges: dict[str, dict] = {}  # "env/msn/agreementId/chargeId" -> what it should end as
        self.waiting: dict[str, dict] = {}  # charges not yet due (by the load's reckoning)
        self.to_settle: list[str] = []  # due charges the merchant still captures or refunds

    def auth(self, env: str) -> dict:
        load = self.load
        if env == "test":
            return dict(load.tokens["recurring-test"])
        return load.tokens["partner"] | {"Merchant-Serial-Number": load.recurring_msn}

    def base(self, env: str) -> str:
        return self.load.urls[env] + "/recurring/v3/agreements"

    async def life(self, session, env: str) -> None:
        load, n = self.load, next(self.ids)
        msn, headers = load.recurring_msn, self.auth(env)
        key = f"rec-{load.args.seed}-{env[0]}-{n}"
        status, body = await load.call(session, "rec-draft", "POST", self.base(env), headers=headers | {
            "Idempotency-Key": key + "-d"}, json={
                "pricing": {"type": "LEGACY", "amount": 49900, "currency": "NOK"},
                "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
                "merchantAgreementUrl": "https://shop.example.com/a", "productName": "Soak Weekly",
                "externalId": key})
        if status != 201:
            return
        agreement_id = body["agreementId"]
        phone = load.adults[n % len(load.adults)]
        status, _ = await load.call(session, "rec-approve", "POST", f"{load.urls[env]}/_sandbox/recurring/{msn}/"
                                    f"agreements/{agreement_id}/approve", json={"phoneNumber": phone})
        if status != 200:
            return
        akey = f"{env}/{msn}/{agreement_id}"
        self.agreements[akey] = {"status": "ACTIVE", "charges": []}
        load.hook(env, msn, "recurring.agreement-activated.v1")
        status, body = await load.call(session, "rec-get", "GET", f"{self.base(env)}/{agreement_id}", headers=headers)
        if status == 200 and body.get("status") != "ACTIVE":
            load.wrong("rec-get", f"{akey} is {body.get('status')}, not ACTIVE")
        today, minimum = load.clock.today(), 1 if env == "test" else 2
        due = (today + timedelta(days=minimum + 1 + n % 3)).isoformat()  # a day's margin: midnight may pass
        plan = [("DIRECT_CAPTURE", 10000 + (n % 40) * 100, False), ("RESERVE_CAPTURE", 20000 + (n % 30) * 100, False)]
        if env == "test" and n % 4 == 0:
            plan.append(("DIRECT_CAPTURE", MAGIC_FAILURE, True))
        for index, (kind, amount, fails) in enumerate(plan):
            status, body = await load.call(session, "rec-charge", "POST", f"{self.base(env)}/{agreement_id}/charges",
                                           headers=headers | {"Idempotency-Key": f"{key}-c{index}"}, json={
                                               "amount": amount, "description": f"Soak {index}", "due": due,
                                               "retryDays": 0, "transactionType": kind})
            if status != 201:
                continue
            ckey = f"{akey}/{body['chargeId']}"
            record = {"amount": amount, "due": due, "type": kind, "fails": fails, "cancelled": False,
                      "processed": False, "captured": 0, "refunded": 0}
            self.charges[ckey] = record
            self.agreements[akey]["charges"].append(body["chargeId"])
            self.waiting[ckey] = record
        if n % 5 == 0 and self.agreements[akey]["charges"]:  # one cancelled before it falls due
            ckey = f"{akey}/{self.agreements[akey]['charges'][0]}"
            status, _ = await load.call(session, "rec-cancel", "DELETE", f"{self.base(env)}/{agreement_id}/charges/"
                                        f"{ckey.rsplit('/', 1)[1]}", headers=headers | {"Idempotency-Key": key + "-x"})
            if status == 204:
                self.charges[ckey]["cancelled"] = True
                self.waiting.pop(ckey, None)
                load.hook(env, msn, "recurring.charge-canceled.v1")
        if n % 7 == 0:  # must fail: a due date of today is too soon
            await load.call(session, "rec-charge-too-soon", "POST", f"{self.base(env)}/{agreement_id}/charges",
                            headers=headers | {"Idempotency-Key": key + "-s"}, json={
                                "amount": 1000, "description": "Too soon", "retryDays": 0,
                                "due": (today - timedelta(days=1)).isoformat(), "transactionType": "DIRECT_CAPTURE"})

    def fell_due(self, now: float) -> None:
        """After a clock advance (no request in flight): the charges whose due date passed were processed."""
        for ckey, record in list(self.waiting.items()):
            if midnight(record["due"]) > now:
                continue
            del self.waiting[ckey]
            record["processed"] = True
            env, msn = ckey.split("/")[:2]
            if record["fails"]:
                self.load.hook(env, msn, "recurring.charge-failed.v1")
                continue
            if record["type"] == "DIRECT_CAPTURE":
                record["captured"] = record["amount"]
                self.load.hook(env, msn, "recurring.charge-captured.v1")
            else:
                self.load.hook(env, msn, "recurring.charge-reserved.v1")
            self.to_settle.append(ckey)

    async def settle(self, session) -> None:
        """The merchant's part once a charge was processed: capture a reserved one, refund some of either."""
        load = self.load
        ckey = self.to_settle.pop()
        record = self.charges[ckey]
        env, msn, agreement_id, charge_id = ckey.split("/")
        url, headers = f"{self.base(env)}/{agreement_id}/charges/{charge_id}", self.auth(env)
        n = int(hashlib.blake2b(ckey.encode(), digest_size=2).hexdigest(), 16)
        if record["type"] == "RESERVE_CAPTURE":
            halves = (record["amount"] // 2, record["amount"] - record["amount"] // 2)
            for i, value in enumerate(halves[:1] if n % 3 == 0 else halves):
                status, _ = await load.call(session, "rec-capture", "POST", url + "/capture", json={
                    "amount": value, "description": "Soak capture"},
                    headers=headers | {"Idempotency-Key": f"cap{i}-{charge_id}"})
                if status == 204:
                    record["captured"] += value
                    load.hook(env, msn, "recurring.charge-captured.v1")
            refund = n % 3 != 0
        else:
            refund = n % 2 == 0
            await load.call(session, "rec-capture-charged", "POST", url + "/capture", json={
                "amount": 100, "description": "Must fail"}, headers=headers | {"Idempotency-Key": f"capx-{charge_id}"})
        if refund:
            status, _ = await load.call(session, "rec-refund", "POST", url + "/refund", json={
                "amount": 500, "description": "Soak refund"}, headers=headers | {"Idempotency-Key": f"ref-{charge_id}"})
            if status == 204:
                record["refunded"] += 500
                load.hook(env, msn, "recurring.charge-refunded.v1")
        await load.call(session, "rec-get-charge", "GET", url, headers=headers)

    async def steady(self, session) -> None:
        """No new agreements: reads of the existing ones (GET agreement, its charges listed, one charge)."""
        load = self.load
        if not self.charges:
            return
        ckey = load.rng.choice(list(self.charges))
        env, _, agreement_id, charge_id = ckey.split("/")
        headers = self.auth(env)
        await load.call(session, "rec-get", "GET", f"{self.base(env)}/{agreement_id}", headers=headers)
        await load.call(session, "rec-list-charges", "GET", f"{self.base(env)}/{agreement_id}/charges", headers=headers)
        await load.call(session, "rec-get-charge", "GET", f"{self.base(env)}/{agreement_id}/charges/{charge_id}",
                        headers=headers)


class Checkout:
    """Sessions created, paid by the user on the hosted page (its form, as a browser posts it), read back, and
    their ePayment payment captured in full; the payment-completed callback comes to the load's receiver."""

    def __init__(self, load) -> None:
        self.load = load
        self.ids = itertools.count()
        self.sessions: dict[str, dict] = {}  # "env/msn/reference" -> what GET session should show

    def headers(self, env: str) -> dict:
        keyset = self.load.keysets[f"checkout-{env}"]
        return {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"],
                "Merchant-Serial-Number": self.load.checkout_msn}

    async def life(self, session, env: str) -> None:
        load, n = self.load, next(self.ids)
        msn, reference = load.checkout_msn, f"chk-{load.args.seed}-{n:07d}"
        url, value = load.urls[env] + "/checkout/v3/session", 5000 + (n % 20) * 100
        status, body = await load.call(session, "chk-create", "POST", url, headers=self.headers(env), json={
            "type": "PAYMENT", "reference": reference,
            "merchantInfo": {"callbackUrl": f"{load.receiver.url}/checkout/{env}", "returnUrl": "https://shop.example.com/r",
                             "callbackAuthorizationToken": f"cb-{reference}"},
            "transaction": {"amount": {"currency": "NOK", "value": value}, "paymentDescription": "Soak socks"}})
        if status != 200:
            return
        token = body["checkoutFrontendUrl"].split("token=", 1)[1]
        status, _ = await load.call(session, "chk-pay", "POST", load.urls[env] + "/_sandbox/checkout/session/approve",
                                    data={"token": token, "payer": load.adults_no[n % len(load.adults_no)]},
                                    allow_redirects=False)
        if status != 303:
            return
        key = f"{env}/{msn}/{reference}"
        record = self.sessions[key] = {"value": value, "captured": 0}
        payment = load.payments[key] = {"amount": value, "authorized": value, "captured": 0, "refunded": 0,
                                        "cancelled": 0}
        load.hook(env, msn, "epayments.payment.authorized.v1")
        load.callbacks_expected[env] += 1
        status, body = await load.call(session, "chk-get", "GET", f"{url}/{reference}", headers=self.headers(env))
        if status == 200 and body.get("sessionState") != "PaymentSuccessful":
            load.wrong("chk-get", f"{key} is {body.get('sessionState')}, not PaymentSuccessful")
        status, _ = await load.call(session, "chk-capture", "POST",
                                    f"{load.urls[env]}/epayment/v1/payments/{reference}/capture",
                                    headers=load.epayment_auth(env, msn) | {"Idempotency-Key": f"k-{reference}"},
                                    json={"modificationAmount": {"currency": "NOK", "value": value}})
        if status == 200:
            record["captured"] = payment["captured"] = value
            load.hook(env, msn, "epayments.payment.captured.v1")

    async def steady(self, session) -> None:
        if self.sessions:
            env, _, reference = self.load.rng.choice(list(self.sessions)).split("/")
            await self.load.call(session, "chk-get", "GET", f"{self.load.urls[env]}/checkout/v3/session/{reference}",
                                 headers=self.headers(env))


class Ciba:
    """Login from phone number: started for a test user, answered on the (virtual) phone through the control
    plane, the token endpoint polled no faster than `interval` (and 5 s slower after a slow_down), the tokens
    used on userinfo. Three kinds in turn: approved at once; polled too early (slow_down) then approved;
    polled while pending then rejected. Every tenth start is for a user under 15 (must fail)."""

    def __init__(self, load) -> None:
        self.load = load
        self.ids = itertools.count()
        self.tokens = 0  # token responses with an access and id token
        self.approved = 0
        self.subs: set[str] = set()

    def auth(self) -> dict:
        keyset = self.load.keysets["login"]
        raw = f"{keyset['client_id']}:{keyset['client_secret']}".encode()
        return FORM | {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def poll(self, session, op: str, auth_req_id: str) -> tuple[int, dict]:
        form = {"auth_req_id": auth_req_id, "grant_type": "urn:openid:params:grant-type:ciba"}
        status, body = await self.load.call(session, op, "POST", self.load.urls["test"] + LOGIN + "oauth2/token",
                                            headers=self.auth(), data=form)
        return status, body or {}

    def expect(self, op: str, body: dict, error: str) -> None:
        if body.get("error") != error:
            self.load.wrong(op, f"error {body.get('error')!r}, not {error!r}")

    async def flow(self, session, lane: int) -> None:
        load, n = self.load, next(self.ids)
        url = load.urls["test"]
        start = url + "/vipps-login-ciba/api/backchannel/authentication"
        if n % 10 == 9 and load.minors:
            status, body = await load.call(session, "ciba-minor", "POST", start, headers=self.auth(), data={
                "login_hint": f"urn:msisdn:{load.minors[0]}", "scope": "openid"})
            if status == 400 and "invalid_user" not in json.dumps(body):
                load.wrong("ciba-minor", f"not invalid_user: {body}")
        phone = load.adults[(lane + n) % len(load.adults)]
        status, body = await load.call(session, "ciba-start", "POST", start, headers=self.auth(), data={
            "login_hint": f"urn:msisdn:{phone}", "scope": "openid name phoneNumber", "binding_message": "SOAK-1"})
        if status != 200:
            return
        auth_req_id, interval = body["auth_req_id"], float(body["interval"])
        kind = n % 3
        answer = url + "/_sandbox/login/ciba/" + ("reject" if kind == 2 else "approve")
        if kind == 1:  # too early: slow_down, and from now on 5 s slower (RFC 8628 / CIBA)
            status, body = await self.poll(session, "ciba-slow-down", auth_req_id)
            self.expect("ciba-slow-down", body, "slow_down")
            interval += 5
        if kind == 2:
            await asyncio.sleep(interval)
            status, body = await self.poll(session, "ciba-pending", auth_req_id)
            self.expect("ciba-pending", body, "authorization_pending")
        status, _ = await load.call(session, "ciba-reject" if kind == 2 else "ciba-approve", "POST", answer,
                                    json={"auth_req_id": auth_req_id})
        if status != 200:
            return
        await asyncio.sleep(interval)
        if kind == 2:
            status, body = await self.poll(session, "ciba-denied", auth_req_id)
            self.expect("ciba-denied", body, "access_denied")
            return
        self.approved += 1
        status, body = await self.poll(session, "ciba-token", auth_req_id)
        if status != 200:
            return
        if not body.get("access_token") or not body.get("id_token"):
            load.wrong("ciba-token", "no access_token or id_token")
            return
        self.tokens += 1
        claims = json.loads(base64.urlsafe_b64decode(body["id_token"].split(".")[1] + "=="))
        if claims.get("auth_req_id") != auth_req_id:
            load.wrong("ciba-token", "the id_token's auth_req_id is another login's")
        self.subs.add(str(claims.get("sub")))
        status, info = await load.call(session, "userinfo", "GET", url + "/vipps-userinfo-api/userinfo/",
                                       headers={"Authorization": "Bearer " + body["access_token"]})
        if status == 200 and (info or {}).get("phone_number") != phone:
            load.wrong("userinfo", "another user's phone number")
        status, body = await self.poll(session, "ciba-again", auth_req_id)  # the tokens come once
        self.expect("ciba-again", body, "invalid_grant")

    async def run(self, session, lane: int, stop: float) -> None:
        while time.monotonic() < stop - 12:  # a login takes up to ~10 s: none is left half done at the end
            async with self.load.ciba_gate.shared():
                await self.flow(session, lane)


class Receiver:
    """The merchant's endpoint: bench/load_receiver.py in a process of its own (so that a busy load does not
    slow the deliveries down), started here, given the registrations' secrets, asked for its counts."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.hooks: dict = {}
        self.callbacks: dict = {}
        self.bad: list[str] = []

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name("load_receiver.py")), stdout=asyncio.subprocess.PIPE)
        assert self.proc.stdout is not None
        self.url = (await self.proc.stdout.readline()).decode().strip()

    async def secrets(self, session, secrets: dict[str, str]) -> None:
        async with session.post(self.url + "/_secrets", json=secrets) as resp:
            resp.raise_for_status()

    async def read(self, session) -> None:
        async with session.get(self.url + "/_counts") as resp:
            body = await resp.json()
        self.hooks, self.callbacks, self.bad = body["hooks"], body["callbacks"], body["bad"]

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


async def register_hooks(load, session) -> None:
    """Two registrations per environment (ePayment's events, Recurring's: two delivery queues): the test
    merchant's sales unit, and in production the partner (all its sales units, no Merchant-Serial-Number)."""
    secrets = {}
    for env, headers in (("test", load.tokens["merchant-test"]), ("production", load.tokens["partner"])):
        for group in ("epayments", "recurring"):
            status, body = await load.call(session, "webhook-register", "POST",
                                           load.urls[env] + "/webhooks/v1/webhooks", headers=headers, json={
                                               "url": f"{load.receiver.url}/hook/{env}/{group}",
                                               "events": [e for e in HOOK_EVENTS if e.startswith(group)]})
            if status == 201:
                secrets[f"{env}/{group}"] = body["secret"]
    await load.receiver.secrets(session, secrets)


def covered(load, env: str, msn: str) -> bool:
    """Whether the soak's registration in `env` gets the events of this sales unit."""
    return msn == load.test_msn if env == "test" else msn in load.partner_msns
