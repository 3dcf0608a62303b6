"""The merchant's product order page: what portal.vippsmobilepay.com shows behind a prefillUrl.

Plain HTML with one form per possible move; each form posts to the control plane and comes back here.
"""

from __future__ import annotations

import json
from html import escape

#: button label, action, who does it, the statuses it shows for.
BUTTONS = (
    ("Open the order (mark as viewed)", "view", "merchant", ("RECEIVED",)),
    ("Submit the order", "submit", "merchant", ("RECEIVED", "MERCHANT_VIEWED")),
    # These two are Vipps MobilePay's moves: control plane, so they need the admin token when one is set.
    ("Reject / decline the order", "reject", "Vipps MobilePay or the merchant; control plane",
     ("RECEIVED", "MERCHANT_VIEWED", "ORDER_SUBMITTED")),
    ("Complete (Vipps MobilePay approves: creates the sales unit)", "complete", "Vipps MobilePay; control plane",
     ("ORDER_SUBMITTED",)),
)


def _row(name: str, value: object) -> str:
    return f"<tr><th>{escape(name)}</th><td>{escape(str(value))}</td></tr>"


def render_page(view: dict) -> str:
    """`view` is ManagementBackend.sandbox_view(order)."""
    order_id, status = view["productOrderId"], view["status"]
    bid = view["businessIdentifier"]
    request = view["request"]
    rows = [_row("Status", status), _row("Product type", view["productType"]),
            _row("Business", f"{bid['scheme']} {bid['id']}"), _row("Partner", view["partnerId"]),
            _row("Sales unit name", request.get("salesUnitName") or "-"),
            _row("Price package", request.get("pricePackageId") or "-"),
            _row("Created", view["createdAt"]), _row("Expires (if not submitted)", view["expiresAt"])]
    if "salesUnit" in view:
        rows.append(_row("New sales unit", f"{view['salesUnit']['msn']} ({view['salesUnit']['name']})"))
    forms = [f'<form method="post" action="/_sandbox/product-orders/{escape(order_id)}/{action}">'
             f'<button type="submit">{escape(label)}</button> <small>({escape(who)})</small></form>'
             for label, action, who, statuses in BUTTONS if status in statuses]
    history = "".join(f"<li>{escape(h['at'])}: {escape(h['status'])}</li>" for h in view["history"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Product order {escape(order_id)}</title>
<link rel="icon" href="/_sandbox/dashboard/favicon.svg" type="image/svg+xml">
<style>body{{font-family:sans-serif;max-width:46em;margin:2em auto}}th{{text-align:left;padding-right:1em}}
form{{margin:.5em 0}}.sandbox-marker{{background:#1d1d24;color:#fff;border-radius:8px;padding:.5em .75em}}
.sandbox-marker strong{{color:#ffd23f;letter-spacing:.08em;margin-right:.4em}}</style></head>
<body><p class="sandbox-marker" data-sandbox-marker role="note"><strong>SANDBOX</strong>A simulated
Vipps MobilePay portal page: no real merchant agreement is made.</p>
<h1>Product order</h1><p><code>{escape(order_id)}</code> (vipps-sandbox: the merchant's view)</p>
<table>{''.join(rows)}</table>
<h2>Actions</h2>{''.join(forms) or '<p>None: this order is finished.</p>'}
<h2>History</h2><ul>{history}</ul>
<details><summary>Prefilled data</summary><pre>{escape(_pretty(request))}</pre></details>
</body></html>"""


def _pretty(request: dict) -> str:
    return json.dumps(request, indent=2, ensure_ascii=False)
