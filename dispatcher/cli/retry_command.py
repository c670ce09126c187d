"""``dispatcher retry-failed``: a new job file of the commands of a ledger's job that did not get
through, each as the job gave it, to review, validate and run."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_USAGE, fail, interruptible
from dispatcher.cli.outputs import not_handed_here, refuse_own_files
from dispatcher.errors import DispatcherError
from dispatcher.job.writer import NOTE_COLUMN, JobWriter, Written, job_format
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore, Row
from dispatcher.report.retry import Reason, Retry, RetryTally, retries
from dispatcher.times import format_onenet, now_beijing

__all__ = ["retry_failed"]

_SHOWN = 10  # passed times warned about one by one; the rest are counted
_DETAIL = {
    Reason.REJECTED: "errno",
    Reason.FAILED: "errno",
    Reason.DELIVERY_EXPIRED: "send_status",
    Reason.DELIVERY_FAILED: "send_status",
}


@click.command("retry-failed")
@click.argument("ledger_path", metavar="LEDGER", type=click.Path(path_type=Path))
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
@interruptible
def retry_failed(ledger_path: Path, output: Path, force: bool) -> None:
    """Write NEW_JOB: the commands of LEDGER's job that did not get through, as the job gave them.

    Rejected, failed, expired and never sent commands, and accepted ones whose delivery expired
    or failed on the device; never those in doubt or in flight (they may be at OneNET already).
    LEDGER records the hand-over: this job never sends them, nor does a second retry job.
    """
    fmt = job_format(output)
    if fmt is None:
        raise click.BadParameter(
            f"{output}: name the new job file .yaml, .yml or .csv", param_hint="'-o' / '--output'"
        )
    if output.exists() and not force:
        fail(f"{output} exists: give --force to write over it", EXIT_USAGE)
    if not output.parent.is_dir():
        fail(f"{output}: there is no directory {output.parent}", EXIT_USAGE)
    if not ledger_path.exists():
        fail(f"{ledger_path}: no such ledger")
    try:
        # Written too: the commands handed to the new job are marked, so that neither this job
        # nor a second retry job sends them as well.
        ledger = Ledger.open(ledger_path)
    except DispatcherError as exc:
        fail(str(exc))
    now = now_beijing()
    tally = RetryTally()
    flagged: list[str] = []
    # The path the hand-over records: the file itself, not a symlink's target it may replace.
    into = str(output.parent.resolve() / output.name)
    try:
        record = ledger.job()
        refuse_own_files(output, ledger_path, record, writing="the new job")
        foreign = not_handed_here(output, ledger, into)
        if foreign:
            fail(
                f"{output} holds {foreign} command{'s' if foreign != 1 else ''} that"
                f" {ledger_path} did not hand to it (another retry-failed's, which would never"
                " be sent if it were written over): write the new job to another file",
                EXIT_USAGE,
            )
        _warn_if_running(ledger, ledger_path)
        handed: list[str] = []
        with JobWriter(output, force=force) as writer:
            # Commands handed to this very file before (a retry-failed stopped before it was
            # put in place, or --force over it) go into it again: it is the same hand-over.
            for retry in retries(ledger, tally, now=now, into=into):
                if retry.row.command.step:
                    fail(
                        f"{ledger_path}: its job has steps:, whose order a job of single"
                        " commands cannot keep; nothing was written. Fix the cause and run the"
                        " job again: held-back steps go out once the step before is accepted",
                        EXIT_USAGE,
                    )
                try:
                    writer.add(retry.row.command, _notes(retry))
                except ValueError as exc:
                    fail(f"{output}: {exc}", EXIT_USAGE)
                handed.append(retry.row.key)
                if retry.passed and len(flagged) < _SHOWN:
                    flagged.append(_passed_warning(retry))
            job = _job_shown(record)
            written = None
            if writer.count:
                # The hand-over is recorded before the file is put in place: a stop between
                # the two leaves a ledger that names a file not there yet, which the same
                # command writes again (never a job file its ledger does not know of).
                written = writer.commit(
                    name=None if record is None else f"{record.name}-retry",
                    comment=_header(ledger_path, output, now, record, tally, job),
                    before_put=lambda: ledger.hand_over(handed, into),
                )
    except DispatcherError as exc:
        fail(_hand_over_said(str(exc), ledger, handed, into, output))
    finally:
        ledger.close()
    if written is None:
        console.note(
            f"nothing to retry: no command of {ledger_path} needs sending again;"
            f" {output} not written"
        )
        _left_out(tally, record, job, ledger_path)
    else:
        _summary(written, tally, flagged, fmt, record, job, ledger_path)


def _hand_over_said(
    error: str, ledger: LedgerStore, handed: list[str], into: str, output: Path
) -> str:
    """The error of a retry-failed that broke off, with where its hand-over stands."""
    try:
        recorded = bool(handed) and all(r.retried_in == into for r in ledger.rows_of(handed[:1]))
    except DispatcherError:
        recorded = False
    if not recorded:
        return f"{error}; {output} not written, nothing handed over: run retry-failed again"
    return (
        f"{error}; the ledger records the commands as handed to {into}: run the same"
        " retry-failed again to write it (with --force if a file is there)"
    )


def _warn_if_running(ledger: LedgerStore, ledger_path: Path) -> None:
    """A run still going may send the pending and failed commands itself."""
    runs = ledger.runs()
    if runs and runs[-1].finished_at is None:
        console.warn(
            f"the latest run on {ledger_path} has no recorded end: it is still going, or it was"
            " killed; if it is going, let it end and run retry-failed again"
        )


def _notes(retry: Retry) -> tuple[str, ...]:
    """Why the command is sent again and where it came from; each time that has passed."""
    row = retry.row
    field = _DETAIL.get(retry.reason)
    value = None if field is None else getattr(row, field)
    why = retry.reason.value if value is None else f"{retry.reason.value} ({field} {value})"
    notes = [f"{why}: {row.command.source}:{row.command.line}"]
    for name in retry.passed:
        text = _time_text(row, name)
        notes.append(
            f"{name} {text} has passed: change it (e.g. to a relative time such as +2d);"
            " dispatcher validate refuses it as it is"
        )
    return tuple(notes)


def _time_text(row: Row, name: str) -> str:
    """A time of the row's command (valid_time or expired_time), as the job wrote it."""
    spec = row.command.valid_time if name == "valid_time" else row.command.expired_time
    return "" if spec is None else spec.text


def _passed_warning(retry: Retry) -> str:
    row = retry.row
    times = "; ".join(f"{name}: {_time_text(row, name)} has passed" for name in retry.passed)
    return f"{row.command.source}:{row.command.line}: {times}"


def _job_shown(record: JobRecord | None) -> str:
    """The original job file for messages: relative to here when it is below."""
    if record is None:
        return "the original job"
    path = Path(record.path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _them(count: int) -> str:
    return "it" if count == 1 else "them"


def _reasons(tally: RetryTally) -> str:
    return ", ".join(f"{n:,} {reason.value}" for reason, n in tally.reasons.items() if n)


def _unsettled(tally: RetryTally) -> str:
    parts = [
        f"{n:,} {status.value.replace('_', ' ')}" for status, n in tally.unsettled.items() if n
    ]
    return ", ".join(parts)


def _header(
    ledger_path: Path,
    output: Path,
    now: datetime,
    record: JobRecord | None,
    tally: RetryTally,
    job: str,
) -> list[str]:
    """The comment at the top of a YAML job: where it comes from, what it holds."""
    whose = "the job" if record is None else f"job {record.name!r}"
    lines = [
        f"Written by dispatcher retry-failed from {ledger_path} at {format_onenet(now)} (UTC+8).",
        f"The commands of {whose} that did not get through: {_reasons(tally)}.",
        "Each is as the job gave it; relative times count from when this job is run.",
    ]
    unsettled = sum(tally.unsettled.values())
    if unsettled:
        lines.append(
            f"Left out: {_n(unsettled, 'command')} that may be at OneNET already"
            f" ({_unsettled(tally)}); dispatcher run {job} settles {_them(unsettled)}."
        )
    if tally.passed:
        lines.append(
            f"{_n(tally.passed, 'command')} with a time that has passed, marked below:"
            " change it, or dispatcher validate refuses the job."
        )
    lines.append(f"Check it, then: dispatcher validate {output} && dispatcher run {output}")
    return lines


def _left_out(tally: RetryTally, record: JobRecord | None, job: str, ledger_path: Path) -> None:
    """What is not in the new job but may need doing: unsettled and unregistered commands."""
    unsettled = sum(tally.unsettled.values())
    if unsettled:
        console.note(
            f"left out {_n(unsettled, 'command')} that may be at OneNET already"
            f" ({_unsettled(tally)}): `dispatcher run {job}` settles {_them(unsettled)} first;"
            " then run retry-failed again for any that did not get through"
        )
    for path, n in tally.handed.items():
        if not Path(path).exists():
            console.warn(
                f"{_n(n, 'command')} {'is' if n == 1 else 'are'} handed to the retry job {path},"
                f" which is not there (a retry-failed stopped before writing it): `dispatcher"
                f" retry-failed {ledger_path} -o {path}` writes it"
            )
            continue
        console.note(
            f"left out {_n(n, 'command')} already handed to the retry job {path}: its own ledger"
            " says what became of them (run retry-failed on that ledger for the next round)"
        )
    unregistered = 0 if record is None else record.total - tally.rows
    if unregistered > 0:
        console.note(
            f"{_n(unregistered, 'command')} of the job {'is' if unregistered == 1 else 'are'} not"
            f" in the ledger (a run stopped before it registered {_them(unregistered)}):"
            f" `dispatcher run {job}` sends {_them(unregistered)}"
        )


def _summary(
    written: Written,
    tally: RetryTally,
    flagged: list[str],
    fmt: str,
    record: JobRecord | None,
    job: str,
    ledger_path: Path,
) -> None:
    """What was written, by reason; what was left out; the times that need changing."""
    console.note(
        f"wrote {_n(written.commands, 'command')} for {_n(written.devices, 'device')} to"
        f" {written.path}: {_reasons(tally)}"
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
            f"{_n(tally.passed, 'command')} with a time that has passed {was} written as given"
            f" ({where}): `dispatcher validate {written.path}` refuses {_them(tally.passed)} until"
            " the time is changed"
        )
    console.note(f"next: dispatcher validate {written.path}, then dispatcher run {written.path}")
