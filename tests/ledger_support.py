"""Writing outcomes into a ledger as a run does: each answered command marked in flight first."""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.ledger.lifecycle import event_of, sources
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Status

__all__ = ["write_outcomes"]


def write_outcomes(
    ledger: Ledger,
    results: Sequence[Result],
    *,
    run_id: int = 1,
    expires: str = "2030-01-03T00:00:00",
) -> None:
    """``results`` written as answers to requests sent: the ones only a request can have (an
    answer, a lost one) are marked in flight first (unless they are), at their own time, in the
    same transaction."""
    flying = {row.key for row in ledger.rows_of([r.key for r in results])
              if row.status is Status.IN_FLIGHT}  # fmt: skip
    marks = [
        InFlight(r.key, r.at, None, expires, run_id)
        for r in results
        if r.key not in flying
        and Status.IN_FLIGHT in sources(r.event or event_of(r.status))
        and Status.PENDING not in sources(r.event or event_of(r.status))
    ]
    ledger.write_batch(marks, results)
