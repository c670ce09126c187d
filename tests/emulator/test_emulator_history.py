"""The emulator's history, detail, piecewise and cancel calls over loopback."""

from __future__ import annotations

import pytest

from dispatcher.emulator.server import Emulator
from tests.support.clocks import NOW, Clock
from tests.support.emulator_api import (
    IMEI,
    OTHER_IMEI,
    Api,
)


async def test_history_lists_the_imeis_commands_with_answer_timestamps(
    api: Api, clock: Clock
) -> None:
    uuid = await api.uuid()
    await api.uuid(imei=OTHER_IMEI)
    doc = await api.get("/nbiot/offline/history", imei=IMEI, start="2024-05-01T00:00:00")
    assert doc["errno"] == 0
    assert doc["data"]["total_count"] == 1
    assert doc["data"]["items"] == [
        {
            "cmd_uuid": uuid,
            "type": "EXECUTE",
            "create_time": "2024-05-01 12:00:00",
            "valid_time": "2024-05-01 12:30:00",
            "expired_time": "2024-05-02 12:00:00",
            "send_status": 1,
            "imei": IMEI,
            "remain": 2,
            "trigger_msg": 5,
        }
    ]


async def test_history_pages_and_sorts(api: Api, clock: Clock) -> None:
    uuids = []
    for i in range(5):
        clock.now = NOW + i
        uuids.append(await api.uuid(valid_time=None))
    path, start = "/nbiot/offline/history", "2024-05-01T00:00:00"
    pages = [
        (await api.get(path, imei=IMEI, start=start, per_page="2", page=str(p)))["data"]
        for p in (1, 2, 3, 4)
    ]
    assert [d["total_count"] for d in pages] == [5, 5, 5, 5]
    assert [[i["cmd_uuid"] for i in d["items"]] for d in pages] == [
        uuids[4:2:-1],
        uuids[2:0:-1],
        uuids[:1],
        [],
    ]  # DESC by default: newest first
    ascending = await api.get(path, imei=IMEI, start=start, sort="ASC", per_page="10")
    assert [i["cmd_uuid"] for i in ascending["data"]["items"]] == uuids


async def test_history_filters_by_start_and_end(api: Api, clock: Clock) -> None:
    created = {}
    for hour in (9, 10, 11):
        clock.now = NOW - (12 - hour) * 3600
        created[hour] = await api.uuid(valid_time=None)
    doc = await api.get(
        "/nbiot/offline/history", imei=IMEI, start="2024-05-01T10:00:00", end="2024-05-01T10:59:59"
    )
    assert [i["cmd_uuid"] for i in doc["data"]["items"]] == [created[10]]
    doc = await api.get("/nbiot/offline/history", imei=IMEI, start="2024-05-01T10:00:00")
    assert {i["cmd_uuid"] for i in doc["data"]["items"]} == {created[10], created[11]}


@pytest.mark.parametrize(
    ("params", "errno"),
    [
        ({"imei": IMEI}, 3),
        ({"start": "2024-05-01T00:00:00"}, 3),
        ({"imei": IMEI, "start": "2024-05-01 00:00:00"}, 3),
        ({"imei": IMEI, "start": "2024-05-01T00:00:00", "end": "soon"}, 3),
        ({"imei": IMEI, "start": "2024-05-01T00:00:00", "sort": "UP"}, 3),
        ({"imei": IMEI, "start": "2024-05-01T00:00:00", "per_page": "101"}, 5006),
        ({"imei": IMEI, "start": "2024-05-01T00:00:00", "page": "0"}, 5006),
    ],
)
async def test_history_checks_its_parameters(api: Api, params: dict[str, str], errno: int) -> None:
    assert (await api.get("/nbiot/offline/history", **params))["errno"] == errno


async def test_history_needs_the_api_key(api: Api) -> None:
    params = {"imei": IMEI, "start": "2024-05-01T00:00:00"}
    status, doc = await api.call("GET", "/nbiot/offline/history", params, headers={})
    assert (status, doc["errno"]) == (200, 1)


async def test_detail_gives_the_command_with_its_args(api: Api) -> None:
    uuid = await api.uuid(body=b'{"args": "set interval=60"}')
    doc = await api.get(f"/nbiot/offline/history/{uuid}", imei=IMEI)
    assert doc["errno"] == 0
    assert doc["data"]["args"] == "set interval=60"
    assert doc["data"]["expired_time"] == "2024-05-02 12:00:00"
    assert "cmd_uuid" not in doc["data"]


async def test_detail_of_an_unknown_or_other_imeis_uuid_is_an_error(api: Api) -> None:
    uuid = await api.uuid()
    assert (await api.get(f"/nbiot/offline/history/{uuid}", imei=OTHER_IMEI))["errno"] == 5006
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (await api.get(f"/nbiot/offline/history/{unknown}", imei=IMEI))["errno"] == 5006


async def test_piecewise_gives_the_delivery_log(api: Api) -> None:
    uuid = await api.uuid()
    doc = await api.get(f"/nbiot/offline/history/{uuid}/piecewise", imei=IMEI)
    assert doc["data"] == [{"log": "command cached", "time": "2024-05-01 12:00:00"}]


async def test_cancel_cancels_only_a_waiting_command(api: Api, emulator: Emulator) -> None:
    uuid = await api.uuid()
    status, doc = await api.call("PUT", f"/nbiot/offline/cancel/{uuid}", {"imei": IMEI})
    assert (status, doc["errno"]) == (200, 0)
    assert emulator.commands_for(IMEI)[0].send_status == 2
    status, doc = await api.call("PUT", f"/nbiot/offline/cancel/{uuid}", {"imei": IMEI})
    assert doc["errno"] == 5006


async def test_cancel_all_answers_with_a_trailing_slash_as_real_clients_call_it(
    api: Api, emulator: Emulator
) -> None:
    waiting = await api.uuid()
    status, doc = await api.call("PUT", "/nbiot/offline/cancel/all/", {"imei": IMEI})
    assert (status, doc["errno"]) == (200, 0)
    assert doc["data"] == {"succ": [waiting], "failed": [], "total": 1}
    assert [c.send_status for c in emulator.accepted()] == [2]


async def test_cancel_all_cancels_the_imeis_waiting_commands(api: Api, emulator: Emulator) -> None:
    first, second = await api.uuid(), await api.uuid()
    other = await api.uuid(imei=OTHER_IMEI)
    await api.call("PUT", f"/nbiot/offline/cancel/{first}", {"imei": IMEI})
    status, doc = await api.call("PUT", "/nbiot/offline/cancel/all", {"imei": IMEI})
    assert (status, doc["errno"]) == (200, 0)
    assert doc["data"] == {"succ": [second], "failed": [], "total": 1}
    assert [c.send_status for c in emulator.accepted()] == [2, 2, 1]
    assert emulator.accepted()[2].uuid == other
