"""Running a job in-process for the runner's tests: a job of one command per device with its
ledger, ``run`` (run_job against a ``ScriptedOneNet`` on virtual time), the ledger's rows and
counts afterwards, and the virtual clock and sleeps the runs pace on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dispatcher.config import Settings
from dispatcher.job.model import Job, load_job
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Row, Status
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import RunResult, run_job
from dispatcher.times import BEIJING, format_onenet
from tests.support.e2e import fast_settings, fleet, write_csv_job
from tests.support.scripted import ScriptedOneNet

__all__ = [
    "Setup",
    "VirtualTime",
    "beijing",
    "no_wait",
    "rows",
    "run",
    "statuses",
    "timed_job",
]


class VirtualTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (none when negative), then let the loop run."""
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


async def no_wait(seconds: float) -> None:
    """A sleep that only lets the loop run."""
    await asyncio.sleep(0)


@dataclass
class Setup:
    """A job, where its ledger goes, and its devices in job order."""

    job: Job
    ledger_path: Path
    imeis: list[str]


def timed_job(tmp_path: Path, count: int, **times: str) -> Setup:
    """A CSV job of one command to each of ``count`` devices, with the given times."""
    imeis = fleet(count)
    return Setup(load_job(write_csv_job(tmp_path, imeis, **times)), tmp_path / "job.db", imeis)


def beijing(unix: float) -> str:
    """A unix time as OneNET writes it."""
    return format_onenet(datetime.fromtimestamp(unix, BEIJING))


async def run(
    setup: Setup,
    onenet: ScriptedOneNet,
    settings: Settings | None = None,
    **kwargs: object,
) -> RunResult:
    """run_job() of the setup's job against ``onenet``'s client: no waits, the pace on virtual
    time unless ``kwargs`` say otherwise."""
    kwargs.setdefault("sleep", no_wait)
    if "pace" not in kwargs:  # throttling answers slow the pace: let it slow virtual time only
        vt = VirtualTime()
        kwargs["pace"] = Pace(
            (settings or fast_settings()).limits.rate_per_second, clock=vt, sleep=vt.sleep
        )
    with Ledger.open(setup.ledger_path, synchronous="normal") as ledger:
        return await run_job(
            setup.job,
            onenet.client,
            ledger,
            settings or fast_settings(max_attempts=4),
            **kwargs,  # type: ignore[arg-type]
        )


def rows(setup: Setup) -> dict[str, Row]:
    """The ledger's rows by device."""
    with Ledger.open(setup.ledger_path, read_only=True) as ledger:
        return {r.command.imei: r for r in ledger.rows()}


def statuses(setup: Setup) -> dict[Status, int]:
    """How many rows of the ledger are in each status."""
    found: dict[Status, int] = {}
    for r in rows(setup).values():
        found[r.status] = found.get(r.status, 0) + 1
    return found
