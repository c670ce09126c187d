"""Ledger paths with placeholders ({job}, {date}, {time}), end to end against the emulator: a run
killed mid-send and started again (the next day, too) resumes its own unfinished ledger instead of
making a new one and sending the whole job again; several unfinished ones are refused with their
paths; a finished one is an occurrence done, and the next makes a ledger of its own."""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import dispatcher_async, process_env
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    count_status,
    fleet,
    identity,
    write_config,
    write_csv_job,
)
from tests.support.push import config, run, write_job

COMMANDS = 300
LATENCY = Faults(latency_ms=15, latency_jitter_ms=20, seed=7)
POLL_S = 0.01  # between looks at the ledger's progress
COMPANIONS = ("", "-wal", "-shm", ".lock")


def ledgers(folder: Path) -> list[Path]:
    """The ledgers in ``folder`` (their companion files left out)."""
    return sorted(p for p in folder.glob("*.db"))


def move_ledger(ledger: Path, to: Path) -> None:
    """Rename a ledger with its companions, as the same ledger made at another moment."""
    for suffix in COMPANIONS:
        part = ledger.with_name(ledger.name + suffix)
        if part.exists():
            part.rename(to.with_name(to.name + suffix))


def copy_ledger(ledger: Path, to: Path) -> None:
    for suffix in COMPANIONS[:3]:
        part = ledger.with_name(ledger.name + suffix)
        if part.exists():
            shutil.copyfile(part, to.with_name(to.name + suffix))


def the_day_before(ledger: Path, *, job: str) -> Path:
    """``<job>-<date>[-<time>].db`` named a day earlier (and at 23:59:59 when it has a time)."""
    stamp = ledger.name.removeprefix(f"{job}-").removesuffix(".db")
    day = date.fromisoformat(stamp[:10]) - timedelta(days=1)
    return ledger.with_name(f"{job}-{day.isoformat()}{'-235959' if len(stamp) > 10 else ''}.db")


def held_counts(emulator: Emulator) -> Counter[tuple[str, int, int, int, str | None]]:
    return Counter(map(identity, emulator.accepted()))


async def test_a_placeholder_ledger_killed_mid_send_is_resumed_the_next_day_not_sent_again(
    tmp_path: Path,
) -> None:
    job = write_csv_job(tmp_path, fleet(COMMANDS))
    argv = [
        sys.executable, "-m", "dispatcher", "run", str(job),
        "--config", str(write_config(tmp_path)), "--ledger", "out/{job}-{date}-{time}.db",
        "--no-progress",
    ]  # fmt: skip
    env = process_env(API_KEY)
    log = tmp_path / "stderr.log"
    emulator = Emulator(LATENCY)
    async with asyncio.timeout(120), serve(emulator) as url:
        with log.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv, "--base-url", url, cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
        made: list[Path] = []
        while not made or count_status(made[0], Status.ACCEPTED) < COMMANDS // 3:
            assert proc.returncode is None, log.read_text()
            made = ledgers(tmp_path / "out")
            await asyncio.sleep(POLL_S)
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        (killed,) = made
        assert count_status(killed, Status.ACCEPTED) < COMMANDS
        # The same cron line, after midnight: {date} and {time} name another ledger now.
        yesterday = the_day_before(killed, job="fleet")
        move_ledger(killed, yesterday)
        with log.open("ab") as err:
            again = await asyncio.create_subprocess_exec(
                *argv, "--base-url", url, cwd=tmp_path, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=err,
            )  # fmt: skip
            code = await again.wait()

    said = log.read_text()
    assert code == 0, said
    assert f"resuming out/{yesterday.name}, an unfinished ledger of this job" in said
    assert ledgers(tmp_path / "out") == [yesterday]  # no second ledger was made
    assert_exactly_once(emulator, yesterday, expected=COMMANDS)


async def test_several_unfinished_placeholder_ledgers_are_refused_with_their_paths(
    tmp_path: Path,
) -> None:
    imeis = fleet(20)
    write_job(tmp_path, imeis)
    config(tmp_path)
    pattern = "ledgers/{job}-{date}.db"
    pause = ("--canary", "2", "--canary-then", "pause")
    emulator = Emulator()
    async with serve(emulator) as url:
        paused = await run(url, tmp_path, "--ledger", pattern, *pause)
        (today,) = ledgers(tmp_path / "ledgers")
        first = the_day_before(today, job="push")
        move_ledger(today, first)
        second = the_day_before(first, job="push")
        copy_ledger(first, second)  # two unfinished ledgers of the job, of two days before
        refused = await run(url, tmp_path, "--ledger", pattern)
        sent_before = len(emulator.accepted())
        picked = await run(url, tmp_path, "--ledger", str(first.relative_to(tmp_path)))

    assert paused.code == 0, paused.stderr
    assert refused.code == 2, refused.stderr
    assert f"ledgers/{first.name}" in refused.stderr
    assert f"ledgers/{second.name}" in refused.stderr
    assert "--ledger PATH" in refused.stderr and "Traceback" not in refused.stderr
    assert sent_before == 2  # the refused run sent nothing
    assert picked.code == 0, picked.stderr
    assert set(held_counts(emulator).values()) == {1} and len(emulator.accepted()) == 20


async def test_a_finished_placeholder_ledger_does_not_stop_the_next_occurrence(
    tmp_path: Path,
) -> None:
    # A recurring job sends its whole job each occurrence: that is what a dated ledger is for.
    imeis = fleet(5)
    write_job(tmp_path, imeis)
    config(tmp_path)
    pattern = "ledgers/{job}-{date}.db"
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(url, tmp_path, "--ledger", pattern)
        (today,) = ledgers(tmp_path / "ledgers")
        yesterday = the_day_before(today, job="push")
        move_ledger(today, yesterday)
        second = await run(url, tmp_path, "--ledger", pattern)

    assert first.code == 0 and second.code == 0, second.stderr
    assert ledgers(tmp_path / "ledgers") == sorted([yesterday, today])
    assert f"the last one, ledgers/{yesterday.name}, is finished" in second.stderr
    assert set(held_counts(emulator).values()) == {2}  # once each night
    with Ledger.open(today, read_only=True) as ledger:
        assert ledger.counts()[Status.ACCEPTED] == 5


async def test_another_jobs_unfinished_ledger_under_the_pattern_is_not_resumed(
    tmp_path: Path,
) -> None:
    write_job(tmp_path, fleet(4))
    config(tmp_path)
    pattern = "ledgers/{job}-{date}.db"  # {job} is a wildcard too: push's ledger matches it
    emulator = Emulator()
    async with serve(emulator) as url:
        paused = await run(url, tmp_path, "--ledger", pattern, "--canary", "1", "--canary-then",
                           "pause")  # fmt: skip
        (theirs,) = ledgers(tmp_path / "ledgers")
        (tmp_path / "b").mkdir()
        write_job(tmp_path / "b", fleet(4, start=100)).rename(tmp_path / "other.yaml")
        ours = await dispatcher_async(
            "run", "other.yaml", "--config", "config.yaml", "--base-url", url,
            "--ledger", pattern, cwd=tmp_path,
        )  # fmt: skip

    assert paused.code == 0 and ours.code == 0, ours.stderr
    assert "resuming" not in ours.stderr
    assert theirs in ledgers(tmp_path / "ledgers") and len(ledgers(tmp_path / "ledgers")) == 2
    assert len(emulator.accepted()) == 1 + 4
