"""The URLs of OneNET's calls, each built in one place: path under the platform's root, and the
query in the order OneNET documents it, every value percent-encoded only where it needs to be
(docs/onenet-api.md). No key ever goes into a URL.

May import: times, model, onenet.requests.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final
from urllib.parse import quote

from dispatcher.model.command import Op
from dispatcher.onenet.requests import OfflineRequest
from dispatcher.times import format_onenet

__all__ = ["PER_PAGE", "Urls", "query_value"]

PER_PAGE: Final = 100  # history items per page (the most OneNET's list calls give)
# Query values that need no percent-encoding (IMEIs, OneNET timestamps).
_QUERY_SAFE: Final = re.compile(r"[0-9A-Za-z:._~-]*")


def query_value(value: str) -> str:
    """A query value percent-encoded as sent (unchanged when it needs no escaping, as usual)."""
    return value if _QUERY_SAFE.fullmatch(value) else quote(value, safe=":")


def _window(req: OfflineRequest) -> str:
    """The window and delivery parameters every cached command takes, in OneNET's order."""
    c = req.command
    query = (
        f"&expired_time={query_value(req.expired_time)}&retry={c.retry}"
        f"&timeout={c.timeout}&trigger_msg={c.trigger_msg}"
    )
    if req.valid_time is not None:
        query += "&valid_time=" + query_value(req.valid_time)
    return query


class Urls:
    """Every call's URL under one platform's ``root`` (base URL and ``/nbiot`` or ``/nb-iot``)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.devices = root.rsplit("/", 1)[0] + "/devices"
        """The legacy platform's device calls: beside /nbiot, under the base URL."""
        self.execute = root + "/execute/offline"
        """Where execute commands are posted: base URL and path, no query, no key."""

    def offline(self, req: OfflineRequest) -> str:
        """The cached command's URL, by its operation: an execute's resource; a write's instance
        and mode (its values go in the body); a read's object, instance or one resource."""
        c = req.command
        where = f"imei={query_value(c.imei)}&obj_id={c.obj_id}"
        if c.op is Op.EXECUTE:
            return (
                f"{self.execute}?{where}&obj_inst_id={c.obj_inst_id}&res_id={c.res_id}"
                f"{_window(req)}"
            )
        if c.op is Op.WRITE:
            where += f"&obj_inst_id={c.obj_inst_id}&mode={c.mode or 2}"
            return f"{self.root}/offline?{where}{_window(req)}"
        if c.obj_inst_id is not None:
            where += f"&obj_inst_id={c.obj_inst_id}"
            if c.res_id is not None:
                where += f"&res_id={c.res_id}"
        if req.bin2hex:
            where += "&bin2hex=true"
        return f"{self.root}/offline?{where}{_window(req)}"

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

    def getbyimei(self, imei: str) -> str:
        """The legacy platform's device of an IMEI: its id (GET /devices/getbyimei)."""
        return f"{self.devices}/getbyimei?imei={query_value(imei)}"

    def datapoints(self, ids: Sequence[str]) -> str:
        """The latest datapoints of devices, by their ids (GET /devices/datapoints, 500 at most)."""
        return f"{self.devices}/datapoints?devIds={','.join(query_value(i) for i in ids)}"
