"""The real dispatcher against the real emulator over loopback sockets, with faults injected.

Each fault test ends with the same promise (assert_exactly_once, in tests/support/e2e.py): every
command is accepted, the server holds each exactly once, the ledger's uuids are the server's, none
in doubt.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import UnreachableError, WrongKeyError
from dispatcher.job.model import load_job
from dispatcher.ledger.store import Status
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import Stop
from dispatcher.times import BEIJING, format_onenet, parse_onenet
from tests.support.cli import process_env
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    fast_settings,
    fleet,
    imei,
    ledger_rows,
    run_against,
    write_config,
    write_csv_job,
)


class RecordingPace(Pace):
    """A Pace that remembers every rate it was set to."""

    def __init__(self, rate: float | None) -> None:
        self.rates: list[float | None] = []
        super().__init__(rate)

    def set_rate(self, rate: float | None) -> None:
        self.rates.append(rate)
        super().set_rate(rate)


def _in_beijing(seconds_from_now: float) -> str:
    moment = datetime.now(BEIJING) + timedelta(seconds=seconds_from_now)
    return format_onenet(moment)


def _files_of(ledger_path: Path) -> bytes:
    """The bytes of a ledger and its companions (-wal, -shm, .lock)."""
    return b"".join(p.read_bytes() for p in ledger_path.parent.glob(ledger_path.name + "*"))


# -- parameters ----------------------------------------------------------------------------------


async def test_every_parameter_reaches_the_server_as_the_job_file_says(tmp_path: Path) -> None:
    valid_at, expired_at = _in_beijing(3600), _in_beijing(2 * 86400)
    job_path = tmp_path / "params.yaml"
    job_path.write_text(
        "job: params\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        "  expired_time: '+1d'\n"
        "targets:\n"
        f"  - imei: '{imei(1)}'\n"
        f"  - imei: '{imei(2)}'\n"
        "    args: 'fw=2.4.1;md5=9e107d'\n"
        "    retry: 7\n"
        "    timeout: 12\n"
        "    trigger_msg: 4\n"
        f"  - imei: '{imei(3)}'\n"
        f"    valid_time: '{valid_at}'\n"
        f"    expired_time: '{expired_at}'\n"
        "    trigger: [register, notify]\n"
        f"  - imei: '{imei(4)}'\n"
        "    obj_inst_id: 2\n"
        "    res_id: 10\n"
        "    valid_time: '+30m'\n"
        "    args: 'report_interval=300'\n"
        "    retry: 0\n"
        "    timeout: 40\n",
        encoding="utf-8",
    )
    emulator = Emulator()
    before = time.time()
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())
    after = time.time()

    assert result.complete
    held = {c.imei: c for c in emulator.accepted()}
    commands = list(load_job(job_path).commands())
    assert sorted(held) == sorted(c.imei for c in commands)
    for command in commands:
        got = held[command.imei]
        assert (got.obj_id, got.obj_inst_id, got.res_id) == (
            command.obj_id,
            command.obj_inst_id,
            command.res_id,
        )
        assert got.args == command.args
        assert (got.retry, got.timeout, got.trigger_msg) == (
            command.retry,
            command.timeout,
            command.trigger_msg,
        )
    # defaults: OneNET's own (retry 3, timeout 25, trigger 7) where the job gives none
    assert (held[imei(1)].retry, held[imei(1)].timeout, held[imei(1)].trigger_msg) == (3, 25, 7)
    assert held[imei(1)].args is None
    assert (held[imei(2)].retry, held[imei(2)].timeout, held[imei(2)].trigger_msg) == (7, 12, 4)
    assert held[imei(3)].trigger_msg == 5
    assert (held[imei(4)].obj_inst_id, held[imei(4)].res_id) == (2, 10)
    # absolute times as written, relative ones counted from the moment of sending
    assert (held[imei(3)].valid_time, held[imei(3)].expired_time) == (valid_at, expired_at)
    for n, field, offset in ((1, "expired_time", 86400), (4, "valid_time", 1800)):
        sent = parse_onenet(getattr(held[imei(n)], field)).timestamp()
        assert int(before) + offset <= sent <= after + offset


async def test_valid_time_is_sent_only_when_the_job_gives_one(tmp_path: Path) -> None:
    valid_at = _in_beijing(7200)
    job_path = tmp_path / "valid.yaml"
    job_path.write_text(
        "defaults: {obj_id: 5, obj_inst_id: 0, res_id: 2, expired_time: '+1d'}\n"
        "targets:\n"
        f"  - imei: '{imei(10)}'\n"
        f"  - imei: '{imei(11)}'\n"
        f"    valid_time: '{valid_at}'\n",
        encoding="utf-8",
    )
    emulator = Emulator()
    async with serve(emulator) as url:
        await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    held = {c.imei: c for c in emulator.accepted()}
    assert held[imei(10)].valid_time is None  # no valid_time parameter at all
    assert held[imei(11)].valid_time == valid_at
    rows = {r.command.imei: r for r in ledger_rows(tmp_path / "l.db")}
    assert rows[imei(10)].sent_valid_time is None
    assert rows[imei(11)].sent_valid_time == valid_at


async def test_ledger_uuids_are_exactly_the_servers(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(200))
    emulator = Emulator()
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    assert result.counts[Status.ACCEPTED] == 200
    assert_exactly_once(emulator, tmp_path / "l.db", expected=200)


async def test_the_api_key_is_never_written_to_the_ledger(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(50))
    emulator = Emulator(Faults(fail_rate=0.2, cut_after_rate=0.1, seed=2))
    async with serve(emulator) as url:
        await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    written = _files_of(tmp_path / "l.db")
    assert len(written) > 0
    assert API_KEY.encode() not in written


async def test_relative_times_use_onenets_clock_when_it_is_far_ahead(tmp_path: Path) -> None:
    # OneNET's clock is three days ahead: times relative to this machine's clock would all have
    # passed there (errno 5006); the run reads OneNET's clock first and counts from it.
    job_path = write_csv_job(tmp_path, fleet(5), expired_time="+1d")
    ahead = 3 * 86400
    emulator = Emulator(clock=lambda: time.time() + ahead)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    assert result.complete
    assert result.stats.clock_offset is not None and abs(result.stats.clock_offset - ahead) < 2
    for cmd in emulator.accepted():
        assert abs(cmd.expired_at - (cmd.created_at + 86400)) < 3


async def test_an_expired_time_passed_on_onenets_clock_is_expired_locally_not_sent(
    tmp_path: Path,
) -> None:
    # Absolute, one day ahead of this machine, but OneNET's clock is already three days ahead.
    job_path = write_csv_job(tmp_path, fleet(5), expired_time=_in_beijing(86400))
    emulator = Emulator(clock=lambda: time.time() + 3 * 86400)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    rows = ledger_rows(tmp_path / "l.db")
    assert {(r.status, r.attempts) for r in rows} == {(Status.EXPIRED, 0)}
    assert emulator.stats()["posts"] == 0
    assert result.stats.expired == 5 and not result.complete


# -- faults --------------------------------------------------------------------------------------


async def test_http_500_on_a_fifth_of_calls_ends_with_each_command_accepted_once(
    tmp_path: Path,
) -> None:
    job_path = write_csv_job(tmp_path, fleet(300))
    emulator = Emulator(Faults(fail_rate=0.2, seed=11))
    async with serve(emulator) as url:
        await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    assert emulator.stats()["faults"]["http500"] > 20  # type: ignore[index]
    assert_exactly_once(emulator, tmp_path / "l.db", expected=300)


async def test_connections_cut_before_and_after_accepting_end_with_each_command_accepted_once(
    tmp_path: Path,
) -> None:
    job_path = write_csv_job(tmp_path, fleet(300))
    emulator = Emulator(Faults(cut_before_rate=0.05, cut_after_rate=0.05, seed=5))
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", fast_settings())

    faults = emulator.stats()["faults"]
    assert faults["cut_before"] > 0 and faults["cut_after"] > 0  # type: ignore[index]
    assert_exactly_once(emulator, tmp_path / "l.db", expected=300)
    reconciled = [r for r in ledger_rows(tmp_path / "l.db") if r.reconciled]
    # every answer lost after accepting was settled from the history, not sent again
    assert len(reconciled) == faults["cut_after"]  # type: ignore[index]
    assert result.stats.reconciled == len(reconciled)


class StoppingPace(Pace):
    """A Pace that asks ``stop`` to end the run gracefully once ``after`` requests have started."""

    def __init__(self, stop: Stop, after: int) -> None:
        super().__init__(None)
        self.stop, self.after = stop, after

    async def acquire_for(
        self,
        ready: Callable[[float], Awaitable[None]] | None = None,
        *,
        abandon: Callable[[], bool] | None = None,
    ) -> bool:
        granted = await super().acquire_for(ready, abandon=abandon)
        if self.started >= self.after and not self.stop.requested:
            self.stop.request("operator asked")
        return granted


async def test_graceful_stop_with_lost_answers_leaves_nothing_in_doubt_and_resumes_once(
    tmp_path: Path,
) -> None:
    job_path, ledger_path = write_csv_job(tmp_path, fleet(200)), tmp_path / "l.db"
    emulator = Emulator(Faults(cut_after_rate=0.2, seed=3))
    stop = Stop()
    async with serve(emulator) as url:
        stopped = await run_against(
            url, job_path, ledger_path, fast_settings(), stop=stop, pace=StoppingPace(stop, 60)
        )
        after_stop = {r.status for r in ledger_rows(ledger_path)}
        resumed = await run_against(url, job_path, ledger_path, fast_settings())

    assert stopped.stop_reason == "operator asked"
    assert emulator.stats()["faults"]["cut_after"] > 0  # type: ignore[index]
    assert stopped.stats.reconciled > 0  # lost answers were settled before the run ended
    assert after_stop == {Status.ACCEPTED, Status.PENDING}  # nothing in doubt or in flight
    assert resumed.complete
    assert_exactly_once(emulator, ledger_path, expected=200)


@pytest.mark.parametrize("mode", ["errno7", "http429"])
async def test_throttling_below_the_configured_rate_slows_the_pool_and_ends_accepted_once(
    tmp_path: Path, mode: str
) -> None:
    commands, allowed, configured = 300, 150.0, 400.0
    job_path = write_csv_job(tmp_path, fleet(commands))
    emulator = Emulator(
        Faults(throttle_rps=allowed, throttle_mode=mode, throttle_retry_after=0.05)  # type: ignore[arg-type]
    )
    pace = RecordingPace(configured)
    settings = fast_settings(rate=configured, concurrency=16)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", settings, pace=pace)

    assert result.stats.throttled > 0
    assert emulator.stats()["throttled"] > 0
    assert min(r for r in pace.rates if r is not None) < configured  # the whole pool slowed
    assert emulator.stats()["posts"] < 3 * commands  # few wasted requests
    assert_exactly_once(emulator, tmp_path / "l.db", expected=commands)


@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
async def test_wrong_key_stops_the_run_early_and_a_rerun_with_the_right_key_sends_all(
    tmp_path: Path, probe: bool
) -> None:
    commands, threshold, concurrency = 120, 10, 8
    job_path = write_csv_job(tmp_path, fleet(commands))
    ledger_path = tmp_path / "l.db"
    emulator = Emulator(Faults(api_key=API_KEY))
    settings = fast_settings(concurrency=concurrency, breaker_threshold=threshold)
    async with serve(emulator) as url:
        wrong = await run_against(
            url, job_path, ledger_path, settings, api_key="not-the-key", probe=probe
        )
        posts_with_wrong_key = emulator.stats()["posts"]
        statuses_after_wrong = {r.status for r in ledger_rows(ledger_path)}
        right = await run_against(url, job_path, ledger_path, settings)

    assert isinstance(wrong.aborted, WrongKeyError)
    assert isinstance(posts_with_wrong_key, int)
    if probe:  # the key was checked before the fleet was touched
        assert posts_with_wrong_key == 0
        assert wrong.counts[Status.PENDING] == 0  # nothing registered: nothing sent
    else:  # the breaker on the sends
        assert threshold <= posts_with_wrong_key <= threshold + concurrency
        assert statuses_after_wrong == {Status.PENDING}  # not rejected: the key was wrong
        assert wrong.stats.rejected == 0  # the summary agrees with the ledger
    assert right.aborted is None and right.complete
    assert_exactly_once(emulator, ledger_path, expected=commands)


async def test_foreign_imeis_after_successes_are_rejected_per_device_not_a_breaker_trip(
    tmp_path: Path,
) -> None:
    devices = fleet(150)
    foreign = set(devices[100:115])  # more than breaker_threshold, all after the first successes
    job_path = write_csv_job(tmp_path, devices)
    emulator = Emulator(Faults(foreign_imeis=frozenset(foreign)))
    settings = fast_settings(concurrency=8, breaker_threshold=10)
    async with serve(emulator) as url:
        result = await run_against(url, job_path, tmp_path / "l.db", settings)

    assert result.aborted is None and result.stop_reason is None
    rows = ledger_rows(tmp_path / "l.db")
    rejected = {r.command.imei for r in rows if r.status is Status.REJECTED}
    assert rejected == foreign
    assert {r.errno for r in rows if r.command.imei in foreign} == {1}
    assert_exactly_once(emulator, tmp_path / "l.db", expected=135, excluded=foreign)


async def test_wrong_key_exits_with_code_4_from_the_command_line(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(60))
    config = write_config(tmp_path)
    ledger_path = tmp_path / "cli.db"
    emulator = Emulator(Faults(api_key=API_KEY))
    async with serve(emulator) as url:
        env = process_env("not-the-key")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dispatcher",
            "run",
            str(job_path),
            "--config",
            str(config),
            "--base-url",
            url,
            "--ledger",
            str(ledger_path),
            "--no-progress",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)

    assert proc.returncode == 4, err.decode()
    assert b"api-key" in err or b"errno 1" in err
    assert b"not-the-key" not in out + err
    assert emulator.stats()["posts"] == 0  # the clock probe found the key wrong first
    assert {r.status for r in ledger_rows(ledger_path)} <= {Status.PENDING}


def _closed_port_url() -> str:
    """A loopback URL on which nothing listens (the port was just released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class CountingPace(Pace):
    """A Pace that counts the requests it let start."""

    def __init__(self) -> None:
        super().__init__(None)
        self.granted = 0

    async def acquire(self) -> None:
        await super().acquire()
        self.granted += 1

    async def acquire_for(
        self,
        ready: Callable[[float], Awaitable[None]] | None = None,
        *,
        abandon: Callable[[], bool] | None = None,
    ) -> bool:
        granted = await super().acquire_for(ready, abandon=abandon)
        self.granted += granted
        return granted


@pytest.mark.parametrize("probe", [True, False], ids=["probe", "no-probe"])
async def test_unreachable_server_stops_the_run_early_with_every_command_still_pending(
    tmp_path: Path, probe: bool
) -> None:
    commands, threshold, concurrency = 200, 10, 8
    job_path, ledger_path = write_csv_job(tmp_path, fleet(commands)), tmp_path / "l.db"
    settings = fast_settings(concurrency=concurrency, breaker_threshold=threshold)
    pace = CountingPace()
    result = await run_against(
        _closed_port_url(), job_path, ledger_path, settings, pace=pace, probe=probe
    )

    assert isinstance(result.aborted, UnreachableError)
    assert "check onenet.base_url" in result.aborted.reason
    if probe:  # three probe attempts, then nothing else
        assert pace.granted == 3
    else:  # the attempts that tripped it, plus those already waiting for their slot
        assert threshold <= pace.granted <= threshold + concurrency
    assert {r.status for r in ledger_rows(ledger_path)} <= {Status.PENDING}


async def test_unreachable_server_exits_with_code_4_from_the_command_line(tmp_path: Path) -> None:
    job_path = write_csv_job(tmp_path, fleet(60))
    env = process_env(API_KEY)
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "dispatcher", "run", str(job_path), "--no-progress"),
        *("--config", str(write_config(tmp_path)), "--base-url", _closed_port_url()),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)

    assert proc.returncode == 4, err.decode()
    assert b"no connection to OneNET" in err
    assert b"Traceback" not in out + err
