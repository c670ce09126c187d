"""The OneNET emulator over real loopback sockets: what execute/offline accepts and stores, and
what it refuses."""

from __future__ import annotations

import re

import pytest

from dispatcher.emulator.server import Emulator, Faults
from tests.support.clocks import NOW, Clock
from tests.support.emulator_api import (
    IMEI,
    OTHER_IMEI,
    Api,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def test_accepted_command_is_stored_exactly_as_sent(api: Api, emulator: Emulator) -> None:
    status, doc = await api.post(body='{"args": "fw=2.1;reboot é"}'.encode())
    assert status == 200
    assert doc["errno"] == 0 and doc["error"] == "succ"
    uuid = doc["data"]["uuid"]
    assert UUID4.match(uuid)
    [cmd] = emulator.accepted()
    assert (cmd.uuid, cmd.imei, cmd.obj_id, cmd.obj_inst_id, cmd.res_id) == (
        uuid,
        IMEI,
        3200,
        0,
        5750,
    )
    assert (cmd.valid_time, cmd.expired_time) == ("2024-05-01T12:30:00", "2024-05-02T12:00:00")
    assert (cmd.retry, cmd.timeout, cmd.trigger_msg) == (2, 30, 5)
    assert cmd.args == "fw=2.1;reboot é"
    assert (cmd.created_at, cmd.valid_at) == (NOW, NOW + 1800)
    assert (cmd.type, cmd.send_status) == ("EXECUTE", 1)
    assert emulator.commands_for(IMEI) == [cmd]
    assert emulator.commands_for(OTHER_IMEI) == []


async def test_omitted_optionals_are_stored_as_none_and_valid_time_is_server_now(
    api: Api, emulator: Emulator
) -> None:
    await api.uuid(body=None, valid_time=None, retry=None, timeout=None, trigger_msg=None)
    [cmd] = emulator.accepted()
    assert (cmd.valid_time, cmd.retry, cmd.timeout, cmd.trigger_msg, cmd.args) == (None,) * 5
    assert cmd.valid_at == NOW
    item = cmd.history_item()
    assert (item["remain"], item["trigger_msg"]) == (3, 7)  # OneNET's defaults


async def test_each_accepted_command_gets_a_new_uuid(api: Api) -> None:
    uuids = {await api.uuid() for _ in range(5)}
    assert len(uuids) == 5


@pytest.mark.parametrize(("retry", "wait", "trigger_msg"), [("0", "5", "1"), ("10", "40", "7")])
async def test_range_limits_are_inclusive(
    api: Api, retry: str, wait: str, trigger_msg: str
) -> None:
    await api.uuid(retry=retry, timeout=wait, trigger_msg=trigger_msg)


async def test_args_of_exactly_2048_bytes_are_accepted(api: Api, emulator: Emulator) -> None:
    args = "é" * 1024  # 2 bytes each in UTF-8
    await api.uuid(body=f'{{"args": "{args}"}}'.encode())
    assert emulator.accepted()[0].args == args


@pytest.mark.parametrize("headers", [{}, {"api-key": ""}])
async def test_missing_api_key_is_auth_failed(api: Api, headers: dict[str, str]) -> None:
    status, doc = await api.post(headers=headers)
    assert (status, doc["errno"], doc["error"]) == (200, 1, "auth failed")


async def test_wrong_api_key_is_auth_failed_when_a_key_is_expected(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(api_key="the-right-key")
    assert (await api.post())[1]["errno"] == 1
    assert (await api.post(headers={"api-key": "the-right-key"}))[1]["errno"] == 0
    assert len(emulator.accepted()) == 1


async def test_foreign_imei_is_auth_failed(api: Api, emulator: Emulator) -> None:
    emulator.faults = Faults(foreign_imeis=frozenset({OTHER_IMEI}))
    assert (await api.post(imei=OTHER_IMEI))[1]["errno"] == 1
    assert (await api.post(imei=OTHER_IMEI, obj_id="x"))[1]["errno"] == 3  # malformed comes first
    assert (await api.post())[1]["errno"] == 0


@pytest.mark.parametrize(
    ("overrides", "body"),
    [
        ({"imei": None}, None),
        ({"imei": "86123456789012"}, None),
        ({"imei": "8612345678901234"}, None),
        ({"imei": "86123456789012a"}, None),
        ({"obj_id": None}, None),
        ({"obj_id": "x"}, None),
        ({"obj_id": "-1"}, None),
        ({"obj_inst_id": None}, None),
        ({"res_id": "1.5"}, None),
        ({"expired_time": None}, None),
        ({"expired_time": "2024-05-02 12:00:00"}, None),
        ({"expired_time": "2024-05-02T12:00:00+08:00"}, None),
        ({"expired_time": "2024-05-02T12:00"}, None),
        ({"expired_time": "2024-13-02T12:00:00"}, None),
        ({"valid_time": "tomorrow"}, None),
        ({"retry": "three"}, None),
        ({"timeout": ""}, None),
        ({"trigger_msg": "7.0"}, None),
        ({}, b"not json"),
        ({}, b'["args"]'),
        ({}, b'{"args": 42}'),
    ],
)
async def test_missing_or_malformed_parameter_is_errno_3(
    api: Api, emulator: Emulator, overrides: dict[str, str | None], body: bytes | None
) -> None:
    status, doc = await api.send(overrides, body)
    assert (status, doc["errno"], doc["error"]) == (200, 3, "parameter required")
    assert emulator.accepted() == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"valid_time": "2024-05-01T12:00:00"},  # equal to the server's now: not later
        {"valid_time": "2024-05-01T11:59:59"},
        {"expired_time": "2024-05-01T12:30:00"},  # equal to valid_time
        {"expired_time": "2024-05-01T12:10:00"},  # before valid_time
        {"valid_time": None, "expired_time": "2024-05-01T11:00:00"},  # in the past
        {"retry": "11"},
        {"retry": "-1"},
        {"timeout": "4"},
        {"timeout": "41"},
        {"trigger_msg": "0"},
        {"trigger_msg": "8"},
    ],
)
async def test_broken_limit_is_errno_5006(
    api: Api, emulator: Emulator, overrides: dict[str, str | None]
) -> None:
    status, doc = await api.send(overrides)
    assert (status, doc["errno"], doc["error"]) == (200, 5006, "system logic limit")
    assert emulator.accepted() == []


async def test_args_over_2048_bytes_is_errno_5006(api: Api) -> None:
    status, doc = await api.post(body=b'{"args": "%s"}' % (b"a" * 2049))
    assert (status, doc["errno"]) == (200, 5006)


async def test_valid_time_is_checked_against_the_injected_clock(api: Api, clock: Clock) -> None:
    clock.now = NOW + 3600  # 13:00, after the command's valid_time of 12:30
    assert (await api.post())[1]["errno"] == 5006
    assert (await api.post(valid_time="2024-05-01T13:00:01"))[1]["errno"] == 0


async def test_rejections_are_counted_by_errno(api: Api, emulator: Emulator) -> None:
    await api.post(headers={})
    await api.post(imei=None)
    await api.post(imei=None)
    await api.post(retry="99")
    await api.uuid()
    stats = emulator.stats()
    assert stats["rejected"] == {1: 1, 3: 2, 5006: 1}
    assert (stats["posts"], stats["accepted"]) == (5, 1)
