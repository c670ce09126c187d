"""The SQLite ledger's follow-up records: what OneNET says became of accepted commands
(``status``), the cancels asked for (``cancel``), and the rows read for them.

Functions over a connection, called inside the SQLite ledger's reads and write transactions
(sqlite.py); a write that meets a row in a state the lifecycle does not allow refuses the whole
transaction (moves.refuse).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Final

from dispatcher.ledger import moves
from dispatcher.ledger.columns import row_of
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.records import Delivery, Row, Status
from dispatcher.ledger.schema import (
    COUNT_TO_CHECK,
    PRODUCTS_TO_CHECK,
    RECORD_CANCEL,
    RECORD_DELIVERY,
    ROWS_TO_CHECK,
    small_cache,
)

__all__ = [
    "PAGE",
    "count_to_check",
    "page_to_check",
    "products_to_check",
    "record_cancel",
    "record_delivery",
]

PAGE: Final = 1000  # rows to check read per page


def record_delivery(conn: sqlite3.Connection, items: Sequence[Delivery]) -> None:
    """What OneNET's history says of accepted commands (inside the caller's transaction)."""
    params = [(d.send_status, d.confirm_status, d.send_time, d.confirm_time, d.cmd_result,
               d.checked_at, d.key) for d in items]  # fmt: skip
    if params and conn.executemany(RECORD_DELIVERY, params).rowcount != len(params):
        moves.refuse(conn, [d.key for d in items], Event.STATUS_READ, Status.ACCEPTED)


def page_to_check(
    conn: sqlite3.Connection, after: tuple[str, int], product: str | None, size: int = PAGE
) -> list[Row]:
    """One page of the rows to check: those after (imei, seq) ``after``, by imei then seq."""
    return [row_of(t) for t in conn.execute(ROWS_TO_CHECK, (*after, size, product))]


def count_to_check(conn: sqlite3.Connection, product: str | None) -> tuple[int, int, str | None]:
    """How many rows to check, on how many devices, and the latest ``sent_expired_time``."""
    with small_cache(conn):
        commands, devices, latest = conn.execute(COUNT_TO_CHECK, (product,)).fetchone()
    return int(commands), int(devices), latest


def products_to_check(conn: sqlite3.Connection) -> list[str]:
    """The products of the rows to check ("": the default one), by name."""
    with small_cache(conn):
        return sorted(name for (name,) in conn.execute(PRODUCTS_TO_CHECK))


def record_cancel(
    conn: sqlite3.Connection, items: Sequence[tuple[str, str | None, int | None]], at: float
) -> None:
    """Cancels asked for at ``at`` (inside the caller's transaction); a cancelled command is
    send_status 2."""
    params = [(at, error, 2 if error is None else status, key) for key, error, status in items]
    if params and conn.executemany(RECORD_CANCEL, params).rowcount != len(params):
        moves.refuse(conn, [key for key, _, _ in items], Event.CANCEL, Status.ACCEPTED)
