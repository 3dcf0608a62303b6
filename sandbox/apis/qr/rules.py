"""The QR API's request validation: the bundled qr.yaml's schemas and parameters, through core/spec.py.

Bodies are checked against the spec's request schemas (MerchantRedirectQrRequest, MerchantCallbackPutRequest,
...); the header and query parameters (Accept, Size, QrImageFormat, QrImageSize) against the parameter schemas
of the same file. Where the spec leaves a value open, the rule is written here and named:

- Every body must be a JSON object; `id` and `redirectUrl` must be strings even though the spec marks them
  nullable (a null id or target cannot make a QR code).
- A path's `id` / `merchantQrId` / `beaconId` is at most 128 characters of printable text (the spec's body `id`
  limit; the path parameters have none): a longer one is a 400 naming it.
- Errors are QrErrorResponse (`invalidParams`), or, on the exchange operations, `extraDetails`
  (sandbox/core/errors.py renders both from one Problem).
"""

from __future__ import annotations

from functools import cache

from sandbox.core.errors import Detail, Problem
from sandbox.core.spec import SpecSchemas

SPEC_FILE = "qr.yaml"
VALIDATION_TITLE = "One or more validation errors occurred."
ID_MAX = 128
ACCEPTED = ("image/*", "image/png", "image/svg+xml", "text/targetUrl")
#: Accept -> the format of the `url` answered: an image link (png, svg) or the code's own content (target).
ACCEPT_FORMAT = {"image/*": "png", "image/png": "png", "image/svg+xml": "svg", "text/targeturl": "target"}
IMAGE_FORMATS = {"PNG": "png", "SVG": "svg"}
CATEGORIES = ("IN_STORE", "VENDING")  # merchant callback QR `category` (reference section 7; not in qr.yaml)


@cache
def spec() -> SpecSchemas:
    return SpecSchemas(SPEC_FILE, formats=True)  # `format: uri` too: a redirectUrl is echoed in a uri field


def invalid(detail: str, details: list[Detail], status: int = 400, title: str = VALIDATION_TITLE,
            rule: str = "qr-request-invalid") -> Problem:
    return Problem(status, title, detail, details=details, rule=rule)


def validate(schema: str, body: object) -> dict:
    """The body as `schema` of qr.yaml allows it, or a 400 naming each field that breaks it."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.", [Detail("body", "A JSON object is required.")])
    problems = spec().errors(schema, body)
    if problems:
        raise invalid("BadRequest", [Detail(name, why) for name, why in problems])
    return body


def require_strings(body: dict, *names: str) -> None:
    missing = [Detail(name, f"The {name} field is required.") for name in names if not isinstance(body.get(name), str)]
    if missing:
        raise invalid("BadRequest", missing)


def path_id(value: str, name: str) -> str:
    if not value or len(value) > ID_MAX or not value.isprintable():
        raise invalid("BadRequest", [Detail(name, f"The {name} must be 1 to {ID_MAX} printable characters.")])
    return value


def _parameter(name: str) -> dict:
    return spec().spec["components"]["parameters"][name]["schema"]


def image_size(text: str | None, name: str, parameter: str = "Size") -> int | None:
    """A size header or query value against the spec's parameter (an integer, 100 to 2000); None when absent."""
    if text is None or text == "":
        return None
    schema = _parameter(parameter)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not schema["minimum"] <= value <= schema["maximum"]:
        raise invalid("BadRequest", [Detail(name, f"The {name} must be a whole number of pixels from "
                                            f"{schema['minimum']} to {schema['maximum']}.")])
    return value


def accept_format(accept: str | None, strict: bool = False) -> str:
    """The Accept header (the spec: one of image/*, image/png, image/svg+xml, text/targetUrl) as "png", "svg" or
    "target". `strict` (POST /qr/v1 and the redirect create, where Accept picks what is made): missing is a 400
    and any other type a 415. Elsewhere a missing, */* or other Accept (application/json) gives png links."""
    if accept is None or accept.strip() in ("", "*/*"):
        if strict and accept is None:
            raise invalid("BadRequest", [Detail("Accept", f"The Accept header is required: one of "
                                                f"{', '.join(ACCEPTED)}.")])
        return "png"
    for part in accept.split(","):
        kind = part.split(";", 1)[0].strip().lower()
        if kind in ACCEPT_FORMAT:
            return ACCEPT_FORMAT[kind]
    if not strict:
        return "png"
    raise invalid("Unsupported Accept header", [Detail("Accept", f"Supported values: {', '.join(ACCEPTED)}.")],
                  status=415, title="Unsupported Media Type", rule="qr-accept-unsupported")


def image_format(text: str | None) -> str:
    """QrImageFormat: PNG or SVG; SVG when absent (the spec)."""
    if text is None or text == "":
        return "svg"
    if text not in IMAGE_FORMATS:
        raise invalid("BadRequest", [Detail("QrImageFormat", "Supported values: PNG, SVG.")])
    return IMAGE_FORMATS[text]


def check_category(body: dict) -> str | None:
    category = body.get("category")
    if category is None:
        return None
    if category not in CATEGORIES:
        raise invalid("BadRequest", [Detail("category", f"Supported values: {', '.join(CATEGORIES)}.")])
    return category
