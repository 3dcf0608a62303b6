"""The "payment completed" callback: the session, POSTed to `merchantInfo.callbackUrl` once its payment ends.

Sent with `Authorization: <callbackAuthorizationToken>` (verbatim, as the reference says), retried on a non-2xx
answer or no answer, at most MAX_ATTEMPTS times in all, RETRY_SECONDS apart on the virtual clock (a test moves
the clock; it need not wait). Only to URLs the outgoing-URL rules allow (sandbox/gateway/targets.py: never the
sandbox's own control plane, only its inbox; https except on loopback; private addresses only with
--webhook-allow-private), every connection's addresses checked again (GuardedResolver), never following a
redirect, carrying the delivery header the front door refuses on /_sandbox/ (sandbox/gateway/delivery_guard.py).
The body is the session as GET returns it (UNCERTAIN: the spec has no callback section). The attempt log never
holds the token: it is the merchant's secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable

import aiohttp
from yarl import URL

from sandbox.core.clock import VirtualClock, iso_utc
from sandbox.gateway.delivery_guard import delivery_headers
from sandbox.gateway.targets import GuardedResolver, Rules, TargetError, parse

log = logging.getLogger("sandbox")

MAX_ATTEMPTS = 3  # "retries happen on non-2xx, at most 3" (reference section 5)
RETRY_SECONDS = (5.0, 10.0)  # after the first and the second failed attempt
TIMEOUT_SECONDS = 5.0
CLOCK_POLL_SECONDS = 0.02
LOG_SIZE = 1000
OPTIONS_MAX_BYTES = 256 * 1024


class Callbacks:
    """Delivers the callbacks in the background, one task each, and keeps the attempt log (bounded)."""

    def __init__(self, clock: VirtualClock, rules: Rules) -> None:
        self.clock = clock
        self.rules = rules
        self.log: deque[dict] = deque(maxlen=LOG_SIZE)
        self._tasks: set[asyncio.Task] = set()

    def send(self, url: str, token: str, body: Callable[[], dict], reference: str) -> None:
        """Starts the delivery of `body()` (read at each attempt: the session as it is then) to `url`."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the server's loop (a direct backend call): nothing to deliver with
            return
        task = loop.create_task(self._deliver(url, token, body, reference))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def clear(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        self.log.clear()

    def attempts(self, reference: str | None = None) -> list[dict]:
        return [dict(a) for a in self.log if reference is None or a["reference"] == reference]

    async def _deliver(self, url: str, token: str, body: Callable[[], dict], reference: str) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            record = {"reference": reference, "url": url, "attempt": attempt, "at": iso_utc(self.clock.time())}
            record.update(await self._attempt(url, token, json.dumps(body()).encode()))
            self.log.append(record)
            if record["outcome"] in ("delivered", "refused"):
                return
            if attempt == MAX_ATTEMPTS:
                record["outcome"] += " (gave up)"
                return
            due = self.clock.time() + RETRY_SECONDS[attempt - 1]
            record["nextAttemptAt"] = iso_utc(due)
            while self.clock.time() < due:  # the virtual clock: time passes, or a test moves it
                await asyncio.sleep(min(CLOCK_POLL_SECONDS, max(due - self.clock.time(), 0.001)))

    async def _attempt(self, url: str, token: str, data: bytes) -> dict:
        try:
            target = parse(url)
            self.rules.check_static(target)
        except TargetError as exc:
            return {"outcome": "refused", "error": f"The sandbox does not call this callback URL: {exc}"}
        headers = {"Content-Type": "application/json", "Authorization": token, **delivery_headers()}
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.rules, target), limit=1, force_close=True)
        try:
            async with aiohttp.ClientSession(connector=connector) as session, session.post(
                    URL(url, encoded=True), data=data, headers=headers, allow_redirects=False,
                    timeout=aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)) as response:
                status = response.status
        except TimeoutError:
            return {"outcome": "failed", "error": f"no answer within {TIMEOUT_SECONDS:g} s"}
        except (aiohttp.ClientError, OSError) as exc:
            return {"outcome": "failed", "error": f"could not be reached ({type(exc).__name__})"}
        return {"outcome": "delivered" if 200 <= status < 300 else "failed", "status": status}


async def fetch_options(rules: Rules, url: str, token: str, address: dict,
                        timeout: float = TIMEOUT_SECONDS) -> tuple[list[dict] | None, str | None]:
    """The dynamic-logistics callback: POSTs the address (MerchantLogisticsCallbackRequestBody) to the merchant's
    `logistics.dynamicOptionsCallback`, with `Authorization: <callbackAuthorizationToken>` (UNCERTAIN: the reference
    names the token for the payment-completed callback only). Returns (the options the merchant offered, None) or
    (None, why not), under the same outgoing-URL rules as the payment-completed callback."""
    try:
        target = parse(url)
        rules.check_static(target)
    except TargetError as exc:
        return None, f"The sandbox does not call this callback URL: {exc}"
    headers = {"Content-Type": "application/json", "Accept": "application/json", "Authorization": token,
               **delivery_headers()}
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(rules, target), limit=1, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector) as session, session.post(
                URL(url, encoded=True), data=json.dumps(address).encode(), headers=headers, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            status = response.status
            raw = await response.content.read(OPTIONS_MAX_BYTES + 1)
    except TimeoutError:
        return None, f"The merchant's logistics callback gave no answer within {timeout:g} s."
    except (aiohttp.ClientError, OSError) as exc:
        return None, f"The merchant's logistics callback could not be reached ({type(exc).__name__})."
    if status != 200 or len(raw) > OPTIONS_MAX_BYTES:
        return None, f"The merchant's logistics callback answered HTTP {status} (200 with the options expected)."
    try:
        options = json.loads(raw)
    except ValueError:
        return None, "The merchant's logistics callback did not answer JSON."
    if not isinstance(options, list) or not options:
        return None, "The merchant's logistics callback answered no list of options."
    return options, None
