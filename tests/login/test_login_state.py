"""With --state, a Login client's registered redirect URIs and its basic-only switch survive a restart; pending
logins and codes do not (they are never journaled)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from sandbox.testing import spawn

PREFIX = "/access-management-1.0/access/"


async def stop(proc) -> None:
    proc.terminate()
    await proc.wait()


async def test_registered_redirect_uris_survive_a_restart_and_codes_do_not(tmp_path):
    state = str(tmp_path / "state")
    proc, test_url, _ = await spawn(["--state", state])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(test_url + "/_sandbox/keys?type=merchant&env=test") as resp:
                client = (await resp.json())[0]
            async with session.post(test_url + f"/_sandbox/login/clients/{client['client_id']}",
                                    json={"redirectUris": ["https://shop.example/cb"], "basicOnly": True}) as resp:
                assert resp.status == 200
            query = urlencode({"response_type": "code", "client_id": client["client_id"], "scope": "openid",
                               "state": "state-survive", "redirect_uri": "https://shop.example/cb"})
            async with session.get(test_url + PREFIX + "oauth2/auth?" + query, allow_redirects=False) as resp:
                login_id = parse_qs(urlsplit(resp.headers["Location"]).query)["login"][0]
    finally:
        await stop(proc)
    proc, test_url, _ = await spawn(["--state", state])
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(test_url + f"/_sandbox/login/clients/{client['client_id']}") as resp:
                view = await resp.json()
            assert "https://shop.example/cb" in view["redirectUris"]
            assert view["tokenEndpointAuthMethods"] == ["client_secret_basic"]
            async with session.post(test_url + "/_sandbox/login/approve", json={"loginId": login_id}) as resp:
                assert resp.status == 404  # the pending login was not kept
    finally:
        await stop(proc)
