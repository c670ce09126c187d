"""The SQLite ledger's send queue: a job's commands, in the job's order, for one run to send.

A run of a job with steps reads the job once: every command is registered and queued in the same
transaction, and each step is then sent from the queue (``queued``), page by page, each command
as the job gave it, with its status in the ledger at that moment. The queue is a temporary table
of the ledger's connection: never in the ledger's file, gone when the ledger is closed; its pages
beyond a small cache stay on disk, so memory stays flat however large the job.

Functions over a connection, called inside the SQLite ledger's reads and write transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Final

from dispatcher.ledger import table
from dispatcher.ledger.columns import INSERT_COLUMNS, CommandColumns, command_of, insert_params
from dispatcher.ledger.records import Status

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["PAGE", "clear", "page", "put", "stream"]

PAGE: Final = 1000  # queued commands read at a time
_QUEUE: Final = "temp.dispatcher_send_queue"
_TEMP_CACHE: Final = -2000  # KiB for the temporary tables' pages: the rest stays on disk
_STATUS: Final = {s.value: s for s in Status}
_COLUMNS: Final = ", ".join(f"q.{name}" for name in INSERT_COLUMNS)
_PUT: Final = (
    f"INSERT INTO {_QUEUE} ({', '.join(INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
)
# One page of a step's queued commands (and of one product, or of any: ?4 NULL), after ?2.
_PAGE: Final = (
    f"SELECT q.pos, c.status, {_COLUMNS} FROM {_QUEUE} q JOIN commands c ON c.key = q.key"
    " WHERE q.step = ?1 AND q.pos > ?2 AND (?4 IS NULL OR COALESCE(q.product, '') = ?4)"
    " ORDER BY q.pos LIMIT ?3"
)


def put(conn: sqlite3.Connection, cmds: Sequence[Command]) -> list[Status]:
    """Register ``cmds`` and append them to the queue (inside the caller's transaction); each
    one's status in the ledger, in order."""
    statuses = table.register(conn, cmds)
    _create(conn)
    conn.executemany(_PUT, map(insert_params, cmds))
    return statuses


def stream(
    read: Callable[[], AbstractContextManager[sqlite3.Connection]], step: int, product: str | None
) -> Generator[tuple[Command, Status], None, None]:
    """The queued commands of ``step`` (of ``product``; None: any) in queue order, each with its
    status, read a page at a time through ``read`` (no cursor stays open between pages)."""
    after = -1
    while True:
        with read() as conn:
            found = page(conn, step, product, after)
        for _, command, status in found:
            yield command, status
        if len(found) < PAGE:
            return
        after = found[-1][0]


def page(
    conn: sqlite3.Connection, step: int, product: str | None, after: int, size: int = PAGE
) -> list[tuple[int, Command, Status]]:
    """Up to ``size`` queued commands of ``step`` (of ``product``; None: any) after position
    ``after``, in queue order: (position, command, status now)."""
    if not _exists(conn):
        return []
    cur = conn.execute(_PAGE, (step, after, size, product))
    return [
        (pos, command_of(CommandColumns._make(rest)), _STATUS[status]) for pos, status, *rest in cur
    ]


def clear(conn: sqlite3.Connection, product: str | None) -> None:
    """Empty the queue (of ``product``'s commands; None: all of it)."""
    if not _exists(conn):
        return
    if product is None:
        conn.execute(f"DROP TABLE {_QUEUE}")
    else:
        conn.execute(f"DELETE FROM {_QUEUE} WHERE COALESCE(product, '') = ?", (product,))


def _exists(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT 1 FROM temp.sqlite_master WHERE name = 'dispatcher_send_queue'"
    ).fetchone()
    return found is not None


def _create(conn: sqlite3.Connection) -> None:
    if _exists(conn):
        return
    columns = ", ".join(INSERT_COLUMNS)
    conn.execute(f"CREATE TABLE {_QUEUE} (pos INTEGER PRIMARY KEY, {columns})")
    conn.execute(
        "CREATE INDEX temp.dispatcher_send_queue_step ON dispatcher_send_queue (step, pos)"
    )
    conn.execute(f"PRAGMA temp.cache_size = {_TEMP_CACHE}")
