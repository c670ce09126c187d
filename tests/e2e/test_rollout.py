"""Safe rollouts and scheduled pushes, end to end against the emulator: a failing canary, a
canary failing on delivery, a good canary that pauses, the ramp, an abort mid-run and its fixed
rerun, a scheduled start, --dry-run; and the guard's rules with an injected clock."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from dispatcher.emulator.devices import UPDATE
from dispatcher.emulator.server import Emulator, Faults, Fleet, serve
from dispatcher.errors import RolloutAborted, RunAborted
from dispatcher.job.plan import Abort, Canary, Ramp, Rollout
from dispatcher.ledger.records import Row
from dispatcher.ledger.store import Status
from dispatcher.run.lane import Lane
from dispatcher.run.pacing import Pace
from dispatcher.run.rollout import Guard, canary_positions
from tests.support.cli import SECRET, dispatcher_async, process_env
from tests.support.e2e import CONFIG_YAML, fast_settings, fleet, write_config
from tests.support.onenet import idle_client
from tests.support.push import config, rows, run, write_job


def canary_imeis(imeis: list[str], size: int) -> list[str]:
    return [imeis[p] for p in sorted(canary_positions(len(imeis), Canary(size=size)))]


# -- the canary -------------------------------------------------------------------------------


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


# -- abort rules --------------------------------------------------------------------------------


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


# -- scheduling ---------------------------------------------------------------------------------


async def test_a_scheduled_start_waits_then_sends(tmp_path: Path) -> None:
    imeis = fleet(3)
    write_job(tmp_path, imeis)
    config(tmp_path)
    emulator = Emulator()
    start = int(time.time()) + 3  # whole seconds, as a job's times are
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    async with serve(emulator) as url:
        done = await run(url, tmp_path, "--start-at", at)
    assert done.code == 0, done.stderr
    assert "plan:" in done.stderr and "start     " in done.stderr
    held = emulator.accepted()
    assert len(held) == 3
    assert min(c.created_at for c in held) >= start  # nothing before the start


async def test_ctrl_c_while_waiting_for_the_start_sends_nothing(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(3))
    config(tmp_path)
    emulator = Emulator()
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    async with serve(emulator) as url:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "dispatcher", "run", "push.yaml", "--config", "config.yaml",
            "--base-url", url, "--start-at", later,
            cwd=tmp_path, env=process_env(SECRET),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        line = b""
        while b"waiting for the start" not in line:  # the plan is on screen, and it waits
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, "the run ended before waiting"
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 130
    assert b"nothing was sent" in err
    assert emulator.stats()["posts"] == 0 and emulator.stats()["reads"] == 0
    assert not (tmp_path / "push.yaml.ledger.db").exists()  # the next run is a first run too


# -- the dry run -------------------------------------------------------------------------------


async def test_a_dry_run_shows_the_plan_and_sends_nothing(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(12))
    config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await dispatcher_async(
            "run", "push.yaml", "--config", "config.yaml", "--base-url", url, "--dry-run",
            "--canary", "3", "--ramp-start-per-second", "2", "--max-failure-rate", "0.05",
            cwd=tmp_path, key=None,
        )  # fmt: skip
    assert done.code == 0, done.stderr
    for part in ("to send   12 of 12 commands", "canary    3 commands", "ramp from 2/s",
                 "abort     more than 5.0%", "duration", "nothing was sent"):  # fmt: skip
        assert part in done.stderr, part
    assert emulator.stats()["posts"] == 0 and emulator.stats()["reads"] == 0
    assert not (tmp_path / "push.yaml.ledger.db").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--canary", "0"), ("--canary", "150%"), ("--ramp-factor", "0.5"), ("--start-at", "+1h")],
)
async def test_bad_plan_flags_are_usage_errors(tmp_path: Path, flag: str, value: str) -> None:
    write_job(tmp_path, fleet(2))
    done = await dispatcher_async("run", "push.yaml", flag, value, "--dry-run", cwd=tmp_path)
    assert done.code == 2, done.stderr
    assert "Traceback" not in done.stderr


async def test_a_ledger_path_placeholder_gives_each_occurrence_its_ledger(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(2))
    config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await run(url, tmp_path, "--ledger", "ledgers/{job}-{date}.db")
        bad = await run(url, tmp_path, "--ledger", "ledgers/{week}.db")
    assert done.code == 0, done.stderr
    (made,) = (tmp_path / "ledgers").glob("push-*.db")
    assert made.name == f"push-{time.strftime('%Y-%m-%d', time.gmtime(time.time() + 8 * 3600))}.db"
    assert bad.code == 2 and "{week}" in bad.stderr


# -- the job file's sections ------------------------------------------------------------------


async def test_a_daily_window_gives_each_command_the_next_window(tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from dispatcher.times import BEIJING

    write_job(tmp_path, fleet(3), extra="")
    text = (tmp_path / "push.yaml").read_text(encoding="utf-8")
    text = text.replace("  expired_time: '+1d'\n", "").replace(
        "targets:", 'window:\n  daily: "02:00-06:00"\ntargets:'
    )
    (tmp_path / "push.yaml").write_text(text, encoding="utf-8")
    config(tmp_path)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await run(url, tmp_path)
    assert done.code == 0, done.stderr
    now = datetime.now(BEIJING)
    day = now.date() if now.hour < 6 else now.date() + timedelta(days=1)
    opens = datetime(day.year, day.month, day.day, 2, tzinfo=BEIJING)
    closes = opens.replace(hour=6)
    for cmd in emulator.accepted():
        assert cmd.expired_time == closes.strftime("%Y-%m-%dT%H:%M:%S")
        if now < opens:
            assert cmd.valid_time == opens.strftime("%Y-%m-%dT%H:%M:%S")
        else:  # inside the window: from now
            assert cmd.valid_time is None
    kept = rows(tmp_path)
    assert {(r.command.valid_time.text, r.command.expired_time.text) for r in kept} == {
        ("window 02:00-06:00 start", "window 02:00-06:00 end")
    }


async def test_the_job_files_rollout_section_runs_its_canary(tmp_path: Path) -> None:
    imeis = fleet(20)
    canary = canary_imeis(imeis, 4)
    write_job(
        tmp_path,
        imeis,
        extra="",
    )
    text = (tmp_path / "push.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "targets:",
        "rollout:\n  canary: 4\n  abort:\n    max_failure_rate: 0.1\n    min_decided: 5\ntargets:",
    )
    (tmp_path / "push.yaml").write_text(text, encoding="utf-8")
    config(tmp_path)
    emulator = Emulator(Faults(foreign_imeis=frozenset(canary[:2])))
    async with serve(emulator) as url:
        done = await run(url, tmp_path)
    assert done.code == 4, done.stderr
    assert "the canary failed: 2 of the canary's 4 commands" in done.stderr
    assert emulator.stats()["posts"] == 4


# -- the review's cases -------------------------------------------------------------------------


def test_the_resume_command_names_the_ledger_as_resolved() -> None:
    from dispatcher.cli.plan_options import resume_command

    argv = ["run", "nightly.yaml", "--ledger", "l/{job}-{time}.db", "--canary", "5"]
    said = resume_command(argv, Path("l/nightly-071910.db"))
    assert said == "dispatcher run nightly.yaml --canary 5 --ledger l/nightly-071910.db"
    assert resume_command(["run", "a b.yaml"], Path("x.db")) == "dispatcher run 'a b.yaml'"


async def test_a_start_at_that_has_passed_or_is_years_ahead_is_refused(tmp_path: Path) -> None:
    write_job(tmp_path, fleet(2))
    past = await dispatcher_async(
        "run", "push.yaml", "--start-at", "2020-01-01T00:00:00", "--dry-run", cwd=tmp_path
    )
    ahead = await dispatcher_async(
        "run", "push.yaml", "--start-at", "9999-12-31T23:59:59", "--dry-run", cwd=tmp_path
    )
    assert past.code == 2 and "has passed" in past.stderr
    assert ahead.code == 2 and "more than a year ahead" in ahead.stderr
    assert "Traceback" not in past.stderr + ahead.stderr


def test_an_undecided_canary_command_counts_against_it() -> None:
    from dispatcher.run.rollout import judge_canary
    from dispatcher.times import parse_timespec
    from tests.support.ledger import make_command

    def row(n: int, status: Status) -> Row:
        cmd = make_command(
            n, args=None, expired_time=parse_timespec("+1d"), source="j.yaml", line=n
        )
        return Row(
            n, cmd.key, cmd, status, None, "", "u" if status is Status.ACCEPTED else None, 1, 1.0,
            1.0, 1.0, None, None, False,
        )  # fmt: skip

    rows = [row(0, Status.ACCEPTED)] + [row(n, Status.IN_DOUBT) for n in range(1, 10)]
    verdict = judge_canary(rows, Canary(size=10), None)
    assert verdict.failed_because is not None and "9 of them undecided" in verdict.failed_because


def test_on_errnos_fires_on_a_command_failed_with_that_errno_too() -> None:
    stops: list[RunAborted] = []
    guard = Guard(
        Rollout(abort=Abort(None, 50, frozenset({7}))),
        Lane.of(idle_client(), fast_settings()),
        None,
        stops.append,
    )
    guard.observe(Status.FAILED, 7)  # errno 7 on every attempt
    assert len(stops) == 1


def test_without_a_configured_rate_a_throttle_under_a_ramp_recovers_and_the_ramp_ends() -> None:
    now = [0.0]
    pace = Pace(None, clock=lambda: now[0])
    lane = Lane.of(idle_client(), fast_settings(rate=None), pace=pace)
    finder = lane.finder
    assert finder is not None
    guard = Guard(Rollout(ramp=Ramp(5.0, 10.0, 1)), lane, None, lambda why: None)
    assert pace.rate == 5.0
    finder.on_throttle()
    assert pace.rate == 2.5
    for second in range(1, 40):
        now[0] = float(second)
        finder.on_success()
    assert pace.rate is not None and pace.rate > 2.5  # it climbs back
    for _ in range(8):
        guard.observe(Status.ACCEPTED, 0)
    assert pace.rate is None  # past a million a second the ramp is over: unlimited, no crash


async def test_a_delivered_canary_that_cannot_be_delivered_before_its_timeout_is_warned_of(
    tmp_path: Path,
) -> None:
    path = write_job(tmp_path, fleet(4))
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "  expired_time:", "  valid_time: '+2h'\n  expired_time:"
        ),
        encoding="utf-8",
    )
    done = await dispatcher_async(
        "run", "push.yaml", "--dry-run", "--canary", "1", "--canary-wait", "delivered",
        "--canary-timeout", "30m", cwd=tmp_path, key=None,
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert "valid_time +2h starts delivery after the canary's timeout" in done.stderr
