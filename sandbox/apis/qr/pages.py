"""The QR codes' own URLs, their images, and scanning them as a user (the virtual phone, or CI).

- GET /_sandbox/qr/generate/qr.png|qr.svg?code=...&size=...&whiteBorder=...: the image, without auth, like
  the real image URLs (https://qr.vipps.no/generate/qr.png?...).
- GET /_sandbox/qr/r/{code}: what a code's content opens in a browser or a phone's camera app: a redirect QR
  answers 302 to its redirectUrl; a callback QR a page telling to scan it in the app; a dead code a 404 page.
- POST /_sandbox/qr/scan {phoneNumber, qrContent}: the app scans a code. A merchant callback QR checks the user
  in (user.checked-in.v1); from the phone it goes back to the phone, which shows the check-in. JSON in, JSON out
  for CI; the customer token is never in the answer (the merchant's webhook carries it).
"""

from __future__ import annotations

import html
import time

from aiohttp import web

from sandbox.apis.qr import images
from sandbox.apis.qr.backend import QrBackend, ScanResult
from sandbox.core.errors import Detail, Problem
from sandbox.core.urls import is_safe_link
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_shell import page
from sandbox.gateway.phone_cards import PhoneAction, PhoneCard, PhoneInput, add_phone_source

FILES = {"qr.png": "png", "qr.svg": "svg"}


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise Problem(400, "Bad Request", f"{name} must be a whole number from {low} to {high}.",
                      details=[Detail(name, f"From {low} to {high}.")], rule="qr-image-invalid")
    return value


async def _fields(request: web.Request) -> dict:
    if request.content_type == "application/json":
        body = await read_json(request)
        return body if isinstance(body, dict) else {}
    try:
        return dict(await request.post())
    except (ValueError, UnicodeDecodeError, AssertionError):
        return {}


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _phone_cards(request: web.Request, qr: QrBackend, number: str) -> list[PhoneCard]:
    """A scanner when this environment has codes to scan, and the user's recent check-ins."""
    env = call(request).env
    world = request.app[RUNTIME].world
    cards = []
    for checkin in qr.checkins.get((env, number), ()):
        unit = world.sales_units.get(checkin.msn)
        cards.append(PhoneCard("qr-checkin", unit.name if unit else checkin.msn,
                               lines=(f"Checked in at {checkin.location}",
                                      time.strftime("%H:%M:%S UTC", time.gmtime(checkin.at))),
                               data=(("merchant-qr-id", checkin.merchant_qr_id), ("msn", checkin.msn)),
                               order=checkin.at))
    if any(key[0] is env for _, key in qr.codes.values()) or any(o.env is env for o in qr.one_time.values()):
        cards.append(PhoneCard(
            "qr-scanner", "Scan a QR code",
            lines=("Paste what the code says (its qrContent), as the camera reads it.",),
            inputs=(PhoneInput("qrContent", "QR code"),),
            actions=(PhoneAction("Scan", "approve", "/_sandbox/qr/scan", (("phoneNumber", number),
                                                                         ("backToPhone", number))),),
            order=float("inf")))
    return cards


def setup(app: web.Application, key: web.AppKey[QrBackend]) -> None:
    def backend(request: web.Request) -> QrBackend:
        return request.app[key]

    async def image(request: web.Request) -> web.Response:
        fmt = FILES.get(request.match_info["file"])
        content = backend(request).content_of(request.query.get("code", ""), _origin(request)) if fmt else None
        if content is None:
            raise Problem(404, "Not Found", "No live QR code has this image: it expired or was deleted.",
                          rule="qr-image-not-found")
        size = _int_query(request, "size", images.DEFAULT_SIZE, images.MIN_SIZE, images.MAX_SIZE)
        border = _int_query(request, "whiteBorder", images.DEFAULT_BORDER, images.MIN_BORDER, images.MAX_BORDER)
        if fmt == "png":
            return web.Response(body=images.png(content, size, border), content_type="image/png")
        return web.Response(body=images.svg(content, size, border), content_type="image/svg+xml")

    async def target(request: web.Request) -> web.Response:
        found = backend(request).target(call(request).env, request.match_info["code"])
        if found is None:
            return page("QR code", "<p class=\"dead\" data-dead>This QR code does not work: it expired, or the "
                        "merchant deleted it.</p>", status=404)
        if found.kind == "redirect" and found.location and is_safe_link(found.location):
            raise web.HTTPFound(found.location)
        return page("QR code", "<p class=\"checkin\">Scan this code with the Vipps or MobilePay app to check in "
                    "(on the sandbox's virtual phone: Scan a QR code).</p>")

    async def scan(request: web.Request) -> web.Response:
        fields = await _fields(request)
        phone, content = fields.get("phoneNumber"), fields.get("qrContent")
        if not isinstance(phone, str) or not isinstance(content, str) or not content.strip():
            raise Problem(400, "Bad Request", "Send phoneNumber (the user's MSISDN) and qrContent (what the code "
                          "says).", details=[Detail("qrContent", "Required.")], rule="qr-scan-invalid")
        result = backend(request).scan(call(request).env, phone, content)
        back = fields.get("backToPhone")
        if isinstance(back, str) and back == phone:
            return _phone_answer(result, phone)
        body = {"kind": result.kind, "msn": result.msn}
        if result.merchant_qr_id is not None:
            body["merchantQrId"] = result.merchant_qr_id
        if result.location is not None:
            body["location"] = result.location
        return web.json_response(body)

    add_phone_source(app, lambda request, number: _phone_cards(request, backend(request), number))
    router = routes(app)
    router.add_get("/_sandbox/qr/generate/{file}", image, name="sandbox.qr.image")
    router.add_get("/_sandbox/qr/r/{code}", target, name="sandbox.qr.target")
    router.add_post("/_sandbox/qr/scan", scan, name="sandbox.qr.scan")


def _phone_answer(result: ScanResult, phone: str) -> web.Response:
    """From the phone: a check-in goes back to the phone; a code that leads elsewhere answers a link to there
    (a form's redirect to another origin would break the pages' form-action policy; a link does not)."""
    if result.kind == "callback":
        raise web.HTTPSeeOther(f"/_sandbox/phone/{phone}")
    esc = html.escape
    link = result.location if result.location and is_safe_link(result.location) else None
    body = (f"<p>This code leads to <a class=\"open\" data-location=\"{esc(link)}\" href=\"{esc(link)}\">"
            f"{esc(link)}</a>.</p>" if link else "<p>This code leads nowhere a browser may open.</p>")
    return page("QR code scanned", body + f"<p><a href=\"/_sandbox/phone/{esc(phone)}\">Back to the phone</a></p>")
