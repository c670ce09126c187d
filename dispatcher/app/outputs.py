"""The files an ``-o`` may not write over: the ledger being read and its side files, the job file
that ledger belongs to, that job's CSV of targets, and any other dispatcher ledger (an SQLite
database, or a side file beside one). ``--force`` never changes it: those are what a run needs.
Nor does it let a new retry job replace one that holds commands another ledger handed to it.

May import: errors, job, ledger.
"""

from __future__ import annotations

import os
from pathlib import Path

from dispatcher.errors import DispatcherError, Refused
from dispatcher.job.model import load_job
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.sqlite_files import is_database, side_file_of, side_files
from dispatcher.ledger.store import LedgerStore

__all__ = ["is_the_ledger", "not_handed_here", "own_file", "refuse_own_files"]


def refuse_own_files(
    output: Path, ledger_path: LedgerAddress, record: JobRecord | None, *, writing: str
) -> None:
    """Refused, with a one-line message, when writing ``output`` (``writing``: "the report",
    "the new job") would destroy a file of :func:`own_file`'s; else return."""
    what = own_file(output, ledger_path, record)
    if what is not None:
        raise Refused(f"{output} is {what}: write {writing} to another file")


def own_file(output: Path, ledger_path: LedgerAddress, record: JobRecord | None) -> str | None:
    """What ``output`` is when it must not be written over ("the ledger being read", ...), or
    None when it may be (a new file, or one of no ledger's or job's)."""
    if is_the_ledger(output, ledger_path):
        return "the ledger being read"
    if record is not None:
        job_path = Path(record.path)
        if _same_file(output, job_path):
            return f"the job file {ledger_path} belongs to"
        targets_csv = _targets_csv(job_path)
        if targets_csv is not None and _same_file(output, targets_csv):
            return f"the targets_csv of the job file {ledger_path} belongs to"
    if is_database(output):
        return "a ledger (an SQLite database)"
    side = side_file_of(output.resolve())
    if side is not None and is_database(side[0]):
        return f"a ledger's {side[1]} file"
    return None


def is_the_ledger(output: Path, ledger_path: LedgerAddress) -> bool:
    """Whether writing ``output`` would overwrite the ledger or one of its side files (a
    PostgreSQL ledger: never)."""
    if isinstance(ledger_path, PostgresAddress):
        return False
    ledger = ledger_path.resolve()
    target = output.resolve()
    if target.parent == ledger.parent and target.name.startswith(ledger.name):
        return target == ledger or target in side_files(ledger)
    return output.exists() and os.path.samefile(output, ledger_path)


def not_handed_here(output: Path, ledger: LedgerStore, into: str) -> int:
    """How many commands the job file ``output`` holds that ``ledger`` did not hand to it
    (``into``): another ledger's hand-over, lost if the file were written over. 0 when it is
    no job file (nothing there, or not readable as one)."""
    if not output.is_file():
        return 0
    try:
        keys = {c.key for c in load_job(output).commands()}
    except (DispatcherError, OSError, ValueError):
        return 0
    handed = {r.key for r in ledger.rows_of(sorted(keys)) if r.retried_in == into}
    return len(keys - handed)


def _same_file(output: Path, path: Path) -> bool:
    if output.resolve() == path.resolve():
        return True
    try:
        return os.path.samefile(output, path)
    except OSError:  # one of them does not exist: not the same file
        return False


def _targets_csv(job_path: Path) -> Path | None:
    """The CSV of targets the job file names, or None (none, or the job file cannot be read:
    then there is nothing known to protect)."""
    if not job_path.is_file():
        return None
    try:
        return load_job(job_path).targets_csv
    except (DispatcherError, OSError):
        return None
