"""A scripted OneNET for tests of the client's logic: ``Routes`` answers requests over a
``MockTransport`` (no sockets, no aiohttp), route by route, and records every request."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from yarl import URL

from dispatcher.model.command import Command, Op
from dispatcher.onenet import (
    MockTransport,
    NotSent,
    OfflineRequest,
    Request,
    Response,
    TransportError,
)
from dispatcher.onenet.client import OneNetClient
from dispatcher.times import parse_timespec

__all__ = ["Routes", "idle_client", "sent"]

Respond = Callable[[Request], Response]


@dataclass
class _Route:
    method: str
    url: str | re.Pattern[str]
    answer: Response | TransportError | Respond
    repeat: bool

    def matches(self, request: Request) -> bool:
        if request.method != self.method:
            return False
        if isinstance(self.url, str):
            return URL(request.url, encoded=True) == URL(self.url)
        return self.url.match(request.url) is not None


class Routes:
    """Answers by route, in the order added (a route answers once unless ``repeat``); a request
    no route matches is ``NotSent``. ``transport`` is the client's side; ``sent`` what came."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self.sent: list[Request] = []
        self.transport = MockTransport(self._answer)

    def add(
        self,
        method: str,
        url: str | re.Pattern[str],
        *,
        status: int = 200,
        body: bytes | str = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        exception: TransportError | None = None,
        callback: Respond | None = None,
        repeat: bool = False,
    ) -> None:
        """Answer the next ``method`` to ``url`` (a string, or a pattern of the whole URL)."""
        answer: Response | TransportError | Respond
        if exception is not None:
            answer = exception
        elif callback is not None:
            answer = callback
        else:
            raw = body.encode() if isinstance(body, str) else body
            answer = Response(status, raw, {"Content-Type": content_type, **(headers or {})})
        self._routes.append(_Route(method, url, answer, repeat))

    def get(self, url: str | re.Pattern[str], **kwargs: Any) -> None:
        """``add("GET", ...)``."""
        self.add("GET", url, **kwargs)

    def post(self, url: str | re.Pattern[str], **kwargs: Any) -> None:
        """``add("POST", ...)``."""
        self.add("POST", url, **kwargs)

    def put(self, url: str | re.Pattern[str], **kwargs: Any) -> None:
        """``add("PUT", ...)``."""
        self.add("PUT", url, **kwargs)

    def _answer(self, request: Request) -> Response:
        self.sent.append(request)
        for route in self._routes:
            if route.matches(request):
                if not route.repeat:
                    self._routes.remove(route)
                answer = route.answer
                if isinstance(answer, TransportError):
                    raise answer
                return answer if isinstance(answer, Response) else answer(request)
        raise NotSent(f"ClientConnectionError: no route for {request.method} {request.url}")


def sent(routes: Routes) -> list[tuple[str, URL, dict[str, Any]]]:
    """Every request the client made: (method, url, {"data": body, "headers": headers})."""
    return [
        (r.method, URL(r.url, encoded=True), {"data": r.body, "headers": r.headers})
        for r in routes.sent
    ]


def idle_client() -> OneNetClient:
    """The real client on a transport with no routes (every call ``NotSent``): for a lane whose
    test makes no call."""
    return OneNetClient(Routes().transport, "http://onenet.test", "test-key")


def offline(
    op: str = "execute",
    *,
    expired_time: str = "2030-01-02T03:04:05",
    valid_time: str | None = None,
    bin2hex: bool = False,
    **fields: Any,
) -> OfflineRequest:
    """A cached command as it goes out: a Command of ``op`` with ``fields`` (imei, obj_id,
    obj_inst_id, res_id, args, values, mode, retry, timeout, trigger_msg), and its window as
    sent (the command's own TimeSpec is what the job wrote; only the sent texts go out)."""
    command = Command(
        imei=fields.pop("imei", "861234567890123"),
        obj_id=fields.pop("obj_id", 3201),
        obj_inst_id=fields.pop("obj_inst_id", 0),
        res_id=fields.pop("res_id", 5750),
        expired_time=parse_timespec("+1d"),
        op=Op(op),
        **fields,
    )
    return OfflineRequest(command, expired_time, valid_time, bin2hex)
