"""One job of a PostgreSQL ledger dumped and loaded whole, for a copy (copying.py): each table
streamed out and in with ``COPY … (FORMAT BINARY)`` (never a statement per row; a float goes as
its 8 bytes), the load one transaction.

A :class:`PostgresCopy` is a job opened for writing (postgres_session.py: the schema made or
upgraded, the job added if new, its writer's lock held), so that no run writes it while it is
read or written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

from dispatcher.errors import LedgerError
from dispatcher.ledger import postgres_identity as identity
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.copying import TABLES, LedgerDump, Rows, Table, TableDump
from dispatcher.ledger.postgres_session import Conn, Session

__all__ = ["PostgresCopy"]

_TYPES: Final = {"int": "int8", "real": "float8", "text": "text"}
_CLEAR_JOB: Final = (
    "UPDATE dispatcher.jobs SET job_path = NULL, job_name = NULL, job_fingerprint = NULL,"
    " job_total = NULL WHERE id = %s"
)


def _types(table: Table) -> list[str]:
    return [_TYPES[kind] for _, kind in table.columns]


def dump_rows(conn: Conn, job: int, table: Table) -> Iterator[tuple[object, ...]]:
    """Every row of the job's ``table`` in key order, streamed from one ``COPY … TO STDOUT``."""
    query = (
        f"COPY (SELECT {', '.join(table.names)} FROM dispatcher.{table.name} WHERE job_id = %s"
        f" ORDER BY {', '.join(table.key)}) TO STDOUT (FORMAT BINARY)"
    )
    with conn.cursor() as cur, cur.copy(query, (job,)) as copy:
        copy.set_types(_types(table))
        yield from copy.rows()


def load_rows(conn: Conn, job: int, table: Table, rows: Rows, where: PostgresAddress) -> None:
    """Write ``rows`` into the job's ``table`` as they are, with one ``COPY … FROM STDIN``;
    LedgerError for a value its column cannot hold (text in a number's column of a file)."""
    query = (
        f"COPY dispatcher.{table.name} (job_id, {', '.join(table.names)})"
        " FROM STDIN (FORMAT BINARY)"
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.set_types(["int4", *_types(table)])
        for row in rows:
            try:
                copy.write_row((job, *row))
            except (TypeError, ValueError, OverflowError) as exc:
                raise LedgerError(
                    f"{where}: cannot copy the {table.name} row {table.names[0]} {row[0]!r}:"
                    f" a value does not fit its column ({exc}); nothing was copied"
                ) from exc


class PostgresCopy:
    """One job of a PostgreSQL ledger, opened to copy it whole (copying.py's CopySide)."""

    def __init__(self, session: Session) -> None:
        """Use :meth:`open`."""
        self._s = session

    @classmethod
    def open(
        cls, address: PostgresAddress, *, existing: bool, clock: Callable[[], float] = time.time
    ) -> PostgresCopy:
        """Open the job for writing, its lock held; ``existing``: it must be there already (it
        is looked for without writing first: a missing one is refused, the jobs there named)."""
        if existing:
            Session.open(address, read_only=True, clock=clock).close()
        return cls(Session.open(address, read_only=False, clock=clock))

    @property
    def path(self) -> PostgresAddress:
        """The job's address (printed without its password)."""
        return self._s.address

    def close(self) -> None:
        """Close the session, which releases the job's lock (idempotent)."""
        self._s.close()

    def held(self) -> dict[str, int]:
        """How many rows each table holds for the job."""
        counts = ", ".join(
            f"(SELECT count(*) FROM dispatcher.{t.name} WHERE job_id = %(job)s)" for t in TABLES
        )
        with self._s.read("count the job's rows") as conn:
            found = conn.execute(f"SELECT {counts}", {"job": self._s.job_id}).fetchone()
        return {t.name: int(n) for t, n in zip(TABLES, found or (), strict=True)}

    def dump(self) -> LedgerDump:
        """The job record and every table, each streamed as it is read."""
        with self._s.read("read the job record") as conn:
            job = identity.read_job(conn, self._s.job_id)
        return LedgerDump(job, tuple(TableDump(t, self._streamed(t)) for t in TABLES))

    def load(self, dump: LedgerDump, check: Callable[[LedgerDump], None]) -> None:
        """Write ``dump`` in one transaction, then ``check`` the job read back before it is
        committed (if it raises, nothing is kept)."""
        job = self._s.job_id
        with self._s.write("copy the ledger in") as conn:
            if dump.job is None:
                conn.execute(_CLEAR_JOB, (job,))
            else:
                identity.write_job(conn, job, dump.job)
            for part in dump.tables:
                load_rows(conn, job, part.table, part.rows, self._s.address)
            check(self.dump())

    def _streamed(self, table: Table) -> Iterator[tuple[object, ...]]:
        with self._s.read(f"read the {table.name} table") as conn:
            yield from dump_rows(conn, self._s.job_id, table)
