"""The resources a use case owns, opened and closed by ``with``: a ledger, closed however the
block ends (a failure to close is not allowed to hide the error that ended the block).

May import: errors, config, ledger.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dispatcher.config import Settings
from dispatcher.errors import DispatcherError, LedgerError
from dispatcher.ledger.address import LedgerAddress, PostgresAddress
from dispatcher.ledger.opening import ledger_exists, open_ledger
from dispatcher.ledger.store import LedgerStore

__all__ = ["closing", "existing_ledger"]


@contextlib.contextmanager
def closing(ledger: LedgerStore) -> Iterator[LedgerStore]:
    """``ledger`` for the block, closed after it; when the block raised, an error in closing
    is dropped for the one that ended the block."""
    try:
        yield ledger
    except BaseException:
        with contextlib.suppress(DispatcherError):
            ledger.close()
        raise
    ledger.close()


@contextlib.contextmanager
def existing_ledger(path: LedgerAddress, settings: Settings) -> Iterator[LedgerStore]:
    """The ledger at ``path`` for writing; LedgerError when there is none, or it holds no
    commands (a file that is not already a ledger is never made into one)."""
    if not ledger_exists(path):
        where = (
            "dispatcher run --ledger URL#JOB makes it; dispatcher jobs lists those there are"
            if isinstance(path, PostgresAddress)
            else "dispatcher run writes it next to the job file"
        )
        raise LedgerError(f"{path}: no such ledger ({where})")
    # An existing file that is not a ledger is refused as it is (ledger/schema.py).
    with closing(open_ledger(path, synchronous=settings.ledger.synchronous)) as ledger:
        if not ledger.total():
            raise LedgerError(
                f"{path} holds no commands: nothing to read (dispatcher run registers its job's"
                " commands in it)"
            )
        yield ledger
