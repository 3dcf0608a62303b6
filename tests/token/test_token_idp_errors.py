"""POST /accesstoken/get refuses credentials as the identity provider behind it (Azure AD) does.

Written from the documentation, not from the code: the example body is the Vipps common-errors FAQ's (2022,
"Why do I get HTTP 400 Bad Request?": "For POST:/accesstoken/get the error may be like this if you send an
invalid client_id"), and the field set is also the official SDK's `AccessTokenError` type. The wrong-secret
answer is Azure AD's own (AADSTS7000215, HTTP 401, Microsoft Entra error reference), which no Vipps source shows.
The one deliberate difference: the sandbox never quotes an identifier that matched nothing (it may be a secret).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from sandbox.testing import started

#: The FAQ's example, as published (its Trace ID and Correlation ID are cut short in the description only).
FAQ_EXAMPLE = {
    "error": "unauthorized_client",
    "error_description": "AADSTS700016: Application with identifier '4204662b (truncated)' was not found in the "
                         "directory 'VIPPS-TEST'. This can happen if the application has not been installed by the "
                         "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                         "your authentication request to the wrong tenant.\r\nTrace ID: 05d8ee66-30c4- (truncated)"
                         "\r\nCorrelation ID: 7685939b-(truncated)\r\nTimestamp: 2022-11-17 11:37:08Z",
    "error_codes": [700016],
    "timestamp": "2022-11-17 11:37:08Z",
    "trace_id": "05d8ee66-30c4-4ec0-b099-be28c4f30f00",
    "correlation_id": "7685939b-ae73-4041-8059-5a590140e73a",
    "error_uri": "https://login.windows.net/error?code=700016",
}
NOT_FOUND_TEXT = ("This can happen if the application has not been installed by the administrator of the tenant or "
                  "consented to by any user in the tenant. You may have sent your authentication request to the "
                  "wrong tenant.")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ")


def creds(keyset: dict, **changes: str) -> dict:
    return {"client_id": keyset["client_id"], "client_secret": keyset["client_secret"],
            "Ocp-Apim-Subscription-Key": keyset["subscription_key_primary"]} | changes


def assert_azure_body(reply, status: int, error: str, code: int) -> tuple[str, dict]:
    """The FAQ example's shape: the same fields of the same types, the AADSTS prefix and the tail. Returns the
    description's text between the prefix and the tail."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].split(";")[0] == "application/json"
    body = reply.json
    assert set(body) == set(FAQ_EXAMPLE)
    assert {k: type(v) for k, v in body.items()} == {k: type(v) for k, v in FAQ_EXAMPLE.items()}
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_uri"] == f"https://login.windows.net/error?code={code}"
    assert TIMESTAMP.fullmatch(body["timestamp"]), body["timestamp"]
    for name in ("trace_id", "correlation_id"):
        assert str(uuid.UUID(body[name])) == body[name]
    assert body["trace_id"] != body["correlation_id"]
    prefix = f"AADSTS{code}: "
    tail = (f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: {body['correlation_id']}"
            f"\r\nTimestamp: {body['timestamp']}")
    description = body["error_description"]
    assert description.startswith(prefix) and description.endswith(tail), description
    return description[len(prefix):-len(tail)], body


def test_the_faq_example_is_what_these_tests_check():
    """The shape checks above accept the documentation's own example (the tail's ids there are cut short)."""
    assert TIMESTAMP.fullmatch(FAQ_EXAMPLE["timestamp"])
    assert FAQ_EXAMPLE["error_description"].startswith("AADSTS700016: Application with identifier '")
    assert FAQ_EXAMPLE["error_description"].endswith("\r\nTimestamp: " + FAQ_EXAMPLE["timestamp"])


@pytest.mark.parametrize("env,directory", [("test", "VIPPS-TEST"), ("production", "VIPPS")])
async def test_an_unknown_client_id_is_the_faqs_400_unauthorized_client(sandbox, env, directory):
    sent = "4204662b-0000-4000-8000-000000000000"
    reply = await sandbox.request("POST", "/accesstoken/get", env,
                                  headers=creds(sandbox.key("merchant", env), client_id=sent))
    text, body = assert_azure_body(reply, 400, "unauthorized_client", 700016)
    assert text == (f"Application with identifier '(not shown by the sandbox)' was not found in the directory "
                    f"'{directory}'. {NOT_FOUND_TEXT}")
    assert sent[:8] not in reply.text, "the sandbox quotes no identifier that matched nothing"
    # the sandbox's own words are in its header, not in the body
    assert reply.headers["Vipps-Sandbox-Rule"] == "unknown-client-id"
    assert "not a known client id" in reply.headers["Vipps-Sandbox-Reason"]
    assert "not a known client id" not in reply.text


async def test_a_secret_sent_as_the_client_id_never_comes_back(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=creds(
        keyset, client_id=keyset["client_secret"], client_secret=keyset["client_id"]))
    assert_azure_body(reply, 400, "unauthorized_client", 700016)
    for part in (keyset["client_secret"], keyset["client_secret"][:8]):
        assert part not in reply.text and part not in str(reply.headers)


async def test_the_timestamp_is_the_virtual_clocks(sandbox):
    await sandbox.request("POST", "/_sandbox/clock", "test", json_body={"advanceSeconds": 400 * 86400, "freeze": True})
    now = (await sandbox.request("GET", "/_sandbox/clock", "test")).json
    reply = await sandbox.request("POST", "/accesstoken/get", "test",
                                  headers=creds(sandbox.key("merchant", "test"), client_id="nobody"))
    _, body = assert_azure_body(reply, 400, "unauthorized_client", 700016)
    assert now["frozen"] and body["timestamp"] == now["now"][:19].replace("T", " ") + "Z"
    stamped = datetime.strptime(body["timestamp"], "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    assert (stamped - datetime.now(UTC)).days >= 399


async def test_a_wrong_secret_is_azure_ads_401_invalid_client(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=creds(keyset, client_secret="nope-x"))
    text, _ = assert_azure_body(reply, 401, "invalid_client", 7000215)
    assert text == ("Invalid client secret provided. Ensure the secret being sent in the request is the client "
                    "secret value, not the client secret ID, for a secret added to app "
                    f"'{keyset['client_id']}'.")  # the client id matched a key set: quoting it echoes no secret
    assert reply.headers["Vipps-Sandbox-Rule"] == "client-secret-wrong"
    assert "does not match" in reply.headers["Vipps-Sandbox-Reason"] and "nope-x" not in reply.text


async def test_a_regenerated_secret_is_the_same_401_with_the_reason_in_the_header(sandbox):
    keyset = sandbox.key("merchant", "test")
    assert (await sandbox.request("POST", f"/_sandbox/keys/{keyset['client_id']}/regenerate", "test")).status == 200
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=creds(keyset))
    assert_azure_body(reply, 401, "invalid_client", 7000215)
    assert reply.headers["Vipps-Sandbox-Rule"] == "keys-regenerated"
    assert "regenerated" in reply.headers["Vipps-Sandbox-Reason"] and "regenerated" not in reply.text


@pytest.mark.parametrize("key_type,keys_env,env,rule", [
    ("merchant", "production", "test", "keys-stay-in-their-environment"),
    ("merchant", "test", "production", "keys-stay-in-their-environment"),
    ("partner", "production", "test", "partner-keys-production-only"),
    ("management", "production", "production", "miami-keys-use-miami-token"),
    ("accounting", "production", "test", "miami-keys-use-miami-token"),
])
async def test_applications_the_directory_does_not_hold_are_not_found(sandbox, key_type, keys_env, env, rule):
    """Keys of the other environment, partner keys in test, keys of the specialized flow: the directory of this
    environment holds no such application, whatever the secret (the sandbox's header says which case it is)."""
    keyset = sandbox.key(key_type, keys_env)
    headers = creds(keyset) if keyset.get("subscription_key_primary") else {
        "client_id": keyset["client_id"], "client_secret": keyset["client_secret"]}
    for secret in (keyset["client_secret"], "wrong"):
        reply = await sandbox.request("POST", "/accesstoken/get", env, headers=headers | {"client_secret": secret})
        text, _ = assert_azure_body(reply, 400, "unauthorized_client", 700016)
        assert "'(not shown by the sandbox)'" in text and keyset["client_id"] not in reply.text
        assert reply.headers["Vipps-Sandbox-Rule"] == rule


@pytest.mark.parametrize("missing,status,error,code", [("client_id", 400, "invalid_request", 900144),
                                                       ("client_secret", 401, "invalid_client", 7000218)])
async def test_a_missing_credential_is_azure_ads_answer_for_it(sandbox, missing, status, error, code):
    headers = creds(sandbox.key("merchant", "test"))
    del headers[missing]
    text, _ = assert_azure_body(await sandbox.request("POST", "/accesstoken/get", "test", headers=headers),
                                status, error, code)
    assert f"'{missing}'" in text


async def test_the_request_log_keeps_the_plain_reason_and_no_secret(sandbox):
    keyset = sandbox.key("merchant", "test")
    reply = await sandbox.request("POST", "/accesstoken/get", "test", headers=creds(
        keyset, client_id=keyset["client_secret"]))
    assert reply.status == 400
    entry = (await sandbox.request("GET", "/_sandbox/requests?limit=1", "test")).json["entries"][0]
    assert entry["decision"]["rule"] == "unknown-client-id" and "not a known client id" in entry["decision"]["reason"]
    assert keyset["client_secret"] not in str(entry)


async def test_refusals_leave_the_journaled_ids_alone(settings):
    """Under --id-seed the refusals' trace ids are reproducible, and drawing them shifts no later id: a crash
    replay (which does not replay refused token calls) must hand out the same ids as the first run."""
    settings.id_seed = 7
    made = []
    for refusals in (0, 3):
        async with started(settings) as client:
            keyset = client.key("merchant", "test")
            traces = []
            for _ in range(refusals):
                reply = await client.request("POST", "/accesstoken/get", "test",
                                             headers=creds(keyset, client_id="nobody"))
                traces.append(reply.json["trace_id"])
            regenerated = await client.request("POST", f"/_sandbox/keys/{keyset['client_id']}/regenerate", "test")
            made.append((regenerated.json["client_secret"], traces))
    assert made[0][0] == made[1][0], "the refusals moved the journaled id stream"
    async with started(settings) as client:
        reply = await client.request("POST", "/accesstoken/get", "test",
                                     headers=creds(client.key("merchant", "test"), client_id="nobody"))
        assert reply.json["trace_id"] == made[1][1][0], "the same seed gives the same trace ids"
