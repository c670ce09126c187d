"""The emulator's devices as the device calls see them: each product's registered devices (or,
when it has none, the devices its commands name), their latest datapoints, and the admin view of
each device with its firmware and the commands that reached it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dispatcher.emulator.firmware import Firmware
from dispatcher.emulator.registry import Device, Registry
from dispatcher.emulator.state import Store, format_answer_time

__all__ = ["FleetView"]


class FleetView:
    """The registry, the firmware and the store, read together; ``products`` are the names the
    emulator serves (None: it serves no products, and every device is product None's)."""

    def __init__(
        self,
        registry: Registry,
        firmware: Firmware,
        store: Store,
        advance: Callable[[], None],
        now: Callable[[], float],
        products: Sequence[str] | None,
    ) -> None:
        self.registry = registry
        self.firmware = firmware
        self._store = store
        self.advance = advance  # every device's wakes up to the server's now
        self.now = now  # the server's now
        self.products = products
        served: set[str | None] = set(products) if products is not None else {None}
        unknown = {d.product for d in registry} - served
        if unknown:
            raise ValueError(f"devices name products the emulator does not serve: {unknown}")

    def seen(self, product: str | None) -> list[Device]:
        """The devices the product's commands name, created when their first command was."""
        first: dict[str, float] = {}
        for cmd in self._store.commands.values():
            if cmd.product == product and cmd.imei not in first:
                first[cmd.imei] = cmd.created_at
        version = self.firmware.version
        return [Device(imei, at, firmware=version(imei), product=product)
                for imei, at in first.items()]  # fmt: skip

    def devices_of(self, product: str | None) -> list[Device]:
        """The product's devices: the registered ones, or those its commands name."""
        registered = self.registry.of(product)
        return list(registered.values()) if registered else self.seen(product)

    def by_id(self, product: str | None) -> dict[str, Device]:
        """The product's devices by platform id."""
        return {d.id: d for d in self.devices_of(product)}

    def find(self, product: str | None, imei: str) -> Device | None:
        """The product's device with this IMEI, if it is one."""
        return next((d for d in self.devices_of(product) if d.imei == imei), None)

    def datastreams(self, imei: str) -> list[dict[str, object]]:
        """The device's latest values (firmware version 3_0_3, 5_0_3 State, 5_0_5 Update
        Result), each ``at`` its last wake; none before it first woke."""
        device = self.firmware.get(imei)
        if device is None or device.last_wake is None:
            return []
        at = format_answer_time(device.last_wake)
        values = device.values()
        return [{"id": f"{obj}_0_{res}", "at": at, "value": values[obj, res]}
                for obj, res in ((3, 3), (5, 3), (5, 5))]  # fmt: skip

    def shown(self, product: str | None) -> list[dict[str, object]]:
        """Every device of the product, registered or named by a command, with its firmware,
        tags and the commands that reached it (oldest first)."""
        registered = self.registry.of(product)
        devices = list(registered.values())
        devices += [d for d in self.seen(product) if d.imei not in registered]
        shown = []
        for device in sorted(devices, key=lambda d: (int(d.created_at), int(d.id))):
            state = self.firmware.get(device.imei)
            item: dict[str, object] = {
                "product": product,
                "id": device.id,
                "imei": device.imei,
                "imsi": device.imsi,
                "title": device.title,
                "tags": list(device.tags),
                "online": device.online,
                "create_time": device.create_time,
                "registered": device.imei in registered,
                "firmware": self.firmware.version(device.imei),
                "package_uri": None,
                "state": 0,
                "update_result": 0,
                "last_wake": None,
                "execute_before_write": False,
                "delivered": [],
            }
            if state is not None:
                item.update(state.shown())
            shown.append(item)
        return shown
