"""The PostgreSQL ledger's one session: connecting, the job's row and its lock, reads and write
transactions, and psycopg's errors translated.

A ledger holds one dedicated connection (autocommit; every write one explicit transaction, all of
it kept or none), because four things live in a session: the job's lock, the send queue and the
job's keys while comparing (temporary tables), and the pages of a read.

One writer per job, across hosts: opening a job to write takes a session advisory lock on it
(``pg_try_advisory_lock(NAMESPACE, job_id)``). It is released when the ledger is closed, and by the
server when the session ends (a killed process's socket closes; a lost host's session is ended by
TCP keepalives, set short on both sides). A second writer is refused with the holder's name, which
every ledger session gives itself: ``application_name = dispatcher <host>:<pid>``. Opening
read-only takes no lock and writes nothing.

Commits are durable on return: ``synchronous_commit`` is left as the server has it (on), never
turned off. An error of the server or of the connection becomes a LedgerError naming the ledger
(never its password); SQLSTATE class 53 (insufficient resources: a full disk) a LedgerFullError.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dispatcher.errors import LedgerError, LedgerLockedError
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.postgres_schema import NAMESPACE, migrate
from dispatcher.ledger.records import LedgerFullError
from dispatcher.times import BEIJING

__all__ = ["FULL_HINT", "Conn", "Session", "describe_holder", "pg_error"]

Conn = psycopg.Connection[tuple[Any, ...]]

FULL_HINT: Final = (
    "the database server is out of disk space (or another resource): free some, then run the"
    " same command again: commands marked in flight are settled first"
)
# libpq's side: a server gone silent is noticed within about 10 + 3 * 5 seconds.
_CLIENT_KEEPALIVES: Final[dict[str, str | int | None]] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "connect_timeout": 10,
}
# The server's side, for this session: a lost host's session (and the job's lock with it) ends
# within about as long, so that another host may take the job over.
_SERVER_KEEPALIVES: Final = (
    "SELECT set_config('tcp_keepalives_idle', '10', false),"
    " set_config('tcp_keepalives_interval', '5', false),"
    " set_config('tcp_keepalives_count', '3', false)"
)
_HOLDER: Final = (
    "SELECT a.pid, a.application_name, host(a.client_addr), a.backend_start"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s"
    " AND l.objid::bigint = %s AND l.objsubid = 2"
)


class Session:
    """One job of a PostgreSQL ledger over its dedicated connection (module docstring)."""

    def __init__(self, address: PostgresAddress, conn: Conn, job_id: int, read_only: bool) -> None:
        """Use :meth:`open`."""
        self.address = address
        self.job_id = job_id
        self.read_only = read_only
        self.queue_made = False  # the send queue's temporary table exists (postgres_table.py)
        self._conn: Conn | None = conn

    @classmethod
    def open(
        cls, address: PostgresAddress, *, read_only: bool, clock: Callable[[], float]
    ) -> Session:
        """Connect, make or upgrade the schema, find (or add) the job and lock it for writing."""
        job = address.job
        if not job:
            raise ValueError(f"{address}: name the job after '#' (postgresql://…/dbname#job)")
        try:
            # The URL's own settings win, but the name: a refused writer reads the holder's.
            name = f"dispatcher {socket.gethostname()}:{os.getpid()}"
            given = {**_CLIENT_KEEPALIVES, **conninfo_to_dict(address.conninfo)}
            conninfo = make_conninfo("", **{**given, "application_name": name})
            conn = psycopg.connect(conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise pg_error(address, "open the ledger", exc) from exc
        try:
            conn.execute(_SERVER_KEEPALIVES)
            migrate(conn, address, read_only)
            job_id = _job_id(conn, address, job, read_only, clock)
            while not read_only:
                _lock(conn, address, job_id)
                # The job may have been removed between its lookup and the lock (a run that
                # never began, its job dropped): held, it is looked up again, and if it is
                # another row now, that one is locked instead, never a row no longer there.
                again = _job_id(conn, address, job, read_only, clock)
                if again == job_id:
                    break
                conn.execute("SELECT pg_advisory_unlock(%s::int4, %s::int4)", (NAMESPACE, job_id))
                job_id = again
        except BaseException as exc:
            conn.close()
            if isinstance(exc, psycopg.Error):
                raise pg_error(address, "open the ledger", exc) from exc
            raise
        return cls(address, conn, job_id, read_only)

    def close(self) -> None:
        """Close the connection (the job's lock goes with the session); idempotent."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def live(self) -> Conn:
        """The connection; LedgerError once closed."""
        if self._conn is None:
            raise LedgerError(f"{self.address}: the ledger is closed")
        return self._conn

    @contextlib.contextmanager
    def read(self, what: str) -> Iterator[Conn]:
        """Statements outside any transaction (each its own), errors translated."""
        conn = self.live()
        try:
            yield conn
        except psycopg.Error as exc:
            raise pg_error(self.address, what, exc) from exc

    @contextlib.contextmanager
    def write(self, what: str) -> Iterator[Conn]:
        """One transaction: committed when the block ends, rolled back whole if it raises
        (LifecycleError included, which goes on as it is)."""
        conn = self.live()
        if self.read_only:
            raise LedgerError(f"{self.address}: cannot {what}: the ledger is open read-only")
        try:
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise pg_error(self.address, what, exc) from exc


def pg_error(address: PostgresAddress, what: str, exc: psycopg.Error) -> LedgerError:
    """The LedgerError for a failed call (by SQLSTATE, never by message): LedgerFullError for
    class 53, insufficient resources (53100: disk full)."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    for secret in address.secrets:  # libpq may quote a conninfo back: never show a password
        message = message.replace(secret, "***")
    if (exc.sqlstate or "").startswith("53"):
        return LedgerFullError(f"{address}: cannot {what}: {FULL_HINT} ({message})")
    return LedgerError(f"{address}: cannot {what}: {message}")


def _job_id(
    conn: Conn, address: PostgresAddress, job: str, read_only: bool, clock: Callable[[], float]
) -> int:
    """The job's id, its row added when opened to write; a read of a job the database does not
    hold names the jobs it does."""
    found = conn.execute("SELECT id FROM dispatcher.jobs WHERE name = %s", (job,)).fetchone()
    if found is None and not read_only:
        conn.execute(
            "INSERT INTO dispatcher.jobs (name, created_at) VALUES (%s, %s)"
            " ON CONFLICT (name) DO NOTHING",
            (job, clock()),
        )
        found = conn.execute("SELECT id FROM dispatcher.jobs WHERE name = %s", (job,)).fetchone()
    if found is None:
        names = [n for (n,) in conn.execute("SELECT name FROM dispatcher.jobs ORDER BY name")]
        held = f"its jobs: {', '.join(names)}" if names else "it holds no job yet"
        raise LedgerError(f"{address.database} has no job {job!r} ({held})")
    return int(found[0])


def _lock(conn: Conn, address: PostgresAddress, job_id: int) -> None:
    """Take the job's writer lock (the session's); LedgerLockedError naming who holds it."""
    found = conn.execute(
        "SELECT pg_try_advisory_lock(%s::int4, %s::int4)", (NAMESPACE, job_id)
    ).fetchone()
    if found is not None and found[0]:
        return
    holder = conn.execute(_HOLDER, (NAMESPACE, job_id)).fetchone()
    who = "" if holder is None else f" ({describe_holder(*holder)})"
    raise LedgerLockedError(
        f"ledger {address} is in use by another dispatcher{who}: it is locked; wait for that run"
        " to end (or stop it), then try again"
    )


def describe_holder(pid: int, name: str | None, client: str | None, since: object) -> str:
    """The holder as its session shows it: ``dispatcher <host>:<pid>``, from where, since when
    (a role that may not see other sessions' details gets the server process only)."""
    prefix = "dispatcher "
    who = name[len(prefix) :] if name and name.startswith(prefix) else f"server process {pid}"
    where = f", connected from {client}" if client else ""
    when = ""
    if isinstance(since, datetime):  # in OneNET's zone, as every time dispatcher shows
        when = f" since {since.astimezone(BEIJING):%Y-%m-%d %H:%M:%S} UTC+8"
    return f"{who}{where}{when}"
