"""What ``run`` (and its ``--dry-run``) says of a job bound to its ledger: a moved job file, an
edit sent as new commands, rows removed or back, and an edit it refuses."""

from __future__ import annotations

from dispatcher.cli import console
from dispatcher.job.model import Job
from dispatcher.run.binding import Binding, JobChangedError, describe_change

__all__ = ["tell_binding", "tell_refused_edit"]


def tell_binding(job: Job, binding: Binding) -> None:
    """Say what an edited or moved job changed in its ledger (or, in a dry run, would)."""
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
            console.note(f"  removed: {row.command.where}: imei {row.command.imei}")
    if diff.returned:
        console.note(f"{job.source}: {diff.returned:,} removed command(s) are back in the job")


def tell_refused_edit(exc: JobChangedError) -> None:
    """The changed commands that make the run refuse an edit, a few of them."""
    for change in exc.diff.changed_examples:
        console.note(describe_change(change))
    if exc.diff.changed > len(exc.diff.changed_examples):
        console.note(f"... and {exc.diff.changed - len(exc.diff.changed_examples):,} more")
