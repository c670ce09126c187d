"""The report use case: a ledger opened read-only for its report, never when the report would
be written over the ledger, its job file, or another ledger.

May import: errors, ledger, app.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dispatcher.app.outputs import refuse_own_files
from dispatcher.app.resources import closing
from dispatcher.errors import LedgerError
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import ledger_exists, open_ledger
from dispatcher.ledger.store import LedgerStore

__all__ = ["ReportRequest", "report_ledger"]


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """The ledger to report on, and the file the report goes to (None: a stream)."""

    ledger: LedgerAddress
    output: Path | None = None


@contextlib.contextmanager
def report_ledger(request: ReportRequest) -> Iterator[LedgerStore]:
    """The ledger, read-only, for the block; LedgerError when there is none, Refused when the
    output is one of the files a run needs."""
    path, output = request.ledger, request.output
    if not ledger_exists(path):
        raise LedgerError(f"{path}: no such ledger")
    if output is not None:  # before the ledger is read: it may be the ledger that is given
        refuse_own_files(output, path, None, writing="the report")
    with closing(open_ledger(path, read_only=True)) as ledger:
        if output is not None:
            refuse_own_files(output, path, ledger.job(), writing="the report")
        yield ledger
