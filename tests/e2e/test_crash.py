"""Killed and interrupted runs of `python -m dispatcher run`, resumed by the same command line.

The emulator is served in the test process (with a little latency, so a run lasts a moment); the
dispatcher runs as a child process and is killed with SIGKILL at random points of its progress
(read from its ledger, read-only), or interrupted with SIGINT. Rerunning the same command line must
finish the job with every command accepted exactly once.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.store import Status
from tests.support.cli import process_env
from tests.support.e2e import (
    API_KEY,
    assert_exactly_once,
    count_status,
    fleet,
    write_config,
    write_csv_job,
)

COMMANDS = 400
LATENCY = Faults(latency_ms=15, latency_jitter_ms=20, seed=3)
POLL_S = 0.01  # between looks at the ledger's progress


class CliRun:
    """The same `dispatcher run` command line, started as often as needed."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.job = write_csv_job(tmp_path, fleet(COMMANDS))
        self.ledger = tmp_path / "fleet.yaml.ledger.db"
        self.argv = [
            sys.executable,
            "-m",
            "dispatcher",
            "run",
            str(self.job),
            "--config",
            str(write_config(tmp_path)),
            "--base-url",
            url,
            "--ledger",
            str(self.ledger),
            "--no-progress",
        ]
        self.env = process_env(API_KEY)
        self.log = tmp_path / "stderr.log"

    async def start(self) -> asyncio.subprocess.Process:
        with self.log.open("ab") as err:
            return await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=asyncio.subprocess.DEVNULL, stderr=err
            )

    async def progress_reaches(self, proc: asyncio.subprocess.Process, accepted: int) -> None:
        """Return once the ledger holds ``accepted`` accepted rows (the run must still be going)."""
        while count_status(self.ledger, Status.ACCEPTED) < accepted:
            assert proc.returncode is None, self.log.read_text()
            await asyncio.sleep(POLL_S)

    async def log_shows(self, proc: asyncio.subprocess.Process, text: str) -> None:
        """Return once the run has written ``text`` to stderr (it must still be going)."""
        while text not in self.log.read_text():
            assert proc.returncode is None, self.log.read_text()
            await asyncio.sleep(POLL_S)

    async def to_completion(self) -> int:
        proc = await self.start()
        return await proc.wait()


async def test_runs_killed_at_random_moments_resume_to_each_command_accepted_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(20240501)
    emulator = Emulator(LATENCY)
    left_in_flight = 0
    async with asyncio.timeout(120), serve(emulator) as url:
        cli = CliRun(tmp_path, url)
        for low, high in ((20, 80), (120, 200), (240, 320)):
            proc = await cli.start()
            await cli.progress_reaches(proc, rng.randint(low, high))
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            left_in_flight += count_status(cli.ledger, Status.IN_FLIGHT)
            assert count_status(cli.ledger, Status.ACCEPTED) < COMMANDS
        code = await cli.to_completion()

    assert code == 0, (cli.log.read_text(), {s: count_status(cli.ledger, s) for s in Status})
    assert left_in_flight > 0  # the kills did land with requests on the wire
    assert_exactly_once(emulator, cli.ledger, expected=COMMANDS)


async def test_sigint_stops_with_nothing_in_doubt_and_a_rerun_finishes(tmp_path: Path) -> None:
    emulator = Emulator(LATENCY)
    async with asyncio.timeout(120), serve(emulator) as url:
        cli = CliRun(tmp_path, url)
        proc = await cli.start()
        await cli.progress_reaches(proc, 40)
        proc.send_signal(signal.SIGINT)
        code = await proc.wait()
        after_stop = {s: count_status(cli.ledger, s) for s in Status}
        resumed = await cli.to_completion()

    assert code == 130, cli.log.read_text()
    assert after_stop[Status.IN_DOUBT] == 0
    assert after_stop[Status.IN_FLIGHT] == 0
    assert after_stop[Status.PENDING] > 0  # it did stop early
    assert "to resume" in cli.log.read_text()
    assert resumed == 0, cli.log.read_text()
    assert_exactly_once(emulator, cli.ledger, expected=COMMANDS)


class Gate:
    """The emulator's latency, and a gate that holds requests after it while closed."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.open.set()
        self.held = 0
        self.some_held = asyncio.Event()
        self.none_held = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.open.is_set():
            return
        self.held += 1
        self.some_held.set()
        try:
            await self.open.wait()
        finally:
            self.held -= 1
            if not self.held:
                self.none_held.set()  # the handler stores its command in this same step


async def test_a_second_sigint_stops_at_once_and_a_rerun_settles_what_was_in_flight(
    tmp_path: Path,
) -> None:
    gate = Gate()
    emulator = Emulator(LATENCY, sleep=gate.sleep)
    async with asyncio.timeout(120), serve(emulator) as url:
        cli = CliRun(tmp_path, url)
        proc = await cli.start()
        await cli.progress_reaches(proc, 40)
        gate.open.clear()
        await gate.some_held.wait()
        proc.send_signal(signal.SIGINT)
        await cli.log_shows(proc, "finishing in-flight")
        proc.send_signal(signal.SIGINT)
        code = await proc.wait()
        after_stop = {s: count_status(cli.ledger, s) for s in Status}
        gate.open.set()  # the held requests now create their commands, answering no one
        await gate.none_held.wait()
        resumed = await cli.to_completion()

    assert code == 130, cli.log.read_text()
    assert after_stop[Status.IN_FLIGHT] == 0  # each one is in doubt or pending, none lost
    assert after_stop[Status.IN_DOUBT] > 0
    assert resumed == 0, cli.log.read_text()
    assert_exactly_once(emulator, cli.ledger, expected=COMMANDS)
