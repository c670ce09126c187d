"""A ledger belongs to one job: another job is refused, an edited job is caught before sending.

The ledger records its job (the resolved path of the job file, its name, a fingerprint of every
command and the total, see ledger/identity.py). Before a run sends anything:

- a new ledger records this job;
- the same fingerprint is the same job (moved or not): nothing to check;
- another fingerprint under another path is another job: refused, so that two jobs never mix in
  one ledger and one job's outcomes never make another's commands look done (but a job of a
  shared PostgreSQL ledger is named, and run from a copy of its file on each host: there, a file
  of the same name is the same job, edited or not);
- another fingerprint under the same path is an edited job: it is compared row by row. Rows whose
  fields changed (a trigger, a window, retries) and whose old version may already sit at OneNET
  (accepted, in doubt, in flight) are listed and the run refuses, because sending the new version
  would give the device two commands; ``accept_changes`` sends the changed rows as new commands,
  keeping the old rows as they are (retired, never sent again). A changed row OneNET never got
  (pending, skipped, rejected, failed, expired: e.g. a job fixed after an aborted rollout) is sent
  in its new version without asking: nothing of it can be at OneNET. Rows removed from the job
  are retired (they stop counting as pending), and rows that come back are taken up again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from dispatcher.errors import JobMismatchError
from dispatcher.job.model import Command, Job
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.identity import Change, JobDiff, JobRecord, same_job_file
from dispatcher.ledger.records import Row
from dispatcher.ledger.store import LedgerStore

__all__ = ["Binding", "JobChangedError", "bind_job", "describe_change", "preview_binding"]


@dataclass(frozen=True, slots=True)
class Binding:
    """How the ledger stood with the job: fresh, resumed, and what an edit changed."""

    fresh: bool  # the ledger held no command before
    diff: JobDiff | None = None  # the edit (None: the job was as recorded); applied by bind_job
    moved_from: str | None = None  # the job file's recorded path, when it was elsewhere


class JobChangedError(JobMismatchError):
    """The job file was edited since the ledger recorded it, and commands changed."""

    def __init__(self, message: str, diff: JobDiff) -> None:
        super().__init__(message)
        self.diff = diff


def bind_job(
    ledger: LedgerStore, job: Job, *, fingerprint: str, total: int, accept_changes: bool = False
) -> Binding:
    """Bind ``ledger`` to ``job`` (see the module docstring); JobMismatchError if it cannot be."""
    binding = preview_binding(ledger, job, fingerprint=fingerprint, accept_changes=accept_changes)
    diff = binding.diff
    if diff is not None and not diff.same:
        diff = ledger.compare(_Commands(job), apply=True)
    if binding.fresh or binding.moved_from is not None or diff is not None:
        ledger.set_job(JobRecord(str(job.path.resolve()), job.name, fingerprint, total))
    return replace(binding, diff=None if diff is None or diff.same else diff)


def preview_binding(
    ledger: LedgerStore, job: Job, *, fingerprint: str, accept_changes: bool = False
) -> Binding:
    """What binding ``ledger`` to ``job`` would find, read only (``run --dry-run``): its diff
    compared but not applied (the same comparison as the run's), and the same JobMismatchError
    or JobChangedError the run would stop with."""
    path = str(job.path.resolve())
    recorded = ledger.job()
    if ledger.total() == 0:
        return Binding(fresh=True)
    if recorded is not None and recorded.fingerprint == fingerprint:
        return Binding(fresh=False, moved_from=None if recorded.path == path else recorded.path)
    owner = recorded.path if recorded is not None else _owner(ledger, path)
    if owner is not None and owner != path and not _same_job_shared(ledger, recorded, job, path):
        name = f" {recorded.name!r}" if recorded is not None else ""
        raise JobMismatchError(
            f"{ledger.path} is the ledger of another job{name} ({owner}), not of {job.source}:"
            " one ledger holds one job. Give this job its own ledger (--ledger), or run the job"
            " file the ledger belongs to"
        )
    diff = ledger.compare(_Commands(job), apply=False)
    if diff.changed_at_onenet and not accept_changes:
        raise JobChangedError(_changed_message(ledger, job, diff), diff)
    return Binding(fresh=False, diff=diff)


class _Commands:
    """The job's commands, read afresh for each pass (the ledger streams them once a pass)."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __iter__(self) -> Iterator[Command]:
        commands = self.job.commands()
        try:
            yield from commands
        finally:
            commands.close()


def _same_job_shared(ledger: LedgerStore, recorded: JobRecord | None, job: Job, path: str) -> bool:
    """Whether a job of a shared (PostgreSQL) ledger is run from a copy of its file: on another
    host, or in another directory, a file of the same name holding a job of the same ``job:``
    name is the same job, edited or not (every host has its own copy of the file). A file of
    another name, or a job of another name, is another job (refused: give it its own #job)."""
    return (
        isinstance(ledger.path, PostgresAddress)
        and recorded is not None
        and recorded.name == job.name
        and Path(recorded.path).name == Path(path).name
    )


def _owner(ledger: LedgerStore, path: str) -> str | None:
    """For a ledger that records no job (an older one): the job file its runs were started with."""
    recorded = ledger.recorded_job_paths()
    if not recorded or any(same_job_file(p, Path(path)) for p in recorded):
        return None
    return sorted(str(Path(p).resolve()) for p in recorded)[0]


def describe_change(change: Change) -> str:
    """One changed command for people: where it is, and each field's old and new value."""
    row, command = change.row, change.command
    parts = [f"{name} {_old(row, name)!s} -> {_new(command, name)!s}" for name in change.fields]
    return (
        f"{command.where}: imei {command.imei}: {', '.join(parts)}"
        f" (the ledger's version is {row.status.value})"
    )


def _old(row: Row, name: str) -> object:
    if name == "product" and not row.command.product:
        return "none"  # the default product
    return _new(row.command, name)


def _new(command: Command, name: str) -> object:
    value: object = getattr(command, name)
    if value is None:
        return "none"
    text = getattr(value, "text", None)  # a TimeSpec: as written
    return text if text is not None else value


def _changed_message(ledger: LedgerStore, job: Job, diff: JobDiff) -> str:
    n = diff.changed_at_onenet
    return (
        f"{job.source} was edited since {ledger.path} recorded it: {n:,} command(s) changed"
        " (listed above); nothing was sent. Sending the new versions could give those devices a"
        " second command beside the one OneNET may already hold. Restore the job file, or run"
        " again with --accept-changes to send the changed commands as new ones (their earlier"
        " versions are kept as they are and never sent again)"
    )
