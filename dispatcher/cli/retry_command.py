"""``dispatcher retry-failed``: a new job file of the commands of a ledger's job that did not get
through, each as the job gave it, to review, validate and run (the use case is
app/retrying.py)."""

from __future__ import annotations

from pathlib import Path

import click

from dispatcher.app.retrying import (
    RetryRequest,
    n_of,
    reasons,
    retry_failed as run_retry,
    them,
    unsettled_by_state,
)
from dispatcher.app.retrying_steps import left_by_cause, step_reasons
from dispatcher.cli import console
from dispatcher.cli.exits import interruptible
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.next_view import show_next
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.job.writer import NOTE_COLUMN, Written, job_format
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.opening import job_named
from dispatcher.report.next_steps import NextStep
from dispatcher.report.retry import RetryTally
from dispatcher.report.retry_steps import Left, StepTally

__all__ = ["retry_failed"]


@click.command("retry-failed")
@click.argument("ledger_path", metavar="LEDGER", type=LedgerParam())
@click.option(
    "-o",
    "--output",
    "output",
    metavar="NEW_JOB",
    required=True,
    type=click.Path(path_type=Path),
    help="The job file to write: .yaml, .yml or .csv.",
)
@click.option("--force", is_flag=True, help="Write over NEW_JOB if it exists.")
@click.option(
    "--not-verified",
    "not_verified",
    is_flag=True,
    help="A job with steps: also the devices that finished them but `dispatcher verify` found"
    " not yet on target, from step 1.",
)
@interruptible
def retry_failed(ledger_path: LedgerAddress, output: Path, force: bool, not_verified: bool) -> None:
    """Write NEW_JOB: the commands of LEDGER's job that did not get through, as the job gave them.

    Rejected, failed, expired and never sent commands, and accepted ones whose delivery expired
    or failed on the device; never those in doubt or in flight (they may be at OneNET already).
    LEDGER records the hand-over: this job never sends them, nor does a second retry job.

    A job with steps: NEW_JOB (YAML) has the same steps, and each device that did not finish
    them as a target starting at its first step not done (from_step: N); with --not-verified,
    the devices verify found not yet on target too, from step 1.
    """
    ledger_path = job_named(ledger_path)  # a database alone: its only job, named
    fmt = job_format(output)
    if fmt is None:
        raise click.BadParameter(
            f"{output}: name the new job file .yaml, .yml or .csv", param_hint="'-o' / '--output'"
        )
    request = RetryRequest(ledger_path, output, force, not_verified)
    done = run_retry(request, events=ConsoleEvents())
    if done.steps is not None:
        _steps_summary(
            done.written, done.steps, list(done.flagged), output, done.job, ledger_path,
            done.went_to,
        )  # fmt: skip
    elif done.written is None:
        console.note(
            f"nothing to retry: no command of {ledger_path} needs sending again;"
            f" {output} not written"
        )
        _left_out(done.tally, done.record, done.job, ledger_path)
    else:
        _summary(
            done.written, done.tally, list(done.flagged), fmt, done.record, done.job, ledger_path,
            done.went_to,
        )  # fmt: skip


def _left_out(
    tally: RetryTally, record: JobRecord | None, job: str, ledger_path: LedgerAddress
) -> None:
    """What is not in the new job but may need doing: unsettled and unregistered commands."""
    unsettled = sum(tally.unsettled.values())
    if unsettled:
        console.note(
            f"left out {n_of(unsettled, 'command')} that may be at OneNET already"
            f" ({unsettled_by_state(tally)}): `dispatcher run {job}` settles"
            f" {them(unsettled)} first; then run retry-failed again for any that did not get"
            " through"
        )
    for path, n in tally.handed.items():
        if not Path(path).exists():
            console.warn(
                f"{n_of(n, 'command')} {'is' if n == 1 else 'are'} handed to the retry job {path},"
                f" which is not there (a retry-failed stopped before writing it): `dispatcher"
                f" retry-failed {ledger_path} -o {path}` writes it"
            )
            continue
        console.note(
            f"left out {n_of(n, 'command')} already handed to the retry job {path}: its own ledger"
            " says what became of them (run retry-failed on that ledger for the next round)"
        )
    unregistered = 0 if record is None else record.total - tally.rows
    if unregistered > 0:
        console.note(
            f"{n_of(unregistered, 'command')} of the job {'is' if unregistered == 1 else 'are'} not"
            f" in the ledger (a run stopped before it registered {them(unregistered)}):"
            f" `dispatcher run {job}` sends {them(unregistered)}"
        )


def _summary(
    written: Written,
    tally: RetryTally,
    flagged: list[str],
    fmt: str,
    record: JobRecord | None,
    job: str,
    ledger_path: LedgerAddress,
    went_to: str | None,
) -> None:
    """What was written, by reason; what was left out; the times that need changing."""
    console.note(
        f"wrote {n_of(written.commands, 'command')} for {n_of(written.devices, 'device')} to"
        f" {written.path}: {reasons(tally)}"
    )
    _left_out(tally, record, job, ledger_path)
    for line in flagged:
        console.warn(line)
    if tally.passed > len(flagged):
        console.warn(f"and {tally.passed - len(flagged):,} more")
    if tally.passed:
        where = "marked with a comment" if fmt == "yaml" else f"see the {NOTE_COLUMN!r} column"
        was = "was" if tally.passed == 1 else "were"
        console.note(
            f"{n_of(tally.passed, 'command')} with a time that has passed {was} written as given"
            f" ({where}): `dispatcher validate {written.path}` refuses {them(tally.passed)} until"
            " the time is changed"
        )
    _next(written.path, went_to)


def _steps_summary(
    written: Written | None,
    tally: StepTally,
    flagged: list[str],
    output: Path,
    job: str,
    ledger_path: LedgerAddress,
    went_to: str | None,
) -> None:
    """What a retry of a job with steps wrote, by device; what it left out, and why."""
    if written is None:
        console.note(
            f"nothing to retry: every device of {ledger_path} finished its steps, or is left out;"
            f" {output} not written"
        )
    else:
        console.note(
            f"wrote {n_of(written.devices, 'device')} ({n_of(written.commands, 'command')}) to"
            f" {written.path}, each from its first step not done: {step_reasons(tally)}"
        )
    left = sum(n for cause, n in tally.left.items() if cause is not Left.FINISHED)
    if left:
        console.note(
            f"left out {n_of(left, 'device')} ({left_by_cause(tally)}): `dispatcher status` on"
            f" {ledger_path} reads what became of open deliveries, `dispatcher run {job}` settles"
            f" commands in doubt; then run retry-failed again with another -o than {output}"
        )
    for path, n in tally.handed.items():
        where = "" if Path(path).exists() else " (not there yet: the same retry-failed writes it)"
        console.note(
            f"left out {n_of(n, 'device')} already handed to the retry job {path}{where}: its own"
            " ledger says what became of them"
        )
    for line in flagged:
        console.warn(line)
    if tally.passed > len(flagged):
        console.warn(f"and {tally.passed - len(flagged):,} more")
    if written is not None:
        _next(written.path, went_to)


def _next(path: Path, went_to: str | None) -> None:
    """The commands that take the retry job on: check it, then run it where the job's runs went
    (a run without its config and address would go to the config's default: production)."""
    check = NextStep(("dispatcher", "validate", str(path)), "check it first")
    where = ("--base-url", went_to) if went_to else ()  # where the job's runs sent, pinned
    go = NextStep(
        ("dispatcher", "run", str(path), "--config", "CONFIG", *where),
        "CONFIG: the config file the job's runs use",
    )
    show_next([check, go])
