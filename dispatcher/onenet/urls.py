"""The URLs of OneNET's calls, each built in one place: path under the platform's root, and the
query in the order OneNET documents it, every value percent-encoded only where it needs to be
(docs/onenet-api.md). No key ever goes into a URL.

May import: times, onenet.requests.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final
from urllib.parse import quote

from dispatcher.onenet.requests import ExecuteRequest, ReadRequest, WriteRequest
from dispatcher.times import format_onenet

__all__ = ["PER_PAGE", "Urls", "query_value"]

PER_PAGE: Final = 100  # history items per page (the most OneNET's list calls give)
# Query values that need no percent-encoding (IMEIs, OneNET timestamps).
_QUERY_SAFE: Final = re.compile(r"[0-9A-Za-z:._~-]*")


def query_value(value: str) -> str:
    """A query value percent-encoded as sent (unchanged when it needs no escaping, as usual)."""
    return value if _QUERY_SAFE.fullmatch(value) else quote(value, safe=":")


def _window(req: ExecuteRequest | WriteRequest | ReadRequest) -> str:
    """The window and delivery parameters every cached command takes, in OneNET's order."""
    query = (
        f"&expired_time={query_value(req.expired_time)}&retry={req.retry}"
        f"&timeout={req.timeout}&trigger_msg={req.trigger_msg}"
    )
    if req.valid_time is not None:
        query += "&valid_time=" + query_value(req.valid_time)
    return query


class Urls:
    """Every call's URL under one platform's ``root`` (base URL and ``/nbiot`` or ``/nb-iot``)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.execute = root + "/execute/offline"
        """Where execute commands are posted: base URL and path, no query, no key."""

    def execute_offline(self, req: ExecuteRequest) -> str:
        """The cached execute's URL."""
        return (
            f"{self.execute}?imei={query_value(req.imei)}&obj_id={req.obj_id}"
            f"&obj_inst_id={req.obj_inst_id}&res_id={req.res_id}{_window(req)}"
        )

    def write_offline(self, req: WriteRequest) -> str:
        """The cached write's URL (its values go in the body)."""
        return (
            f"{self.root}/offline?imei={query_value(req.imei)}&obj_id={req.obj_id}"
            f"&obj_inst_id={req.obj_inst_id}&mode={req.mode}{_window(req)}"
        )

    def read_offline(self, req: ReadRequest) -> str:
        """The cached read's URL: an object, an instance or one resource."""
        query = f"imei={query_value(req.imei)}&obj_id={req.obj_id}"
        if req.obj_inst_id is not None:
            query += f"&obj_inst_id={req.obj_inst_id}"
            if req.res_id is not None:
                query += f"&res_id={req.res_id}"
        if req.bin2hex:
            query += "&bin2hex=true"
        return f"{self.root}/offline?{query}{_window(req)}"

    def probe(self, imei: str, start: datetime) -> str:
        """A one-item history page: the cheapest authenticated call."""
        return (
            f"{self.root}/offline/history?imei={query_value(imei)}"
            f"&start={query_value(format_onenet(start))}&page=1&per_page=1"
        )

    def history(self, imei: str, start: datetime, end: datetime | None, page: int) -> str:
        """One page of ``imei``'s cached commands created from ``start`` (to ``end``)."""
        query = f"imei={query_value(imei)}&start={query_value(format_onenet(start))}"
        if end is not None:
            query += f"&end={query_value(format_onenet(end))}"
        return f"{self.root}/offline/history?{query}&page={page}&per_page={PER_PAGE}&sort=ASC"

    def detail(self, imei: str, uuid: str) -> str:
        """One cached command, with its ``args``."""
        return f"{self.root}/offline/history/{quote(uuid, safe='')}?imei={query_value(imei)}"

    def cancel(self, imei: str, uuid: str) -> str:
        """The cancel of one waiting command."""
        return f"{self.root}/offline/cancel/{quote(uuid, safe='')}?imei={query_value(imei)}"
