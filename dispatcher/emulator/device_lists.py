"""The device-list queries of both platforms read from the emulator's devices: the legacy
``GET /devices`` filters (key_words, tag, online, begin/end, device_id, auth_info) and pages, the
newer ``GET /device/list`` filters (device_name) and offset, each checked as an errno 3 when a
value is malformed or out of range, and the devices as each answer shows them.

Pages are sorted by creation time, then id, so that paging through a fleet that does not change
meets every device once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from dispatcher.emulator.checks import parse_id
from dispatcher.emulator.registry import Device, parse_beijing
from dispatcher.emulator.state import BAD_PARAM

__all__ = ["Page", "legacy_item", "legacy_query", "newer_item", "newer_query", "split_ids"]

MAX_PAGE: Final = 10_000  # docs/onenet-api.md: page 1..10000
PER_PAGE_DEFAULT, PER_PAGE_MAX = 30, 100  # GET /devices: default 30, at most 100
LIMIT_DEFAULT, LIMIT_MAX = 10, 100  # GET /device/list (not documented: as real clients page)
MAX_DEVICE_IDS: Final = 100  # GET /devices device_id: up to 100
_WORDS: Final = {"true": True, "false": False}


@dataclass(frozen=True, slots=True)
class Page:
    """Which devices a list call asked for, and which of them it answers with."""

    total: int
    devices: Sequence[Device]


def split_ids(text: str | None, most: int) -> list[str] | None:
    """A comma-separated list of device ids (digits), at most ``most``; None when missing,
    empty, malformed or too long."""
    if not text:
        return None
    ids = [part.strip() for part in text.split(",")]
    if len(ids) > most or not all(i.isascii() and i.isdigit() for i in ids):
        return None
    return ids


def _sorted(devices: Sequence[Device]) -> list[Device]:
    return sorted(devices, key=lambda d: (int(d.created_at), int(d.id)))


def legacy_query(query: Mapping[str, str], devices: Sequence[Device]) -> Page | int:
    """``GET /devices``: the page the query asks for, or errno 3 for a malformed or out-of-range
    ``online`` (not the word true or false), ``begin``/``end``, ``page`` or ``per_page``."""
    page = parse_id(query.get("page", "1"))
    per_page = parse_id(query.get("per_page", str(PER_PAGE_DEFAULT)))
    if page is None or not 1 <= page <= MAX_PAGE:
        return BAD_PARAM
    if per_page is None or not 1 <= per_page <= PER_PAGE_MAX:
        return BAD_PARAM
    found = list(devices)
    online = query.get("online")
    if online is not None:
        if online not in _WORDS:
            return BAD_PARAM
        found = [d for d in found if d.online is _WORDS[online]]
    begin, end = query.get("begin"), query.get("end")
    since = -math.inf if begin is None else parse_beijing(begin)
    until = math.inf if end is None else parse_beijing(end)
    if since is None or until is None:
        return BAD_PARAM
    found = [d for d in found if since <= int(d.created_at) <= until]
    tag = query.get("tag")
    if tag:
        found = [d for d in found if tag in d.tags]
    words = query.get("key_words")
    if words:
        found = [d for d in found if d.id.startswith(words) or d.title.startswith(words)
                 or d.imei.startswith(words)]  # fmt: skip
    if "device_id" in query:
        ids = split_ids(query["device_id"], MAX_DEVICE_IDS)
        if ids is None:
            return BAD_PARAM
        found = [d for d in found if d.id in set(ids)]
    auth = query.get("auth_info")
    if auth:
        found = [d for d in found if auth in (d.imei, f'{{"{d.imei}":"{d.imsi}"}}')]
    found = _sorted(found)
    first = (page - 1) * per_page
    return Page(len(found), found[first : first + per_page])


def legacy_item(device: Device) -> dict[str, object]:
    """A device as ``GET /devices`` lists it."""
    return {
        "id": device.id,
        "title": device.title,
        "online": device.online,
        "tags": list(device.tags),
        "auth_info": {device.imei: device.imsi},
        "protocol": "LWM2M",
        "create_time": device.create_time,
        "location": None,
        "other": {},
    }


def newer_query(query: Mapping[str, str], devices: Sequence[Device]) -> Page | int:
    """``GET /device/list`` (the product already checked): the slice ``offset``/``limit`` ask
    for, ``device_name`` a prefix of the name or the whole IMEI; errno 3 for a malformed or
    out-of-range ``offset`` (0 or more) or ``limit`` (1..100)."""
    offset = parse_id(query.get("offset", "0"))
    limit = parse_id(query.get("limit", str(LIMIT_DEFAULT)))
    if offset is None or limit is None or not 1 <= limit <= LIMIT_MAX:
        return BAD_PARAM
    found = list(devices)
    name = query.get("device_name")
    if name:
        found = [d for d in found if d.title.startswith(name) or d.imei == name]
    found = _sorted(found)
    return Page(len(found), found[offset : offset + limit])


def newer_item(device: Device) -> dict[str, object]:
    """A device as ``GET /device/list`` lists it (status 1 online, 0 offline)."""
    return {
        "name": device.title,
        "status": 1 if device.online else 0,
        "imei": device.imei,
        "imsi": device.imsi,
        "create_time": device.create_time,
        "tags": list(device.tags),
    }
