"""The transport over aiohttp: one ClientSession (a pool sized to the lane, the request timeout),
answers read up to ``MAX_BODY`` bytes after inflating, and aiohttp's errors told apart as
``NotSent`` or ``AnswerLost``. The only module of the client's side that imports aiohttp.

A request is never sent twice: aiohttp sends a GET or PUT again, once, when a kept-alive
connection breaks under it (RFC 9112's retry of idempotent requests), and OneNET's cached read
is created by a GET: sent again, a device would be asked twice. A client middleware (public API,
aiohttp >= 3.12) takes the disconnect out of aiohttp's retry loop, whose ``except`` only sees
``ClientOSError`` and ``ServerDisconnectedError``: every retry is the caller's own decision (in
doubt: settled against OneNET's history). aiohttp sends only idempotent methods again, so a POST
(every create but a read) goes without the middleware: its disconnect reaches ``send`` as is.

May import: onenet.transport.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Final

import aiohttp
from yarl import URL

from dispatcher.onenet.transport import (
    HEADERS,
    MAX_BODY,
    AnswerLost,
    ConnectTimeout,
    NotSent,
    ReadTimeout,
    Response,
)

__all__ = ["AiohttpTransport"]

_CHUNK: Final = 65536  # bytes read at a time when the size is not known up front


class _Disconnected(Exception):
    """aiohttp's disconnect, carried past its retry loop (``__cause__`` is the original)."""


async def _no_resend(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client middleware: a disconnect leaves aiohttp as ``_Disconnected``, never retried."""
    try:
        return await handler(request)
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        if isinstance(exc, aiohttp.ClientConnectorError):
            raise  # nothing was sent: aiohttp does not retry these either
        raise _Disconnected from exc


_MIDDLEWARES: Final = (_no_resend,)
# The methods aiohttp sends again on a broken kept-alive connection (RFC 9110's idempotent ones,
# aiohttp.client.IDEMPOTENT_METHODS): only their requests need the middleware.
_RESENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def _describe(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}"[:300] if text else name


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes | None:
    """The body, or None when it is larger than MAX_BODY (not read further, connection closed).

    A compressed answer's Content-Length is its compressed size, so its inflated size is counted
    while reading: aiohttp (3.14) inflates at most one read buffer per chunk it receives and
    pauses the socket until the chunk is consumed, so stopping here stops the inflating too.
    """
    length = resp.content_length
    if length is not None and "Content-Encoding" not in resp.headers:
        if length > MAX_BODY:
            resp.close()
            return None
        return await resp.read()
    chunks: list[bytes] = []
    size = 0
    content = resp.content
    while chunk := await content.read(_CHUNK):
        size += len(chunk)
        if size > MAX_BODY:
            resp.close()  # drop the rest: neither read nor inflated
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class AiohttpTransport:
    """Requests over one aiohttp session: ``open()`` makes and owns one; a session given to the
    constructor stays its caller's (the no-resend guarantee holds over it too)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, *, timeout_s: float, limit: int = 100, connect_timeout_s: float = 10.0
    ) -> AsyncIterator[AiohttpTransport]:
        """A transport over a new session: ``timeout_s`` for a whole request (connecting at
        most ``connect_timeout_s`` of it), at most ``limit`` connections; closed after."""
        timeout = aiohttp.ClientTimeout(
            total=timeout_s, sock_connect=min(connect_timeout_s, timeout_s)
        )
        connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            yield cls(session)

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """One request, never redirected nor sent again; NotSent or AnswerLost without an
        answer."""
        try:
            async with self._session.request(
                method,
                URL(url, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
                middlewares=_MIDDLEWARES if method in _RESENT else (),
            ) as resp:
                raw = await _read_capped(resp)
                got = resp.headers
                kept = {name: value for name in HEADERS if (value := got.get(name)) is not None}
                return Response(resp.status, raw, kept)
        except (
            aiohttp.ClientConnectorError,
            aiohttp.ConnectionTimeoutError,
            aiohttp.InvalidURL,
        ) as exc:
            if isinstance(exc, TimeoutError):
                raise ConnectTimeout(_describe(exc)) from exc
            raise NotSent(_describe(exc)) from exc
        except _Disconnected as exc:
            cause = exc.__cause__ or exc
            raise AnswerLost(_describe(cause)) from cause
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError and SocketTimeoutError too
            raise ReadTimeout(_describe(exc)) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise AnswerLost(_describe(exc)) from exc
