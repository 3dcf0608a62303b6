"""The simulated user of the ePayment API: landing page, QR code and the /_sandbox/payments control plane.

The landing page is what the user's browser opens from `redirectUrl`; it works in both
environments (production has no force approve). The control plane lets CI act as the user.
"""

from __future__ import annotations

import html
import io
from urllib.parse import quote

import segno
from aiohttp import web

from sandbox.apis.epayment.backend import Payment, PaymentsBackend, State
from sandbox.core.errors import Detail, Problem
from sandbox.core.urls import browser_view, is_safe_link
from sandbox.gateway.bodies import read_json
from sandbox.gateway.context import RUNTIME, call
from sandbox.gateway.front_door import routes
from sandbox.gateway.page_security import policy

PAGE_CSS = ("body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}"
            ".card{border:1px solid #ddd;border-radius:12px;padding:1.5rem}.amount{font-size:2rem;font-weight:600}"
            ".why{background:#fdecea;border:1px solid #f5c2c0;border-radius:8px;padding:.75rem;margin:1rem 0}"
            "button{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:0;margin-right:.5rem;cursor:pointer}"
            ".approve{background:#ff5b24;color:#fff}.reject{background:#eee}button[disabled]{opacity:.4}"
            ".sandbox-marker{background:#1d1d24;color:#fff;border-radius:8px;padding:.5rem .75rem;margin:0 0 1rem;"
            "font-size:.95rem}.sandbox-marker strong{color:#ffd23f;letter-spacing:.08em;margin-right:.4rem}")
#: The sandbox's icon (served by the dashboard), so a browser never asks for /favicon.ico.
ICON_LINK = '<link rel="icon" href="/_sandbox/dashboard/favicon.svg" type="image/svg+xml">'
#: Said on every page a user's browser opens, so a screenshot of it is never taken for the real thing.
SANDBOX_MARKER = ('<p class="sandbox-marker" data-sandbox-marker role="note"><strong>SANDBOX</strong>'
                  "A simulated Vipps MobilePay page: no real money moves and no real app is involved.</p>")


def _backend(request: web.Request, key: web.AppKey) -> PaymentsBackend:
    return request.app[key]


async def _token(request: web.Request) -> str:
    """The landing token, from the query string, a form field or a JSON body."""
    token = request.query.get("token")
    if not token and request.method == "POST":
        if request.content_type == "application/json":
            body = await read_json(request)
            token = body.get("token") if isinstance(body, dict) else None
        else:
            try:
                token = (await request.post()).get("token")  # type: ignore[assignment]
            except (ValueError, UnicodeDecodeError, AssertionError) as exc:  # e.g. multipart without a boundary
                raise Problem(400, "Bad Request", f"The form body could not be read: {exc}",
                              details=[Detail("body", "Send token as a form field, a query parameter or JSON.")]) \
                    from exc
    if not token or not isinstance(token, str):
        raise Problem(400, "Bad Request", "The token query parameter (from the payment's redirectUrl) is missing.",
                      details=[Detail("token", "Required.")])
    return token


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{ICON_LINK}"
            f"<style>{PAGE_CSS}</style></head><body>{SANDBOX_MARKER}<div class=\"card\">{body}</div></body></html>")
    return web.Response(status=status, text=text, content_type="text/html")


def _landing_html(request: web.Request, payments: PaymentsBackend, payment: Payment, token: str) -> str:
    world = request.app[RUNTIME].world
    unit = world.sales_units.get(payment.msn)
    shop = unit.name if unit else payment.msn
    merchant = world.merchants[unit.merchant].name if unit and unit.merchant in world.merchants else ""
    amount = f"{payment.value // 100}.{payment.value % 100:02d} {payment.currency}"
    esc = html.escape
    parts = [f"<p class=\"shop\" data-msn=\"{esc(payment.msn)}\"><strong>{esc(shop)}</strong>"
             f"{'<br><small>' + esc(merchant) + '</small>' if merchant else ''}</p>",
             f"<p class=\"amount\">{esc(amount)}</p>"]
    if payment.description:
        parts.append(f"<p class=\"description\">{esc(payment.description)}</p>")
    parts.append(f"<p><small>Reference {esc(payment.reference)} &middot; {esc(str(payment.env))} environment"
                 "</small></p>")
    if payment.state is not State.CREATED:
        parts.append(f"<p class=\"state\">This payment is <strong>{esc(str(payment.state))}</strong>.</p>")
        return "".join(parts)
    refused = payments.refusal(payment)
    if refused is not None:
        parts.append(f"<div class=\"why\" data-error-code=\"{esc(refused[0])}\">This payment cannot be approved: "
                     f"{esc(refused[1])}</div>")
    disabled = " disabled" if refused is not None else ""
    hidden = f"<input type=\"hidden\" name=\"token\" value=\"{esc(token)}\">"
    parts.append(f"<form method=\"post\" action=\"/_sandbox/landing/approve\" style=\"display:inline\">{hidden}"
                 f"<button class=\"approve\" type=\"submit\"{disabled}>Approve</button></form>"
                 f"<form method=\"post\" action=\"/_sandbox/landing/reject\" style=\"display:inline\">{hidden}"
                 "<button class=\"reject\" type=\"submit\">Reject</button></form>")
    return "".join(parts)


def setup(app: web.Application, key: web.AppKey) -> None:
    """Registers the simulated user's routes; `key` finds the PaymentsBackend on the app."""

    async def landing(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        token = await _token(request)
        payment = payments.by_token(token)
        page = _page("Vipps MobilePay sandbox: approve payment", _landing_html(request, payments, payment, token))
        if payment.return_url and is_safe_link(payment.return_url):
            # Approve posts here and is redirected on to the returnUrl: the policy's form-action must allow it.
            page.headers["Content-Security-Policy"] = policy([f"{browser_view(payment.return_url).scheme}:"])
        return page

    async def landing_approve(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        payment = payments.by_token(await _token(request))
        payments.approve(payment)
        # Checked again here, as a browser reads it (a snapshot may hold anything): never a script or data URL.
        if payment.return_url and is_safe_link(payment.return_url):
            raise web.HTTPSeeOther(payment.return_url)
        return _page("Payment approved", "<p class=\"state\">Payment <strong>AUTHORIZED</strong>. "
                     "You can close this page.</p>")

    async def landing_reject(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        payment = payments.by_token(await _token(request))
        payments.reject(payment)
        back = (f"<p><a href=\"{html.escape(payment.return_url)}\">Back to the merchant</a></p>"
                if payment.return_url and is_safe_link(payment.return_url) else "")
        return _page("Payment rejected", f"<p class=\"state\">Payment <strong>ABORTED</strong>.</p>{back}")

    async def qr(request: web.Request) -> web.Response:
        payments = _backend(request, key)
        token = await _token(request)
        payments.by_token(token)
        target = f"{request.scheme}://{request.host}/_sandbox/landing?token={quote(token)}"
        code = segno.make(target, error="m")
        buffer = io.BytesIO()
        if request.query.get("format", "svg") == "png":
            try:
                size = int(request.query.get("size", "1024"))
            except ValueError as exc:
                raise Problem(400, "Bad Request", "size must be a whole number of pixels.",
                              details=[Detail("size", "Must be an integer.")]) from exc
            scale = max(1, min(size, 2000) // code.symbol_size(scale=1)[0])
            code.save(buffer, kind="png", scale=scale)
            return web.Response(body=buffer.getvalue(), content_type="image/png")
        code.save(buffer, kind="svg", scale=8, xmldecl=False)
        return web.Response(body=buffer.getvalue(), content_type="image/svg+xml")

    def control(action: str):
        async def handler(request: web.Request) -> web.Response:
            payments = _backend(request, key)
            reference = request.match_info["reference"]
            payment = payments.find(call(request).env, request.match_info["msn"], reference)
            getattr(payments, action)(payment)
            return web.json_response(payments.view(payment))
        handler.__doc__ = f"CI acts as the user: {action} the payment, in this port's environment."
        return handler

    router = routes(app)
    router.add_get("/_sandbox/landing", landing, name="sandbox.landing")
    router.add_post("/_sandbox/landing/approve", landing_approve, name="sandbox.landing.approve")
    router.add_post("/_sandbox/landing/reject", landing_reject, name="sandbox.landing.reject")
    router.add_get("/_sandbox/qr", qr, name="sandbox.qr")
    for action in ("approve", "reject", "expire"):
        router.add_post(f"/_sandbox/payments/{{msn}}/{{reference}}/{action}", control(action),
                        name=f"sandbox.payments.{action}")
