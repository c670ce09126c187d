"""The results ledger: the SQLite store of every command's outcome, its records, schema and
migrations, the single-writer lock, the job it belongs to, and its async face (the recorder).

May import: errors, times, job (the Command record). Never onenet, run, report, cli or emulator.
"""

from dispatcher.ledger.store import (
    FINAL,
    TO_SEND,
    Change,
    InFlight,
    JobDiff,
    JobRecord,
    Ledger,
    LedgerFullError,
    LedgerStats,
    Result,
    Retired,
    Row,
    RunInfo,
    Status,
    default_ledger_path,
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
    "Result",
    "Retired",
    "Row",
    "RunInfo",
    "Status",
    "default_ledger_path",
]
