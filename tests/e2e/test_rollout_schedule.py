"""Scheduled pushes and the dry run, end to end against the emulator: a start that waits, Ctrl-C
while waiting, the plan shown, bad plan flags, a daily window, the job file's rollout section, and
the review's cases."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.errors import RunAborted
from dispatcher.job.plan import Abort, Canary, Ramp, Rollout
from dispatcher.ledger.records import Row
from dispatcher.ledger.store import Status
from dispatcher.run.lane import Lane
from dispatcher.run.pacing import Pace
from dispatcher.run.rollout import Guard
from tests.support.cli import dispatcher_async, started
from tests.support.e2e import fast_settings, fleet
from tests.support.onenet import idle_client
from tests.support.push import canary_imeis, config, rows, run, write_job


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
    async with (
        serve(emulator) as url,
        started(
            *("run", "push.yaml", "--config", "config.yaml", "--base-url", url),
            *("--start-at", later),
            cwd=tmp_path,
        ) as proc,
    ):
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
