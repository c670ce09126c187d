"""The jobs of a PostgreSQL ledger as a whole: whether one is there, which one a URL without
``#job`` means, the list ``dispatcher jobs`` shows, and removing a job a run made and never used.

Each call opens a short connection of its own, reads (or deletes) and closes it; it never takes a
job's lock. A job's holder is read from the server's lock table (postgres_session.py names every
ledger session ``dispatcher <host>:<pid>``).
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import psycopg

from dispatcher.errors import LedgerError
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.postgres_schema import NAMESPACE, schema_version
from dispatcher.ledger.postgres_session import Conn, describe_holder, pg_error

__all__ = ["JobListing", "drop_job", "job_exists", "job_names", "list_jobs", "only_job"]

_TIMEOUT: Final = 10  # seconds to connect


@dataclass(frozen=True, slots=True)
class JobListing:
    """One job of a shared ledger: what it holds, its last run and who holds it now."""

    name: str
    job_path: str | None  # the job file its last run was started with (None: never bound)
    created_at: float
    by_status: dict[str, int] = field(default_factory=dict)  # its active commands
    runs: int = 0
    last_started_at: float | None = None
    last_finished_at: float | None = None  # None: still going, or it never ended (killed)
    last_stop_reason: str | None = None
    held_by: str | None = None  # the process writing it now (None: none)

    @property
    def total(self) -> int:
        """The job's (active) commands."""
        return sum(self.by_status.values())

    @property
    def state(self) -> str:
        """running, never run, broken off (a run that never ended), stopped, unfinished, done."""
        open_ = sum(self.by_status.get(s, 0) for s in ("pending", "in_flight", "in_doubt"))
        if self.held_by is not None:
            return "running"
        if self.runs == 0:
            return "never run"
        if self.last_finished_at is None:
            return "broken off"  # killed, or its host lost: the next run resumes it
        if self.last_stop_reason is not None:
            return "stopped"
        return "unfinished" if open_ else "done"


@contextlib.contextmanager
def _connected(address: PostgresAddress, what: str) -> Iterator[Conn | None]:
    """A short connection, or None when the database holds no ledger yet."""
    try:
        with psycopg.connect(address.conninfo, autocommit=True, connect_timeout=_TIMEOUT) as conn:
            yield conn if schema_version(conn) else None
    except psycopg.Error as exc:
        raise pg_error(address, what, exc) from exc


def job_exists(address: PostgresAddress) -> bool:
    """Whether the database holds the job ``address`` names (False: no ledger there yet)."""
    if address.job is None:
        return bool(_names(address))
    with _connected(address, "look for the job") as conn:
        if conn is None:
            return False
        found = conn.execute("SELECT 1 FROM dispatcher.jobs WHERE name = %s", (address.job,))
        return found.fetchone() is not None


def only_job(address: PostgresAddress) -> PostgresAddress:
    """``address`` with its job: as named, else the database's only job; LedgerError (listing
    them) when it holds none or several."""
    if address.job is not None:
        return address
    names = _names(address)
    if len(names) == 1:
        return address.with_job(names[0])
    if not names:
        raise LedgerError(f"{address} holds no job yet (dispatcher run --ledger URL#JOB makes one)")
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    example = shlex.quote(str(address.with_job(names[0])))
    raise LedgerError(
        f"{address} holds {len(names)} jobs ({shown}): name one after '#' ({example});"
        f" `dispatcher jobs --ledger {shlex.quote(str(address))}` lists them"
    )


def job_names(address: PostgresAddress) -> list[str]:
    """The names of the database's jobs, sorted (none: no ledger there yet)."""
    return _names(address)


def _names(address: PostgresAddress) -> list[str]:
    with _connected(address, "list the jobs") as conn:
        if conn is None:
            return []
        return [n for (n,) in conn.execute("SELECT name FROM dispatcher.jobs ORDER BY name")]


def drop_job(address: PostgresAddress) -> None:
    """Remove the job a run made and never began: only while it holds no command and no run,
    and nobody holds it (else it is left as it is)."""
    if address.job is None:
        raise ValueError(f"{address}: which job to remove is not named")
    with _connected(address, "remove the job") as conn:
        if conn is None:
            return
        with conn.transaction():
            found = conn.execute(
                "SELECT id FROM dispatcher.jobs WHERE name = %s FOR UPDATE", (address.job,)
            ).fetchone()
            if found is None:
                return
            (job_id,) = found
            taken = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s::int4, %s::int4)", (NAMESPACE, job_id)
            ).fetchone()
            if not (taken and taken[0]):
                return  # another run opened it meanwhile: it is that run's now
            if conn.execute(_HOLDS_ANYTHING, {"job": job_id}).fetchone():
                return  # a run on another host made it its own meanwhile: never removed
            for table in _JOB_TABLES:
                conn.execute(f"DELETE FROM dispatcher.{table} WHERE job_id = %s", (job_id,))
            conn.execute("DELETE FROM dispatcher.jobs WHERE id = %s", (job_id,))


_HOLDS_ANYTHING: Final = (
    "SELECT 1 WHERE EXISTS (SELECT 1 FROM dispatcher.commands WHERE job_id = %(job)s)"
    " OR EXISTS (SELECT 1 FROM dispatcher.runs WHERE job_id = %(job)s)"
)
# Every table keyed by job_id, children first (jobs itself last).
_JOB_TABLES: Final = (
    "commands",
    "runs",
    "verdicts",
    "frozen_targets",
    "verify_results",
    "verify_device_ids",
)

_COUNTS: Final = (
    "SELECT job_id, status, count(*) FROM dispatcher.commands WHERE retired IS NULL"
    " GROUP BY job_id, status"
)
_RUNS: Final = (
    "SELECT DISTINCT ON (job_id) job_id, started_at, finished_at, stop_reason,"
    " count(*) OVER (PARTITION BY job_id) FROM dispatcher.runs ORDER BY job_id, id DESC"
)
_HOLDERS: Final = (
    "SELECT l.objid::bigint, a.pid, a.application_name, host(a.client_addr), a.backend_start"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objsubid = 2"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def list_jobs(address: PostgresAddress) -> list[JobListing]:
    """Every job of the database, by name (none: no ledger there yet)."""
    with _connected(address, "list the jobs") as conn:
        if conn is None:
            return []
        counts: dict[int, dict[str, int]] = {}
        for job_id, status, n in conn.execute(_COUNTS):
            counts.setdefault(job_id, {})[status] = int(n)
        runs = {row[0]: row[1:] for row in conn.execute(_RUNS)}
        holders = {
            row[0]: describe_holder(*row[1:]) for row in conn.execute(_HOLDERS, (NAMESPACE,))
        }
        jobs = conn.execute(
            "SELECT id, name, job_path, created_at FROM dispatcher.jobs ORDER BY name"
        ).fetchall()
    listed = []
    for job_id, name, job_path, created_at in jobs:
        started, finished, reason, n_runs = runs.get(job_id, (None, None, None, 0))
        listed.append(
            JobListing(
                name=name,
                job_path=job_path,
                created_at=float(created_at),
                by_status=counts.get(job_id, {}),
                runs=int(n_runs),
                last_started_at=started,
                last_finished_at=finished,
                last_stop_reason=reason,
                held_by=holders.get(job_id),
            )
        )
    return listed
