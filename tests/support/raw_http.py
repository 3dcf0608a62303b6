"""Raw HTTP/1.1 over asyncio streams, for requests aiohttp's client refuses to send (NUL bytes, bad UTF-8)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


async def send(port: int, request: bytes, timeout: float = 15.0) -> RawReply:
    """Sends bytes as they are and reads one response (the request should say Connection: close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), timeout)
        else:
            body = await asyncio.wait_for(reader.read(), timeout)
        return RawReply(status, headers, body)
    finally:
        writer.close()


def build(method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A request with exactly these bytes in the request line and headers (plus Host, Content-Length)."""
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if body or method in ("POST", "PUT", "PATCH", "DELETE"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
