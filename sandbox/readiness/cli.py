"""`vipps-sandbox readiness`: the report of a running sandbox, as text, JSON or a printable HTML file.

It asks the sandbox (GET /_sandbox/readiness) rather than reading its state, so it reports exactly what the
dashboard shows, for a sandbox running anywhere (with its admin token when it is not on loopback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from sandbox.core.settings import ADMIN_TOKEN_VAR

DEFAULT_URL = "http://127.0.0.1:8080"
MARKS = {"met": "[x]", "not met": "[!]", "not yet exercised": "[ ]", "to confirm yourself": "[?]",
         "not served here yet": "[-]"}


def add_parser(commands) -> None:
    readiness = commands.add_parser("readiness", help="the go-live checklists filled in from a running sandbox")
    readiness.add_argument("--msn", required=True, help="the sales unit to report on")
    readiness.add_argument("--api", action="append", default=[],
                           help="a checklist: epayment, recurring, checkout, ordermanagement, webhooks, login, partner "
                           "(repeatable; default all)")
    readiness.add_argument("--env", choices=["test", "production", "both"], default="both")
    out = readiness.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="the report as JSON")
    out.add_argument("--html", type=Path, metavar="FILE", help="write the printable HTML page to FILE")
    readiness.add_argument("--url", default=os.environ.get("VIPPS_SANDBOX_URL", DEFAULT_URL),
                           help=f"a running sandbox (default: $VIPPS_SANDBOX_URL, else {DEFAULT_URL})")
    readiness.add_argument("--admin-token", default=os.environ.get(ADMIN_TOKEN_VAR),
                           help=f"the sandbox's admin token, off loopback (default: ${ADMIN_TOKEN_VAR})")


def _fetch(args, fmt: str) -> bytes:
    import urllib.parse
    import urllib.request  # only for this command: `serve` never loads it

    query = [("msn", args.msn), ("env", args.env), ("format", fmt)] + [("api", api) for api in args.api]
    request = urllib.request.Request(f"{args.url.rstrip('/')}/_sandbox/readiness?{urllib.parse.urlencode(query)}")
    if args.admin_token:
        request.add_header("Authorization", f"Bearer {args.admin_token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the user's own sandbox URL
        return response.read()


def text(report: dict) -> str:
    lines = [f"Go-live readiness of sales unit {report['msn']} ({', '.join(report['environments'])})", ""]
    for checklist in report["checklists"]:
        lines.append(checklist["summary"])
        for row in checklist["items"]:
            lines.append(f"  {MARKS.get(row['status'], '[ ]')} {row['id']:<7} {row['item']}")
            lines.append(f"            {row['evidence']}")
            if row.get("todo"):
                lines.append(f"            to do: {row['todo']}")
        lines.append("")
    return "\n".join(lines)


def main(args) -> int:
    import urllib.error

    try:
        if args.html is not None:
            args.html.write_bytes(_fetch(args, "html"))
            print(f"wrote {args.html}")
            return 0
        report = json.loads(_fetch(args, "json"))
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        try:
            detail = json.loads(body).get("detail") or body
        except ValueError:
            detail = body
        print(f"vipps-sandbox: error: the sandbox answered {exc.code}: {detail}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"vipps-sandbox: error: could not reach the sandbox at {args.url}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else text(report))
    return 0
