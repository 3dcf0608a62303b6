"""The soak's books (tests/evidence/test_soak.py): what bench/loadgen.py recorded, checked against the server.

- every payment: its aggregate == the sums of its event log == what the client did;
- every agreement ACTIVE with exactly the charges the client made (listed), every charge in the state and with
  the amounts the client's record says (derived from the clock: DUE until its due date, then CHARGED, RESERVED
  and captured, FAILED for the magic amount, CANCELLED), its history adding up to its summary;
- every checkout session PaymentSuccessful, its payment's amount and captured amount as the client's;
- each production ledger's captures and refunds == the production payments' and charges' of that sales unit.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import aiohttp


def midnight(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC).timestamp()


def expected_charge(record: dict, now: float) -> tuple[str, int, int, int]:
    """(status, captured, refunded, cancelled) a charge should show at virtual time `now`."""
    if record["cancelled"]:
        return "CANCELLED", 0, 0, record["amount"]
    if midnight(record["due"]) > now:
        return "DUE", 0, 0, 0
    if record["fails"]:
        return "FAILED", 0, 0, 0
    captured, refunded = record["captured"], record["refunded"]
    if record["type"] == "DIRECT_CAPTURE":
        captured = record["amount"]  # charged on the due date (also when that came after the load stopped)
    if refunded:
        return ("REFUNDED" if refunded == captured else "PARTIALLY_REFUNDED"), captured, refunded, 0
    if captured == 0:
        return "RESERVED", 0, 0, 0
    return ("CHARGED" if captured == record["amount"] else "PARTIALLY_CAPTURED"), captured, 0, 0


def event_sums(events: list[dict]) -> dict[str, int]:
    total = {"AUTHORIZED": 0, "CAPTURED": 0, "REFUNDED": 0, "CANCELLED": 0}
    for event in events:
        if event["success"] and event["name"] in total:
            total[event["name"]] += event["amount"]["value"]
    return total


class Books:
    def __init__(self, session: aiohttp.ClientSession, urls: dict[str, str], report: dict) -> None:
        self.session, self.urls, self.report = session, urls, report
        self.mismatches: list[str] = []
        self.totals: dict[str, dict[str, int]] = {}  # production MSN -> captured/refunded by the APIs
        self.headers: dict[tuple[str, str], dict] = {}
        self.keys: dict[tuple[str, str], dict] = {}

    async def prepare(self) -> None:
        async with self.session.get(self.urls["test"] + "/_sandbox/keys") as resp:
            rows = await resp.json()
        self.keys = {(k["environment"], k["owner"]): k for k in rows if k["type"] == "merchant"}
        self.partner = next(k for k in rows if k["type"] == "partner" and self.report["recurringMsn"] in k["msns"])
        async with self.session.get(self.urls["test"] + "/_sandbox/clock") as resp:
            self.now = datetime.strptime((await resp.json())["now"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=UTC).timestamp()

    async def auth(self, env: str, owner: str, partner_msn: str | None = None) -> dict:
        """Bearer headers of the merchant keys of `owner` (or the partner's, acting for `partner_msn`)."""
        name = (env, owner if partner_msn is None else "partner")
        if name not in self.headers:
            keyset = self.keys[(env, owner)] if partner_msn is None else self.partner
            async with self.session.post(self.urls[env] + "/accesstoken/get", headers={
                    "client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                    "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}) as resp:
                body = await resp.json()
            self.headers[name] = {"Authorization": "Bearer " + body["access_token"],
                                  "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]}
        headers = dict(self.headers[name])
        if partner_msn is not None:
            headers["Merchant-Serial-Number"] = partner_msn
        return headers

    def add(self, env: str, msn: str, captured: int, refunded: int) -> None:
        if env == "production":
            total = self.totals.setdefault(msn, {"captured": 0, "refunded": 0})
            total["captured"] += captured
            total["refunded"] += refunded

    async def get(self, url: str, headers: dict | None = None) -> tuple[int, object, dict]:
        async with self.session.get(url, headers=headers) as resp:
            return resp.status, await resp.json(), dict(resp.headers)

    async def gather(self, jobs) -> None:
        jobs = list(jobs)
        for i in range(0, len(jobs), 256):
            await asyncio.gather(*jobs[i:i + 256])

    # -- ePayment (the load's own payments and those Checkout made) -----------------------------------
    async def payment(self, key: str, expected: dict) -> None:
        env, msn, reference = key.split("/")
        headers = await self.auth(env, msn)
        base = f"{self.urls[env]}/epayment/v1/payments/{reference}"
        _, payment, _ = await self.get(base, headers)
        _, events, _ = await self.get(base + "/events", headers)
        aggregate = {k: v["value"] for k, v in payment["aggregate"].items()}
        logged = event_sums(events)
        seen = (aggregate["authorizedAmount"], aggregate["capturedAmount"], aggregate["refundedAmount"],
                aggregate["cancelledAmount"])
        from_events = (logged["AUTHORIZED"], logged["CAPTURED"], logged["REFUNDED"], logged["CANCELLED"])
        client = (expected["authorized"], expected["captured"], expected["refunded"], expected["cancelled"])
        if not seen == from_events == client:
            self.mismatches.append(f"{key}: aggregate {seen}, events {from_events}, client {client}")
        self.add(env, msn, aggregate["capturedAmount"], aggregate["refundedAmount"])

    # -- Recurring ------------------------------------------------------------------------------------
    def recurring_headers(self, env: str, msn: str):
        return self.auth(env, msn) if env == "test" else self.auth(env, "", partner_msn=msn)

    async def agreement(self, key: str, expected: dict) -> None:
        env, msn, agreement_id = key.split("/")
        headers = await self.recurring_headers(env, msn)
        base = f"{self.urls[env]}/recurring/v3/agreements/{agreement_id}"
        status, agreement, _ = await self.get(base, headers)
        if status != 200 or agreement["status"] != expected["status"]:
            self.mismatches.append(f"{key}: agreement {status} {agreement.get('status')}, client {expected['status']}")
        status, listed, _ = await self.get(base + "/charges", headers)
        ids = sorted(c["id"] for c in listed) if status == 200 else None
        if ids != sorted(expected["charges"]):
            self.mismatches.append(f"{key}: charges listed {ids}, client {sorted(expected['charges'])}")

    async def charge(self, key: str, record: dict) -> None:
        env, msn, agreement_id, charge_id = key.split("/")
        headers = await self.recurring_headers(env, msn)
        status, charge, _ = await self.get(f"{self.urls[env]}/recurring/v3/agreements/{agreement_id}/charges/"
                                           f"{charge_id}", headers)
        if status != 200:
            self.mismatches.append(f"{key}: GET charge {status}")
            return
        summary = charge["summary"]
        seen = (charge["status"], summary["captured"], summary["refunded"], summary["cancelled"])
        history = {"CAPTURE": 0, "REFUND": 0, "CANCEL": 0}
        for entry in charge["history"]:
            if entry["success"] and entry["event"] in history:
                history[entry["event"]] += entry["amount"]
        from_history = (charge["status"], history["CAPTURE"], history["REFUND"], history["CANCEL"])
        client = expected_charge(record, self.now)
        if not seen == from_history == client or charge["amount"] != record["amount"]:
            self.mismatches.append(f"{key}: charge {seen}, history {from_history}, client {client}")
        self.add(env, msn, summary["captured"], summary["refunded"])

    # -- Checkout -------------------------------------------------------------------------------------
    async def checkout(self, key: str, expected: dict) -> None:
        env, msn, reference = key.split("/")
        keyset = self.keys[(env, msn)]
        headers = {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
                   "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"], "Merchant-Serial-Number": msn}
        status, body, _ = await self.get(f"{self.urls[env]}/checkout/v3/session/{reference}", headers)
        details = body.get("paymentDetails") or {} if status == 200 else {}
        seen = (body.get("sessionState"), details.get("amount", {}).get("value"),
                details.get("aggregate", {}).get("capturedAmount", {}).get("value"))
        if seen != ("PaymentSuccessful", expected["value"], expected["captured"]):
            self.mismatches.append(f"{key}: session {seen}, client {expected}")

    # -- the Report API -------------------------------------------------------------------------------
    async def ledger(self, msn: str) -> dict[str, int]:
        """The sums of the capture and refund entries of the sales unit's production ledger (every page)."""
        headers = await self.auth("production", msn)
        _, ledgers, _ = await self.get(self.urls["production"] + "/settlement/v1/ledgers", headers)
        ledger_id = ledgers["items"][0]["ledgerId"]
        sums, cursor = {"capture": 0, "refund": 0}, None
        feed = f"{self.urls['production']}/report/v2/ledgers/{ledger_id}/funds/feed"
        while True:
            async with self.session.get(feed, params={"cursor": cursor} if cursor else None, headers=headers) as resp:
                page = await resp.json()
            for item in page["items"]:
                if item["entryType"] in sums:
                    sums[item["entryType"]] += item["amount"]
            if page.get("tryLater") or not page["items"]:
                return sums
            cursor = page["cursor"]

    async def check(self) -> dict:
        await self.prepare()
        report = self.report
        await self.gather(self.payment(k, v) for k, v in report["payments"].items())
        await self.gather(self.agreement(k, v) for k, v in report["agreements"].items())
        await self.gather(self.charge(k, v) for k, v in report["charges"].items())
        await self.gather(self.checkout(k, v) for k, v in report["sessions"].items())
        ledgers = {}
        for msn, total in self.totals.items():
            sums = await self.ledger(msn)
            ledgers[msn] = {"captured": total["captured"], "refunded": total["refunded"],
                            "ledger_capture": sums["capture"], "ledger_refund": sums["refund"]}
        return ledgers


async def books(urls: dict[str, str], report: dict) -> tuple[list[str], dict]:
    """Every check above; returns the mismatches and, per production sales unit, the API and ledger totals."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
        checker = Books(session, urls, report)
        ledgers = await checker.check()
        return checker.mismatches, ledgers
