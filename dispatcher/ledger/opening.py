"""Opening a ledger wherever it is: a SQLite file, or a job of a PostgreSQL ledger (address.py).

The use cases ask here, never of one implementation: whether the ledger is there yet, open it,
and delete one a run made and never used.
psycopg is imported only when a PostgreSQL ledger is named.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dispatcher.errors import LedgerError
from dispatcher.ledger import sqlite_files
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.copying import CopySide
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore

__all__ = ["discard_ledger", "ledger_exists", "open_copy_side", "open_ledger"]


def open_ledger(
    address: LedgerAddress,
    *,
    read_only: bool = False,
    synchronous: str = "full",
    clock: Callable[[], float] = time.time,
) -> LedgerStore:
    """Open (or create) the ledger at ``address`` and lock it for this process; ``read_only``
    takes no lock and creates nothing. ``synchronous`` is SQLite's (a PostgreSQL commit is
    always durable)."""
    if isinstance(address, PostgresAddress):
        from dispatcher.ledger.postgres import PostgresLedger  # psycopg only when used
        from dispatcher.ledger.postgres_jobs import only_job

        # A follow-up given the database alone: its only job.
        return PostgresLedger.open(only_job(address), read_only=read_only, clock=clock)
    return Ledger.open(address, synchronous=synchronous, read_only=read_only, clock=clock)


def open_copy_side(address: LedgerAddress, *, existing: bool) -> CopySide:
    """Open the ledger at ``address`` to copy it whole (copying.py), for writing, its lock held;
    ``existing``: it must be there already (nothing is created: a missing one is refused)."""
    if isinstance(address, PostgresAddress):
        from dispatcher.ledger.postgres_copy import PostgresCopy

        return PostgresCopy.open(address, existing=existing)
    if existing and not address.is_file():
        raise LedgerError(f"no ledger at {address}")
    return Ledger.open(address)


def job_named(address: LedgerAddress) -> LedgerAddress:
    """``address`` with its job named: a PostgreSQL ledger given without ``#job`` is its only
    job (LedgerError, listing them, when it holds several or none); a file as it is."""
    if isinstance(address, PostgresAddress):
        from dispatcher.ledger.postgres_jobs import only_job

        return only_job(address)  # as it is when it names its job: nothing asked
    return address


def ledger_exists(address: LedgerAddress) -> bool:
    """Whether the ledger is there: the file, or the job in the PostgreSQL ledger."""
    if isinstance(address, PostgresAddress):
        from dispatcher.ledger.postgres_jobs import job_exists

        return job_exists(address)
    return address.exists()


def discard_ledger(address: LedgerAddress) -> None:
    """Delete the (closed) ledger a run made and never used: the file and its side files, or the
    job and everything it holds."""
    if isinstance(address, PostgresAddress):
        from dispatcher.ledger.postgres_jobs import drop_job

        drop_job(address)
        return
    sqlite_files.discard(address)
