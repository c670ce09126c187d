"""The legacy platform's device calls verify makes: a device's id by its IMEI (``GET
/devices/getbyimei``) and the latest value of each datastream of up to 500 devices (``GET
/devices/datapoints``), their answers read into plain values (docs/onenet-api.md, "Devices").

Neither sends anything to a device. The answers are read leniently: an id may come as a number
or a text, a datapoint's ``value`` as any JSON value (said back as text), its ``at`` with or
without milliseconds; what cannot be read is left out, never guessed.

May import: errors, times, onenet's other modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import orjson

from dispatcher.errors import OneNetUnavailable
from dispatcher.onenet import urls
from dispatcher.times import parse_onenet

__all__ = ["MAX_IDS", "Datapoint", "DevicesClient", "datapoints", "device_id", "value_text"]

MAX_IDS: Final = 500  # device ids in one GET /devices/datapoints (OneNET's limit)


class DevicesClient(Protocol):
    """What these calls need of a client (``OneNetClient`` is one)."""

    @property
    def base_url(self) -> str: ...

    async def fetch(self, url: str, what: str) -> object: ...


@dataclass(frozen=True, slots=True)
class Datapoint:
    """A datastream's latest value, as text, and when the platform got it (None: not said)."""

    value: str
    at: datetime | None


async def device_id(client: DevicesClient, imei: str) -> str:
    """The platform's id of the device of ``imei``; OneNetUnavailable when there is no answer,
    or an errno (a device the product does not have: its errno, not retryable)."""
    data = await client.fetch(urls.getbyimei(client.base_url, imei), f"device of {imei}")
    found = data.get("id") if isinstance(data, dict) else None
    if isinstance(found, bool) or not isinstance(found, (int, str)) or not str(found).strip():
        raise OneNetUnavailable(f"device of {imei}: answer without an id", retryable=False)
    return str(found).strip()


async def datapoints(
    client: DevicesClient, ids: Sequence[str], datastream: str
) -> dict[str, Datapoint]:
    """The latest datapoint of ``datastream`` (``3_0_3``) of each of ``ids`` (at most MAX_IDS)
    that has one, by device id; OneNetUnavailable without a usable answer."""
    if len(ids) > MAX_IDS:
        raise ValueError(f"at most {MAX_IDS} device ids a call, got {len(ids)}")
    url = urls.datapoints(client.base_url, ids)
    data = await client.fetch(url, f"datapoints of {len(ids)} devices")
    devices = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(devices, list):
        raise OneNetUnavailable("datapoints: answer without a device list")
    found: dict[str, Datapoint] = {}
    for device in devices:
        if not isinstance(device, dict) or isinstance(device.get("id"), bool):
            continue
        streams = device.get("datastreams")
        if device.get("id") is None or not isinstance(streams, list):
            continue
        for stream in streams:
            if isinstance(stream, dict) and str(stream.get("id")) == datastream:
                text = value_text(stream.get("value"))
                if text is not None:
                    found[str(device["id"])] = Datapoint(text, _time(stream.get("at")))
    return found


def value_text(value: object) -> str | None:
    """A JSON value as the text a device reads: a string as it is, true/false, a number as
    JSON writes it; None for null (nothing read)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_onenet(value.strip().split(".", 1)[0])
    except ValueError:
        return None
