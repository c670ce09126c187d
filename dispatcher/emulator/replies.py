"""The emulator's JSON answers: OneNET's ``{"errno", "error", "data"}`` envelope, or the newer
platform's ``{"code", "msg", "data"}`` (a product's ``answer_shape``), for a success and for each
errno it answers with (their bodies built once)."""

from __future__ import annotations

from typing import Final

import orjson
from aiohttp import web

from dispatcher.emulator.state import ERRNO_TEXT, Shape

__all__ = ["JSON", "answer", "error"]

JSON: Final = "application/json"
_FIELDS: Final[dict[Shape, tuple[str, str]]] = {
    "errno": ("errno", "error"),
    "code": ("code", "msg"),
}
_ERROR_BODIES: Final = {
    shape: {
        errno: orjson.dumps({number: errno, text_field: text, "data": None})
        for errno, text in ERRNO_TEXT.items()
    }
    for shape, (number, text_field) in _FIELDS.items()
}


def answer(data: object = None, shape: Shape = "errno") -> web.Response:
    """A success (errno 0) carrying ``data``."""
    number, text = _FIELDS[shape]
    return web.Response(
        body=orjson.dumps({number: 0, text: "succ", "data": data}), content_type=JSON
    )


def error(errno: int, shape: Shape = "errno") -> web.Response:
    """The answer OneNET gives with ``errno`` (one it has no text for says "error")."""
    body = _ERROR_BODIES[shape].get(errno)
    if body is None:
        number, text = _FIELDS[shape]
        body = orjson.dumps({number: errno, text: "error", "data": None})
    return web.Response(body=body, content_type=JSON)
