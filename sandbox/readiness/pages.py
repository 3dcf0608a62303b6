"""The readiness report as a printable page, in the dashboard's style (no script: the page is static)."""

from __future__ import annotations

import html

from aiohttp import web

from sandbox.gateway.page_shell import page

CSS = ("body{max-width:64rem}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}"
       "td,th{border-bottom:1px solid #eee;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}"
       ".status{white-space:nowrap;font-weight:600}.met{color:#137333}.not-met{color:#b3261e}"
       ".not-yet-exercised{color:#8a5a00}.to-confirm-yourself{color:#555}.not-served-here-yet{color:#999}"
       ".summary{font-weight:600}.todo{color:#444;font-style:italic}form{display:inline}"
       "@media print{form{display:none}.sandbox-marker{display:none}}")


def _slug(status: str) -> str:
    return status.replace(" ", "-")


def _row(report: dict, api: str, row: dict) -> str:
    esc = html.escape
    extra = f"<div class=\"todo\">{esc(row['todo'])}</div>" if row.get("todo") else ""
    exercise = row.get("exercise")
    if exercise:
        extra += (f"<form method=\"post\" action=\"/_sandbox/readiness/exercises\">"
                  f"<input type=\"hidden\" name=\"msn\" value=\"{esc(report['msn'])}\">"
                  f"<input type=\"hidden\" name=\"api\" value=\"{esc(api)}\">"
                  f"<input type=\"hidden\" name=\"item\" value=\"{esc(row['id'])}\">"
                  f"<button class=\"exercise\" type=\"submit\">{esc(exercise['label'])}</button></form>")
    return (f"<tr data-item=\"{esc(row['id'])}\" data-status=\"{esc(row['status'])}\"><td>{esc(row['id'])}</td>"
            f"<td>{esc(row['item'])}</td><td class=\"status {_slug(row['status'])}\">{esc(row['status'])}</td>"
            f"<td>{esc(row['evidence'])}{extra}</td></tr>")


def report_page(report: dict) -> web.Response:
    esc = html.escape
    parts = [f"<h1>Go-live readiness: sales unit {esc(report['msn'])}</h1>",
             f"<p><small>Environments: {esc(', '.join(report['environments']))}. Filled in from what the "
             "integration did in this sandbox; items marked \u201cto confirm yourself\u201d cannot be seen in "
             "traffic.</small></p><ul class=\"summaries\">"]
    parts.extend(f"<li class=\"summary\" data-api=\"{esc(c['api'])}\">{esc(c['summary'])}</li>"
                 for c in report["checklists"])
    parts.append("</ul>")
    for checklist in report["checklists"]:
        parts.append(f"<h2>{esc(checklist['title'])}</h2><table data-checklist=\"{esc(checklist['api'])}\">"
                     "<tr><th>#</th><th>Item</th><th>Status</th><th>Evidence</th></tr>")
        parts.extend(_row(report, checklist["api"], row) for row in checklist["items"])
        parts.append("</table>")
    parts.append("<h2>Traffic per endpoint</h2><table data-traffic><tr><th>Route</th><th>Requests</th>"
                 "<th>Success</th><th>Statuses</th></tr>")
    for row in report["traffic"]:
        rate = f"{row['successRate'] * 100:.0f}%" if row["successRate"] is not None else "-"
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(row["statuses"].items()))
        parts.append(f"<tr><td>{esc(row['route'])}</td><td>{row['total']}</td><td>{rate}</td>"
                     f"<td>{esc(statuses)}</td></tr>")
    parts.append("</table>")
    return page(f"Readiness {report['msn']}", "".join(parts), css=CSS)


def index_page(units: list[tuple[str, str, str]]) -> web.Response:
    """Which sales unit's report to open: every sales unit of the fixture, with its name and role."""
    esc = html.escape
    rows = "".join(f"<tr><td><a href=\"/_sandbox/readiness?msn={esc(msn)}&amp;format=html\">{esc(msn)}</a></td>"
                   f"<td>{esc(name)}</td><td>{esc(role)}</td></tr>" for msn, name, role in units)
    body = ("<h1>Go-live readiness</h1><p>Pick the sales unit your integration used: its report fills in the official "
            "go-live checklists from what the integration did here.</p>"
            f"<table data-units><tr><th>MSN</th><th>Sales unit</th><th>Role</th></tr>{rows}</table>")
    return page("Readiness", body, css=CSS)
