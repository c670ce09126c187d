"""The earlier ledgers of a recurring job: which of them are this job's, and which are unfinished.

A ledger path with placeholders (``ledgers/{job}-{date}.db``, or a PostgreSQL ledger's job name:
``postgresql://…/dbname#{job}-{date}``) names a new ledger for each occurrence of a job. A run
killed, or stopped before the job was done, leaves its ledger unfinished; the same command line
started again (later, or after midnight) fills the placeholders anew and would make another
ledger and send the whole job again. The CLI looks here first: the ledgers matching the pattern,
read without their lock, each with its job and whether it is done.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.identity import JobRecord
from dispatcher.ledger.opening import open_ledger
from dispatcher.ledger.records import FINAL, RunInfo, Status
from dispatcher.ledger.schema import OlderSchemaError

__all__ = ["Occurrence", "occurrences"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A ledger of one occurrence: its path, its job, and why it is unfinished (None: it is not).

    Unfinished: its last run has no recorded end (killed, or still going), or some of its job's
    commands have no final outcome (pending, in flight, in doubt, failed, skipped, or not yet
    registered).
    """

    path: LedgerAddress  # a file, or a job of a PostgreSQL ledger
    job: JobRecord
    unfinished: str | None
    last_run_at: float  # when its last run started (unix seconds); 0.0: none


def occurrences(paths: Iterable[LedgerAddress]) -> list[Occurrence]:
    """The ledgers among ``paths`` that record a job, read only; files that are not ledgers, or
    that record no job and no run (nothing was sent with them), are left out. A ledger an older
    dispatcher wrote is upgraded in place to be read (the upgrade only adds to it); when another
    process holds it, LedgerLockedError: passing it over could send its job again."""
    found: list[Occurrence] = []
    for path in paths:
        try:
            try:
                seen = _read(path, read_only=True)
            except OlderSchemaError:
                seen = _read(path, read_only=False)
        except LedgerLockedError:
            raise
        except LedgerError as exc:
            if isinstance(path, PostgresAddress):
                # A job the database listed: an error reading it is the server's (no more
                # connections, a restart), and passing it over could send its job again.
                raise
            log.debug("%s: not looked at as an earlier ledger: %s", path, exc)
            continue
        if seen is None:
            continue
        job, runs, counts = seen
        final = sum(n for status, n in counts.items() if status in FINAL)
        open_ = sum(counts.values()) - final
        why: str | None = None
        if runs and runs[-1].finished_at is None:
            why = "its last run has no recorded end"
        elif open_:
            why = f"{open_:,} command(s) without a final outcome"
        elif final < job.total:
            why = f"{job.total - final:,} command(s) of the job not registered yet"
        found.append(Occurrence(path, job, why, runs[-1].started_at if runs else 0.0))
    return found


_Seen = tuple[JobRecord, list[RunInfo], dict[Status, int]]


def _read(path: LedgerAddress, *, read_only: bool) -> _Seen | None:
    """The ledger's job, runs and counts; None when it records neither a job nor a run. A ledger
    from before jobs were recorded stands for the job file its last run was started with."""
    with open_ledger(path, read_only=read_only) as ledger:
        job = ledger.job()
        runs = ledger.runs()
        counts = ledger.counts()
        if job is None:
            if not runs:
                return None
            where = str(Path(runs[-1].job_path).resolve())
            job = JobRecord(where, "", "", sum(counts.values()))
    return job, runs, counts
