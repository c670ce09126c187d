"""The commands to run next, as ``run``, ``status``, ``verify`` and the demo end: one line each,
``next: COMMAND   (why)`` on stderr, from the one rule set (report/next_steps.py) over the
ledger as it now stands."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from dispatcher.app.reporting import ReportRequest, report_ledger
from dispatcher.cli import console
from dispatcher.errors import DispatcherError
from dispatcher.job.model import load_job
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.store import LedgerStore
from dispatcher.report.next_steps import After, NextStep, next_steps
from dispatcher.report.summary import summarize

__all__ = ["next_line", "show_next", "steps_of", "steps_of_path"]


def next_line(step: NextStep) -> str:
    """``next: COMMAND   (why)``: the one way a next command is written on the console."""
    return f"next: {step.command}   ({step.why})"


def show_next(steps: Sequence[NextStep]) -> None:
    """Each next command on its line, on stderr (with the notes)."""
    for step in steps:
        console.note(next_line(step))


def steps_of(
    ledger: LedgerStore, path: LedgerAddress, after: After | None = None
) -> tuple[NextStep, ...]:
    """The next commands for the open ledger at ``path`` (as the person named it)."""
    summary = summarize(ledger)
    delivery = summary.delivery
    # The job's verify: is read only when the rule that needs it can apply (a settled job never
    # verified): its header only, never its rows.
    settled = summary.compliance is None and (delivery is None or not delivery.open)
    has_verify = settled and _has_verify(ledger)
    return next_steps(summary, path, replace(after or After(), has_verify=has_verify))


def steps_of_path(path: LedgerAddress, after: After | None = None) -> tuple[NextStep, ...]:
    """The next commands for the ledger at ``path``, opened read-only; none when it cannot be
    read (the advice is left out: the command has said how it ended already)."""
    try:
        with report_ledger(ReportRequest(path)) as ledger:
            return steps_of(ledger, path, after)
    except DispatcherError:
        return ()


def _has_verify(ledger: LedgerStore) -> bool:
    """Whether the job the ledger records has a ``verify:`` section (False when unreadable)."""
    record = ledger.job()
    if record is None:
        return False
    try:
        return load_job(record.path).verify is not None
    except DispatcherError:
        return False
