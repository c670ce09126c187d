"""The SQLite ledger's commands table as SQL: registering commands, selecting rows, counting them.

Functions over a connection, called inside the SQLite ledger's reads and write transactions
(sqlite.py). Status changes are not here: they are moves.py's alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Final

from dispatcher.ledger.columns import INSERT_COMMAND, SELECT_ROWS, insert_params, row_of
from dispatcher.ledger.records import Row, Status
from dispatcher.ledger.schema import ACTIVE, small_cache

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "count_by_retry_job",
    "count_by_status",
    "count_handed_over",
    "count_rows",
    "register",
    "rows_of",
    "select_rows",
    "uuids_of",
]

_STATUS: Final = {s.value: s for s in Status}
_CHUNK: Final = 500  # keys per `IN (...)`, well under SQLite's variable limit (999 before 3.32)


def register(conn: sqlite3.Connection, cmds: Sequence[Command]) -> list[Status]:
    """Insert new commands as pending (inside the caller's transaction); each status, in order."""
    before = conn.total_changes
    conn.executemany(INSERT_COMMAND, map(insert_params, cmds))
    if conn.total_changes - before == len(cmds):
        return [Status.PENDING] * len(cmds)  # all new: the common case, no lookup
    keys = [c.key for c in cmds]
    found: dict[str, str] = {}
    for i in range(0, len(keys), _CHUNK):
        part = keys[i : i + _CHUNK]
        marks = ", ".join("?" * len(part))
        found.update(conn.execute(f"SELECT key, status FROM commands WHERE key IN ({marks})", part))
    return [_STATUS[found[k]] for k in keys]


def select_rows(
    statuses: Collection[Status] | None, retired: bool | None
) -> tuple[str, list[str]] | None:
    """The query (and its parameters) of the rows in ``statuses`` (None: any) and ``retired``
    (None: any, False: active, True: retired), in job order; None when no row can match."""
    where: list[str] = []
    params: list[str] = []
    if statuses is not None:
        params = sorted({Status(s).value for s in statuses})
        if not params:
            return None
        where.append(f"status IN ({', '.join('?' * len(params))})")
    if retired is not None:
        where.append("retired IS NOT NULL" if retired else ACTIVE)
    sql = SELECT_ROWS + (f" WHERE {' AND '.join(where)}" if where else "")
    return sql + " ORDER BY seq", params


def rows_of(conn: sqlite3.Connection, keys: Sequence[str]) -> list[Row]:
    """The rows of ``keys`` (those the ledger holds), in job order."""
    found: list[Row] = []
    for i in range(0, len(keys), _CHUNK):
        part = list(keys[i : i + _CHUNK])
        marks = ", ".join("?" * len(part))
        found.extend(map(row_of, conn.execute(f"{SELECT_ROWS} WHERE key IN ({marks})", part)))
    return sorted(found, key=lambda r: r.seq)


def uuids_of(conn: sqlite3.Connection, imei: str) -> set[str]:
    """Every uuid held for one device (retired rows too)."""
    cur = conn.execute("SELECT uuid FROM commands WHERE imei = ? AND uuid IS NOT NULL", (imei,))
    return {u for (u,) in cur}


def count_by_status(conn: sqlite3.Connection) -> dict[Status, int]:
    """How many active rows are in each status (every status present)."""
    counts = dict.fromkeys(Status, 0)
    sql = f"SELECT status, COUNT(*) FROM commands WHERE {ACTIVE} GROUP BY status"
    with small_cache(conn):
        for status, n in conn.execute(sql):
            counts[_STATUS[status]] = n
    return counts


def count_handed_over(conn: sqlite3.Connection) -> int:
    """How many active rows kept their outcome when handed to a retry job."""
    sql = (
        f"SELECT COUNT(*) FROM commands WHERE {ACTIVE} AND retried_in IS NOT NULL"
        " AND status NOT IN ('accepted', 'retried')"
    )
    (n,) = conn.execute(sql).fetchone()
    return int(n)


def count_by_retry_job(conn: sqlite3.Connection) -> dict[str, int]:
    """The retry jobs active rows were handed to, each with how many, first handed first."""
    sql = (
        f"SELECT retried_in, COUNT(*) FROM commands WHERE {ACTIVE} AND retried_in IS NOT NULL"
        " GROUP BY retried_in ORDER BY MIN(seq)"
    )
    return {str(path): int(n) for path, n in conn.execute(sql)}


def count_rows(conn: sqlite3.Connection) -> int:
    """How many rows there are, retired ones included."""
    (n,) = conn.execute("SELECT COUNT(*) FROM commands").fetchone()
    return int(n)
