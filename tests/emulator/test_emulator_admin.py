"""The emulator's admin endpoints and counters, serving until stopped, and its timestamps."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp

from dispatcher.emulator.server import Emulator, serve
from dispatcher.emulator.state import format_answer_time, parse_request_time
from tests.support.clocks import NOW, Clock
from tests.support.emulator_api import (
    OTHER_IMEI,
    Api,
)


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
        "from dispatcher.emulator import run\n"
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
