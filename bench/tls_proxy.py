"""What HTTPS and the proxy cost, against the plain port, in one run of one server (run by hand).

    python bench/tls_proxy.py [--seconds 10] [--connections 4] [--fresh 300]

One `python -m sandbox serve --tls-port --proxy-port` process (a CA in a temporary directory); one approved
payment; then the same authorized `GET /epayment/v1/payments/{reference}`:

1. **keep-alive**, with wrk (it speaks https): N connections for S seconds on the plain port, then on the TLS
   port, interleaved for R rounds (medians). Goal: TLS costs at most 1.5x plain.
2. **a fresh connection per request**, from this process, one at a time: on the plain port (TCP), on the TLS
   port (TCP + handshake), and through the proxy (TCP + CONNECT + handshake in the tunnel). Goal: the proxy
   costs at most 2x the TLS port (its extra is the CONNECT round trip; the handshake is the TLS port's too).

Each figure is given two ways: the client's wall time per request (or wrk's requests per second), and the
server process's own CPU time per request (utime + stime from /proc, the steadier figure on a shared VM: the
client's work is not in it). Ratios are of the same kind of figure, measured minutes apart in one run.
Linux only (/proc); needs wrk for part 1 (skipped with a note without it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from callgrind_get import Connection, cpu_ticks, free_port, sandbox_get, wait_idle, wait_ready  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    """Requests per second wrk reached (one thread, keep-alive)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non_2xx:
        raise RuntimeError(f"wrk got {non_2xx.group(1)} error answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def request_bytes(path: str, headers: dict[str, str], host: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Connection: close", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_all(sock: socket.socket | ssl.SSLSocket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def fresh_plain(port: int, path: str, headers: dict[str, str]) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_bytes(path, headers, "127.0.0.1"))
        return read_all(sock)


def fresh_tls(port: int, path: str, headers: dict[str, str], context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            context.wrap_socket(raw, server_hostname="apitest.vipps.no") as sock:
        sock.sendall(request_bytes(path, headers, "apitest.vipps.no"))
        return read_all(sock)


def fresh_proxy(port: int, path: str, headers: dict[str, str], context: ssl.SSLContext) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as raw:
        raw.sendall(b"CONNECT apitest.vipps.no:443 HTTP/1.1\r\nHost: apitest.vipps.no:443\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += raw.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        with context.wrap_socket(raw, server_hostname="apitest.vipps.no") as sock:
            sock.sendall(request_bytes(path, headers, "apitest.vipps.no"))
            return read_all(sock)


def measure(pid: int, count: int, call) -> tuple[float, float]:
    """(client wall ms, server CPU ms) per request over `count` calls, after 20 to warm up."""
    for _ in range(20):
        assert call().startswith(b"HTTP/1.1 200")
    ticks, started = cpu_ticks(pid), time.perf_counter()
    for _ in range(count):
        reply = call()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    wall = (time.perf_counter() - started) * 1000 / count
    return wall, (cpu_ticks(pid) - ticks) * 1000 / TICK / count


def figures(seconds: int, connections: int, fresh: int, rounds: int) -> dict:
    """Serve one sandbox with --tls-port and --proxy-port, and measure both parts (see the module's text); the
    keep-alive part is "wrk is not installed: skipped" without wrk. What bench/run.py calls for its TLS rows."""
    ports = {name: free_port() for name in ("test", "prod", "tls", "proxy")}
    with tempfile.TemporaryDirectory() as ca_dir:
        server = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", "--port", str(ports["test"]), "--prod-port", str(ports["prod"]),
             "--tls-port", str(ports["tls"]), "--proxy-port", str(ports["proxy"]), "--ca-dir", ca_dir],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
        try:
            return measure_all(server, ports, Path(ca_dir), seconds, connections, fresh, rounds)
        finally:
            server.terminate()
            server.wait(timeout=30)


def measure_all(server: subprocess.Popen, ports: dict[str, int], ca_dir: Path, seconds: int, connections: int,
                fresh: int, rounds: int) -> dict:
    wait_ready(ports["test"])
    path, headers = sandbox_get(ports["test"])
    conn = Connection(ports["test"])
    for _ in range(200):  # warm the route, the token cache and the spec validators
        conn.request("GET", path, headers)
    conn.close()
    wait_idle(server.pid)
    context = ssl.create_default_context(cafile=str(ca_dir / "vipps-sandbox-ca.pem"))
    results: dict[str, object] = {}
    if shutil.which("wrk"):
        runs: dict[str, list[tuple[float, float]]] = {"plain": [], "tls": []}
        for _ in range(rounds):  # interleaved: a neighbour's load falls on both kinds alike
            for kind in ("plain", "tls"):
                url = f"http://127.0.0.1:{ports['test']}{path}" if kind == "plain" else \
                    f"https://127.0.0.1:{ports['tls']}{path}"
                sent = headers if kind == "plain" else {**headers, "Host": "apitest.vipps.no"}
                ticks = cpu_ticks(server.pid)
                rps = wrk(url, sent, seconds, connections)
                runs[kind].append((rps, (cpu_ticks(server.pid) - ticks) * 1000 / TICK / (rps * seconds)))
        plain_rps, plain_cpu = (statistics.median(r[i] for r in runs["plain"]) for i in (0, 1))
        tls_rps, tls_cpu = (statistics.median(r[i] for r in runs["tls"]) for i in (0, 1))
        results["keepalive"] = {
            "rounds": rounds, "plain_rps": [round(r[0]) for r in runs["plain"]],
            "tls_rps": [round(r[0]) for r in runs["tls"]],
            "plain_server_cpu_ms": round(plain_cpu, 3), "tls_server_cpu_ms": round(tls_cpu, 3),
            "ratio_rps": round(plain_rps / tls_rps, 2), "ratio_server_cpu": round(tls_cpu / plain_cpu, 2),
            "goal": "<= 1.5"}
    else:
        results["keepalive"] = "wrk is not installed: skipped"
    plain = measure(server.pid, fresh, lambda: fresh_plain(ports["test"], path, headers))
    tls = measure(server.pid, fresh, lambda: fresh_tls(ports["tls"], path, headers, context))
    proxy = measure(server.pid, fresh, lambda: fresh_proxy(ports["proxy"], path, headers, context))
    results["fresh_connection"] = {
        "plain_wall_ms": round(plain[0], 3), "tls_wall_ms": round(tls[0], 3),
        "proxy_wall_ms": round(proxy[0], 3), "plain_server_cpu_ms": round(plain[1], 3),
        "tls_server_cpu_ms": round(tls[1], 3), "proxy_server_cpu_ms": round(proxy[1], 3),
        "ratio_proxy_to_tls_wall": round(proxy[0] / tls[0], 2),
        "ratio_proxy_to_tls_server_cpu": round(proxy[1] / tls[1], 2) if tls[1] else None,
        "ratio_proxy_to_plain_wall": round(proxy[0] / plain[0], 2), "goal": "proxy <= 2 x tls"}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=4, help="wrk's keep-alive connections")
    parser.add_argument("--fresh", type=int, default=300, help="requests on fresh connections, per kind")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs of each kind, interleaved (medians)")
    args = parser.parse_args()
    print(json.dumps(figures(args.seconds, args.connections, args.fresh, args.rounds), indent=2))


if __name__ == "__main__":
    main()
