"""The device-list calls of both platforms and their answers: a page of a product's devices,
each with its IMEI and the platform's own id for it (docs/onenet-api.md, "Devices").

The legacy platform (``GET /devices``, api-key) filters on its side: ``key_words``, ``tag``,
``online`` and the creation time (``begin``, ``end``, Beijing time), ``per_page`` at most 100 and
``page`` 1..10,000; a device's IMEI is the *key* of its ``auth_info`` (an object, or a JSON text
of one), its ``id`` the platform's device id. The newer platform (``GET /device/list``, a signed
token) takes ``product_id``, ``offset`` and ``limit`` only: the other filters are applied here to
what it lists (``Filters.matches``), so a page may give fewer devices than it listed. Both
answer envelopes are read (``errno``/``error`` and ``code``/``msg``); a non-zero errno raises
``OneNetUnavailable`` carrying it (follow_ups.py), never a traceback.

May import: errors, times, onenet's other modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import orjson

from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet.client import OneNetClient
from dispatcher.onenet.urls import PER_PAGE, device_list, devices
from dispatcher.times import BEIJING, parse_onenet

__all__ = ["MAX_PAGE", "PER_PAGE", "Device", "DeviceLister", "DevicePage", "Filters"]

MAX_PAGE: Final = 10_000  # the legacy list's last page (docs/onenet-api.md); held on both


@dataclass(frozen=True, slots=True)
class Device:
    """One device as a list gives it: its IMEI, the platform's id for it (the legacy numeric id,
    or the newer platform's device name), and what a person recognises it by."""

    imei: str
    id: str
    title: str = ""
    online: bool | None = None
    tags: tuple[str, ...] = ()
    create_time: str = ""  # as OneNET gave it (Beijing time)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which devices of a product: all of them when nothing is given."""

    tag: str | None = None
    online: bool | None = None
    key_words: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def matches(self, device: Device) -> bool:
        """Whether ``device`` passes every filter (the newer platform's, applied here): a
        device whose creation time cannot be read fails a filter on it."""
        if self.tag is not None and self.tag not in device.tags:
            return False
        if self.online is not None and device.online is not self.online:
            return False
        words = self.key_words
        if words is not None and not (
            device.id.startswith(words) or device.title.startswith(words)
        ):
            return False
        if self.created_after is None and self.created_before is None:
            return True
        try:
            created = parse_onenet(device.create_time)
        except ValueError:
            return False
        if self.created_after is not None and created < self.created_after.astimezone(BEIJING):
            return False
        return self.created_before is None or created <= self.created_before.astimezone(BEIJING)


@dataclass(frozen=True, slots=True)
class DevicePage:
    """One page of a list: its devices (those that pass the filters), how many items it listed,
    and the total OneNET said it has (None: not said)."""

    devices: tuple[Device, ...]
    listed: int
    total: int | None

    @property
    def last(self) -> bool:
        """Whether no page comes after this one."""
        return self.listed < PER_PAGE


class DeviceLister:
    """A product's device list over a client: the legacy list, or the newer platform's (which
    needs the ``product_id``)."""

    def __init__(self, client: OneNetClient, product_id: str = "") -> None:
        if client.platform == "iot-api" and not product_id:
            raise ValueError("the newer platform's device list needs a product_id")
        self.client, self.product_id = client, product_id

    async def page(self, filters: Filters, number: int) -> DevicePage:
        """Page ``number`` (from 1) of the devices that pass ``filters``; OneNetUnavailable
        when it cannot be had (with the errno when OneNET refused it)."""
        if not 1 <= number <= MAX_PAGE:
            raise ValueError(f"page {number} is not within 1..{MAX_PAGE}")
        base = self.client.base_url
        if self.client.platform == "iot-api":
            url = device_list(base, self.product_id, (number - 1) * PER_PAGE)
            data = await self.client.fetch(url, "device list")
            return _newer_page(data, filters)
        url = devices(
            base,
            number,
            key_words=filters.key_words,
            tag=filters.tag,
            online=filters.online,
            begin=filters.created_after,
            end=filters.created_before,
        )
        return _legacy_page(await self.client.fetch(url, "device list"))


def _legacy_page(data: object) -> DevicePage:
    if type(data) is not dict or type(data.get("devices")) is not list:
        raise OneNetUnavailable("device list: answer without a device list", retryable=False)
    items: list[object] = data["devices"]
    found = []
    for item in items:
        if type(item) is not dict:
            continue
        imei = _imei_of(item.get("auth_info"))
        if imei is None:
            continue  # not an NB-IoT device (no IMEI): nothing can be sent to it
        found.append(
            Device(
                imei,
                _text(item.get("id")),
                _text(item.get("title")),
                _online(item.get("online")),
                _tags(item.get("tags")),
                _text(item.get("create_time")),
            )
        )
    return DevicePage(tuple(found), len(items), _int(data.get("total_count")))


def _newer_page(data: object, filters: Filters) -> DevicePage:
    if type(data) is not dict or type(data.get("list")) is not list:
        raise OneNetUnavailable("device list: answer without a device list", retryable=False)
    items: list[object] = data["list"]
    found = []
    for item in items:
        if type(item) is not dict:
            continue
        imei = _text(item.get("imei")).strip()
        if not imei:
            continue
        name = _text(item.get("name"))
        status = item.get("status")
        device = Device(
            imei,
            name,
            _text(item.get("desc")) or name,
            None if status is None else status in (1, "1", True),
            _tags(item.get("tags")),
            _text(item.get("create_time")),
        )
        if filters.matches(device):
            found.append(device)
    return DevicePage(tuple(found), len(items), _int(data.get("total")))


def _imei_of(auth_info: object) -> str | None:
    """The IMEI of a legacy device: the key of its ``auth_info`` (an object, or a JSON text of
    one, as older answers give it)."""
    if isinstance(auth_info, str):
        try:
            auth_info = orjson.loads(auth_info)
        except orjson.JSONDecodeError:
            return None
    if type(auth_info) is not dict or len(auth_info) != 1:
        return None
    imei = str(next(iter(auth_info))).strip()
    return imei or None


def _text(value: object) -> str:
    return "" if value is None or isinstance(value, (dict, list)) else str(value)


def _online(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(t) for t in value if isinstance(t, (str, int)))
    if isinstance(value, str) and value:
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return ()


def _int(value: object) -> int | None:
    return value if type(value) is int else None
