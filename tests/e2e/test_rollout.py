"""Safe rollouts end to end against the emulator: a failing canary, a canary failing on delivery,
a good canary that pauses, an abort mid-run and its fixed rerun; and the guard's rules (the ramp,
the failure rate, the canary's draw) with an injected clock."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.server import Emulator, Faults, Fleet, serve
from dispatcher.errors import RolloutAborted, RunAborted
from dispatcher.job.plan import Abort, Canary, Ramp, Rollout
from dispatcher.ledger.store import Status
from dispatcher.run.lane import Lane
from dispatcher.run.pacing import Pace
from dispatcher.run.rollout import Guard, canary_positions
from tests.support.e2e import CONFIG_YAML, fast_settings, fleet, write_config
from tests.support.onenet import idle_client
from tests.support.push import canary_imeis, config, rows, run, write_job


async def test_a_failing_canary_stops_the_run_with_nothing_more_sent(tmp_path: Path) -> None:
    imeis = fleet(40)
    write_job(tmp_path, imeis)
    config(tmp_path)
    canary = canary_imeis(imeis, 5)
    assert canary != imeis[:5]  # drawn across the job, not its first rows
    emulator = Emulator(Faults(foreign_imeis=frozenset(canary)))  # errno 1 for the canary
    async with serve(emulator) as url:
        done = await run(url, tmp_path, "--canary", "5")
    assert done.code == 4, done.stderr
    assert "the canary failed" in done.stderr and "errno 1" in done.stderr
    assert emulator.stats()["posts"] == 5  # the canary, and nothing more
    by_status = Counter(r.status for r in rows(tmp_path))
    assert by_status == {Status.REJECTED: 5, Status.SKIPPED: 35}
    skipped = [r for r in rows(tmp_path) if r.status is Status.SKIPPED]
    assert all("the canary failed" in r.error for r in skipped)


async def test_a_canary_failing_on_delivery_stops_the_run(tmp_path: Path) -> None:
    imeis = fleet(20)
    write_job(tmp_path, imeis)
    config(tmp_path)
    devices = Fleet(
        wake_every_s=0.5,
        wake_jitter=0.0,
        device_errors=1.0,
        answer_delay_s=0.1,
        uplinks=((UPDATE, 1.0),),
        seed=3,
    )
    emulator = Emulator(fleet=devices)
    async with serve(emulator) as url:
        done = await run(
            url, tmp_path, "--canary", "4", "--canary-wait", "delivered", "--canary-timeout", "20s"
        )
    assert done.code == 4, done.stderr
    assert "failed on delivery" in done.stderr
    assert emulator.stats()["posts"] == 4
    held = [r for r in rows(tmp_path) if r.status is Status.ACCEPTED]
    assert len(held) == 4 and {r.send_status for r in held} == {6}
    assert Counter(r.status for r in rows(tmp_path))[Status.SKIPPED] == 16


async def test_a_good_canary_that_pauses_exits_0_and_the_next_run_goes_on(tmp_path: Path) -> None:
    imeis = fleet(30)
    write_job(tmp_path, imeis)
    config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        paused = await run(url, tmp_path, "--canary", "10%", "--canary-then", "pause")
        after_canary = emulator.stats()["posts"]
        rest = await run(url, tmp_path, "--canary", "10%", "--canary-then", "pause")
    assert paused.code == 0, paused.stderr
    assert "the canary went well" in paused.stderr and "paused" in paused.stderr
    assert after_canary == 3
    assert rest.code == 0, rest.stderr
    assert emulator.stats()["posts"] == 30  # the canary is not sent again, nor repeated
    assert sorted(c.imei for c in emulator.accepted()) == sorted(imeis)


async def test_an_abort_mid_run_skips_the_rest_and_a_fixed_rerun_completes_it(
    tmp_path: Path,
) -> None:
    imeis = fleet(60)
    write_job(tmp_path, imeis)
    write_config(
        tmp_path, CONFIG_YAML.replace("concurrency: 8", "concurrency: 1")
    )  # one at a time: the rule fires at a known command
    emulator = Emulator(Faults(foreign_imeis=frozenset(imeis[20:])))
    async with serve(emulator) as url:
        args = ("--max-failure-rate", "0.2", "--min-decided", "10")
        stopped = await run(url, tmp_path, *args)
        first = Counter(r.status for r in rows(tmp_path))
        emulator.faults = Faults()  # the devices joined the product
        rerun = await run(url, tmp_path, *args)
    assert stopped.code == 4, stopped.stderr
    assert "abort.max_failure_rate" in stopped.stderr
    assert "errno 1" in stopped.stderr  # the errno breakdown
    assert first[Status.ACCEPTED] == 20
    assert first[Status.REJECTED] == 6  # 6 of 26 is the first share above 20 %
    assert first[Status.SKIPPED] == 34
    assert rerun.code == 3, rerun.stderr  # the six rejected stay rejected
    final = Counter(r.status for r in rows(tmp_path))
    assert final == {Status.ACCEPTED: 54, Status.REJECTED: 6}
    arrived = Counter(c.imei for c in emulator.accepted())
    assert max(arrived.values()) == 1  # nothing sent twice


async def test_an_errno_of_on_errnos_aborts_at_once(tmp_path: Path) -> None:
    imeis = fleet(30)
    write_job(tmp_path, imeis)
    write_config(tmp_path, CONFIG_YAML.replace("concurrency: 8", "concurrency: 1"))
    emulator = Emulator(Faults(foreign_imeis=frozenset({imeis[5]})))
    async with serve(emulator) as url:
        done = await run(url, tmp_path, "--abort-on-errno", "1")
    assert done.code == 4
    assert "abort.on_errnos" in done.stderr
    assert emulator.stats()["posts"] == 6
    assert Counter(r.status for r in rows(tmp_path))[Status.SKIPPED] == 24


def test_the_guard_ramps_the_pace_and_the_slow_down_works_under_it() -> None:
    now = [0.0]
    pace = Pace(40.0, clock=lambda: now[0])
    lane = Lane.of(idle_client(), fast_settings(rate=40.0), pace=pace)
    finder = lane.finder
    assert finder is not None
    stops: list[RunAborted] = []
    guard = Guard(Rollout(ramp=Ramp(2.0, 2.0, 10)), lane, 40.0, stops.append)
    seen = [pace.rate]
    for _ in range(60):
        guard.observe(Status.ACCEPTED, 0)
        seen.append(pace.rate)
    # 2/s, then 4, 8, 16, 32 after each 10 accepted, then the configured 40
    assert [seen[n] for n in (0, 9, 10, 20, 30, 40, 50, 60)] == [2, 2, 4, 8, 16, 32, 40, 40]
    finder.on_throttle()  # throttled: the lower of the ramp and the slow-down wins
    assert pace.rate == 20
    assert stops == []


def test_the_failure_rate_rule_waits_for_min_decided() -> None:
    stops: list[RunAborted] = []
    lane = Lane.of(idle_client(), fast_settings())
    guard = Guard(Rollout(abort=Abort(0.1, 20)), lane, None, stops.append)
    for _ in range(19):
        guard.observe(Status.REJECTED, 3)
    assert stops == []
    guard.observe(Status.IN_DOUBT, None)  # not decided: never counted
    assert stops == []
    guard.observe(Status.REJECTED, 3)
    assert len(stops) == 1 and isinstance(stops[0], RolloutAborted)


def test_the_canary_is_drawn_evenly_and_holds_at_least_one() -> None:
    assert sorted(canary_positions(100, Canary(size=4))) == [12, 37, 62, 87]
    assert sorted(canary_positions(7, Canary(percent=1.0))) == [3]
    assert len(canary_positions(5, Canary(size=50))) == 5
