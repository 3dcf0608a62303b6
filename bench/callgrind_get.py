"""Instructions per authorized GET payment and GET agreement, counted by callgrind: the stable figure on a noisy VM.

    python bench/callgrind_get.py [--requests 2000] [--repo DIR] [--only payment|agreement|discovery|jwks] [--keep DIR]

The server runs under `valgrind --tool=callgrind` as `python -m sandbox serve` (from --repo, default this
checkout, so an older checkout can be measured with the same script); a client in this process sets up one
approved payment, sends 100 keep-alive GETs of it, waits until the server is idle (the spec-warming thread
done), then zeroes the counters (`callgrind_control -z`), sends N GETs and dumps them (`callgrind_control
-d`): Ir of that dump / N is the cost of one GET, and nothing else is in it. (An earlier version took
(Ir(2N) - Ir(N)) / N over two whole runs; their start-up differed by tens of millions of instructions from
run to run, the spec-warming thread racing the first requests among others, so one commit measured anywhere
from 315k to 492k per GET at N = 1000. Counted over the loop only it repeats within 1%.) The sandbox runs
with --state and a signing key made here, and PYTHONHASHSEED=0. The baseline is a bare aiohttp handler
answering the same JSON body to the same request (the same headers: parsing them is aiohttp's cost, not the
sandbox's), measured the same way in the same run; the ratio is bare / sandbox. The same for
`GET /recurring/v3/agreements/{agreementId}` of an approved agreement (drafted over HTTP, approved through the
control plane), against a bare handler answering that agreement's body. `--keep DIR` keeps each loop's dump
(for `callgrind_annotate`). Needs Debian's valgrind (`apt-get install valgrind`). Takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()

BARE_SERVER = """
import json, sys
from aiohttp import web
BODY = json.dumps({"aggregate": {k: {"currency": "NOK", "value": 1000} for k in
                   ("authorizedAmount", "cancelledAmount", "capturedAmount", "refundedAmount")},
                   "amount": {"currency": "NOK", "value": 1000}, "state": "AUTHORIZED",
                   "paymentMethod": {"type": "WALLET"}, "profile": {}, "pspReference": "0123456789",
                   "reference": "bench-ref-000001"})
app = web.Application()
app.router.add_get("/_sandbox/health", lambda r: web.json_response({"status": "ok"}))
app.router.add_get("/payment", lambda r: web.Response(text=BODY, content_type="application/json"))
AGREEMENT = sys.argv[2] if len(sys.argv) > 2 else BODY
for name in ("agreement", "discovery", "jwks"):
    app.router.add_get("/" + name, lambda r: web.Response(text=AGREEMENT, content_type="application/json"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(b"GET /_sandbox/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"no server on port {port}")


class Connection:
    """One keep-alive HTTP/1.1 connection that reads whole responses (Content-Length bodies)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buffer = b""

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(self.buffer) < length:
            self.buffer += self._recv()
        payload, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(head.split(b" ", 2)[1]), payload

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def close(self) -> None:
        self.sock.close()


def merchant_headers(conn: Connection, keys: dict) -> dict[str, str] | None:
    status, body = conn.request("POST", "/accesstoken/get", {
        "client_id": keys["client_id"], "client_secret": keys["client_secret"],
        "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]})
    if status != 200:
        return None
    return {"Authorization": f"Bearer {json.loads(body)['access_token']}",
            "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"], "Merchant-Serial-Number": keys["owner"],
            "Vipps-System-Name": "bench", "Vipps-System-Version": "1",
            "Vipps-System-Plugin-Name": "bench", "Vipps-System-Plugin-Version": "1"}


def sandbox_get(port: int, what: str = "payment") -> tuple[str, dict[str, str]]:
    """Token, create, approve over HTTP (the same on every checkout): the path and headers of one GET.
    Takes the first merchant test keys whose sales unit can take a payment (or draft an agreement)."""
    if what == "agreement":
        return sandbox_get_agreement(port)
    if what in LOGIN_DOCUMENTS:  # Login's discovery and JWKS: no credentials
        return LOGIN_DOCUMENTS[what], {}
    conn = Connection(port)
    status, body = conn.request("GET", "/_sandbox/keys?type=merchant&env=test", {})
    assert status == 200, body
    create = json.dumps({"amount": {"currency": "NOK", "value": 1000}, "paymentMethod": {"type": "WALLET"},
                         "reference": "callgrind-0001", "userFlow": "WEB_REDIRECT",
                         "returnUrl": "https://example.com/back"}).encode()
    for keys in json.loads(body):
        msn = keys["owner"]
        status, body = conn.request("POST", "/accesstoken/get", {
            "client_id": keys["client_id"], "client_secret": keys["client_secret"],
            "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"]})
        if status != 200:
            continue
        headers = {"Authorization": f"Bearer {json.loads(body)['access_token']}",
                   "Ocp-Apim-Subscription-Key": keys["subscription_key_primary"], "Merchant-Serial-Number": msn,
                   "Vipps-System-Name": "bench", "Vipps-System-Version": "1",
                   "Vipps-System-Plugin-Name": "bench", "Vipps-System-Plugin-Version": "1"}
        status, body = conn.request("POST", "/epayment/v1/payments", {
            **headers, "Idempotency-Key": "cg-1", "Content-Type": "application/json"}, create)
        if status != 201:
            continue
        status, body = conn.request("POST", f"/_sandbox/payments/{msn}/callgrind-0001/approve", {})
        assert status == 200, body
        conn.close()
        return "/epayment/v1/payments/callgrind-0001", headers
    raise RuntimeError("no merchant test keys could create a payment")


LOGIN_DOCUMENTS = {"discovery": "/access-management-1.0/access/.well-known/openid-configuration",
                   "jwks": "/access-management-1.0/access/.well-known/jwks.json"}
DRAFT = json.dumps({"pricing": {"type": "LEGACY", "amount": 9900, "currency": "NOK"},
                    "interval": {"unit": "MONTH", "count": 1}, "merchantRedirectUrl": "https://shop.example.com/r",
                    "merchantAgreementUrl": "https://shop.example.com/a",
                    "productName": "Morgenavisen Digital"}).encode()


def sandbox_get_agreement(port: int) -> tuple[str, dict[str, str]]:
    """Token, draft, approve (control plane) over HTTP: the path and headers of one GET agreement. Takes the
    first merchant test keys whose sales unit may use the Recurring API."""
    conn = Connection(port)
    status, body = conn.request("GET", "/_sandbox/keys?type=merchant&env=test", {})
    assert status == 200, body
    for keys in json.loads(body):
        headers = merchant_headers(conn, keys)
        if headers is None:
            continue
        status, body = conn.request("POST", "/recurring/v3/agreements", {
            **headers, "Idempotency-Key": "cg-1", "Content-Type": "application/json"}, DRAFT)
        if status != 201:
            continue
        agreement_id = json.loads(body)["agreementId"]
        status, body = conn.request("POST", f"/_sandbox/recurring/{keys['owner']}/agreements/{agreement_id}/approve",
                                    {})
        assert status == 200, body
        conn.close()
        return f"/recurring/v3/agreements/{agreement_id}", headers
    raise RuntimeError("no merchant test keys could draft an agreement")


WHAT = ("payment", "agreement", *LOGIN_DOCUMENTS)


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wait_idle(pid: int, seconds: float = 300) -> None:
    """Until the process has used (almost) no CPU for 3 s: start-up work in threads is done."""
    deadline, last, still = time.monotonic() + seconds, cpu_ticks(pid), 0
    while still < 3 and time.monotonic() < deadline:
        time.sleep(1)
        now = cpu_ticks(pid)
        still, last = (still + 1 if now - last <= 2 else 0), now


def instructions(cmd: list[str], port: int, requests: int, sandbox: bool, cwd: Path, what: str = "payment",
                 keep: Path | None = None, same_headers: dict[str, str] | None = None) -> tuple[int, bytes, dict]:
    """Instructions (Ir) one server process spent answering `requests` keep-alive GETs, and nothing else; and
    the body of the GET."""
    work = Path(tempfile.mkdtemp(prefix="callgrind-"))
    out = work / "out"
    if sandbox:  # a kept signing key: RSA key generation takes a random number of instructions
        state = work / "state"
        state.mkdir(mode=0o700)
        (state / "signing-key.pem").write_text(SIGNING_KEY)
        (state / "signing-key.pem").chmod(0o600)
        cmd = [*cmd, "--state", str(state)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *cmd],
                            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(port)
        path, headers = sandbox_get(port, what) if sandbox else (f"/{what}", same_headers or {})
        conn = Connection(port)
        for _ in range(100):  # warm: first-use caches, lazily made objects
            status, payload = conn.request("GET", path, headers)
            assert status == 200, payload
        wait_idle(proc.pid)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        for _ in range(requests):
            status, _ = conn.request("GET", path, headers)
            assert status == 200
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
        conn.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    dumps = sorted(p for p in work.glob("out.*"))  # the dump of the loop: out.<pid>.1 (out itself is the rest)
    if not dumps:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError("callgrind_control -d wrote no dump")
    text = dumps[0].read_text(errors="replace")
    total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copy(dumps[0], keep / f"callgrind.{what}.{'sandbox' if sandbox else 'bare'}")
    shutil.rmtree(work, ignore_errors=True)
    if total is None:
        raise RuntimeError("callgrind wrote no totals (did the server exit cleanly?)")
    return int(total.group(1)), payload, headers


def per_request(cmd_for, requests: int, sandbox: bool, cwd: Path, what: str = "payment",
                keep: Path | None = None, same_headers: dict[str, str] | None = None) -> tuple[float, bytes, dict]:
    port = free_port()
    count, body, headers = instructions(cmd_for(port), port, requests, sandbox, cwd, what, keep, same_headers)
    return count / requests, body, headers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="N: the GETs counted")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout whose sandbox is measured")
    parser.add_argument("--only", choices=WHAT, help="measure one GET only")
    parser.add_argument("--keep", type=Path, help="keep each loop's callgrind dump in this directory")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is not installed (apt-get install valgrind)")
    repo = args.repo.resolve()

    def sandbox_cmd(port: int) -> list[str]:
        return [sys.executable, "-m", "sandbox", "serve", "--port", str(port), "--prod-port", str(free_port())]

    print(f"checkout: {repo.name}; {args.requests} GETs counted (after 100 not counted)")
    for what in WHAT:
        if args.only is None and what in LOGIN_DOCUMENTS or args.only not in (None, what):
            continue
        ours, body, headers = per_request(sandbox_cmd, args.requests, True, repo, what, args.keep)

        def bare_cmd(port: int, body: bytes = body) -> list[str]:
            return [sys.executable, "-c", BARE_SERVER, str(port), body.decode()]

        bare, bare_body, _ = per_request(bare_cmd, args.requests, False, repo, what, args.keep, headers)
        print(f"authorized GET {what}: {ours / 1000:.0f}k instructions per request ({len(body)}-byte body)")
        print(f"bare aiohttp handler:   {bare / 1000:.0f}k instructions per request ({len(bare_body)}-byte body)")
        print(f"ratio bare / sandbox:   {bare / ours:.2f}", flush=True)


if __name__ == "__main__":
    main()
