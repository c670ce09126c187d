"""The emulator's cached write (POST /nbiot/offline) and read (GET /nbiot/offline): accepted as
OneNET documents them, the body checked, listed in the history by type, delivered, and a read's
value in the detail once the device answered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.server import Emulator, Fleet, serve
from tests.support.clocks import NOW, Clock
from tests.support.onenet import offline

IMEI = "861234567890123"
KEY = {"api-key": "k"}
WINDOW = {"expired_time": "2024-05-02T12:00:00", "trigger_msg": "2"}
EXACT = Fleet(wake_every_s=60, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=7)


@asynccontextmanager
async def session_for(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with serve(emulator) as url, aiohttp.ClientSession(url, headers=KEY) as session:
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, path: str, body: object = None, **query: str
) -> dict[str, Any]:
    data = None if body is None else orjson.dumps(body)
    async with session.request(method, path, params=query, data=data) as resp:
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
        return doc


WRITE = {"imei": IMEI, "obj_id": "3311", "obj_inst_id": "0", "mode": "1", **WINDOW}
VALUES = {"data": [{"res_id": 5850, "val": True}, {"res_id": 5851, "val": 40}]}


async def test_a_write_is_accepted_listed_as_write_and_its_data_kept() -> None:
    emulator = Emulator(clock=Clock(NOW))
    async with session_for(emulator) as s:
        done = await call(s, "POST", "/nbiot/offline", VALUES, **WRITE)
        assert done["errno"] == 0
        uuid = done["data"]["uuid"]
        listed = await call(
            s, "GET", "/nbiot/offline/history", imei=IMEI, start="2024-05-01T00:00:00"
        )
        detail = await call(s, "GET", f"/nbiot/offline/history/{uuid}", imei=IMEI)
    (item,) = listed["data"]["items"]
    assert item["type"] == "WRITE"
    assert orjson.loads(detail["data"]["args"]) == VALUES["data"]
    (stored,) = emulator.accepted()
    assert (stored.type, stored.mode, stored.res_id) == ("WRITE", 1, None)


@pytest.mark.parametrize(
    ("body", "query", "errno"),
    [
        ({"data": []}, {}, 3),  # nothing to write
        ({"data": [{"res_id": 1, "val": [1]}]}, {}, 3),  # not a JSON scalar
        ({"data": [{"res_id": 1, "type": 1, "val": "abc"}]}, {}, 3),  # Opaque: odd hex
        ({"data": [{"res_id": 1, "type": 1, "val": "zz"}]}, {}, 3),  # Opaque: not hex
        ({"data": [{"res_id": 1, "type": 2, "val": "noon"}]}, {}, 3),  # Time: not seconds
        ({"values": [{"res_id": 1, "val": 1}]}, {}, 3),  # not "data"
        (VALUES, {"mode": "3"}, 5006),  # replace (1) or partial (2) only
        (VALUES, {"mode": None}, 3),  # mode is required
        ({"data": [{"res_id": 1, "val": "x" * 2100}]}, {}, 5006),  # over 2 KB
        (VALUES, {"expired_time": "2024-04-01T00:00:00"}, 5006),  # the window has passed
    ],
)
async def test_a_write_body_or_query_out_of_the_rules_is_refused(
    body: object, query: dict[str, str | None], errno: int
) -> None:
    params = {k: v for k, v in {**WRITE, **query}.items() if v is not None}
    emulator = Emulator(clock=Clock(NOW))
    async with session_for(emulator) as s:
        done = await call(s, "POST", "/nbiot/offline", body, **params)
    assert done["errno"] == errno
    assert emulator.accepted() == []


async def test_opaque_and_time_values_are_accepted_as_typed() -> None:
    body = {"data": [{"res_id": 1, "type": 1, "val": "00ff"}, {"res_id": 2, "type": 2, "val": 60}]}
    emulator = Emulator(clock=Clock(NOW))
    async with session_for(emulator) as s:
        done = await call(s, "POST", "/nbiot/offline", body, **{**WRITE, "obj_id": "5"})
    assert done["errno"] == 0


async def test_a_read_is_delivered_and_its_value_comes_back_in_the_detail() -> None:
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=EXACT)
    query = {"imei": IMEI, "obj_id": "3", "obj_inst_id": "0", "res_id": "3", **WINDOW}
    async with session_for(emulator) as s:
        done = await call(s, "GET", "/nbiot/offline", **query)
        assert done["errno"] == 0
        uuid = done["data"]["uuid"]
        clock.now = NOW + 70  # a wake (once a minute) and the answer (5 s later)
        detail = await call(s, "GET", f"/nbiot/offline/history/{uuid}", imei=IMEI)
    assert (detail["data"]["type"], detail["data"]["send_status"]) == ("READ", 5)
    assert detail["data"]["cmd_result"] == "2.4.0"  # the fleet's default version, before any update


@pytest.mark.parametrize(
    "query",
    [
        {"obj_id": "3", "res_id": "3"},  # a resource needs its instance
        {"obj_id": "x"},
        {"obj_id": "3", "bin2hex": "maybe"},
    ],
)
async def test_a_malformed_read_is_refused(query: dict[str, str]) -> None:
    emulator = Emulator(clock=Clock(NOW))
    async with session_for(emulator) as s:
        done = await call(s, "GET", "/nbiot/offline", imei=IMEI, **query, **WINDOW)
    assert done["errno"] == 3


async def test_a_read_of_a_whole_object_is_accepted() -> None:
    emulator = Emulator(clock=Clock(NOW))
    async with session_for(emulator) as s:
        done = await call(s, "GET", "/nbiot/offline", imei=IMEI, obj_id="3", **WINDOW)
    assert done["errno"] == 0
    (stored,) = emulator.accepted()
    assert (stored.type, stored.obj_inst_id, stored.res_id) == ("READ", None, None)


async def test_the_client_writes_and_reads_as_the_emulator_checks_them() -> None:
    from dispatcher.onenet.aiohttp_transport import AiohttpTransport
    from dispatcher.onenet.client import (
        OneNetClient,
        Verdict,
        WriteValue,
    )

    emulator = Emulator(clock=Clock(NOW))
    window = {"expired_time": "2024-05-02T12:00:00", "retry": 3, "timeout": 25, "trigger_msg": 2}
    async with serve(emulator) as url, aiohttp.ClientSession() as session:
        client = OneNetClient(AiohttpTransport(session), url, "k")
        values = (WriteValue(1, "coap://fw.example/2.4.1.bin"), WriteValue(3, "00ff", type=1))
        wrote = await client.create(
            offline("write", imei=IMEI, obj_id=5, obj_inst_id=0, res_id=None, mode=1,
                    values=values, **window)
        )  # fmt: skip
        read = await client.create(
            offline("read", imei=IMEI, obj_id=5, obj_inst_id=0, res_id=3, **window)
        )
        whole = await client.create(
            offline("read", imei=IMEI, obj_id=3, obj_inst_id=None, res_id=None, **window)
        )
    assert [o.verdict for o in (wrote, read, whole)] == [Verdict.ACCEPTED] * 3
    stored = {c.uuid: c for c in emulator.accepted()}
    assert stored[wrote.uuid].type == "WRITE"  # type: ignore[index]
    assert orjson.loads(stored[wrote.uuid].args or "") == [  # type: ignore[index]
        {"res_id": 1, "val": "coap://fw.example/2.4.1.bin"},
        {"res_id": 3, "type": 1, "val": "00ff"},
    ]
    assert (stored[read.uuid].type, stored[read.uuid].res_id) == ("READ", 3)  # type: ignore[index]
    assert stored[whole.uuid].obj_inst_id is None  # type: ignore[index]
