"""The emulator's answer-shaping faults: what a proxy, a broken server or a skewed clock send.

Kept apart from the request path (``server.py``) so that path stays short: these run only when
their fault is set. Each builds or changes an ``aiohttp.web.Response``:

- ``html_page``: the HTML error page a proxy or a wrong base path answers with (403, 404, 407...).
- ``truncate``: half the body, with a Content-Length that matches the cut (complete but broken).
- ``gzip_encode``: the body gzip-encoded (Content-Encoding: gzip), whatever the client asked.
- ``gzip_bomb``: a small gzip answer that inflates to ``size`` bytes (whitespace, then the JSON).
- ``http_date``: a Date header (RFC 9110 5.6.7) from the emulator's clock, not the real one.
- ``cut``: the connection dropped, no answer.

``Shaper`` holds what these need between requests: the clock, the counters, the hung requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import zlib
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final

from aiohttp import web

from dispatcher.emulator.state import Faults, Store

__all__ = ["Shaper", "cut", "gzip_bomb", "gzip_encode", "html_page", "http_date", "truncate"]

_GZIP: Final = 31  # zlib wbits for a gzip container (16 + the 15-bit window)
_PAD_CHUNK: Final = 1 << 20  # bytes of whitespace fed to the compressor at a time
# Compressed whitespace by size, with the compressor's state after it: an answer is a copy of the
# state plus its own JSON, so a 300 MB bomb is compressed once, not per answer.
_PADDINGS: dict[int, tuple[bytes, Any]] = {}


def html_page(status: int) -> web.Response:
    """The HTML error page of an nginx-like proxy for ``status``."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    title = f"{status} {reason}"
    body = (
        f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
        "<hr><center>nginx</center></body></html>"
    )
    return web.Response(status=status, body=body.encode(), content_type="text/html")


def truncate(response: web.Response) -> web.Response:
    """``response`` with its body cut in half (the Content-Length follows the cut)."""
    body = response.body
    if isinstance(body, bytes | bytearray):
        response.body = bytes(body[: len(body) // 2])
    return response


def gzip_encode(response: web.Response) -> web.Response:
    """``response`` with its body gzip-encoded; unchanged when it is already encoded."""
    body = response.body
    if "Content-Encoding" not in response.headers and isinstance(body, bytes | bytearray):
        compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP)
        response.body = compressor.compress(body) + compressor.flush()
        response.headers["Content-Encoding"] = "gzip"
    return response


def _padding(size: int) -> tuple[bytes, Any]:
    """``size`` bytes of whitespace, compressed, and the compressor's state after them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, _GZIP)
    chunk = b" " * min(size, _PAD_CHUNK)
    parts = []
    left = size
    while left > 0:
        parts.append(compressor.compress(chunk if left >= len(chunk) else chunk[:left]))
        left -= len(chunk)
    return b"".join(parts), compressor


async def gzip_bomb(body: bytes, size: int) -> web.Response:
    """A 200 answer of ``body`` padded in front with whitespace to ``size`` bytes, gzip-encoded.

    The padding is compressed once per size, in a thread (300 MB take about a second).
    """
    pad = max(size - len(body), 0)
    cached = _PADDINGS.get(pad)
    if cached is None:
        cached = await asyncio.to_thread(_padding, pad)
        if len(_PADDINGS) >= 4:
            _PADDINGS.clear()
        _PADDINGS[pad] = cached
    prefix, state = cached
    compressor = state.copy()
    encoded = prefix + compressor.compress(body) + compressor.flush()
    return web.Response(
        body=encoded,
        content_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )


def http_date(unix: float) -> str:
    """An HTTP date for unix seconds, e.g. 'Wed, 01 May 2024 04:00:00 GMT'."""
    return email.utils.formatdate(unix, usegmt=True)


def cut(request: web.Request) -> web.Response:
    """Drop the connection: the client sees a disconnect (aiohttp's ServerDisconnectedError).

    The response returned here is never written: aiohttp finds the transport closing, takes it for
    a client that went away, and drops it without logging above debug level.
    """
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


class Shaper:
    """The answer-shaping faults of one emulator: dates, gzip, truncated reads, HTML, hangs."""

    def __init__(self, clock: Callable[[], float], store: Store) -> None:
        self._clock = clock
        self._store = store
        self._hung = asyncio.Event()  # set to let every hung request go

    def shape(
        self, response: web.Response, faults: Faults, reads: bool, rng: random.Random
    ) -> web.Response:
        """``response`` dated by the server's clock, and truncated or gzipped as faults say."""
        if response.status == 204:  # a cut connection: nothing will be written
            return response
        response.headers["Date"] = http_date(self._clock() + faults.clock_offset_s)
        if reads and not faults.affect_reads:
            return response
        if reads and faults.truncate_rate and rng.random() < faults.truncate_rate:
            self._store.count_fault("truncate")
            response = truncate(response)
        if faults.compress:
            response = gzip_encode(response)
        return response

    def html(self, status: int) -> web.Response:
        """A proxy's HTML page with ``status``, counted."""
        self._store.count_fault("html")
        return html_page(status)

    async def hang(self, request: web.Request) -> web.Response:
        """Hold the request unanswered until ``release`` (the client gives up first), then cut."""
        self._store.count_fault("hang")
        await self._hung.wait()
        self._store.count_fault("hang_released")
        return cut(request)

    def release(self) -> None:
        """Let every hung request go; later ones hang again."""
        self._hung.set()
        self._hung = asyncio.Event()
