"""Shared checks for the deliberately opaque answers (issue 12, point 2): the caller's status, headers and body
reveal nothing, while the sandbox's own layer (Vipps-Sandbox-* headers, the request log) says why."""

from __future__ import annotations

import json

from sandbox.testing import Reply, SandboxClient

#: Fields the real APIs make fresh for every response: the only bytes two opaque answers may differ in.
PER_RESPONSE = ("instance", "traceId")


def caller_view(reply: Reply) -> tuple[int, tuple[tuple[str, str], ...], str]:
    """What the caller sees: the status, every header but the date and the sandbox's own, and the body's
    bytes with the per-response values (a fresh `instance` urn:uuid, a `traceId`) blanked out."""
    text = reply.text
    body = json.loads(text)
    for name in PER_RESPONSE:
        if isinstance(body.get(name), str) and body[name]:
            text = text.replace(json.dumps(body[name]), '"*"')
    headers = tuple(sorted((k.lower(), v) for k, v in reply.headers.items()
                           if k.lower() != "date" and not k.lower().startswith("vipps-sandbox-")))
    return reply.status, headers, text


def assert_same_for_the_caller(reply: Reply, absent: Reply) -> None:
    assert caller_view(reply) == caller_view(absent), (reply.headers, reply.text, absent.headers, absent.text)


async def last_entry(sandbox: SandboxClient) -> dict:
    """The newest request-log entry (reading the log is itself never logged)."""
    reply = await sandbox.request("GET", "/_sandbox/requests?limit=1", "test")
    assert reply.status == 200, reply.text
    return reply.json["entries"][0]


async def sandbox_says(sandbox: SandboxClient, reply: Reply, decision: str, rule: str,
                       facts: tuple[str, ...]) -> tuple[str, dict]:
    """The sandbox's own layer: the decision and rule headers, a reason naming every fact; with the newest
    request-log entry."""
    headers = reply.headers
    assert headers.get("Vipps-Sandbox-Decision") == decision, headers
    assert headers.get("Vipps-Sandbox-Rule") == rule, headers
    reason = headers.get("Vipps-Sandbox-Reason", "")
    for fact in facts:
        assert fact in reason, (fact, reason)
    entry = await last_entry(sandbox)
    assert entry["status"] == reply.status, entry
    return reason, entry


async def assert_explained(sandbox: SandboxClient, reply: Reply, rule: str, *facts: str) -> str:
    """A denial the sandbox explains: `Vipps-Sandbox-Decision: deny`, the rule, a reason naming every fact,
    and the same decision in the request log. Returns the reason."""
    reason, entry = await sandbox_says(sandbox, reply, "deny", rule, facts)
    assert entry["decision"] == {"allowed": False, "rule": rule, "reason": reason}, entry
    return reason


async def assert_absent(sandbox: SandboxClient, reply: Reply, rule: str, *facts: str) -> None:
    """Something that really does not exist: allowed by the key-type policy, answered 404, and the sandbox's
    headers and log say it is not there (a not-found, not a denial)."""
    assert reply.status == 404, reply.text
    reason, entry = await sandbox_says(sandbox, reply, "allow", rule, facts)
    assert entry["decision"]["allowed"] is True, entry
    assert entry["error"] == {"rule": rule, "reason": reason}, entry
