"""The devices behind the emulator: wakes, triggers, delivery, answers, expiry, cancel, seeding.

Every test drives the emulator's injected clock; devices advance lazily when looked at.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner

from dispatcher import emulator as emulator_module
from dispatcher.cli.commands import main
from dispatcher.emulator.devices import DEVICE_ERRORS, REGISTER, UPDATE
from dispatcher.emulator.server import Emulator, Faults, Fleet, serve
from dispatcher.emulator.state import format_answer_time, parse_request_time
from tests.support.clocks import NOW, Clock

IMEI = "861234567890123"
KEY = {"api-key": "secret-key"}
START = "2024-05-01T00:00:00"
# one wake a minute, exactly on schedule, always an UPDATE, answered 5 s after it is sent
EXACT = Fleet(wake_every_s=60, wake_jitter=0.0, uplinks=((UPDATE, 1.0),), answer_delay_s=5, seed=7)


@dataclass
class Api:
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, **params: str) -> Any:
        async with self.session.request(method, path, params=params, headers=KEY) as resp:
            assert resp.status == 200
            return await resp.json()

    async def post(self, imei: str = IMEI, **params: str) -> str:
        """Post a command (valid from now unless valid_time is given); its uuid."""
        query = {
            "imei": imei,
            "obj_id": "3200",
            "obj_inst_id": "0",
            "res_id": "5750",
            "expired_time": "2024-05-02T12:00:00",
            "trigger_msg": "2",
            **params,
        }
        doc = await self.call("POST", "/nbiot/execute/offline", **query)
        assert doc["errno"] == 0, doc
        return str(doc["data"]["uuid"])

    async def detail(self, uuid: str, imei: str = IMEI) -> dict[str, Any]:
        doc = await self.call("GET", f"/nbiot/offline/history/{uuid}", imei=imei)
        assert doc["errno"] == 0, doc
        return dict(doc["data"])

    async def history(self, imei: str = IMEI) -> list[dict[str, Any]]:
        doc = await self.call("GET", "/nbiot/offline/history", imei=imei, start=START, sort="ASC")
        return list(doc["data"]["items"])

    async def cancel(self, uuid: str, imei: str = IMEI) -> int:
        return int((await self.call("PUT", f"/nbiot/offline/cancel/{uuid}", imei=imei))["errno"])


@asynccontextmanager
async def api_for(emulator: Emulator) -> AsyncIterator[Api]:
    async with serve(emulator) as url, aiohttp.ClientSession(url) as session:
        yield Api(session)


def status(emulator: Emulator, uuid: str) -> int:
    [cmd] = [c for c in emulator.accepted() if c.uuid == uuid]
    return cmd.send_status


def first_change(emulator: Emulator, clock: Clock, uuid: str, seconds: int) -> float:
    """Step the clock a second at a time until the command leaves waiting; that time."""
    for step in range(1, seconds + 1):
        clock.now = NOW + step
        emulator.advance()
        if status(emulator, uuid) != 1:
            return clock.now
    raise AssertionError(f"still waiting after {seconds} s")


# -- delivery -----------------------------------------------------------------------------------


async def test_a_waking_device_with_a_matching_trigger_is_sent_the_command_then_succeeds(
    clock: Clock,
) -> None:
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with api_for(emulator) as api:
        uuid = await api.post()  # valid from now, triggered by UPDATE (2)
        assert status(emulator, uuid) == 1
        sent_at = first_change(emulator, clock, uuid, 60)  # one wake a minute
        waiting = await api.detail(uuid)
        assert waiting["send_status"] == 3
        send_time = waiting["send_time"]
        sent = parse_request_time(send_time.replace(" ", "T"))
        assert sent is not None and NOW <= sent < sent_at <= sent + 1
        assert {"confirm_time", "confirm_status", "cmd_result"}.isdisjoint(waiting)
        clock.now = sent_at + 5  # the answer delay
        done = await api.detail(uuid)
        assert done["send_status"] == 5
        assert done["send_time"] == send_time
        assert done["confirm_time"] == format_answer_time(sent + 5)
        assert (done["confirm_status"], done["cmd_result"]) == ("SUCCESS", "OK")
        [item] = await api.history()
        assert {k: item[k] for k in ("send_status", "send_time", "confirm_status")} == {
            "send_status": 5,
            "send_time": send_time,
            "confirm_status": "SUCCESS",
        }
        assert item["confirm_time"] == done["confirm_time"] and "cmd_result" not in item
        log = await api.call("GET", f"/nbiot/offline/history/{uuid}/piecewise", imei=IMEI)
        assert [entry["log"] for entry in log["data"]] == [
            "command cached",
            "command sent",
            "device answered SUCCESS",
        ]


async def test_a_non_matching_trigger_keeps_the_command_waiting(clock: Clock) -> None:
    emulator = Emulator(clock=clock, fleet=EXACT)  # every wake is an UPDATE
    async with api_for(emulator) as api:
        await api.post(trigger_msg=str(REGISTER))
        clock.now = NOW + 3600  # sixty wakes
        [item] = await api.history()
        assert item["send_status"] == 1 and "send_time" not in item


async def test_a_command_is_not_sent_before_its_valid_time(clock: Clock) -> None:
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with api_for(emulator) as api:
        uuid = await api.post(valid_time="2024-05-01T12:30:00")
        clock.now = NOW + 1799
        assert (await api.detail(uuid))["send_status"] == 1
        clock.now = NOW + 1800 + 60 + 5  # a wake after valid_time, and its answer
        done = await api.detail(uuid)
        assert done["send_status"] == 5
        assert done["send_time"] >= "2024-05-01 12:30:00"


async def test_a_never_waking_devices_command_expires_when_its_window_closes(
    clock: Clock,
) -> None:
    fleet = Fleet(wake_every_s=60, never_wake=1.0, seed=1)
    emulator = Emulator(clock=clock, fleet=fleet)
    async with api_for(emulator) as api:
        uuid = await api.post(expired_time="2024-05-01T13:00:00", trigger_msg="7")
        clock.now = NOW + 3599
        assert (await api.detail(uuid))["send_status"] == 1
        clock.now = NOW + 3600
        expired = await api.detail(uuid)
        assert expired["send_status"] == 4 and "send_time" not in expired
        async with api.session.get("/_emulator/stats") as resp:
            assert (await resp.json())["send_status"] == {"4": 1}


async def test_sleepers_woken_take_their_waiting_commands_and_only_then(clock: Clock) -> None:
    fleet = Fleet(wake_every_s=60, never_wake=1.0, seed=1)
    emulator = Emulator(clock=clock, fleet=fleet)
    async with api_for(emulator) as api:
        uuid = await api.post(expired_time="2024-05-01T13:00:00", trigger_msg="7")
        clock.now = NOW + 600
        assert (await api.detail(uuid))["send_status"] == 1  # asleep: still waiting
        assert emulator.wake_sleepers() == 1
        assert emulator.wake_sleepers() == 0  # awake now: nothing more to wake
        assert (await api.detail(uuid))["send_status"] == 1  # not before its first wake
        clock.now = NOW + 600 + 2 * 60 + 1  # past a period and its jitter, and the answer
        assert (await api.detail(uuid))["send_status"] == 5


async def test_an_error_device_answers_with_send_status_6_and_a_confirm_status(
    clock: Clock,
) -> None:
    fleet = Fleet(wake_every_s=60, device_errors=1.0, uplinks=((UPDATE, 1.0),), seed=2)
    emulator = Emulator(clock=clock, fleet=fleet)
    async with api_for(emulator) as api:
        uuid = await api.post()
        clock.now = NOW + 2 * 60 + 1  # past the first wake (at most 66 s late) and its answer
        failed = await api.detail(uuid)
        assert failed["send_status"] == 6
        assert failed["confirm_status"] in DEVICE_ERRORS
        assert failed["cmd_result"] is None and "confirm_time" in failed
        assert emulator.stats()["send_status"] == {6: 1}


# -- cancel -------------------------------------------------------------------------------------


async def test_cancel_works_while_waiting_and_is_refused_once_sent(clock: Clock) -> None:
    emulator = Emulator(clock=clock, fleet=EXACT)
    async with api_for(emulator) as api:
        early = await api.post()
        late = await api.post()
        assert await api.cancel(early) == 0  # no wake yet: the device has not seen it
        clock.now = NOW + 3600
        assert await api.cancel(late) == 5006  # sent and answered by now
        assert [status(emulator, u) for u in (early, late)] == [2, 5]
        assert "send_time" not in await api.detail(early)
        doc = await api.call("PUT", "/nbiot/offline/cancel/all", imei=IMEI)
        assert doc["data"] == {"succ": [], "failed": [], "total": 0}


# -- seeding and devices off ---------------------------------------------------------------------


async def run_fleet(fleet: Fleet, look_every: float | None) -> list[list[dict[str, Any]]]:
    """Six devices' histories after an hour, looked at every ``look_every`` seconds or once."""
    clock = Clock(NOW)
    emulator = Emulator(clock=clock, fleet=fleet)
    imeis = [f"86123456789{n:04d}" for n in range(6)]
    async with api_for(emulator) as api:
        for n, imei in enumerate(imeis):
            for trigger in ("1", "2", "7"):
                clock.now = NOW + 7 * n
                await api.post(imei, trigger_msg=trigger, expired_time="2024-05-01T12:30:00")
        end = NOW + 3600
        while look_every is not None and clock.now + look_every < end:
            clock.now += look_every
            for imei in imeis:
                await api.history(imei)
        clock.now = end
        histories = [await api.history(imei) for imei in imeis]
    for items in histories:
        for item in items:
            del item["cmd_uuid"]  # a new uuid4 each run
    return histories


async def test_seeded_devices_repeat_exactly_however_often_they_are_looked_at() -> None:
    fleet = Fleet(wake_every_s=20, wake_jitter=0.5, never_wake=0.2, device_errors=0.3, seed=11)
    once = await run_fleet(fleet, None)
    assert once == await run_fleet(fleet, None)
    assert once == await run_fleet(fleet, 45.5)
    statuses = {item["send_status"] for items in once for item in items}
    assert statuses <= {4, 5, 6} and len(statuses) > 1
    assert once != await run_fleet(replace(fleet, seed=12), None)


@pytest.mark.parametrize("fleet", [None, Fleet(), Fleet(wake_every_s=0)])
async def test_without_devices_commands_wait_forever(clock: Clock, fleet: Fleet | None) -> None:
    emulator = Emulator(clock=clock, fleet=fleet)
    async with api_for(emulator) as api:
        uuid = await api.post(expired_time="2024-05-01T13:00:00")
        clock.now = NOW + 86_400  # a day, long past its window
        emulator.advance()
        [item] = await api.history()
        assert item["send_status"] == 1
        assert {"send_time", "confirm_time", "confirm_status"}.isdisjoint(item)
        assert await api.cancel(uuid) == 0
    assert emulator.stats()["send_status"] == {2: 1}


# -- settings and flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"wake_every_s": -1},
        {"never_wake": 1.5},
        {"device_errors": -0.1},
        {"answer_delay_s": float("inf")},
        {"uplinks": ((3, 1.0),)},
        {"uplinks": ((UPDATE, 0.0),)},
    ],
)
def test_fleet_rejects_impossible_settings(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fleet(**changes)


def test_emulator_command_turns_the_device_flags_into_a_fleet(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[Faults, Fleet]] = []

    def run(host: str, port: int, faults: Faults, *, fleet: Fleet, **_: Any) -> None:
        seen.append((faults, fleet))

    monkeypatch.setattr(emulator_module, "run", run)
    flags = ["--wake-every", "2", "--never-wake", "0.1", "--device-errors", "0.25",
             "--answer-delay", "0.5", "--seed", "9"]  # fmt: skip
    result = CliRunner().invoke(main, ["emulator", *flags])
    assert result.exit_code == 0, result.output
    assert seen[0][1] == Fleet(
        wake_every_s=2, never_wake=0.1, device_errors=0.25, answer_delay_s=0.5, seed=9
    )
    assert CliRunner().invoke(main, ["emulator", "--never-wake", "2"]).exit_code == 2


def test_emulator_command_devices_wake_every_second_unless_told_not_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A first run's commands are delivered with no flag: the devices wake by default.
    seen: list[tuple[Faults, Fleet]] = []

    def run(host: str, port: int, faults: Faults, *, fleet: Fleet, **_: Any) -> None:
        seen.append((faults, fleet))

    monkeypatch.setattr(emulator_module, "run", run)
    assert CliRunner().invoke(main, ["emulator"]).exit_code == 0
    assert seen[0] == (Faults(), Fleet(wake_every_s=1.0))
    assert seen[0][1].on and seen[0][1].answer_delay_s == 0.2
    assert CliRunner().invoke(main, ["emulator", "--wake-every", "0"]).exit_code == 0
    assert seen[1] == (Faults(), Fleet())  # the sleepy fleet: commands wait (send_status 1)
    assert not seen[1][1].on
