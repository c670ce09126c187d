"""The real dispatcher against the real emulator over loopback sockets, with faults injected: HTTP
500s, cut connections, a graceful stop, throttling, a wrong key, foreign devices, an unreachable
server.

Each fault test ends with the same promise (assert_exactly_once, in tests/support/e2e.py): every
command is accepted, the server holds each exactly once, the ledger's uuids are the server's, none
in doubt.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import UnreachableError, WrongKeyError
from dispatcher.ledger.store import Status
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import Stop
from tests.support.cli import dispatcher_async
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    fast_settings,
    fleet,
    run_against,
    write_config,
    write_csv_job,
)
from tests.support.ledger import ledger_rows


class RecordingPace(Pace):
    """A Pace that remembers every rate it was set to."""

    def __init__(self, rate: float | None) -> None:
        self.rates: list[float | None] = []
        super().__init__(rate)

    def set_rate(self, rate: float | None) -> None:
        self.rates.append(rate)
        super().set_rate(rate)


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
        done = await dispatcher_async(
            *("run", job_path, "--config", config, "--base-url", url),
            *("--ledger", ledger_path, "--no-progress"),
            cwd=tmp_path,
            key="not-the-key",
            within=60,
        )

    assert done.code == 4, done.stderr
    assert "api-key" in done.stderr or "errno 1" in done.stderr
    assert "not-the-key" not in done.stdout + done.stderr
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
    done = await dispatcher_async(
        *("run", job_path, "--no-progress"),
        *("--config", write_config(tmp_path), "--base-url", _closed_port_url()),
        cwd=tmp_path,
        key=API_KEY,
        within=60,
    )

    assert done.code == 4, done.stderr
    assert "no connection to OneNET" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
