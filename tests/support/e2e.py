"""What the end-to-end and crash tests share: fleets, job files, fast settings, the checks.

The checks are the promises of a run, stated once: every command ends accepted, the server holds
each command exactly once, the ledger's uuids are the server's, nothing is in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from dispatcher.config import Settings
from dispatcher.emulator.server import Emulator, StoredCommand, serve
from dispatcher.job.model import load_job
from dispatcher.job.values import luhn_check_digit
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.opening import ledger_exists
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Row, Status
from dispatcher.model import args_text
from dispatcher.onenet.aiohttp_transport import AiohttpTransport
from dispatcher.onenet.client import OneNetClient
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import RunResult, Stop, run_job
from tests.support.ledger import ledger_rows

API_KEY = "test-master-key-5f1d"


def imei(n: int) -> str:
    """A valid (Luhn) 15-digit IMEI, distinct for each n."""
    body = f"86{n:012d}"
    return body + str(luhn_check_digit(body))


def fleet(count: int, start: int = 0) -> list[str]:
    """``count`` distinct IMEIs."""
    return [imei(n) for n in range(start, start + count)]


def write_csv_job(
    directory: Path,
    imeis: Iterable[str],
    *,
    name: str = "fleet.yaml",
    expired_time: str = "+2d",
    valid_time: str | None = None,
    args: str = "fw=2.4.1",
) -> Path:
    """A YAML job with defaults and a targets_csv listing ``imeis`` (one command each)."""
    csv_path = directory / (Path(name).stem + ".csv")
    csv_path.write_text("imei\n" + "".join(f"{i}\n" for i in imeis), encoding="utf-8")
    valid = f"  valid_time: '{valid_time}'\n" if valid_time else ""
    job = (
        f"job: {Path(name).stem}\n"
        "defaults:\n"
        "  obj_id: 5\n"
        "  obj_inst_id: 0\n"
        "  res_id: 2\n"
        f"  args: '{args}'\n"
        f"{valid}"
        f"  expired_time: '{expired_time}'\n"
        "  retry: 4\n"
        "  timeout: 30\n"
        "  trigger: [register, update]\n"
        f"targets_csv: {csv_path.name}\n"
    )
    path = directory / name
    path.write_text(job, encoding="utf-8")
    return path


def fast_settings(
    *,
    rate: float | None = None,
    concurrency: int = 16,
    max_attempts: int = 10,
    settle_s: float = 0.0,
    breaker_threshold: int = 10,
    stop_grace_s: float = 5.0,
    adaptive: bool = True,
) -> Settings:
    """Settings for a run that lasts a moment: tiny backoffs, no settling wait."""
    s = Settings()
    return dataclasses.replace(
        s,
        limits=dataclasses.replace(
            s.limits, rate_per_second=rate, concurrency=concurrency, adaptive=adaptive
        ),
        retry=dataclasses.replace(
            s.retry,
            max_attempts=max_attempts,
            initial_backoff_s=0.001,
            max_backoff_s=0.01,
            request_timeout_s=10.0,
        ),
        reliability=dataclasses.replace(
            s.reliability,
            settle_s=settle_s,
            breaker_threshold=breaker_threshold,
            stop_grace_s=stop_grace_s,
        ),
        ledger=dataclasses.replace(s.ledger, synchronous="normal", batch_size=64),
    )


CONFIG_YAML = """\
limits:
  rate_per_second: 0
  concurrency: 8
retry:
  max_attempts: 10
  initial_backoff_s: 0.001
  max_backoff_s: 0.01
  request_timeout_s: 10
reliability:
  settle_s: 0.3
  stop_grace_s: 10
ledger:
  synchronous: normal
  batch_size: 50
"""


def write_config(directory: Path, text: str = CONFIG_YAML) -> Path:
    """A config file for CLI runs against the emulator (small settle time and backoffs)."""
    path = directory / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def run_against(
    url: str,
    job_path: Path,
    ledger_path: Path,
    settings: Settings,
    *,
    api_key: str = API_KEY,
    stop: Stop | None = None,
    pace: Pace | None = None,
    probe: bool = True,
    **options: Any,
) -> RunResult:
    """One in-process run of the real dispatcher (real client, real session) against ``url``."""
    job = load_job(job_path)
    timeout = aiohttp.ClientTimeout(total=settings.retry.request_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = OneNetClient(AiohttpTransport(session), url, api_key)
        with Ledger.open(ledger_path, synchronous=settings.ledger.synchronous) as ledger:
            return await run_job(
                job, client, ledger, settings, stop=stop, pace=pace, probe=probe, **options
            )


def count_status(ledger_path: LedgerAddress, status: Status) -> int:
    """Rows in ``status``, read with a plain read-only sqlite3 connection (a run may be writing);
    of a PostgreSQL ledger's job, read without its lock (0 while the job is not there)."""
    if isinstance(ledger_path, PostgresAddress):
        if not ledger_exists(ledger_path):
            return 0
        return sum(r.status is status for r in ledger_rows(ledger_path))
    if not ledger_path.exists():
        return 0
    uri = ledger_path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM commands WHERE status = ?", (status.value,)
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0
    return int(n)


def identity(c: StoredCommand | Row) -> tuple[str, int, int, int, str | None]:
    """What makes two commands the same command: device, resource and args (a write's body)."""
    if isinstance(c, Row):
        cmd = c.command
        return (cmd.imei, cmd.obj_id, cmd.obj_inst_id, cmd.res_id, args_text(cmd))  # type: ignore[return-value]
    return (c.imei, c.obj_id, c.obj_inst_id, c.res_id, c.args)


def assert_exactly_once(
    emulator: Emulator, ledger_path: LedgerAddress, *, expected: int, excluded: Iterable[str] = ()
) -> None:
    """Every command accepted, held once by the server, the ledger's uuids the server's."""
    rows = ledger_rows(ledger_path)
    left_out = set(excluded)
    wanted = [r for r in rows if r.command.imei not in left_out]
    assert len(wanted) == expected
    not_accepted = Counter(r.status for r in wanted if r.status is not Status.ACCEPTED)
    assert not not_accepted, f"not accepted: {dict(not_accepted)}"
    assert not any(r.status is Status.IN_DOUBT for r in rows)
    held = [c for c in emulator.accepted() if c.send_status != 2]
    repeats = {k: n for k, n in Counter(map(identity, held)).items() if n > 1}
    assert not repeats, f"held more than once: {repeats}"
    assert {r.uuid for r in wanted} == {c.uuid for c in held}
    by_uuid = {c.uuid: c for c in held}
    for row in wanted:
        assert identity(by_uuid[row.uuid]) == identity(row)
    assert emulator.stats()["duplicates"] == 0


@contextlib.contextmanager
def emulator_in_thread(server: Emulator) -> Iterator[str]:
    """The emulator served on loopback from a thread of its own (the use case runs its own
    event loop); yields its base URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    url: list[str] = []
    done = asyncio.Event()

    async def main() -> None:
        async with serve(server) as base:
            url.append(base)
            started.set()
            await done.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),))
    thread.start()
    started.wait()
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join()
        loop.close()
