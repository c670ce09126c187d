"""retry-failed on the ledger of a job with steps: a YAML job of the same steps (copied from the
job file the ledger belongs to) for the devices that did not finish, each a target starting at its
first step not done (``from_step``), and the hand-over of those steps recorded in the ledger.

May import: errors, times, job, ledger, report, app.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dispatcher.errors import JobFileError, Refused
from dispatcher.job.steps_copy import StepsSource, check_written, read_steps_source
from dispatcher.job.writer import JobWriter, Written, job_format
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.store import LedgerStore
from dispatcher.ledger.verify import VerifyState
from dispatcher.model.command import command_fingerprint
from dispatcher.report.retry import told
from dispatcher.report.retry_steps import Left, Start, StepTally, starts
from dispatcher.times import format_onenet

__all__ = [
    "SHOWN",
    "StepsRetry",
    "left_by_cause",
    "not_verified",
    "step_reasons",
    "write_steps",
]

SHOWN = 10  # passed times warned about one by one; the rest are counted


@dataclass(slots=True)
class StepsRetry:
    """What a retry of a job with steps wrote (None: nothing), counted by device, and the first
    passed times."""

    written: Written | None = None
    tally: StepTally = field(default_factory=StepTally)
    flagged: list[str] = field(default_factory=list)


def not_verified(ledger: LedgerStore, ledger_path: LedgerAddress) -> dict[str, str | None]:
    """The devices ``dispatcher verify`` last found not yet on target, with what each reads;
    Refused when the ledger was never verified."""
    results = ledger.verify_results()
    if not results:
        raise Refused(
            f"{ledger_path}: no verify results: run dispatcher verify {ledger_path} --config"
            " CONFIG first, then retry-failed --not-verified writes the devices not on target yet"
        )
    return {r.imei: r.value for r in results if r.state is VerifyState.NOT_YET}


def write_steps(
    ledger: LedgerStore,
    ledger_path: LedgerAddress,
    output: Path,
    *,
    force: bool,
    record: JobRecord | None,
    into: str,
    now: datetime,
    imei: str,
    handed: list[str],
    redo: Mapping[str, str | None] | None = None,
) -> StepsRetry:
    """Write the retry job of steps into ``output`` (``into``: its path, as the hand-over records
    it), the hand-over recorded before the file is put in place; Refused when it cannot be
    written as the job gave its steps. ``imei``: one of the job's devices; ``handed``: the keys
    handed over are added to it; ``redo``: devices sent all their steps again though they
    finished them (not verified), with what each reads."""
    if job_format(output) != "yaml":
        raise Refused(f"{output}: a job with steps: is written as YAML: name it .yaml")
    # The job file the ledger belongs to; a ledger written without one, the one its runs name.
    paths = [record.path] if record is not None else ledger.recorded_job_paths()[-1:]
    if not paths:
        raise Refused(
            f"{ledger_path}: it does not say which job file it belongs to, whose steps: a retry"
            " job copies"
        )
    job_path = Path(paths[0])
    try:
        source = read_steps_source(job_path, imei)
    except JobFileError as exc:
        raise Refused(
            f"{ledger_path}: a retry job copies the steps of its job file, and {exc}; nothing"
            " was written"
        ) from exc
    done = StepsRetry()
    expected: dict[str, int] = {}
    with JobWriter(output, force=force) as writer:
        redo = redo or {}
        for start in starts(ledger, source.waits, done.tally, now=now, into=into, redo=redo):
            _add(writer, source, start, ledger_path, redo.get(start.imei))
            for row in start.rows:
                handed.append(row.key)
                expected[row.key] = command_fingerprint(row.command)
            if start.passed and len(done.flagged) < SHOWN:
                done.flagged.append(_passed_warning(start))
        if writer.count:
            done.written = writer.commit(
                name=f"{source.name}-retry",
                comment=_header(ledger_path, output, now, source.name, job_path, done.tally),
                sections=source.sections,
                check=lambda path: _check(path, expected, output),
                before_put=lambda: ledger.hand_over(handed, into),
            )
    return done


def _add(
    writer: JobWriter,
    source: StepsSource,
    start: Start,
    ledger_path: LedgerAddress,
    reads: str | None,
) -> None:
    commands = [row.command for row in start.rows]
    try:
        fields = source.target_fields(commands)
    except ValueError as exc:
        raise Refused(f"{ledger_path}: device {start.imei}: {exc}; nothing was written") from exc
    writer.add_target(start.imei, {"from_step": start.from_step, **fields}, len(commands),
                      _notes(start, reads))  # fmt: skip


def _check(path: Path, expected: Mapping[str, int], output: Path) -> None:
    """The file about to be put in place makes exactly the steps handed over, as the job gave
    them."""
    try:
        check_written(path, expected)
    except (ValueError, JobFileError) as exc:
        raise Refused(f"{output} not written, nothing handed over: {exc}") from exc


def _notes(start: Start, reads: str | None) -> tuple[str, ...]:
    """Why the device starts where it does, and where its step came from; passed times."""
    row = start.rows[0]
    c = row.command
    if start.reason is None:
        shown = "nothing" if reads is None else repr(reads)
        why = f"not verified (it reads {shown}), every step again"
    else:
        why = f"step {start.from_step}: {told(start.reason, row)}"
    notes = [f"{why}: {c.where}"]
    for name in start.passed:
        notes.append(
            f"{name} has passed: change it in the steps (e.g. to a relative time such as +2d);"
            " dispatcher validate refuses it as it is"
        )
    return tuple(notes)


def _passed_warning(start: Start) -> str:
    c = start.rows[0].command
    return f"{c.where}: device {start.imei}: {', '.join(start.passed)} has passed"


def step_reasons(tally: StepTally) -> str:
    """The devices written, by the reason at the step each starts at."""
    parts = [f"{n:,} {reason.value}" for reason, n in tally.reasons.items() if n]
    if tally.not_verified:
        parts.append(f"{tally.not_verified:,} not verified")
    return ", ".join(parts)


def left_by_cause(tally: StepTally) -> str:
    """The devices left out that are not finished, by why."""
    return ", ".join(
        f"{n:,} {left.value}" for left, n in tally.left.items() if n and left is not Left.FINISHED
    )


def _header(
    ledger_path: LedgerAddress,
    output: Path,
    now: datetime,
    name: str,
    job_path: Path,
    tally: StepTally,
) -> list[str]:
    """The comment at the top of the retry job."""
    lines = [
        f"Written by dispatcher retry-failed from {ledger_path} at {format_onenet(now)} (UTC+8).",
        f"The devices of job {name!r} that did not finish its steps, by the step each"
        f" starts at (from_step): {step_reasons(tally)}.",
        f"The steps and defaults are {job_path}'s; the steps before a device's from_step are"
        " not sent to it. Relative times count from when this job is run.",
    ]
    left = sum(n for cause, n in tally.left.items() if cause is not Left.FINISHED)
    if left:
        lines.append(
            f"Left out: {left:,} device{'s' if left != 1 else ''} ({left_by_cause(tally)}):"
            " dispatcher status (and run) on the original job settles them."
        )
    if tally.passed:
        lines.append(
            f"{tally.passed:,} device{'s' if tally.passed != 1 else ''} with a time that has"
            " passed, marked below: change it, or dispatcher validate refuses the job."
        )
    lines.append(
        f"Check it, then: dispatcher validate {output} && dispatcher run {output} --config CONFIG"
        " (the config file the job's runs use)"
    )
    return lines
