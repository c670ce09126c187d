"""Firmware that really updates in the emulator: a delivered write of 5/0/1 then execute of 5/0/2
installs the version the package URI names, an execute with nothing written fails and changes
nothing, reads answer the current values, and the admin view records the order of deliveries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import given, strategies as st

from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.firmware import Firmware, version_in
from dispatcher.emulator.registry import Device, device_id
from dispatcher.emulator.server import Emulator, Fleet, StoredCommand, serve
from tests.support.clocks import NOW, Clock

IMEI = "861234567890123"
KEY = {"api-key": "k"}
WINDOW = {"expired_time": "2024-05-02T12:00:00", "trigger_msg": "2"}
EXACT = Fleet(wake_every_s=60, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=7)
URI = "coap://fw.example.com:5683/nb/2.4.1.bin"


@asynccontextmanager
async def session_for(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with serve(emulator) as url, aiohttp.ClientSession(url, headers=KEY) as session:
        yield session


class Device5:
    """Creates commands for one device and reads what became of them."""

    def __init__(self, session: aiohttp.ClientSession, imei: str = IMEI) -> None:
        self.s, self.imei = session, imei

    async def call(self, method: str, path: str, body: object = None, **query: str) -> Any:
        data = None if body is None else orjson.dumps(body)
        async with self.s.request(method, path, params=query, data=data) as resp:
            assert resp.status == 200
            return await resp.json()

    async def created(self, doc: Any) -> str:
        assert doc["errno"] == 0, doc
        return str(doc["data"]["uuid"])

    async def write_uri(self, uri: str = URI) -> str:
        body = {"data": [{"res_id": 1, "val": uri}]}
        query = {"imei": self.imei, "obj_id": "5", "obj_inst_id": "0", "mode": "1", **WINDOW}
        return await self.created(await self.call("POST", "/nbiot/offline", body, **query))

    async def update(self) -> str:
        query = {"imei": self.imei, "obj_id": "5", "obj_inst_id": "0", "res_id": "2", **WINDOW}
        return await self.created(await self.call("POST", "/nbiot/execute/offline", **query))

    async def read(self, obj: int, res: int | None = None) -> str:
        query = {"imei": self.imei, "obj_id": str(obj), "obj_inst_id": "0", **WINDOW}
        if res is not None:
            query["res_id"] = str(res)
        return await self.created(await self.call("GET", "/nbiot/offline", **query))

    async def detail(self, uuid: str) -> dict[str, Any]:
        doc = await self.call("GET", f"/nbiot/offline/history/{uuid}", imei=self.imei)
        return dict(doc["data"])

    async def admin(self) -> dict[str, Any]:
        async with self.s.get("/_emulator/devices") as resp:
            listed = await resp.json()
        [device] = [d for d in listed["devices"] if d["imei"] == self.imei]
        return dict(device)


async def test_a_write_then_an_execute_delivered_at_one_wake_install_the_uris_version() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with session_for(emulator) as s:
        device = Device5(s)
        write, execute = await device.write_uri(), await device.update()
        version, state = await device.read(3, 3), await device.read(5)
        clock.now = NOW + 70  # one wake takes all four, in the order created
        details = [await device.detail(u) for u in (write, execute, version, state)]
        shown = await device.admin()
    assert [d["send_status"] for d in details] == [5, 5, 5, 5]
    assert [d["cmd_result"] for d in details[:3]] == ["OK", "OK", "2.4.1"]
    assert orjson.loads(details[3]["cmd_result"]) == [
        {"res_id": 1, "val": ""}, {"res_id": 3, "val": "0"}, {"res_id": 5, "val": "1"}]  # fmt: skip
    assert (shown["firmware"], shown["state"], shown["update_result"]) == ("2.4.1", 0, 1)
    assert shown["package_uri"] is None and shown["execute_before_write"] is False
    delivered = [(d["type"], d["path"], d["ok"]) for d in shown["delivered"]]
    assert delivered == [("WRITE", "5/0", True), ("EXECUTE", "5/0/2", True),
                         ("READ", "3/0/3", True), ("READ", "5/0", True)]  # fmt: skip


async def test_an_execute_before_its_write_fails_and_leaves_the_version() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with session_for(emulator) as s:
        device = Device5(s)
        execute, write = await device.update(), await device.write_uri()
        clock.now = NOW + 70
        failed, written = await device.detail(execute), await device.detail(write)
        shown = await device.admin()
        read = await device.read(5, 3)
        clock.now = NOW + 140  # the next wake
        state = await device.detail(read)
    assert (failed["send_status"], failed["confirm_status"]) == (6, "METHOD_NOT_ALLOWED")
    assert failed.get("cmd_result") is None
    assert written["send_status"] == 5
    assert (shown["firmware"], shown["package_uri"], shown["state"]) == ("2.4.0", URI, 2)
    assert shown["execute_before_write"] is True
    assert [(d["path"], d["ok"]) for d in shown["delivered"]] == [("5/0/2", False), ("5/0", True)]
    assert state["cmd_result"] == "2"  # Downloaded: the URI is kept for a later Update


async def test_a_later_execute_installs_a_uri_written_at_an_earlier_wake() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with session_for(emulator) as s:
        device = Device5(s)
        await device.write_uri("http://fw.example.com/nb/3.0.12.bin")
        clock.now = NOW + 70
        execute = await device.update()
        clock.now = NOW + 140
        done = await device.detail(execute)
        read = await device.read(3, 3)
        clock.now = NOW + 210
        version = await device.detail(read)
    assert done["send_status"] == 5
    assert version["cmd_result"] == "3.0.12"


async def test_a_uri_without_a_version_installs_the_fleet_target() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=replace(EXACT, firmware_target="9.9"))
    async with session_for(emulator) as s:
        device = Device5(s)
        await device.write_uri("coap://fw.example.com/latest.bin")
        await device.update()
        clock.now = NOW + 70
        shown = await device.admin()
    assert shown["firmware"] == "9.9"


async def test_a_registered_devices_version_starts_from_its_registration() -> None:
    clock = Clock(NOW)
    registered = [Device(IMEI, NOW - 86400, firmware="2.3.0")]
    emulator = Emulator(clock=clock, fleet=EXACT, devices=registered)
    async with session_for(emulator) as s:
        device = Device5(s)
        read = await device.read(3, 3)
        other = await device.read(3, 9)
        clock.now = NOW + 70
        value, unknown = await device.detail(read), await device.detail(other)
        points = await device.call("GET", "/devices/datapoints", devIds=device_id(IMEI))
    assert value["cmd_result"] == "2.3.0"
    assert unknown["cmd_result"] == "3/0/9"  # a resource it does not know reads as its path
    [streams] = [d["datastreams"] for d in points["data"]["devices"]]
    assert {d["id"]: d["value"] for d in streams}["3_0_3"] == "2.3.0"


async def test_the_datapoints_version_follows_an_update() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=EXACT, devices=[Device(IMEI, NOW - 86400)])
    async with session_for(emulator) as s:
        device = Device5(s)
        await device.write_uri()
        await device.update()
        clock.now = NOW + 70
        points = await device.call("GET", "/devices/datapoints", devIds=device_id(IMEI))
    [streams] = [d["datastreams"] for d in points["data"]["devices"]]
    assert {d["id"]: d["value"] for d in streams} == {"3_0_3": "2.4.1", "5_0_3": "0", "5_0_5": "1"}


async def test_an_error_device_fails_every_command_and_keeps_its_version() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=replace(EXACT, device_errors=1.0))
    async with session_for(emulator) as s:
        device = Device5(s)
        write, execute = await device.write_uri(), await device.update()
        clock.now = NOW + 70
        details = [await device.detail(u) for u in (write, execute)]
        shown = await device.admin()
    assert [d["send_status"] for d in details] == [6, 6]
    assert shown["firmware"] == "2.4.0" and shown["package_uri"] is None
    assert shown["execute_before_write"] is False  # the write reached it first, and failed


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("http://fw.example.com/nb/2.4.1.bin", "2.4.1"),
        ("coap://fw.example.com:5683/v1.2/meter-10.0.3.bin", "10.0.3"),
        ("coap://fw.example.com/latest.bin", None),
    ],
)
def test_the_version_is_the_last_dotted_number_in_the_uri(uri: str, version: str | None) -> None:
    assert version_in(uri) == version


def command(kind: str, n: int) -> StoredCommand:
    """A write of 5/0/1 (``kind`` "w", naming version 1.<n>) or an execute of 5/0/2 ("x")."""
    write = kind == "w"
    args = orjson.dumps([{"res_id": 1, "val": f"coap://fw/1.{n}.bin"}]).decode() if write else None
    return StoredCommand(
        f"u{n}", IMEI, 5, 0, None if write else 2, None, "2024-05-02T12:00:00", None, None,
        None, args, NOW, NOW, NOW + 86400, type="WRITE" if write else "EXECUTE",
    )  # fmt: skip


@given(st.lists(st.sampled_from("wx"), max_size=12))
def test_an_update_installs_only_what_a_write_before_it_stored(kinds: list[str]) -> None:
    firmware = Firmware(lambda imei: None, "2.4.0", "9.9")
    uri: int | None = None  # the model: the URI stored, by the write's number
    version, refused, results = "2.4.0", [], []
    for n, kind in enumerate(kinds):
        results.append(firmware.deliver(IMEI, command(kind, n), NOW + n, fails=False))
        refused.append(kind == "x" and uri is None)
        if kind == "w":
            uri = n
        elif uri is not None:
            version, uri = f"1.{uri}", None
    state = firmware.of(IMEI)
    assert state.version == version
    assert [r is None for r in results] == refused
    assert [d.ok for d in state.delivered] == [not r for r in refused]
    first_x = kinds.index("x") if "x" in kinds else len(kinds)
    assert state.execute_before_write == ("x" in kinds and "w" not in kinds[:first_x])


@pytest.mark.parametrize(
    ("args", "version"),
    [
        ("fw=2.4.1;url=http://fw.example.com/nb/2.4.1.bin;md5=9e107d9d", "2.4.1"),
        ("url=coap://fw.example.com/3.1.0.bin", "3.1.0"),
        ("url=coap://fw.example.com/latest.bin", "9.9"),  # no version: the fleet's target
        ("fw=2", "2"),
        ("reboot", None),  # names no image: nothing to install
        (None, None),
    ],
)
def test_an_update_whose_args_name_the_image_installs_it_without_a_write(
    args: str | None, version: str | None
) -> None:
    firmware = Firmware(lambda imei: None, "2.4.0", "9.9")
    execute = replace(command("x", 0), args=args)
    result = firmware.deliver(IMEI, execute, NOW, fails=False)
    assert result == (None if version is None else "OK")
    assert firmware.of(IMEI).version == (version or "2.4.0")
    assert firmware.of(IMEI).execute_before_write is True  # no write came first, all the same
