"""The results ledger: LedgerStore (the interface every caller uses), its SQLite implementation
(the file a run writes: schema and migrations, the single-writer lock, its side files), an
in-memory one, a PostgreSQL one (postgres.py, imported only when a postgresql:// ledger is
opened: psycopg is needed for it alone), the lifecycle table that is the only door to a command's
status, the job a ledger belongs to, and its async face (the recorder).

May import: errors, times, model (the Command record; importing the ledger loads no
job reader, field rules or LwM2M registry). Never onenet, run, report, cli or emulator.
"""

from typing import TYPE_CHECKING

from dispatcher.ledger.identity import default_ledger_path
from dispatcher.ledger.memory import MemoryLedger
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import (
    FINAL,
    TO_SEND,
    Change,
    InFlight,
    JobDiff,
    JobRecord,
    LedgerFullError,
    LedgerStats,
    LedgerStore,
    Result,
    Retired,
    Row,
    RunInfo,
    Status,
)

__all__ = [
    "FINAL",
    "TO_SEND",
    "Change",
    "InFlight",
    "JobDiff",
    "JobRecord",
    "Ledger",
    "LedgerFullError",
    "LedgerStats",
    "LedgerStore",
    "MemoryLedger",
    "Result",
    "Retired",
    "Row",
    "RunInfo",
    "Status",
    "default_ledger_path",
]

if TYPE_CHECKING:
    # Only for mypy: the PostgreSQL ledger (and psycopg) load when a postgresql:// ledger is used.
    from dispatcher.ledger.postgres import PostgresLedger

    def _all_are_stores(
        sqlite: Ledger, memory: MemoryLedger, postgres: PostgresLedger
    ) -> tuple[LedgerStore, ...]:
        """mypy holds each implementation to the whole of LedgerStore."""
        return sqlite, memory, postgres
