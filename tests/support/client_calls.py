"""What the OneNET client's tests share: the base URL and key they call with, an answer's body,
an execute request, a loopback server and the requests it reads, a history item."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta, timezone
from typing import Any

import orjson

from dispatcher.onenet.client import OfflineRequest
from tests.support.onenet import offline

BASE = "http://onenet.test"
KEY = "k3y-S3CRET-0123456789abcdef"
UUID = "42742677-adc3-54ca-83a1-5aaaf71482f8"
EXECUTE = re.compile(r"^http://onenet\.test/nbiot/execute/offline\?.*$")
BEIJING = timezone(timedelta(hours=8))


def answer(errno: int = 0, error: str = "succ", data: object = None) -> bytes:
    """An answer's JSON body."""
    return orjson.dumps({"errno": errno, "error": error, "data": data})


def request(**changes: Any) -> OfflineRequest:
    """An execute request with every parameter given; ``changes`` replace some."""
    fields: dict[str, Any] = {
        "imei": "861234567890123",
        "obj_id": 3201,
        "obj_inst_id": 0,
        "res_id": 5750,
        "expired_time": "2030-01-02T03:04:05",
        "valid_time": "2030-01-01T00:00:00",
        "args": "reboot now",
        "retry": 2,
        "timeout": 30,
        "trigger_msg": 5,
    }
    fields.update(changes)
    return offline(**fields)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    """A loopback server answering each connection with ``handler``, and its URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP request as it came, head and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    return head + (await reader.readexactly(int(length.group(1))) if length else b"")


HISTORY = re.compile(r"^http://onenet\.test/nbiot/offline/history\?.*$")


def history_item(n: int) -> dict[str, object]:
    """The ``n``-th item of a history list, as OneNET writes it."""
    return {
        "cmd_uuid": f"uuid-{n}",
        "type": "EXECUTE",
        "imei": "861234567890123",
        "create_time": "2030-01-01 10:00:00",
        "valid_time": "2030-01-01 10:00:00",
        "expired_time": "2030-01-02 10:00:00",
        "send_status": 1,
        "remain": 3,
        "trigger_msg": 7,
    }
