"""The emulator's admin calls on its devices (no api-key): ``GET /_emulator/devices`` (every
device, ``?product=`` for one product's: tags, online state, firmware, the commands that reached
it in order and whether an execute of 5/0/2 ever came before a write of 5/0/1) and ``PUT
/_emulator/devices`` (add or replace devices, remove them by IMEI, retag them), so that a test
can change the fleet between two runs.

The PUT body is a JSON object: ``product`` (the product's name; omitted when the emulator serves
no products), ``devices`` (a list of ``{imei, tags, online, created, firmware, title, imsi}``,
only ``imei`` required; ``created`` in Beijing time, default now), ``remove`` (a list of IMEIs)
and ``retag`` (IMEI -> list of tags); it answers as the GET does for that product.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from dispatcher.emulator.fleet_view import FleetView
from dispatcher.emulator.registry import Device, parse_beijing
from dispatcher.emulator.replies import JSON

__all__ = ["add_fleet_admin_routes"]

_DEVICE_KEYS = frozenset({"imei", "tags", "online", "created", "firmware", "title", "imsi"})
_BODY_KEYS = frozenset({"product", "devices", "remove", "retag"})


def _product(fleet: FleetView, name: str | None) -> str | None:
    """The product named (None when the emulator serves none); ValueError when it is unknown."""
    if fleet.products is None:
        if name is not None:
            raise ValueError("the emulator serves no products")
        return None
    if name is None:
        raise ValueError(f"name the product: one of {list(fleet.products)}")
    if name not in fleet.products:
        raise ValueError(f"the emulator serves no product {name!r}")
    return name


def _device(given: Any, product: str | None, now: float) -> Device:
    if not isinstance(given, dict) or not set(given) <= _DEVICE_KEYS or "imei" not in given:
        raise ValueError(f"a device is an object with imei and some of {sorted(_DEVICE_KEYS)}")
    created = now
    if given.get("created") is not None:
        parsed = parse_beijing(str(given["created"]))
        if parsed is None:
            raise ValueError("created must be YYYY-MM-DD HH:MM:SS (Beijing time)")
        created = parsed
    tags = given.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("tags must be a list of strings")
    online = given.get("online", True)
    if not isinstance(online, bool):
        raise ValueError("online must be true or false")
    rest = {k: str(given[k]) for k in ("firmware", "title", "imsi") if given.get(k) is not None}
    return Device(str(given["imei"]), created, tuple(tags), online, product=product, **rest)


def _change(fleet: FleetView, body: Any) -> str | None:
    """Apply a PUT body; the product it was about."""
    if not isinstance(body, dict) or not set(body) <= _BODY_KEYS:
        raise ValueError(f"expected a JSON object with some of {sorted(_BODY_KEYS)}")
    product = _product(fleet, body.get("product"))
    now = fleet.now()
    devices = [_device(given, product, now) for given in body.get("devices", [])]
    remove = body.get("remove", [])
    retag = body.get("retag", {})
    if not isinstance(remove, list) or not isinstance(retag, dict):
        raise ValueError("remove is a list of IMEIs, retag an object of IMEI -> tags")
    for imei, tags in retag.items():
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ValueError(f"retag {imei}: tags must be a list of strings")
        if fleet.registry.find(product, imei) is None and imei not in {d.imei for d in devices}:
            raise ValueError(f"retag {imei}: no such registered device")
    registry = fleet.registry
    registry.put(devices)
    registry.remove(product, [str(imei) for imei in remove])
    for imei, tags in retag.items():
        registry.retag(product, imei, tags)
    return product


def add_fleet_admin_routes(router: web.UrlDispatcher, fleet: FleetView) -> None:
    """Serve the fleet's admin calls under ``/_emulator/devices``."""

    def listed(product: str | None, every: bool) -> web.Response:
        fleet.advance()
        names: list[str | None] = [product]
        if every and fleet.products is not None:
            names = list(fleet.products)
        shown = [item for name in names for item in fleet.shown(name)]
        return web.Response(body=orjson.dumps({"devices": shown}), content_type=JSON)

    async def get(request: web.Request) -> web.Response:
        name = request.query.get("product")
        if name is None:
            return listed(None, True)
        try:
            product = _product(fleet, name)
        except ValueError as exc:
            return web.Response(status=404, text=str(exc))
        return listed(product, False)

    async def put(request: web.Request) -> web.Response:
        try:
            product = _change(fleet, orjson.loads(await request.read()))
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            return web.Response(status=400, text=str(exc))
        return listed(product, False)

    router.add_route("GET", "/_emulator/devices", get)
    router.add_route("PUT", "/_emulator/devices", put)
