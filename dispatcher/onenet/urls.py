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

__all__ = [
    "PER_PAGE",
    "Urls",
    "datapoints",
    "device_list",
    "devices",
    "getbyimei",
    "query_value",
]

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


def devices(
    base: str,
    page: int,
    *,
    key_words: str | None = None,
    tag: str | None = None,
    online: bool | None = None,
    begin: datetime | None = None,
    end: datetime | None = None,
) -> str:
    """One page of the legacy platform's device list (``GET /devices``), ``PER_PAGE`` a page;
    ``online`` written as the words OneNET takes, the creation times in Beijing time."""
    query = ""
    if key_words is not None:
        query += f"key_words={query_value(key_words)}&"
    if tag is not None:
        query += f"tag={query_value(tag)}&"
    if online is not None:
        query += f"online={'true' if online else 'false'}&"
    if begin is not None:
        query += f"begin={query_value(format_onenet(begin))}&"
    if end is not None:
        query += f"end={query_value(format_onenet(end))}&"
    return f"{base}/devices?{query}page={page}&per_page={PER_PAGE}"


def device_list(base: str, product_id: str, offset: int) -> str:
    """The newer platform's devices from ``offset`` (``GET /device/list``), ``PER_PAGE``."""
    return (
        f"{base}/device/list?product_id={query_value(product_id)}&offset={offset}&limit={PER_PAGE}"
    )


def getbyimei(base: str, imei: str) -> str:
    """The legacy platform's device of an IMEI, for its id (``GET /devices/getbyimei``)."""
    return f"{base}/devices/getbyimei?imei={query_value(imei)}"


def datapoints(base: str, ids: Sequence[str]) -> str:
    """The latest datapoints of devices by their ids (``GET /devices/datapoints``, 500 at most)."""
    return f"{base}/devices/datapoints?devIds={','.join(query_value(i) for i in ids)}"
