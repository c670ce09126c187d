"""The SQLite ledger dumped and loaded whole, for a copy (copying.py): its tables read in key
order a page at a time from one cursor each, and written back as they are, a page per
``executemany``, in one transaction.

``SqliteCopy`` is the SQLite ledger's share of :class:`~dispatcher.ledger.copying.CopySide`
(mixed into ``Ledger``, whose connection, reads and write transaction it uses): a ledger opened
to copy is opened for writing, so that its lock keeps every run out while it is read or written.
The tables made on first use (the frozen list, the verify records) are read as empty when missing,
and made in the destination only when there are rows to put in them.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Final, Protocol

from dispatcher.ledger import identity, targets, verify
from dispatcher.ledger.copying import PAGE, TABLES, LedgerDump, Rows, Table, TableDump
from dispatcher.ledger.schema import small_cache

__all__ = ["SqliteCopy", "dump_rows", "load_rows"]

# The tables a ledger makes on first use, each with what makes it.
_MADE_ON_USE: Final[dict[str, Callable[[sqlite3.Connection], None]]] = {
    "frozen_targets": targets.create,
    "verify_results": verify.create,
    "verify_device_ids": verify.create,
}


def dump_rows(conn: sqlite3.Connection, table: Table) -> Iterator[tuple[object, ...]]:
    """Every row of ``table`` in key order, a page at a time, with a small page cache (none when
    the table was never made)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                         (table.name,)).fetchone()  # fmt: skip
    if found is None:
        return
    with small_cache(conn):
        cur = conn.execute(
            f"SELECT {', '.join(table.names)} FROM {table.name} ORDER BY {', '.join(table.key)}"
        )
        try:
            while page := cur.fetchmany(PAGE):
                yield from page
        finally:
            cur.close()


def load_rows(conn: sqlite3.Connection, table: Table, rows: Rows) -> None:
    """Insert ``rows`` into ``table`` as they are, a page at a time (inside the caller's
    transaction)."""
    insert = (
        f"INSERT INTO {table.name} ({', '.join(table.names)})"
        f" VALUES ({', '.join('?' * len(table.names))})"
    )
    given = iter(rows)
    first = True
    while page := list(itertools.islice(given, PAGE)):
        if first and table.name in _MADE_ON_USE:
            _MADE_ON_USE[table.name](conn)
        first = False
        conn.executemany(insert, page)


def _count(conn: sqlite3.Connection, table: Table) -> int:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                         (table.name,)).fetchone()  # fmt: skip
    if found is None:
        return 0
    (n,) = conn.execute(f"SELECT count(*) FROM {table.name}").fetchone()
    return int(n)


class _Connected(Protocol):
    path: Path

    def _read(self, what: str) -> AbstractContextManager[sqlite3.Connection]: ...

    def _write(self, what: str) -> AbstractContextManager[sqlite3.Connection]: ...


class SqliteCopy:
    """The SQLite ledger dumped and loaded whole (a base of ``Ledger``; copying.py's CopySide)."""

    def held(self: _Connected) -> dict[str, int]:
        """How many rows each table holds."""
        with self._read("count the ledger's rows") as conn:
            return {t.name: _count(conn, t) for t in TABLES}

    def dump(self: _Connected) -> LedgerDump:
        """The job record and every table, streamed a page at a time."""
        with self._read("read the job record") as conn:
            job = identity.read_job(conn)
        return LedgerDump(job, tuple(TableDump(t, _streamed(self, t)) for t in TABLES))

    def load(self: _Connected, dump: LedgerDump, check: Callable[[LedgerDump], None]) -> None:
        """Write ``dump`` in one transaction, then ``check`` the ledger read back before it is
        committed (if it raises, nothing is kept)."""
        with self._write("copy the ledger in") as conn:
            if dump.job is None:
                identity.clear_job(conn)
            else:
                identity.write_job(conn, dump.job)
            for part in dump.tables:
                load_rows(conn, part.table, part.rows)
            check(SqliteCopy.dump(self))


def _streamed(ledger: _Connected, table: Table) -> Iterator[tuple[object, ...]]:
    """``table``'s rows, read when iterated, sqlite3's errors translated."""
    with ledger._read(f"read the {table.name} table") as conn:
        yield from dump_rows(conn, table)
