"""The retry-failed use case: a new job file of the commands of a ledger's job that did not get
through, each as the job gave it, and the hand-over recorded in the ledger (so that neither this
job nor a second retry job sends them as well).

May import: errors, times, job (writer), ledger, report (retry), app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dispatcher.app.events import Events, Quiet
from dispatcher.app.outputs import not_handed_here, refuse_own_files
from dispatcher.app.resources import closing
from dispatcher.app.retrying_steps import SHOWN, not_verified, write_steps
from dispatcher.errors import DispatcherError, LedgerError, Refused
from dispatcher.job.writer import JobWriter, Written
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.opening import ledger_exists, open_ledger
from dispatcher.ledger.store import LedgerStore, Row
from dispatcher.report.retry import Retry, RetryTally, retries, told
from dispatcher.report.retry_steps import StepTally
from dispatcher.report.summary import first_row
from dispatcher.times import format_onenet, now_beijing

__all__ = [
    "RetryOutcome",
    "RetryRequest",
    "n_of",
    "reasons",
    "retry_failed",
    "them",
    "unsettled_by_state",
]


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """The ledger whose failed commands to hand over, and the new job file (.yaml, .yml or
    .csv; ``force``: written over if it exists); ``not_verified``: a job with steps' devices
    that finished them but verify found not yet on target go in too, with every step."""

    ledger: LedgerAddress
    output: Path
    force: bool = False
    not_verified: bool = False


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    """What was written (None: nothing to retry), why each command was, what was left out,
    the first passed times, the ledger's job record and its file as shown in messages; for a
    job with steps, ``steps`` counts by device instead of ``tally``."""

    written: Written | None
    tally: RetryTally
    flagged: tuple[str, ...]
    record: JobRecord | None
    job: str
    steps: StepTally | None = None
    went_to: str | None = None  # the OneNET address the job's last run sent to, as recorded


def retry_failed(request: RetryRequest, *, events: Events | None = None) -> RetryOutcome:
    """Write the new job of ``request``, the hand-over recorded before the file is put in
    place; Refused when the output cannot be written as asked, LedgerError
    when there is no ledger, another DispatcherError (saying where the hand-over stands) when
    writing broke off."""
    events = Quiet() if events is None else events
    ledger_path, output, force = request.ledger, request.output, request.force
    if output.exists() and not force:
        raise Refused(f"{output} exists: give --force to write over it")
    if not output.parent.is_dir():
        raise Refused(f"{output}: there is no directory {output.parent}")
    if not ledger_exists(ledger_path):
        raise LedgerError(f"{ledger_path}: no such ledger")
    # Written too: the commands handed to the new job are marked, so that neither this job nor
    # a second retry job sends them as well.
    with closing(open_ledger(ledger_path)) as ledger:
        now = now_beijing()
        tally = RetryTally()
        flagged: list[str] = []
        # The path the hand-over records: the file itself, not a symlink's target it may replace.
        into = str(output.parent.resolve() / output.name)
        handed: list[str] = []
        try:
            record = ledger.job()
            refuse_own_files(output, ledger_path, record, writing="the new job")
            foreign = not_handed_here(output, ledger, into)
            if foreign:
                raise Refused(
                    f"{output} holds {foreign} command{'s' if foreign != 1 else ''} that"
                    f" {ledger_path} did not hand to it (another retry-failed's, which would"
                    " never be sent if it were written over): write the new job to another file"
                )
            _warn_if_running(ledger, ledger_path, events)
            first = first_row(ledger)
            if first is not None and first.command.step:
                done = write_steps(
                    ledger,
                    ledger_path,
                    output,
                    force=force,
                    record=record,
                    into=into,
                    now=now,
                    imei=first.command.imei,
                    handed=handed,
                    redo=not_verified(ledger, ledger_path) if request.not_verified else None,
                )
                job = _job_shown(record)
                return RetryOutcome(
                    done.written, tally, tuple(done.flagged), record, job, done.tally,
                    went_to=_went_to(ledger),
                )  # fmt: skip
            if request.not_verified:
                raise Refused(
                    f"{ledger_path}: --not-verified applies to a job with steps:, which it sends"
                    " again from step 1; this job has none"
                )
            with JobWriter(output, force=force) as writer:
                # Commands handed to this very file before (a retry-failed stopped before it
                # was put in place, or --force over it) go into it again: the same hand-over.
                for retry in retries(ledger, tally, now=now, into=into):
                    try:
                        writer.add(retry.row.command, _notes(retry))
                    except ValueError as exc:
                        raise Refused(f"{output}: {exc}") from exc
                    handed.append(retry.row.key)
                    if retry.passed and len(flagged) < SHOWN:
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
        except Refused:
            raise
        except DispatcherError as exc:
            said = _hand_over_said(str(exc), ledger, handed, into, output)
            raise DispatcherError(said) from exc
        went_to = _went_to(ledger)
    return RetryOutcome(written, tally, tuple(flagged), record, job, went_to=went_to)


def _went_to(ledger: LedgerStore) -> str | None:
    """The OneNET address the latest run of the ledger's job sent to (its settings as the runs
    table keeps them), or None when no run recorded one, or its products had addresses of
    their own (``--base-url`` would send them all to one: the config says each)."""
    runs = ledger.runs()
    settings = runs[-1].settings if runs else {}
    onenet = settings.get("onenet")
    url = onenet.get("base_url") if isinstance(onenet, dict) else None
    products = settings.get("products")
    for own in products.values() if isinstance(products, dict) else ():
        theirs = own.get("onenet") if isinstance(own, dict) else None
        if isinstance(theirs, dict) and theirs.get("base_url", url) != url:
            return None
    return url if isinstance(url, str) else None


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


def _warn_if_running(ledger: LedgerStore, ledger_path: LedgerAddress, events: Events) -> None:
    """A run still going may send the pending and failed commands itself."""
    runs = ledger.runs()
    if runs and runs[-1].finished_at is None:
        events.warn(
            f"the latest run on {ledger_path} has no recorded end: it is still going, or it was"
            " killed; if it is going, let it end and run retry-failed again"
        )


def _notes(retry: Retry) -> tuple[str, ...]:
    """Why the command is sent again and where it came from; each time that has passed."""
    row = retry.row
    notes = [f"{told(retry.reason, row)}: {row.command.where}"]
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
    return f"{row.command.where}: {times}"


def _job_shown(record: JobRecord | None) -> str:
    """The original job file for messages: relative to here when it is below."""
    if record is None:
        return "the original job"
    path = Path(record.path)
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def n_of(count: int, noun: str) -> str:
    """``count`` and ``noun``, plural unless one."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def them(count: int) -> str:
    """'it' or 'them'."""
    return "it" if count == 1 else "them"


def reasons(tally: RetryTally) -> str:
    """The commands written, by reason."""
    return ", ".join(f"{n:,} {reason.value}" for reason, n in tally.reasons.items() if n)


def unsettled_by_state(tally: RetryTally) -> str:
    """The commands left out as they may be at OneNET already, by state."""
    parts = [
        f"{n:,} {status.value.replace('_', ' ')}" for status, n in tally.unsettled.items() if n
    ]
    return ", ".join(parts)


def _header(
    ledger_path: LedgerAddress,
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
        f"The commands of {whose} that did not get through: {reasons(tally)}.",
        "Each is as the job gave it; relative times count from when this job is run.",
    ]
    unsettled = sum(tally.unsettled.values())
    if unsettled:
        lines.append(
            f"Left out: {n_of(unsettled, 'command')} that may be at OneNET already"
            f" ({unsettled_by_state(tally)}); dispatcher run {job} settles {them(unsettled)}."
        )
    if tally.passed:
        lines.append(
            f"{n_of(tally.passed, 'command')} with a time that has passed, marked below:"
            " change it, or dispatcher validate refuses the job."
        )
    lines.append(
        f"Check it, then: dispatcher validate {output} && dispatcher run {output} --config CONFIG"
        " (the config file the job's runs use)"
    )
    return lines
