"""The OneNET emulator over real loopback sockets: request rules, stored state, faults, admin."""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import orjson
import pytest
from click.testing import CliRunner
from multidict import CIMultiDictProxy

from dispatcher import emulator as emulator_module
from dispatcher.cli.commands import main
from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.emulator.state import format_answer_time, parse_request_time
from tests.support.clocks import Clock
from tests.support.waiting import until

NOW = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC).timestamp()  # 2024-05-01 12:00:00 in UTC+8
IMEI = "861234567890123"
OTHER_IMEI = "869876543210987"
KEY = {"api-key": "secret-key"}
ARGS_BODY = b'{"args": "reboot"}'
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def execute_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "imei": IMEI,
        "obj_id": "3200",
        "obj_inst_id": "0",
        "res_id": "5750",
        "valid_time": "2024-05-01T12:30:00",
        "expired_time": "2024-05-02T12:00:00",
        "retry": "2",
        "timeout": "30",
        "trigger_msg": "5",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@dataclass
class SleepSpy:
    """Records each delay the emulator asks for and returns at once."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@dataclass
class Api:
    session: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] = KEY,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method, path, params=params, data=body, headers=headers
        ) as resp:
            if resp.content_type == "application/json":
                return resp.status, await resp.json()
            return resp.status, await resp.text()

    async def send(
        self,
        overrides: Mapping[str, str | None],
        body: bytes | None = ARGS_BODY,
        headers: Mapping[str, str] = KEY,
    ) -> tuple[int, Any]:
        params = execute_params(**overrides)
        return await self.call("POST", "/nbiot/execute/offline", params, body=body, headers=headers)

    async def post(
        self, *, body: bytes | None = ARGS_BODY, headers: Mapping[str, str] = KEY, **kw: str | None
    ) -> tuple[int, Any]:
        return await self.send(kw, body, headers)

    async def uuid(self, *, body: bytes | None = ARGS_BODY, **kw: str | None) -> str:
        status, doc = await self.send(kw, body)
        assert (status, doc["errno"]) == (200, 0), doc
        return str(doc["data"]["uuid"])

    async def get(self, path: str, **params: str) -> Any:
        status, doc = await self.call("GET", path, params)
        assert status == 200
        return doc

    async def raw(
        self, method: str, path: str, params: Mapping[str, str], body: bytes | None = None
    ) -> tuple[int, CIMultiDictProxy[str], bytes]:
        """Status, headers and the body as sent (not inflated when the session does not)."""
        async with self.session.request(
            method, path, params=params, data=body, headers=KEY
        ) as resp:
            return resp.status, resp.headers, await resp.read()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def mono() -> Clock:
    return Clock(1000.0)


@pytest.fixture
def sleep() -> SleepSpy:
    return SleepSpy()


@pytest.fixture
def emulator(clock: Clock, mono: Clock, sleep: SleepSpy) -> Emulator:
    return Emulator(clock=clock, monotonic=mono, sleep=sleep)


@pytest.fixture
async def api(emulator: Emulator) -> AsyncIterator[Api]:
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        yield Api(session)


@pytest.fixture
async def raw(emulator: Emulator) -> AsyncIterator[Api]:
    """An Api whose session leaves gzip answers compressed."""
    async with (
        serve(emulator) as url,
        aiohttp.ClientSession(url, auto_decompress=False) as session,
    ):
        yield Api(session)


# -- execute/offline: accepted commands -----------------------------------------------------


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


# -- execute/offline: rejections --------------------------------------------------------------


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


# -- history, detail, piecewise, cancel --------------------------------------------------------


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


async def test_cancel_all_cancels_the_imeis_waiting_commands(api: Api, emulator: Emulator) -> None:
    first, second = await api.uuid(), await api.uuid()
    other = await api.uuid(imei=OTHER_IMEI)
    await api.call("PUT", f"/nbiot/offline/cancel/{first}", {"imei": IMEI})
    status, doc = await api.call("PUT", "/nbiot/offline/cancel/all", {"imei": IMEI})
    assert (status, doc["errno"]) == (200, 0)
    assert doc["data"] == {"succ": [second], "failed": [], "total": 1}
    assert [c.send_status for c in emulator.accepted()] == [2, 2, 1]
    assert emulator.accepted()[2].uuid == other


# -- faults -----------------------------------------------------------------------------------


async def test_fail_rate_answers_500_with_html_and_stores_nothing(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(fail_rate=1.0)
    status, text = await api.post(headers={})  # before anything: even the key is not checked
    assert status == 500
    assert text.startswith("<html>")
    assert emulator.accepted() == []
    assert emulator.stats()["faults"] == {
        "http500": 1,
        "cut_before": 0,
        "cut_after": 0,
        "latency": 0,
    }


async def test_throttle_answers_errno_7_above_the_rate_in_a_sliding_second(
    api: Api, emulator: Emulator, mono: Clock
) -> None:
    emulator.faults = Faults(throttle_rps=3)
    answers = [(await api.post())[1]["errno"] for _ in range(5)]
    assert answers == [0, 0, 0, 7, 7]
    mono.now += 0.999
    assert (await api.post())[1]["errno"] == 7
    mono.now += 0.001  # the first three leave the window; the throttled ones never entered it
    answers = [(await api.post())[1]["errno"] for _ in range(4)]
    assert answers == [0, 0, 0, 7]
    stats = emulator.stats()
    assert (stats["accepted"], stats["throttled"], stats["rejected"]) == (6, 4, {})


async def test_throttle_as_http_429_sends_retry_after(api: Api, emulator: Emulator) -> None:
    emulator.faults = Faults(throttle_rps=1, throttle_mode="http429", throttle_retry_after=2)
    assert (await api.post())[0] == 200
    async with api.session.post(
        "/nbiot/execute/offline", params=execute_params(), headers=KEY
    ) as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "2"
    assert len(emulator.accepted()) == 1


async def test_throttle_below_one_per_second_spaces_admissions(
    api: Api, emulator: Emulator, mono: Clock
) -> None:
    emulator.faults = Faults(throttle_rps=0.5)
    assert [(await api.post())[1]["errno"] for _ in range(2)] == [0, 7]
    mono.now += 2.0
    assert (await api.post())[1]["errno"] == 0


async def test_cut_before_drops_the_connection_and_stores_nothing(
    api: Api, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults = Faults(cut_before_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post()
    assert emulator.accepted() == []
    assert emulator.stats()["faults"]["cut_before"] == 1  # type: ignore[index]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_cut_after_stores_the_command_but_the_client_sees_a_disconnect(
    api: Api, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults = Faults(cut_after_rate=1.0)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.post()
    [cmd] = emulator.accepted()
    assert cmd.args == "reboot"
    emulator.faults = Faults()
    doc = await api.get("/nbiot/offline/history", imei=IMEI, start="2024-05-01T11:55:00")
    assert [i["cmd_uuid"] for i in doc["data"]["items"]] == [cmd.uuid]  # reconcilable
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_cut_is_not_applied_to_reads_unless_asked(api: Api, emulator: Emulator) -> None:
    emulator.faults = Faults(cut_before_rate=1.0, fail_rate=0.0)
    params = {"imei": IMEI, "start": "2024-05-01T00:00:00"}
    assert (await api.get("/nbiot/offline/history", **params))["errno"] == 0
    emulator.faults = Faults(cut_before_rate=1.0, affect_reads=True)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await api.get("/nbiot/offline/history", **params)
    emulator.faults = Faults(fail_rate=1.0, affect_reads=True)
    assert (await api.call("GET", "/nbiot/offline/history", params))[0] == 500


async def test_latency_awaits_the_injected_sleep(
    api: Api, emulator: Emulator, sleep: SleepSpy
) -> None:
    emulator.faults = Faults(latency_ms=250)
    await api.uuid()
    await api.get("/nbiot/offline/history", imei=IMEI, start="2024-05-01T00:00:00")
    assert sleep.delays == [0.25, 0.25]
    assert emulator.stats()["faults"]["latency"] == 2  # type: ignore[index]


async def test_latency_jitter_stays_within_its_bound(
    api: Api, emulator: Emulator, sleep: SleepSpy
) -> None:
    emulator.faults = Faults(latency_ms=100, latency_jitter_ms=50, seed=3)
    for _ in range(10):
        await api.uuid()
    assert all(0.1 <= d <= 0.15 for d in sleep.delays)
    assert len(set(sleep.delays)) > 1


async def test_seeded_faults_repeat_exactly(api: Api, emulator: Emulator) -> None:
    async def statuses() -> list[int | str]:
        seen: list[int | str] = []
        for _ in range(30):
            try:
                seen.append((await api.post())[0])
            except aiohttp.ServerDisconnectedError:
                seen.append("cut")
        return seen

    faults = Faults(fail_rate=0.3, cut_before_rate=0.2, cut_after_rate=0.2, seed=42)
    emulator.faults = faults
    first = await statuses()
    emulator.faults = faults  # setting the faults again restarts the seeded sequence
    assert await statuses() == first
    assert {200, 500, "cut"} <= set(first)


def test_faults_reject_impossible_settings() -> None:
    with pytest.raises(ValueError, match="fail_rate"):
        Faults(fail_rate=1.5)
    with pytest.raises(ValueError, match="throttle_mode"):
        Faults(throttle_mode="slow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="throttle_rps"):
        Faults(throttle_rps=0)


# -- admin endpoints and counters -------------------------------------------------------------


async def test_admin_stats_count_duplicates(api: Api, emulator: Emulator) -> None:
    await api.uuid()
    await api.uuid()  # the same command again
    await api.uuid(expired_time="2024-05-03T12:00:00")  # same target, another window
    await api.uuid(body=b'{"args": "other"}')
    async with api.session.get("/_emulator/stats") as resp:
        stats = await resp.json()
    assert stats["accepted"] == 4
    assert stats["duplicates"] == 1
    assert stats["duplicates_ignoring_times"] == 2
    assert stats["posts"] == 4


async def test_admin_arrivals_list_each_post(api: Api, emulator: Emulator, mono: Clock) -> None:
    for t in (1000.0, 1000.25, 1001.5):
        mono.now = t
        await api.post(imei="bad")
    async with api.session.get("/_emulator/arrivals") as resp:
        assert await resp.json() == [1000.0, 1000.25, 1001.5]
    assert emulator.arrivals() == [1000.0, 1000.25, 1001.5]


async def test_admin_faults_endpoint_replaces_fields(api: Api, emulator: Emulator) -> None:
    async with api.session.put(
        "/_emulator/faults", json={"throttle_rps": 5, "foreign_imeis": [OTHER_IMEI]}
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["foreign_imeis"] == [OTHER_IMEI]
    assert emulator.faults.throttle_rps == 5
    assert emulator.faults.foreign_imeis == frozenset({OTHER_IMEI})
    async with api.session.put("/_emulator/faults", json={"fail_rate": 2}) as resp:
        assert resp.status == 400
    async with api.session.put("/_emulator/faults", json={"nonsense": 1}) as resp:
        assert resp.status == 400
    assert emulator.faults.fail_rate == 0.0


async def test_without_records_commands_are_counted_not_kept(clock: Clock) -> None:
    emulator = Emulator(clock=clock, keep_records=False)
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        api = Api(session)
        await api.uuid()
        await api.uuid()
    assert emulator.accepted() == []
    assert (emulator.stats()["accepted"], emulator.stats()["duplicates"]) == (2, 1)


async def test_run_serves_until_stopped_and_reports_its_url() -> None:
    code = (
        "from dispatcher.emulator.server import run\n"
        "run('127.0.0.1', 0, ready=lambda url: print(url, flush=True))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        url = (await proc.stdout.readline()).decode().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with aiohttp.ClientSession(url) as session, session.get("/_emulator/stats") as r:
            assert (await r.json())["posts"] == 0
    finally:
        proc.terminate()
        await proc.wait()


# -- timestamps -------------------------------------------------------------------------------


def test_request_times_are_beijing_time_in_the_t_format() -> None:
    assert parse_request_time("2024-05-01T12:00:00") == NOW
    for bad in (
        "2024-05-01 12:00:00",
        "2024-05-01T12:00:00Z",
        "20240501T120000",
        "2024-02-30T00:00:00",
    ):
        assert parse_request_time(bad) is None


def test_answer_times_are_beijing_time_with_a_space() -> None:
    assert format_answer_time(NOW + 0.9) == "2024-05-01 12:00:00"


# -- answer-shaping faults: truncation, gzip, clock, hang, a proxy's HTML ----------------------

EXECUTE = "/nbiot/execute/offline"
HISTORY = "/nbiot/offline/history"
HISTORY_PARAMS = {"imei": IMEI, "start": "2024-05-01T00:00:00"}


def accepted_body(uuid: str) -> bytes:
    return b'{"errno":0,"error":"succ","data":{"uuid":"%s"}}' % uuid.encode()


def fault_count(emulator: Emulator, name: str) -> int:
    faults = emulator.stats()["faults"]
    assert isinstance(faults, dict)
    return int(faults.get(name, 0))


async def test_truncate_stores_the_command_and_answers_half_its_json_body(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(truncate_rate=1.0)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    [cmd] = emulator.accepted()
    full = accepted_body(cmd.uuid)
    assert (status, body) == (200, full[: len(full) // 2])
    assert headers["Content-Length"] == str(len(body))  # complete, but broken
    assert headers["Content-Type"].startswith("application/json")
    assert fault_count(emulator, "truncate") == 1


async def test_gzip_encodes_every_answer_whether_asked_or_not(raw: Api, emulator: Emulator) -> None:
    emulator.faults = Faults(compress=True)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    _, rejected_headers, rejected = await raw.raw("POST", EXECUTE, execute_params(imei="1"))
    [cmd] = emulator.accepted()
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert gzip.decompress(body) == accepted_body(cmd.uuid)
    assert rejected_headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(rejected))["errno"] == 3


async def test_gzip_bomb_pads_the_accepted_answer_with_whitespace_before_compressing(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(bomb_bytes=3_000_000)
    status, headers, body = await raw.raw("POST", EXECUTE, execute_params(), ARGS_BODY)
    [cmd] = emulator.accepted()
    inflated = gzip.decompress(body)
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    assert len(body) < 30_000 and len(inflated) == 3_000_000
    assert inflated.strip() == accepted_body(cmd.uuid)
    assert orjson.loads(inflated)["data"]["uuid"] == cmd.uuid
    assert fault_count(emulator, "gzip_bomb") == 1


async def test_clock_offset_moves_the_servers_now_and_its_date_header(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(clock_offset_s=-3600.0)  # the server's now is 11:00, not 12:00
    date = format_datetime(datetime.fromtimestamp(NOW - 3600, UTC), usegmt=True)
    assert (await api.post(valid_time="2024-05-01T10:59:59"))[1]["errno"] == 5006
    async with api.session.post(
        EXECUTE, params=execute_params(valid_time="2024-05-01T11:30:00"), headers=KEY
    ) as resp:
        assert (await resp.json())["errno"] == 0
        assert resp.headers["Date"] == date
    [cmd] = emulator.accepted()
    assert cmd.created_at == NOW - 3600
    async with api.session.get(HISTORY, params=HISTORY_PARAMS, headers=KEY) as resp:
        doc = await resp.json()
        assert resp.headers["Date"] == date
    assert doc["data"]["items"][0]["create_time"] == "2024-05-01 11:00:00"
    later = {"imei": IMEI, "start": "2024-05-01T11:00:01"}  # after the server's now
    assert (await api.get(HISTORY, **later))["data"]["items"] == []


async def test_answers_carry_the_date_of_the_emulators_clock(api: Api, clock: Clock) -> None:
    clock.now = NOW + 90
    async with api.session.get(HISTORY, params=HISTORY_PARAMS, headers=KEY) as resp:
        assert resp.headers["Date"] == "Wed, 01 May 2024 04:01:30 GMT"


async def test_hang_reads_the_request_stores_nothing_and_never_answers(
    emulator: Emulator,
) -> None:
    emulator.faults = Faults(hang_rate=1.0)
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve(emulator) as url, aiohttp.ClientSession(url, timeout=timeout) as session:
        with pytest.raises(aiohttp.ServerTimeoutError):
            await Api(session).post()
    assert emulator.accepted() == []
    assert emulator.stats()["posts"] == 1
    assert fault_count(emulator, "hang") == 1


async def test_serve_lets_hung_requests_go_when_it_stops() -> None:
    emulator = Emulator(Faults(hang_rate=1.0))
    async with aiohttp.ClientSession() as session:
        async with serve(emulator) as url:
            pending = asyncio.create_task(Api(session).call("POST", url + EXECUTE, {}))
            await until(lambda: fault_count(emulator, "hang") == 1, interval=0)
        # Let go rather than cancelled at the end of the shutdown timeout:
        assert fault_count(emulator, "hang_released") == 1
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await pending


async def test_html_error_answers_every_api_call_and_stores_nothing(
    api: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(html_status=407)
    answers = [
        await api.post(headers={}),  # a proxy in front: not even the key is looked at
        await api.call("GET", HISTORY, HISTORY_PARAMS),
        await api.call("GET", f"{HISTORY}/some-uuid", {"imei": IMEI}),
        await api.call("PUT", "/nbiot/offline/cancel/all", {"imei": IMEI}),
    ]
    for status, text in answers:
        assert status == 407
        assert text.startswith("<html>") and "407 Proxy Authentication Required" in text
    assert emulator.accepted() == []
    assert fault_count(emulator, "html") == 4


async def test_truncate_and_gzip_reach_reads_only_with_affect_reads(
    raw: Api, emulator: Emulator
) -> None:
    emulator.faults = Faults(truncate_rate=1.0, compress=True)
    _, headers, body = await raw.raw("GET", HISTORY, HISTORY_PARAMS)
    assert "Content-Encoding" not in headers
    assert orjson.loads(body)["errno"] == 0
    emulator.faults = Faults(truncate_rate=1.0, compress=True, affect_reads=True)
    _, headers, body = await raw.raw("GET", HISTORY, HISTORY_PARAMS)
    assert headers["Content-Encoding"] == "gzip"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(gzip.decompress(body))


async def test_hang_reaches_reads_only_with_affect_reads(emulator: Emulator) -> None:
    timeout = aiohttp.ClientTimeout(sock_read=0.2)
    async with serve(emulator) as url, aiohttp.ClientSession(url, timeout=timeout) as session:
        api = Api(session)
        emulator.faults = Faults(hang_rate=1.0)
        assert (await api.get(HISTORY, **HISTORY_PARAMS))["errno"] == 0
        emulator.faults = Faults(hang_rate=1.0, affect_reads=True)
        with pytest.raises(aiohttp.ServerTimeoutError):
            await api.get(HISTORY, **HISTORY_PARAMS)
    assert fault_count(emulator, "hang") == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truncate_rate": 1.5}, "truncate_rate"),
        ({"hang_rate": -0.1}, "hang_rate"),
        ({"html_status": 200}, "html_status"),
        ({"html_status": 600}, "html_status"),
        ({"bomb_bytes": -1}, "bomb_bytes"),
        ({"clock_offset_s": float("nan")}, "clock_offset_s"),
    ],
)
def test_answer_faults_reject_impossible_settings(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**changes)


async def test_admin_faults_endpoint_sets_the_answer_faults(api: Api, emulator: Emulator) -> None:
    changes = {
        "truncate_rate": 0.25,
        "hang_rate": 0.5,
        "html_status": 403,
        "compress": True,
        "bomb_bytes": 1000,
        "clock_offset_s": -90,
    }
    async with api.session.put("/_emulator/faults", json=changes) as resp:
        assert resp.status == 200
        shown = await resp.json()
    assert {name: shown[name] for name in changes} == changes
    assert (emulator.faults.html_status, emulator.faults.clock_offset_s) == (403, -90)
    async with api.session.put("/_emulator/faults", json={"html_status": 99}) as resp:
        assert resp.status == 400
    assert emulator.faults.html_status == 403


def test_emulator_command_turns_the_answer_fault_flags_into_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Faults] = []

    def run(host: str, port: int, faults: Faults, **_: Any) -> None:
        seen.append(faults)

    monkeypatch.setattr(emulator_module, "run", run)
    flags = ["--truncate", "0.1", "--gzip", "--gzip-bomb", "300000000", "--clock-offset",
             "-120.5", "--hang", "0.2", "--html-error", "407"]  # fmt: skip
    result = CliRunner().invoke(main, ["emulator", *flags])
    assert result.exit_code == 0, result.output
    [faults] = seen
    assert (faults.truncate_rate, faults.compress, faults.bomb_bytes) == (0.1, True, 300_000_000)
    assert (faults.clock_offset_s, faults.hang_rate, faults.html_status) == (-120.5, 0.2, 407)
    assert CliRunner().invoke(main, ["emulator"]).exit_code == 0
    assert seen[1] == Faults()


@pytest.mark.parametrize(
    "flags", [["--html-error", "200"], ["--hang", "2"], ["--truncate", "-1"], ["--gzip-bomb", "-5"]]
)
def test_emulator_command_refuses_impossible_answer_faults(
    monkeypatch: pytest.MonkeyPatch, flags: list[str]
) -> None:
    monkeypatch.setattr(emulator_module, "run", lambda *a, **k: None)
    assert CliRunner().invoke(main, ["emulator", *flags]).exit_code == 2
