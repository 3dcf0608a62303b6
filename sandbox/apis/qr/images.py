"""QR images, drawn with segno (as the landing page's QR), at exactly the size the caller asked for.

The QR API's rules (reference section 7): `size` 100 to 2000 pixels (default 1024), `whiteBorder` 0 to 100
(default 8). segno scales by whole modules, so an image of exactly `size` pixels is written here from the
code's module matrix: the modules as large as fit inside the white border, centred. `whiteBorder` is read as
pixels on each side (UNCERTAIN: the unit is not documented; docs/reference/fidelity.md).
"""

from __future__ import annotations

import struct
import zlib

DEFAULT_SIZE = 1024
MIN_SIZE, MAX_SIZE = 100, 2000
DEFAULT_BORDER = 8
MIN_BORDER, MAX_BORDER = 0, 100


def matrix(content: str) -> list[list[bool]]:
    """The code's modules (True: dark), without segno's quiet zone: the border is drawn here."""
    import segno  # a tenth of the startup budget: imported on the first image

    code = segno.make(content, error="m")
    return [[bool(bit) for bit in row] for row in code.matrix]


def _layout(modules: int, size: int, border: int) -> tuple[int, int]:
    """(pixels per module, offset of the first module) for a size x size image with `border` pixels of white."""
    inner = max(modules, size - 2 * border)
    scale = max(1, inner // modules)
    offset = (size - scale * modules) // 2
    return scale, max(0, offset)


def png(content: str, size: int = DEFAULT_SIZE, border: int = DEFAULT_BORDER) -> bytes:
    """A greyscale PNG of exactly size x size pixels."""
    grid = matrix(content)
    modules = len(grid)
    scale, offset = _layout(modules, size, border)
    white = b"\xff" * size
    drawn: list[bytes] = []  # one pixel row per module row: every pixel row of a module row is the same
    for module_row in grid:
        line = bytearray(white)
        for mx, dark in enumerate(module_row):
            if dark:
                start = offset + mx * scale
                end = min(size, start + scale)
                line[start:end] = b"\x00" * (end - start)
        drawn.append(bytes(line))
    rows = [white if y < offset or (y - offset) // scale >= modules else drawn[(y - offset) // scale]
            for y in range(size)]
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def svg(content: str, size: int = DEFAULT_SIZE, border: int = DEFAULT_BORDER) -> bytes:
    """An SVG of size x size user units, the same layout as the PNG (one path of dark squares)."""
    grid = matrix(content)
    scale, offset = _layout(len(grid), size, border)
    path = "".join(f"M{offset + x * scale} {offset + y * scale}h{scale}v{scale}h-{scale}z"
                   for y, row in enumerate(grid) for x, dark in enumerate(row) if dark)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
            f'<rect width="{size}" height="{size}" fill="#fff"/><path fill="#000" d="{path}"/></svg>').encode()
