"""What a run writes about each command, with the run's counters kept in step.

Every outcome goes to the ledger through the recorder (group commits), and moves the command in
``RunStats``: the mirror of the job's counts in the ledger (from every run) and this run's own
counters. A command this run counted in doubt is counted again only by the outcome that settles it,
so each command counts once.
"""

from __future__ import annotations

from collections.abc import Callable

from dispatcher.ledger.lifecycle import Event, event_of, keeps
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import Result, Row, Status
from dispatcher.run.state import RunStats

__all__ = ["Outcomes"]

# The status a sent command's count moves to, by (status before, outcome): worked out once each.
_MOVES: dict[tuple[Status, Status], Status] = {}


class Outcomes:
    """The run's writer of outcomes (sent commands, and rows settled from the ledger)."""

    def __init__(self, recorder: Recorder, stats: RunStats) -> None:
        self.recorder = recorder
        self.stats = stats
        self._doubted: set[str] = set()  # counted in_doubt by this run, until settled
        # Told of every outcome of a send (status, errno): a rollout's guard watches them.
        self.watchers: list[Callable[[Status, int | None], None]] = []

    def sent(
        self,
        key: str,
        old: Status,
        status: Status,
        errno: int | None,
        error: str,
        attempts: int,
        at: float,
        latency: float | None = None,
        *,
        uuid: str | None = None,
    ) -> None:
        """The outcome of a command this run sent (or meant to), which was ``old`` before."""
        self.recorder.record(Result(key, status, errno, error, uuid, attempts, at, latency))
        stats = self.stats
        moved = _MOVES.get((old, status))
        if moved is None:
            # A failed step held back stays failed (lifecycle.KEEPS): its count does not move.
            moved = _MOVES[old, status] = old if old in keeps(event_of(status)) else status
        stats.move(old, moved)
        if status is Status.IN_DOUBT:
            self._doubted.add(key)
        if status is Status.ACCEPTED:  # the common case, counted without a look-up
            stats.accepted += 1
        else:
            stats.count(status)
        for watch in self.watchers:
            watch(status, errno)

    def settled(
        self,
        row: Row,
        status: Status,
        errno: int | None,
        error: str,
        at: float,
        *,
        uuid: str | None = None,
        reconciled: bool = False,
        event: Event | None = None,
    ) -> None:
        """The outcome of a row read from the ledger (retired rows are not counted); ``event``
        as in the lifecycle (None: the one of ``status``)."""
        self.recorder.record(
            Result(row.key, status, errno, error, uuid, 0, at, None, reconciled, event)
        )
        if row.retired is not None:
            return
        self.moved(row, status)
        if status is not Status.IN_DOUBT:  # still in doubt: counted where it was lost, if here
            self.undoubt(row.key)
            self.stats.count(status)

    def moved(self, row: Row, status: Status) -> None:
        """A row's status changed in the ledger (Ledger.move): keep the mirror in step."""
        if row.retired is None:
            self.stats.move(row.status, status)

    def undoubt(self, key: str) -> None:
        """A command this run counted in doubt was settled: it is counted by its new outcome."""
        if key in self._doubted:
            self._doubted.discard(key)
            self.stats.in_doubt -= 1
