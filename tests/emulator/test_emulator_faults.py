"""The emulator's faults: failures, throttling, cut connections, latency, seeded repeats."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from dispatcher.emulator.server import Emulator, Faults
from tests.support.clocks import Clock
from tests.support.emulator_api import (
    IMEI,
    KEY,
    Api,
    SleepSpy,
    execute_params,
)


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
