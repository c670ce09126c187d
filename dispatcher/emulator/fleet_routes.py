"""The emulator's device calls: the legacy platform's ``GET /devices`` (the list),
``/devices/status``, ``/devices/getbyimei`` and ``/devices/datapoints`` (api-key), the newer
platform's ``GET /device/list`` (signed token), and the admin ``GET``/``PUT /_emulator/devices``.

Each device call passes the same gate as the command calls (the faults that hit reads, the key
or token, the platform's and the product's throttles: ``Emulator.admit``), then answers for the
caller's product in its answer shape. A product whose ``list_errno`` is set answers every device
call with that errno (a key without the permission to list devices). A product with no
registered devices has the devices its commands name (registry.py).

Choices where OneNET is silent: ``getbyimei`` of an IMEI that is not a device of the product
answers errno 1 (documented for "an imei that is not in the key's product"); ids in ``devIds``
that are not the product's devices are left out of the answer; ``product_id`` on ``/device/list``
other than the token's product answers errno 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, Protocol

from aiohttp import web

from dispatcher.emulator.device_lists import (
    legacy_item,
    legacy_query,
    newer_item,
    newer_query,
    split_ids,
)
from dispatcher.emulator.fleet_admin import add_fleet_admin_routes
from dispatcher.emulator.fleet_view import FleetView
from dispatcher.emulator.products import Tenant, parse_token
from dispatcher.emulator.replies import answer, error
from dispatcher.emulator.state import AUTH_FAILED, BAD_PARAM, Shape

__all__ = ["FleetServed", "add_fleet_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Answer = Callable[[web.Request, FleetView, str | None, Shape], web.Response]
MAX_STATUS_IDS: Final = 1000  # GET /devices/status: up to 1000 ids
MAX_DATAPOINT_IDS: Final = 500  # GET /devices/datapoints: up to 500 ids


class FleetServed(Protocol):
    """What the device calls need of an emulator."""

    @property
    def fleet(self) -> FleetView:
        """Its devices, their firmware and what reached them."""
        ...

    async def admit(
        self, request: web.Request, iot: bool, kind: str
    ) -> tuple[web.Response | None, Tenant | None]:
        """The gate: (an early answer, or None to go on; the caller's product)."""
        ...

    def shaped(self, handler: Handler) -> Handler:
        """``handler`` with the answer-shaping faults applied."""
        ...


def _devices(
    request: web.Request, fleet: FleetView, product: str | None, shape: Shape
) -> web.Response:
    page = legacy_query(request.query, fleet.devices_of(product))
    if isinstance(page, int):
        return error(page, shape)
    query = request.query
    data = {
        "total_count": page.total,
        "page": int(query.get("page", "1")),
        "per_page": int(query.get("per_page", "30")),
        "devices": [legacy_item(d) for d in page.devices],
    }
    return answer(data, shape)


def _status(
    request: web.Request, fleet: FleetView, product: str | None, shape: Shape
) -> web.Response:
    ids = split_ids(request.query.get("devIds"), MAX_STATUS_IDS)
    if ids is None:
        return error(BAD_PARAM, shape)
    by_id = fleet.by_id(product)
    found = [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
    devices = [{"id": d.id, "title": d.title, "online": d.online} for d in found]
    return answer({"total_count": len(devices), "devices": devices}, shape)


def _getbyimei(
    request: web.Request, fleet: FleetView, product: str | None, shape: Shape
) -> web.Response:
    imei = request.query.get("imei", "")
    if len(imei) != 15 or not (imei.isascii() and imei.isdigit()):
        return error(BAD_PARAM, shape)
    device = fleet.find(product, imei)
    if device is None:
        return error(AUTH_FAILED, shape)
    woke = fleet.firmware.get(imei)
    observed = woke is not None and woke.last_wake is not None
    return answer({"id": device.id, "online": device.online, "observ_status": observed}, shape)


def _datapoints(
    request: web.Request, fleet: FleetView, product: str | None, shape: Shape
) -> web.Response:
    ids = split_ids(request.query.get("devIds"), MAX_DATAPOINT_IDS)
    if ids is None:
        return error(BAD_PARAM, shape)
    by_id = fleet.by_id(product)
    devices = [
        {"id": d.id, "title": d.title, "datastreams": fleet.datastreams(d.imei)}
        for d in (by_id[i] for i in dict.fromkeys(ids) if i in by_id)
    ]
    return answer({"devices": devices}, shape)


def _device_list(
    request: web.Request, fleet: FleetView, product: str | None, shape: Shape
) -> web.Response:
    query = request.query
    wanted = query.get("product_id")
    if not wanted:
        return error(BAD_PARAM, shape)
    token = parse_token(request.headers.get("authorization"))
    res = token.res if token is not None else ""
    if res.startswith("products/") and res.split("/")[1] != wanted:
        return error(AUTH_FAILED, shape)
    page = newer_query(query, fleet.devices_of(product))
    if isinstance(page, int):
        return error(page, shape)
    return answer({"total": page.total, "list": [newer_item(d) for d in page.devices]}, shape)


def add_fleet_routes(router: web.UrlDispatcher, emulator: FleetServed) -> None:
    """Serve the device calls of both platforms and the admin calls on the devices."""

    def route(kind: str, iot: bool, reply: Answer) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            early, tenant = await emulator.admit(request, iot, kind)
            if early is not None:
                return early
            shape: Shape = "errno" if tenant is None else tenant.shape
            refused = None if tenant is None else tenant.product.list_errno
            if refused:
                return error(refused, shape)
            fleet = emulator.fleet
            fleet.advance()
            return reply(request, fleet, None if tenant is None else tenant.name, shape)

        return emulator.shaped(handle)

    add = router.add_route
    add("GET", "/devices", route("devices", False, _devices))
    add("GET", "/devices/status", route("devices_status", False, _status))
    add("GET", "/devices/getbyimei", route("getbyimei", False, _getbyimei))
    add("GET", "/devices/datapoints", route("datapoints", False, _datapoints))
    add("GET", "/device/list", route("device_list", True, _device_list))
    add_fleet_admin_routes(router, emulator.fleet)
