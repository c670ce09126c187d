"""The seam between the OneNET client and HTTP (as httpx's transports): ``Transport`` sends one
request and gives back its ``Response``, a frozen value with the status, the headers the client
reads and the body (up to ``MAX_BODY`` bytes after inflating); ``MockTransport`` answers from a
function, for tests of the client's logic without a network.

A failure to get an answer is raised, and says how far the request got: ``NotSent`` (nothing left
this host: connect refused, DNS, a connect timeout; safe to send again) or ``AnswerLost`` (the
request may have reached OneNET: a disconnect, a broken body; ``ReadTimeout`` when no answer came
in time). The timeouts are ``TimeoutError`` too. Their text names the library's error, e.g.
``ServerDisconnectedError: Server disconnected``.

May import: nothing of dispatcher (the aiohttp transport is aiohttp_transport.py).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Protocol

__all__ = [
    "HEADERS",
    "MAX_BODY",
    "AnswerLost",
    "ConnectTimeout",
    "Handler",
    "MockTransport",
    "NotSent",
    "ReadTimeout",
    "Request",
    "Response",
    "Transport",
    "TransportError",
]

MAX_BODY: Final = 1 << 20  # bytes, after inflating; OneNET's answers are tiny, this is not one
# The answer headers the client reads, by their canonical names (a Response keeps only these).
HEADERS: Final = ("Content-Type", "Date", "Retry-After")
# Each read header by its lowercase name, and by its canonical one (as most servers send it).
_CANONICAL: Final = {**{name.lower(): name for name in HEADERS}, **{name: name for name in HEADERS}}
_NONE: Final[Mapping[str, str]] = MappingProxyType({})


class TransportError(Exception):
    """No answer came; the text describes why (the library's error name and message)."""


class NotSent(TransportError):
    """Nothing left this host (connect refused, DNS, a bad URL): safe to send again."""


class ConnectTimeout(NotSent, TimeoutError):
    """No connection could be made in time: nothing was sent."""


class AnswerLost(TransportError):
    """The request may have reached OneNET, and no usable answer came (a disconnect, a cut
    body): only OneNET's history can tell whether it was done."""


class ReadTimeout(AnswerLost, TimeoutError):
    """The request was sent and no answer came in time."""


def _headers(given: Mapping[str, str]) -> Mapping[str, str]:
    """The headers the client reads, under their canonical names, read-only."""
    kept: dict[str, str] = {}
    for name, value in given.items():
        canonical = _CANONICAL.get(name) or _CANONICAL.get(name.lower())
        if canonical is not None:
            kept[canonical] = value
    return MappingProxyType(kept) if kept else _NONE


@dataclass(frozen=True, slots=True)
class Request:
    """One request as the client sends it: the URL already percent-encoded, query and all."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True, init=False)
class Response:
    """One answer: its status, the headers the client reads (``HEADERS``, canonical names) and
    its body, None when it was larger than ``MAX_BODY`` (and not read further)."""

    status: int
    body: bytes | None
    headers: Mapping[str, str]

    def __init__(
        self, status: int, body: bytes | None = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "body", body)
        object.__setattr__(self, "headers", _NONE if not headers else _headers(headers))


class Transport(Protocol):
    """Sends one request and returns its answer; raises ``NotSent`` or ``AnswerLost``."""

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """The answer to one request (never redirected, never sent twice by the transport)."""
        ...


Handler = Callable[[Request], "Response | Awaitable[Response]"]


class MockTransport:
    """A transport answered by ``handler`` (sync or async): request in, response out; the
    handler raises ``NotSent`` or ``AnswerLost`` to play a failure. A body over ``MAX_BODY`` is
    given as None, as a real transport would."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> Response:
        """The handler's answer to the request."""
        answer = self._handler(Request(method, url, dict(headers), body))
        if inspect.isawaitable(answer):
            answer = await answer
        if answer.body is not None and len(answer.body) > MAX_BODY:
            return Response(answer.status, None, answer.headers)
        return answer
