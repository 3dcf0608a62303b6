"""The sandbox's favicon: one small SVG for the dashboard, the landing page and the product order page.

It lives in Python (not a file) so it ships in every build of the package without a package-data rule.
Pages link it as ICON_URL; GET /favicon.ico answers it too, for what a browser opens without a page
(a QR code, a JSON feed), so no visit ends in a red 404 in the live log.
"""

from __future__ import annotations

ICON_URL = "/_sandbox/dashboard/favicon.svg"

#: An orange rounded square with a white S (a stroke, so no font is needed), dashed like a sand pit's edge.
ICON_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect x="1" y="1" width="30" height="30" rx="7" fill="#ff5b24"/>'
    '<rect x="3.5" y="3.5" width="25" height="25" rx="5" fill="none" stroke="#fff" stroke-width="1.2" '
    'stroke-dasharray="2.4 2" opacity=".7"/>'
    '<path d="M21.5 10.6c-1.2-1.7-3.2-2.6-5.4-2.6-2.9 0-5 1.6-5 3.9 0 5.1 10.8 3 10.8 8.3 '
    '0 2.4-2.3 4.3-5.5 4.3-2.4 0-4.4-1-5.8-2.8" fill="none" stroke="#fff" stroke-width="3.2" '
    'stroke-linecap="round"/>'
    '</svg>'
)
