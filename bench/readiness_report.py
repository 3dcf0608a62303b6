"""The readiness report's cost: building it for a sales unit with 100,000 observed requests vs with 10,000.

    python bench/readiness_report.py

Goal (issue 19): under 100 ms at 100,000 logged requests, because the report reads the per-sales-unit summary
(sandbox/readiness/evidence.py), never the request log. The summary keeps at most 2,000 recent objects per sales
unit, so from there on the cost is flat: the ratio against 10,000 requests (2,500 objects) should be about 1.
Both books are fed through the same `observe` and
`on_event` calls the request log and the domain events make; the ratio of the two build times shows whether
the cost grows with the traffic. Also printed: the cost per observed request (the hot-path price), and the
extra cost of the Login routes' evidence (sandbox/readiness/login_evidence.py) per /auth or /token request.
"""

from __future__ import annotations

import statistics
import time

from sandbox.readiness.checklists import CHECKLISTS
from sandbox.readiness.checks import Context
from sandbox.readiness.evidence import EvidenceBook, Proof
from sandbox.readiness.login_evidence import LoginBook
from sandbox.readiness.report import build
from sandbox.readiness.routes import route_of

HEADERS = {"Vipps-System-Name": "acme", "Vipps-System-Version": "1", "Vipps-System-Plugin-Name": "p",
           "Vipps-System-Plugin-Version": "1", "Idempotency-Key": "k"}


def fed(requests: int) -> tuple[EvidenceBook, float]:
    book = EvidenceBook()
    started = time.perf_counter()
    for n in range(requests):
        reference = f"acme-order-{n // 4}"
        if n % 4 == 0:
            book.on_event("epayment.created", {"env": "test", "msn": "123456", "reference": reference,
                                               "amount": {"value": 1000}}, float(n))
            route, method, path, match = "epayment.create", "POST", "/epayment/v1/payments", {}
        else:
            route, method = "epayment.get", "GET"
            path, match = f"/epayment/v1/payments/{reference}", {"reference": reference}
        book.observe(env="test", msn="123456", route=route, api="epayment", method=method, path=path, status=200,
                     headers=HEADERS, match=match, key_type="merchant", client_id="c", request_id=n,
                     when=float(n), wall=float(n), fault=False)
    return book, (time.perf_counter() - started) / requests


def login_fed(requests: int = 20_000) -> float:
    """The Login routes' extra evidence (L-4, L-7, L-9, L-11): /oauth2/auth with a fresh state each time, the
    code exchange, a discovery fetch every 50 logins. Seconds per observed Login request."""
    logins = LoginBook()
    registered = ["http://127.0.0.1/callback"]
    started = time.perf_counter()
    for n in range(requests):
        proof = Proof(n, None, "2026-12-02T00:00:00.000000Z", float(n))
        if n % 50 == 0:
            logins.observe(env="test", msn=None, route="login.discovery", peer="10.0.0.1", query={}, form=None,
                           registered=None, status=200, proof=proof, when=float(n))
        query = {"redirect_uri": "http://127.0.0.1:5000/callback", "state": f"state-{n}", "code_challenge": "x" * 43,
                 "code_challenge_method": "S256"}
        logins.observe(env="test", msn="123456", route="login.auth", peer="10.0.0.1", query=query, form=None,
                       registered=registered, status=302, proof=proof, when=float(n))
        logins.observe(env="test", msn="123456", route="login.token", peer="10.0.0.1", query={},
                       form={"grant_type": "authorization_code", "redirect_uri": "http://127.0.0.1:5000/callback"},
                       registered=None, status=200, proof=proof, when=float(n))
    return (time.perf_counter() - started) / (2 * requests)


def build_ms(book: EvidenceBook, rounds: int = 21) -> float:
    times = []
    for _ in range(rounds):
        ctx = Context(msn="123456", units=[("test", book.units[("test", "123456")])], token_calls=1,
                      client_calls=100, route_of=route_of)
        started = time.perf_counter()
        build(ctx, list(CHECKLISTS))
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    small, _ = fed(10_000)
    large, per_request = fed(100_000)
    small_ms, large_ms = build_ms(small), build_ms(large)
    print(f"{'row':<52} {'value':>12} {'baseline':>12} {'ratio':>7}  goal")
    print(f"{'report build, 100k requests vs 10k (ms, median)':<52} {large_ms:>12.2f} {small_ms:>12.2f} "
          f"{large_ms / small_ms:>7.2f}  < 100 ms")
    print(f"{'observe: cost per request (µs)':<52} {per_request * 1e6:>12.2f}")
    print(f"{'observe, Login routes: extra cost per request (µs)':<52} {login_fed() * 1e6:>12.2f}")


if __name__ == "__main__":
    main()
