"""The epayment API. Not built yet: its routes are added by its own issue."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Registers this API's routes (none yet)."""
