"""The Userinfo API (`GET /vipps-userinfo-api/userinfo/{sub}`): a thin handler over UserinfoBackend.

The gateway has checked the merchant token (partner keys: with the Merchant-Serial-Number, in production) and the
policy; `call(request).msn` is the sales unit the call acts for, and the sub must be that sales unit's. Login's own
userinfo (`/vipps-userinfo-api/userinfo/`, the user's token, no sub) is the Login API's, not this package's.
"""

from __future__ import annotations

from aiohttp import web

from sandbox.apis.userinfo.backend import UserinfoBackend
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes

USERINFO = web.AppKey("userinfo", UserinfoBackend)


async def get_userinfo(request: web.Request) -> web.Response:
    ctx = call(request)
    assert ctx.msn is not None
    body = request.app[USERINFO].userinfo(ctx.env, ctx.msn, request.match_info["sub"])
    return web.json_response(body, content_type="application/json")


def setup(app: web.Application) -> None:
    runtime = app[RUNTIME]
    userinfo = app[USERINFO] = UserinfoBackend(runtime)
    runtime.listeners.append(userinfo.listen)
    runtime.reset_hooks.append(userinfo.clear)
    runtime.state_providers["userinfo"] = (userinfo.dump, userinfo.load)
    routes(app).add_get("/vipps-userinfo-api/userinfo/{sub}", get_userinfo, name="userinfo.get")
