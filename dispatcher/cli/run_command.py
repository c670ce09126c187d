"""``dispatcher run``: validate a job, bind it to its ledger, and send what is not done yet; and
what the demo shares with it (sending over one aiohttp session with live progress, the closing
lines and exit code of a run)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from dispatcher.cli import console
from dispatcher.cli.exits import (
    EXIT_BREAKER,
    EXIT_BROKEN,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    interruptible,
)
from dispatcher.cli.lanes import open_session, settings_and_key
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.job.model import Job, load_job, validate_job
from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.store import FINAL, Ledger, Status
from dispatcher.run.binding import Binding, JobChangedError, bind_job, describe_change
from dispatcher.run.runner import run_job
from dispatcher.run.state import RunResult, RunStats, Stop

__all__ = ["end_of_run", "run", "send_job"]


@click.command()
@click.argument("jobfile", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file.")
@click.option(
    "--ledger",
    "ledger_path",
    type=click.Path(path_type=Path),
    help="Results ledger (default: <job file>.ledger.db next to the job file).",
)
@click.option("--rate", type=float, help="Requests per second at most (0: no limit).")
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Requests in flight at most.")
@click.option("--base-url", help="OneNET API base URL (e.g. the emulator's).")
@click.option("--strict", is_flag=True, help="Treat job-file warnings as errors.")
@click.option("--no-reconcile", is_flag=True, help="Do not look up in-doubt commands in history.")
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="With --no-reconcile: resend in-doubt commands (at-least-once).",
)
@click.option(
    "--accept-changes",
    is_flag=True,
    help="Send commands edited since the ledger recorded them as new commands.",
)
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
@interruptible
def run(
    jobfile: Path,
    config_path: Path | None,
    ledger_path: Path | None,
    rate: float | None,
    concurrency: int | None,
    base_url: str | None,
    strict: bool,
    no_reconcile: bool,
    resend_in_doubt: bool,
    accept_changes: bool,
    progress: bool | None,
) -> None:
    """Validate JOBFILE, then send every command not yet done, recording each outcome."""
    if resend_in_doubt and not no_reconcile:
        raise click.UsageError("--resend-in-doubt needs --no-reconcile")
    settings, api_key = settings_and_key(
        config_path, rate=rate, concurrency=concurrency, base_url=base_url
    )
    try:
        job = load_job(jobfile)
        path = ledger_path or default_ledger_path(job.path)
        # Resuming: times that passed since the job was first run are not errors (a passed
        # valid_time is dropped, a passed expired_time is recorded as expired).
        resuming = path.exists()
        checked = validate_job(
            job,
            strict=strict,
            on_problem=console.problem,
            past_times="warn" if resuming else "error",
        )
        if not checked.ok:
            fail(f"{jobfile}: {checked.errors} error(s): nothing was sent")
        ledger = Ledger.open(path, synchronous=settings.ledger.synchronous)
    except DispatcherError as exc:
        fail(str(exc))
    try:
        binding = bind_job(
            ledger,
            job,
            fingerprint=checked.fingerprint,
            total=checked.commands,
            accept_changes=accept_changes,
        )
        _tell_binding(job, binding)
        finished = _already_finished(job, ledger, checked.commands)
        if finished is not None:
            ledger.close()
            sys.exit(EXIT_OK if finished else EXIT_INCOMPLETE)
    except JobChangedError as exc:
        for change in exc.diff.changed_examples:
            console.note(describe_change(change))
        if exc.diff.changed > len(exc.diff.changed_examples):
            console.note(f"... and {exc.diff.changed - len(exc.diff.changed_examples):,} more")
        ledger.close()
        fail(str(exc))
    except DispatcherError as exc:
        ledger.close()
        fail(str(exc))
    try:
        stats = RunStats(total=checked.commands)
        result = run_with_signals(
            lambda stop: send_job(
                job,
                ledger,
                settings,
                api_key=api_key,
                stop=stop,
                stats=stats,
                reconcile=not no_reconcile,
                resend_in_doubt=resend_in_doubt,
                progress=progress,
            ),
        )
    except DispatcherError as exc:
        with contextlib.suppress(DispatcherError):
            ledger.close()
        advice = (
            ""
            if "run the same command again" in str(exc)
            else (
                "; once fixed, run the same command again: commands marked in flight are looked up"
                " before anything is sent again"
            )
        )
        fail(
            f"the run broke off, and some commands may have been sent: {exc}{advice}",
            EXIT_BROKEN,
        )
    ledger.close()
    sys.exit(end_of_run(result, resume=" ".join(["dispatcher", *sys.argv[1:]])))


def _tell_binding(job: Job, binding: Binding) -> None:
    """Say what an edited or moved job changed in its ledger."""
    if binding.moved_from is not None:
        console.note(f"{job.source}: the job file moved (it was {binding.moved_from})")
    diff = binding.diff
    if diff is None:
        return
    if diff.changed:
        console.note(
            f"{job.source}: {diff.changed:,} edited command(s) will be sent as new commands;"
            " their earlier versions are kept as they were"
        )
    if diff.removed:
        console.note(
            f"{job.source}: {diff.removed:,} command(s) of the ledger are no longer in the job"
            " file: they are kept in the ledger as removed and not sent"
        )
        for row in diff.removed_examples[:5]:
            console.note(f"  removed: {row.source}:{row.line}: imei {row.imei}")
    if diff.returned:
        console.note(f"{job.source}: {diff.returned:,} removed command(s) are back in the job")


def _already_finished(job: Job, ledger: Ledger, total: int) -> bool | None:
    """None while some command of the job has no final outcome; else say so, and whether every
    command was accepted."""
    counts = ledger.counts()
    final = sum(counts[s] for s in FINAL)
    if final < total or final < sum(counts.values()):
        return None
    parts = ", ".join(f"{counts[s]:,} {s.value}" for s in FINAL if counts[s])
    console.note(f"{job.source}: the job is finished ({parts}): nothing to send")
    return counts[Status.ACCEPTED] == final


async def send_job(
    job: Job,
    ledger: Ledger,
    settings: Settings,
    *,
    api_key: str,
    stop: Stop,
    stats: RunStats,
    reconcile: bool = True,
    resend_in_doubt: bool = False,
    progress: bool | None = None,
) -> RunResult:
    """Send ``job`` over one aiohttp session to the settings' OneNET, with live progress."""
    async with open_session(settings, api_key) as client:
        with console.live_progress(stats, enabled=progress):
            return await run_job(
                job,
                client,
                ledger,
                settings,
                stop=stop,
                stats=stats,
                reconcile_in_doubt=reconcile,
                resend_in_doubt=resend_in_doubt,
                notify=console.warn,
            )


def end_of_run(result: RunResult, *, resume: str | None) -> int:
    """The closing lines of a run, and its exit code; ``resume`` is the command that resumes it."""
    console.summary_line(result)
    if result.aborted is not None:
        console.error(result.aborted.reason)
        return EXIT_BREAKER
    if result.stop_reason is not None:
        console.note(
            f"stopped ({result.stop_reason})" + (f"; to resume: {resume}" if resume else "")
        )
        return EXIT_INTERRUPTED
    return EXIT_OK if result.complete else EXIT_INCOMPLETE
