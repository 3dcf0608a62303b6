"""The Order Management API's request validation: the bundled order-management.yaml's schemas, through core/spec.py.

Bodies are checked against the spec's request schemas (Image, Order, Receipt, AddCategoryRequest), path values
against its parameters (Order-Id's pattern, CategoryId's uuid). What the spec leaves open is written here:

- `paymentType` in the path: the spec's enum is ECOM / RECURRING, the reference and the documentation's examples
  write `ecom` / `recurring`: both are accepted, in any case (UNCERTAIN, docs/reference/fidelity.md).
- An order line needs `taxRate` or `taxPercentage` (its description: "Either this or taxRate must be set").
- An image's `src` must be base64 of a PNG or JPEG of at most 2 MB and at least 167 px high (the spec's
  description); the sandbox reads the height from the PNG or JPEG header.
- Errors are ErrorResponse: {type, title, detail, instance, invalidParams} (sandbox/core/errors.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import uuid
from functools import cache

from sandbox.core.errors import Detail, Problem
from sandbox.core.spec import SpecSchemas, compile_pattern

SPEC_FILE = "order-management.yaml"
VALIDATION_TITLE = "One or more validation errors occurred."
PAYMENT_TYPES = {"ecom": "ecom", "recurring": "recurring"}
V3_PAYMENT_TYPE = {"ECOM": "ecom", "RECURRING": "recurring"}
IMAGE_MAX_BYTES = 2 * 1024 * 1024
IMAGE_MIN_HEIGHT = 167
BASE64 = re.compile(r"[A-Za-z0-9+/\r\n]*={0,2}", re.ASCII)


@cache
def spec() -> SpecSchemas:
    return SpecSchemas(SPEC_FILE)


def invalid(details: list[Detail], detail: str = "BadRequest", rule: str = "order-management-request-invalid",
            ) -> Problem:
    return Problem(400, VALIDATION_TITLE, detail, details=details, rule=rule)


def validate(schema: str, body: object) -> dict:
    if not isinstance(body, dict):
        raise invalid([Detail("body", "A JSON object is required.")], "The request body must be a JSON object.")
    problems = spec().errors(schema, body)
    if problems:
        raise invalid([Detail(name, why) for name, why in problems])
    return body


def payment_type(text: str) -> str:
    found = PAYMENT_TYPES.get(text.lower())
    if found is None:
        raise invalid([Detail("paymentType", "Supported values: ecom (ePayment and eCom), recurring.")])
    return found


def order_id(text: str, name: str = "orderId") -> str:
    pattern = spec().spec["components"]["parameters"]["Order-Id"]["schema"]["pattern"]
    if not text or len(text) > 128 or not compile_pattern(pattern).search(text):
        raise invalid([Detail(name, f"The {name} must match {pattern} (at most 128 characters).")])
    return text


def category_id(text: str) -> str | None:
    """The path's categoryId (the spec: a uuid) in its canonical form; None when it is not one (then no category has
    it: a 404, which every categoryId operation documents)."""
    try:
        return str(uuid.UUID(text)) if len(text) == 36 else None
    except ValueError:
        return None


def check_receipt(body: object) -> dict:
    receipt = validate("Receipt", body)
    missing = [Detail(f"orderLines.{i}.taxRate", "Either taxRate or taxPercentage must be set.")
               for i, line in enumerate(receipt["orderLines"])
               if line.get("taxRate") is None and line.get("taxPercentage") is None]
    if missing:
        raise invalid(missing)
    return receipt


def check_image(body: object) -> tuple[str, bytes]:
    """(imageId, the image's bytes) of a valid Image body."""
    image = validate("Image", body)
    src = image["src"]
    if not BASE64.fullmatch(src):
        raise invalid([Detail("src", "The src must be the image as base64 (not a URL).")])
    try:
        data = base64.b64decode(src, validate=False)
    except (binascii.Error, ValueError):
        raise invalid([Detail("src", "The src is not valid base64.")]) from None
    if len(data) > IMAGE_MAX_BYTES:
        raise invalid([Detail("src", "The image is bigger than 2 MB.")])
    height = image_height(data)
    if height is None:
        raise invalid([Detail("src", "The image must be a PNG or a JPEG.")])
    if height < IMAGE_MIN_HEIGHT:
        raise invalid([Detail("src", f"The image is {height} px high; the minimum is {IMAGE_MIN_HEIGHT} px.")])
    return image["imageId"], data


def image_height(data: bytes) -> int | None:
    """The height of a PNG (IHDR) or a JPEG (its first SOF marker); None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        return struct.unpack(">I", data[20:24])[0]
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return struct.unpack(">H", data[i + 5:i + 7])[0]
        if length < 2:
            return None
        i += 2 + length
    return None
