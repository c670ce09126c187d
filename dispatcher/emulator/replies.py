"""The emulator's JSON answers: OneNET's ``{"errno", "error", "data"}`` envelope, for a success
and for each errno it answers with (their bodies built once)."""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from dispatcher.emulator.state import ERRNO_TEXT

__all__ = ["JSON", "answer", "error"]

JSON: Final = "application/json"
_ERROR_BODIES: Final = {
    errno: orjson.dumps({"errno": errno, "error": text, "data": None})
    for errno, text in ERRNO_TEXT.items()
}


def answer(data: object = None) -> web.Response:
    """A success (errno 0) carrying ``data``."""
    return web.Response(
        body=orjson.dumps({"errno": 0, "error": "succ", "data": data}), content_type=JSON
    )


def error(errno: int) -> web.Response:
    """The answer OneNET gives with ``errno``."""
    return web.Response(body=_ERROR_BODIES[errno], content_type=JSON)
