"""A ledger's job across runs, end to end: rows removed, a finished job, a stopped run counted
against the whole job, a ledger that fills up, one run per ledger under any of its names."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from dispatcher.emulator.server import Emulator, Faults, serve
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import Status
from tests.support.cli import (
    SECRET,
    Done,
    dispatcher_async,
    finished,
    no_traceback,
    process_env,
    started,
)
from tests.support.e2e import (
    count_status,
    fleet,
    write_config,
    write_csv_job,
)
from tests.support.identity import (
    DEVICES,
    FAILING_CONFIG,
    QUICK_CONFIG,
    job_text,
    run,
    write,
)
from tests.support.ledger import ledger_rows
from tests.support.waiting import until


def table(report: Done) -> dict[str, str]:
    """The rows of `dispatcher report`'s table: figure -> value."""
    rows = {}
    for line in report.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃| ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


async def test_rows_removed_from_the_job_are_named_and_no_longer_pending(tmp_path: Path) -> None:
    job = write(tmp_path / "job.yaml", job_text(*DEVICES))
    emulator = Emulator(Faults(fail_rate=1.0))
    async with serve(emulator) as url:
        failed = await run(tmp_path, "job.yaml", url, config=FAILING_CONFIG)
        assert failed.code == 3, failed.stderr
        emulator.faults = Faults()
        write(job, job_text(DEVICES[0], DEVICES[2]))
        done = await run(tmp_path, "job.yaml", url)
        report = await dispatcher_async("report", "job.yaml.ledger.db", cwd=tmp_path)
    assert done.code == 0, done.stdout + done.stderr
    assert "2 command(s) of the ledger are no longer in the job file" in done.stderr
    assert f"removed: job.yaml:11: imei {DEVICES[1]}" in done.stderr
    assert f"removed: job.yaml:13: imei {DEVICES[3]}" in done.stderr
    assert done.stdout.splitlines()[0] == "job: 2 commands: 2 accepted"
    assert sorted(c.imei for c in emulator.accepted()) == [DEVICES[0], DEVICES[2]]

    assert report.code == 0, report.stderr
    rows = table(report)
    assert rows["commands"] == "2"
    assert rows["accepted"] == "2 (100.0%)"
    assert (rows["failed to send"], rows["pending"]) == ("0", "0")
    assert rows["removed from the job"] == "2"


async def test_running_a_finished_job_again_says_so_and_sends_nothing(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", job_text(*DEVICES))
    emulator = Emulator()
    async with serve(emulator) as url:
        first = await run(tmp_path, "job.yaml", url)
        assert first.code == 0, first.stderr
        calls = (emulator.stats()["posts"], emulator.stats()["reads"])
        again = await run(tmp_path, "job.yaml", url)
        assert (emulator.stats()["posts"], emulator.stats()["reads"]) == calls
    assert again.code == 0, again.stderr
    assert "job.yaml: the job is finished (4 accepted): nothing to send" in again.stderr
    assert len(emulator.accepted()) == 4
    assert len(ledger_rows(tmp_path / "job.yaml.ledger.db")) == 4


async def test_a_run_stopped_early_is_counted_against_the_whole_job(tmp_path: Path) -> None:
    write_csv_job(tmp_path, fleet(2000))
    config = write_config(tmp_path, QUICK_CONFIG)
    emulator = Emulator(Faults(latency_ms=20))
    async with serve(emulator) as url:
        async with started(
            "run",
            "fleet.yaml",
            "--base-url",
            url,
            "--config",
            config,
            "--rate",
            "200",
            cwd=tmp_path,
        ) as proc:
            await until(lambda: len(emulator.accepted()) >= 50, proc=proc)
            proc.send_signal(signal.SIGINT)
            done = await finished(proc)
        report = await dispatcher_async("report", "fleet.yaml.ledger.db", cwd=tmp_path)
    assert done.code == 130, done.stderr
    assert "stopped (interrupted by SIGINT); to resume: dispatcher run fleet.yaml" in done.stderr
    sent = len(emulator.accepted())
    assert 50 <= sent < 1000
    summary = done.stdout.splitlines()[0]
    assert summary == f"job: 2,000 commands: {2000 - sent:,} pending, {sent:,} accepted"
    ledger = tmp_path / "fleet.yaml.ledger.db"
    assert count_status(ledger, Status.ACCEPTED) == sent

    assert report.code == 0, report.stderr
    rows = table(report)
    assert rows["commands"] == "2,000"
    assert rows["accepted"] == f"{sent:,} ({sent / 2000:.1%})"
    # Commands are registered a batch or so ahead of sending: most were never registered.
    unregistered = 2000 - len(ledger_rows(ledger))
    assert unregistered > 0
    assert rows["not registered yet"] == f"{unregistered:,} ({unregistered / 2000:.1%})"


# The real command line in a process whose ledger file is capped at a number of pages (SQLite's
# max_page_count is a setting of each connection, not of the file, so it is set in the process).
CAPPED_CLI = """\
import sys
from dispatcher.cli.commands import main
from dispatcher.ledger.sqlite import Ledger

pages = int(sys.argv.pop(1))
open_ledger = Ledger.open.__func__

def capped(cls, path, **options):
    if not options.get("read_only"):
        options["max_pages"] = pages
    return open_ledger(cls, path, **options)

Ledger.open = classmethod(capped)
sys.argv[0] = "dispatcher"
main()
"""


async def capped_run(cwd: Path, pages: int, *args: str | Path) -> Done:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CAPPED_CLI,
        str(pages),
        *map(str, args),
        cwd=cwd,
        env=process_env(SECRET),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return await finished(proc)


async def test_a_ledger_that_fills_up_mid_run_breaks_off_with_exit_5(tmp_path: Path) -> None:
    write_csv_job(tmp_path, fleet(2000))
    config = write_config(tmp_path, QUICK_CONFIG)
    emulator = Emulator()
    async with serve(emulator) as url:
        done = await capped_run(
            tmp_path, 40, "run", "fleet.yaml", "--base-url", url, "--config", config
        )
    assert done.code == 5, done.stdout + done.stderr
    prefix = "error: the run broke off, and some commands may have been sent: fleet.yaml.ledger"
    assert done.stderr.startswith(prefix), done.stderr
    assert "is full" in done.stderr
    assert done.stderr.count("run the same command again") == 1
    assert "nothing was sent" not in done.stderr
    assert no_traceback(done.stdout, done.stderr)
    assert 0 < len(emulator.accepted()) < 2000  # it broke off mid-run
    with Ledger.open(tmp_path / "fleet.yaml.ledger.db", read_only=True) as ledger:
        (only,) = ledger.runs()
    assert only.finished_at is not None
    assert only.stop_reason is not None
    assert only.stop_reason.startswith("broken off: ")


async def test_a_ledger_in_use_is_refused_through_a_symlink_and_a_hard_link(tmp_path: Path) -> None:
    write(tmp_path / "job.yaml", job_text(*DEVICES))
    config = write_config(tmp_path, QUICK_CONFIG.replace("concurrency: 8", "concurrency: 1"))
    ledger = tmp_path / "job.yaml.ledger.db"
    emulator = Emulator(Faults(latency_ms=1000))
    async with serve(emulator) as url:
        args = ("--base-url", url, "--config", config)
        async with started("run", "job.yaml", *args, cwd=tmp_path) as holder:
            await until(lambda: emulator.stats()["posts"] != 0, proc=holder)  # it holds the ledger
            (tmp_path / "through-symlink.db").symlink_to(ledger)
            os.link(ledger, tmp_path / "through-hardlink.db")
            others = await asyncio.gather(
                *(
                    dispatcher_async("run", "job.yaml", "--ledger", name, *args, cwd=tmp_path)
                    for name in ("through-symlink.db", "through-hardlink.db")
                )
            )
            still_running = holder.returncode is None
            emulator.faults = Faults()  # let the holder finish
            held = await finished(holder)
    for other in others:
        assert other.code == 1, other.stdout + other.stderr
        assert f"in use by another dispatcher (process {holder.pid})" in other.stderr
        assert no_traceback(other.stderr)
    assert f"through-symlink.db (the file {ledger.resolve()}) is in use" in others[0].stderr
    assert still_running
    assert held.code == 0, held.stderr
    assert sorted(c.imei for c in emulator.accepted()) == sorted(DEVICES)
    assert emulator.stats()["duplicates"] == 0
