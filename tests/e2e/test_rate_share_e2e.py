"""Two runs of two jobs on one product (one key) share its configured rate through the PostgreSQL
ledger (run/share.py): the real command line, two processes, the emulator counting arrivals.

Together they never pass the rate in any second at the server; while both send, each gets about
half; once one ends, the other is back at the whole rate within 5 seconds, and within 10 once
one is killed.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import signal
import sys
import time
from pathlib import Path

from dispatcher.emulator.server import Emulator, serve
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.store import Status
from tests.support import postgres
from tests.support.cli import process_env
from tests.support.e2e import API_KEY, count_status, fleet, write_config, write_csv_job

RATE = 100
FIRST, SECOND = 1400, 400  # commands of each job


def _most_in_any_second(times: list[float]) -> int:
    """The most arrivals in any sliding 1-second window."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def _per_second(times: list[float], start: float, end: float) -> list[int]:
    """Arrivals in each whole second from ``start`` to ``end``."""
    return [sum(start + i <= t < start + i + 1 for t in times) for i in range(int(end - start))]


async def _run(
    job: Path, *, config: Path, base: str, url: str, cwd: Path
) -> asyncio.subprocess.Process:
    """`dispatcher run JOB` at the product's rate, on the job's own job of the ledger ``url``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher", "run", str(job), "--config", str(config),
        "--base-url", base, "--ledger", f"{url}#{job.stem}", "--rate", str(RATE),
        "--no-progress", env=process_env(API_KEY), cwd=cwd,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def _back_to_full(times: list[float], since: float) -> float:
    """How long after ``since`` a second began that held 85% of the rate or more (checked every
    quarter second for 15 s; infinity: none did)."""
    for quarter in range(61):
        start = since + quarter / 4
        if _per_second(times, start, start + 1.0)[0] >= RATE * 0.85:
            return quarter / 4
    return float("inf")


async def test_two_runs_on_one_product_share_its_rate_and_the_survivor_takes_it_all(
    tmp_path: Path,
) -> None:
    url = postgres.new_database()
    config = write_config(tmp_path)
    one = write_csv_job(tmp_path, fleet(FIRST), name="nightly.yaml")
    two = write_csv_job(tmp_path, fleet(SECOND, start=10_000), name="hotfix.yaml")
    emulator = Emulator()
    async with asyncio.timeout(120), serve(emulator) as base:
        run = functools.partial(_run, config=config, base=base, url=url, cwd=tmp_path)
        first = await run(one)
        address = PostgresAddress.parse(f"{url}#nightly")
        while await asyncio.to_thread(count_status, address, Status.ACCEPTED) < 150:
            assert first.returncode is None
            await asyncio.sleep(0.05)
        second = await run(two)
        _, err_two = await second.communicate()
        _, err_one = await first.communicate()
    assert second.returncode == 0, err_two.decode()
    assert first.returncode == 0, err_one.decode()

    by_job: dict[str, list[float]] = {"nightly": [], "hotfix": []}
    second_fleet = set(fleet(SECOND, start=10_000))
    for command in emulator.accepted():
        by_job["hotfix" if command.imei in second_fleet else "nightly"].append(command.created_at)
    everything = by_job["nightly"] + by_job["hotfix"]
    assert len(everything) == FIRST + SECOND
    # Never more than the product's rate at the server, however the shares moved.
    assert _most_in_any_second(everything) <= RATE, _most_in_any_second(everything)

    # While both sent (a second in from the second's first send to a second before its last),
    # each had about half.
    both_from, both_to = min(by_job["hotfix"]) + 4.0, max(by_job["hotfix"]) - 1.0
    assert both_to - both_from >= 2.0, "the two runs hardly met"
    for name in ("nightly", "hotfix"):
        seconds = _per_second(by_job[name], both_from, both_to)
        assert all(RATE * 0.3 <= n <= RATE * 0.7 for n in seconds), (name, seconds)

    # Once the second ended, the first was back at the whole rate within 5 seconds.
    assert _back_to_full(by_job["nightly"], max(by_job["hotfix"])) <= 5.0


async def test_a_killed_runs_share_returns_to_the_other_within_10_seconds(tmp_path: Path) -> None:
    url = postgres.new_database()
    config = write_config(tmp_path)
    one = write_csv_job(tmp_path, fleet(FIRST), name="nightly.yaml")
    two = write_csv_job(tmp_path, fleet(SECOND, start=10_000), name="hotfix.yaml")
    second_fleet = set(fleet(SECOND, start=10_000))
    emulator = Emulator()
    async with asyncio.timeout(120), serve(emulator) as base:
        run = functools.partial(_run, config=config, base=base, url=url, cwd=tmp_path)
        first = await run(one)
        while len(emulator.accepted()) < 100:
            assert first.returncode is None
            await asyncio.sleep(0.05)
        second = await run(two)
        while sum(c.imei in second_fleet for c in emulator.accepted()) < 100:
            assert second.returncode is None
            await asyncio.sleep(0.05)
        second.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert await second.wait() == -signal.SIGKILL
        _, err_one = await first.communicate()
    assert first.returncode == 0, err_one.decode()
    nightly = [c.created_at for c in emulator.accepted() if c.imei not in second_fleet]
    assert _most_in_any_second([c.created_at for c in emulator.accepted()]) <= RATE
    # Within 10 s of the kill, the survivor sends at the whole rate again.
    assert _back_to_full(nightly, killed_at) <= 10.0
