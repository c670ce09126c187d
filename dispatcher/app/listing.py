"""``dispatcher jobs``: every job of a shared (PostgreSQL) ledger, with its state, its counts and
who is running it now.

May import: errors, ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.errors import FlagError
from dispatcher.ledger.address import LedgerAddress, PostgresAddress

if TYPE_CHECKING:
    from dispatcher.ledger.postgres_jobs import JobListing

__all__ = ["list_jobs"]


def list_jobs(address: LedgerAddress | None) -> list[JobListing]:
    """The jobs of the PostgreSQL ledger at ``address`` (its ``#job``, if any, is ignored), by
    name; FlagError for none or a file (a SQLite ledger holds one job: ``report`` shows it)."""
    if address is None:
        raise FlagError(
            "name the ledger: --ledger postgresql://user@host/dbname, or ledger.url in --config",
            "--ledger",
        )
    if isinstance(address, Path):
        raise FlagError(
            f"{address} is a SQLite ledger, which holds one job: `dispatcher report {address}`"
            " shows it; jobs lists those of a postgresql:// ledger",
            "--ledger",
        )
    from dispatcher.ledger.postgres_jobs import list_jobs as listed  # psycopg only when used

    return listed(PostgresAddress(address.url))
