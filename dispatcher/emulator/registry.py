"""The devices registered in each product the emulator serves: their platform id, IMEI, IMSI,
title, tags, online state, creation time and starting firmware, given (a CSV file) or made up
(a seeded fleet), and the filters the device-list calls apply to them.

A device's ``id`` is the platform's device id, a digit string derived from its IMEI (the same
IMEI always gets the same id), never the IMEI itself (docs/onenet-api.md, "Devices"). A product
whose registry is empty has the devices its commands name: each IMEI seen in a command, online,
untagged, created when its first command was.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

from dispatcher.emulator.state import format_answer_time, parse_request_time

__all__ = [
    "DEFAULT_FIRMWARE",
    "Device",
    "Registry",
    "device_id",
    "made_up",
    "parse_beijing",
    "read_devices",
]

DEFAULT_FIRMWARE: Final = "2.4.0"  # a device's version when nothing says otherwise
_TAG_SPLIT = re.compile(r"[;|]")
_CITIES: Final = ("hz", "sz", "bj", "sh", "gz")
_BATCHES: Final = ("2024b", "2025a", "2025b")
_YEAR: Final = 365 * 86400
_COLUMNS: Final = ("imei", "tags", "online", "created", "firmware", "title", "product")
_TRUE, _FALSE = (
    frozenset({"1", "true", "yes", "online"}),
    frozenset({"0", "false", "no", "offline"}),
)


def device_id(imei: str) -> str:
    """The platform's id of the device with this IMEI: 9 or 10 digits, the same every time."""
    digest = int.from_bytes(hashlib.sha256(f"device:{imei}".encode()).digest()[:8], "big")
    return str(500_000_000 + digest % 4_000_000_000)


def _imsi(imei: str) -> str:
    """A made-up IMSI for the IMEI: China Mobile's 46000, then 10 digits."""
    digest = int.from_bytes(hashlib.sha256(f"imsi:{imei}".encode()).digest()[:8], "big")
    return f"46000{digest % 10**10:010d}"


def parse_beijing(text: str) -> float | None:
    """'YYYY-MM-DDTHH:MM:SS' or 'YYYY-MM-DD HH:MM:SS' (Beijing time) -> unix seconds; else None."""
    if len(text) == 19 and text[10] == " ":
        text = f"{text[:10]}T{text[11:]}"
    return parse_request_time(text)


@dataclass(frozen=True, slots=True)
class Device:
    """One registered device; ``product`` names the product it is in (None: the emulator serves
    no products)."""

    imei: str
    created_at: float  # unix seconds; shown as Beijing time
    tags: tuple[str, ...] = ()
    online: bool = True
    firmware: str = DEFAULT_FIRMWARE  # its version (3/0/3) before any update
    title: str = ""  # "" : the IMEI
    product: str | None = None
    imsi: str = ""  # "": made up from the IMEI

    def __post_init__(self) -> None:
        if len(self.imei) != 15 or not (self.imei.isascii() and self.imei.isdigit()):
            raise ValueError(f"a device's imei must be 15 digits, not {self.imei!r}")
        if not isinstance(self.tags, tuple):
            object.__setattr__(self, "tags", tuple(self.tags))
        if not self.title:
            object.__setattr__(self, "title", self.imei)
        if not self.imsi:
            object.__setattr__(self, "imsi", _imsi(self.imei))

    @property
    def id(self) -> str:
        """The platform's device id (not the IMEI)."""
        return device_id(self.imei)

    @property
    def create_time(self) -> str:
        """Its creation time as answers write it (Beijing time, 'YYYY-MM-DD HH:MM:SS')."""
        return format_answer_time(self.created_at)


def made_up(count: int, *, seed: int | None, now: float, product: str | None = None,
            firmware: str = DEFAULT_FIRMWARE, first: int = 0) -> list[Device]:  # fmt: skip
    """``count`` devices with IMEIs 86400000000000 + first.. (the product's own block), a seeded
    spread of "city:.." and "batch:.." tags, four in five online, created over the past year."""
    rng = random.Random(f"fleet:{seed}:{product}")
    devices = []
    for n in range(first, first + count):
        imei = f"864{n:012d}"
        tags = (f"city:{rng.choice(_CITIES)}", f"batch:{rng.choice(_BATCHES)}")
        created = now - rng.uniform(0.0, _YEAR)
        online = rng.random() < 0.8
        title = f"meter-{n:06d}"
        devices.append(Device(imei, created, tags, online, firmware, title, product))
    return devices


def _flag(text: str, where: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"{where}: online must be true or false, not {text!r}")


def read_devices(
    path: Path,
    *,
    now: float,
    firmware: str = DEFAULT_FIRMWARE,
    products: Sequence[str] | None = None,
) -> list[Device]:
    """The devices of a CSV file (columns imei[,tags,online,created,firmware,title,product];
    tags separated by ';' or '|'; created in Beijing time, default ``now``); ``products`` the
    emulator serves (a row without a product is the only one's). ValueError names the file,
    line and column of a wrong value; OSError when it cannot be read."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or not rows[0] or rows[0][0].strip().lower() != "imei":
        raise ValueError(f"{path}:1: the first column must be imei (a header line)")
    header = [name.strip().lower() for name in rows[0]]
    unknown = [name for name in header if name not in _COLUMNS]
    if unknown:
        raise ValueError(f"{path}:1: unknown columns {unknown}; known: {', '.join(_COLUMNS)}")
    devices: list[Device] = []
    seen: set[tuple[str, str]] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = dict(zip(header, (cell.strip() for cell in row), strict=False))
        where = f"{path}:{line}"
        created = now
        if cells.get("created"):
            parsed = parse_beijing(cells["created"])
            if parsed is None:
                raise ValueError(f"{where}: created must be YYYY-MM-DD HH:MM:SS (Beijing time)")
            created = parsed
        tags = tuple(t.strip() for t in _TAG_SPLIT.split(cells.get("tags", "")) if t.strip())
        try:
            device = Device(
                cells.get("imei", ""),
                created,
                tags,
                _flag(cells["online"], where) if cells.get("online") else True,
                cells.get("firmware") or firmware,
                cells.get("title", ""),
                cells.get("product") or None,
            )
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        device = replace(device, product=_product_of(device.product, products, where))
        if (device.product or "", device.imei) in seen:
            raise ValueError(f"{where}: imei {device.imei} is listed twice")
        seen.add((device.product or "", device.imei))
        devices.append(device)
    return devices


def _product_of(named: str | None, products: Sequence[str] | None, where: str) -> str | None:
    """The product a CSV row's device is in, checked against those served."""
    if products is None:
        if named is not None:
            raise ValueError(f"{where}: product {named!r}: the emulator serves no products")
        return None
    if named is None:
        if len(products) != 1:
            raise ValueError(f"{where}: product: name one of {', '.join(products)}")
        return products[0]
    if named not in products:
        raise ValueError(f"{where}: product {named!r} is not served ({', '.join(products)})")
    return named


class Registry:
    """Every product's registered devices, by IMEI; changed by the admin call between runs."""

    def __init__(self, devices: Iterable[Device] = ()) -> None:
        self._by_product: dict[str | None, dict[str, Device]] = {}
        self.put(devices)

    def put(self, devices: Iterable[Device]) -> None:
        """Add the devices, or replace those with the same product and IMEI."""
        for device in devices:
            self._by_product.setdefault(device.product, {})[device.imei] = device

    def remove(self, product: str | None, imeis: Iterable[str]) -> int:
        """Remove the product's devices with these IMEIs; how many there were."""
        registered = self._by_product.get(product, {})
        return sum(registered.pop(imei, None) is not None for imei in imeis)

    def retag(self, product: str | None, imei: str, tags: Iterable[str]) -> bool:
        """Give a registered device these tags; False if it is not registered."""
        registered = self._by_product.get(product, {})
        device = registered.get(imei)
        if device is None:
            return False
        registered[imei] = replace(device, tags=tuple(tags))
        return True

    def products(self) -> list[str | None]:
        """The products that have registered devices."""
        return [name for name, devices in self._by_product.items() if devices]

    def of(self, product: str | None) -> dict[str, Device]:
        """The product's registered devices by IMEI (empty: none registered)."""
        return self._by_product.get(product, {})

    def find(self, product: str | None, imei: str) -> Device | None:
        """The product's registered device with this IMEI, if any."""
        return self._by_product.get(product, {}).get(imei)

    def firmware(self, imei: str) -> str | None:
        """The starting firmware of the device with this IMEI in any product (None: unknown)."""
        for devices in self._by_product.values():
            device = devices.get(imei)
            if device is not None:
                return device.firmware
        return None

    def __iter__(self) -> Iterator[Device]:
        for devices in self._by_product.values():
            yield from devices.values()
