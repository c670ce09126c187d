"""The emulator as a transport: a request goes into the emulator's own routes in this process
(its checks, state, devices and faults), with no socket in between, and its answer comes back as
the client's ``Response``. For tests and tools that need OneNET's behaviour without a server; the
end-to-end tests keep serving it over real loopback sockets (server.py).

A connection the emulator cuts (before or after storing) is ``AnswerLost``, as aiohttp's
disconnect; a request held longer than ``timeout_s`` (``hang_rate``) is ``ReadTimeout``. Answers
are inflated (gzip) and capped at ``MAX_BODY`` bytes, as the aiohttp transport does, and carry a
Date header as aiohttp's server sets one.

May import: onenet.transport (the seam it plugs into), and the emulator.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import StreamReader, web
from aiohttp.test_utils import make_mocked_request
from yarl import URL

from dispatcher.emulator.faults import http_date
from dispatcher.emulator.server import Emulator
from dispatcher.onenet.transport import MAX_BODY, AnswerLost, ReadTimeout, Response

__all__ = ["EmulatorTransport"]

_GZIP: Final = 31  # zlib wbits for a gzip container


class _Line:
    """The connection a request came on: only whether the emulator cut it."""

    def __init__(self) -> None:
        self.cut = False

    def abort(self) -> None:
        """The emulator drops the connection."""
        self.cut = True

    def is_closing(self) -> bool:
        """Whether the connection was dropped."""
        return self.cut

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """No socket: no peer, no TLS."""
        return default


class _Reading:
    """Flow control of an in-memory body: nothing to pause."""

    def pause_reading(self, **_: object) -> None:
        """Nothing to pause."""

    def resume_reading(self, **_: object) -> None:
        """Nothing to resume."""


def _inflated(body: bytes) -> bytes | None:
    """A gzip body inflated, or None when it inflates past MAX_BODY (never inflated whole)."""
    inflater = zlib.decompressobj(_GZIP)
    out = inflater.decompress(body, MAX_BODY + 1)
    return None if len(out) > MAX_BODY else out


class EmulatorTransport:
    """Requests answered by ``emulator``'s routes in this process; ``timeout_s`` is how long a
    request may wait for its answer (None: as long as it takes)."""

    def __init__(self, emulator: Emulator, *, timeout_s: float | None = 30.0) -> None:
        self._app = emulator.app()
        self._timeout_s = timeout_s

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """The emulator's answer to one request."""
        target = URL(url, encoded=True)
        path = target.raw_path_qs
        payload = StreamReader(_Reading(), 1 << 16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
        if body:
            payload.feed_data(body)
        payload.feed_eof()
        probe = make_mocked_request(method, path, dict(headers), app=self._app)
        match = await self._app.router.resolve(probe)
        line = _Line()
        request = make_mocked_request(
            method,
            path,
            dict(headers),
            match_info=dict(match),
            app=self._app,
            transport=line,
            payload=payload,
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await match.handler(request)
        except TimeoutError:
            raise ReadTimeout("TimeoutError") from None
        except web.HTTPException as exc:  # no route: aiohttp's own 404 or 405
            answer = exc
        if line.cut:
            raise AnswerLost("ServerDisconnectedError: Server disconnected")
        return self._response(answer)

    @staticmethod
    def _response(answer: web.StreamResponse) -> Response:
        raw = answer.body if isinstance(answer, web.Response) else b""
        data = bytes(raw) if isinstance(raw, bytes | bytearray) else b""
        got = answer.headers
        kept = {name: got[name] for name in ("Content-Type", "Retry-After") if name in got}
        if answer.content_type and "Content-Type" not in kept:
            kept["Content-Type"] = answer.content_type
        kept["Date"] = got.get("Date") or http_date(time.time())
        body: bytes | None = data
        if got.get("Content-Encoding") == "gzip":
            body = _inflated(data)
        elif len(data) > MAX_BODY:
            body = None
        return Response(answer.status, body, kept)
