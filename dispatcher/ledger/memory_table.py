"""The in-memory ledger's commands table, and the lifecycle table applied to it.

Rows are the same frozen :class:`~dispatcher.ledger.records.Row` values the SQLite ledger gives,
kept by ``seq`` (job order) with an index by key; a key can move to another row (a retired
version set aside under ``<key>~<n>``), the seq stays. Every change of a row's ``status`` is
:func:`~dispatcher.ledger.lifecycle.target`'s answer for an event, as moves.py makes it in SQL:
a disallowed event raises LifecycleError, a key not held LedgerError, and the caller's
transaction (:meth:`Table.snapshot`) puts everything back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from dispatcher.errors import LedgerError
from dispatcher.ledger.columns import new_row
from dispatcher.ledger.lifecycle import Event, LifecycleError, event_of, keeps, target
from dispatcher.ledger.records import InFlight, Result, Row, Status

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["Table"]


@dataclass(slots=True)
class Table:
    """Rows by seq, their keys, and the canary verdict covering each (by seq)."""

    by_seq: dict[int, Row] = field(default_factory=dict)
    seq_of: dict[str, int] = field(default_factory=dict)
    canary: dict[int, int] = field(default_factory=dict)
    next_seq: int = 1

    def snapshot(self) -> Table:
        """A copy to put back if a transaction fails (rows are immutable: shallow is enough)."""
        return Table(dict(self.by_seq), dict(self.seq_of), dict(self.canary), self.next_seq)

    def restore(self, saved: Table) -> None:
        """Put back what :meth:`snapshot` saved."""
        self.by_seq, self.seq_of = saved.by_seq, saved.seq_of
        self.canary, self.next_seq = saved.canary, saved.next_seq

    def __iter__(self) -> Iterator[Row]:
        """Every row, in job order (seqs only grow, and rows are never deleted)."""
        return iter(list(self.by_seq.values()))

    def __len__(self) -> int:
        return len(self.by_seq)

    def get(self, key: str) -> Row | None:
        """The row of ``key``, or None."""
        seq = self.seq_of.get(key)
        return None if seq is None else self.by_seq[seq]

    def put(self, row: Row) -> None:
        """Store a changed row under its own key (it may be another key than before)."""
        old = self.by_seq[row.seq]
        if old.key != row.key:
            del self.seq_of[old.key]
            self.seq_of[row.key] = row.seq
        self.by_seq[row.seq] = row

    def insert(self, command: Command) -> Status:
        """Register a command as pending unless its key is held; the key's status."""
        row = new_row(self.next_seq, command)  # refuses a command without a key
        held = self.get(row.key)
        if held is not None:
            return held.status
        self.by_seq[row.seq] = row
        self.seq_of[row.key] = row.seq
        self.next_seq += 1
        return row.status

    def states(self, keys: Sequence[str]) -> dict[str, Status]:
        """Each key's status; LedgerError when some key is not held."""
        found = {k: row.status for k in keys if (row := self.get(k)) is not None}
        missing = len(set(keys) - found.keys())
        if missing:
            raise LedgerError(f"{missing} of {len(set(keys))} keys are not in the ledger")
        return found

    def check(self, keys: Sequence[str], event: Event) -> dict[str, Status]:
        """Each key's status, once every key is held and allowed ``event``; else raise."""
        now = self.states(keys)
        for k in keys:
            target(now[k], event)
        return now

    # -- the events (moves.py in SQL) -----------------------------------------------------------

    def mark_in_flight(self, items: Sequence[InFlight]) -> None:
        """The SEND event: each command in flight, with the times that go on the wire."""
        self.states([i.key for i in items])
        for i in items:
            row = self._row(i.key)
            self.put(replace(
                row, status=target(row.status, Event.SEND), sent_valid_time=i.sent_valid_time,
                sent_expired_time=i.sent_expired_time, last_attempt_at=i.at,
                first_attempt_at=i.at if row.first_attempt_at is None else row.first_attempt_at,
                first_server_at=row.first_server_at if row.first_server_at is not None
                else i.server_at, last_server_at=i.server_at,
            ))  # fmt: skip

    def record_outcomes(self, results: Sequence[Result]) -> None:
        """Outcomes, each by its event (given, or the one of its status), grouped by event."""
        by_event: dict[Event, list[Result]] = defaultdict(list)
        for r in results:
            by_event[r.event or event_of(r.status)].append(r)
        for event, group in by_event.items():
            if keeps(event):  # held back: a failed command keeps its own
                now = self.check([r.key for r in group], event)
                for r in group:
                    if now[r.key] not in keeps(event):
                        self.put(replace(
                            self._row(r.key), status=target(now[r.key], event), errno=r.errno,
                            error=r.error, uuid=r.uuid, attempts=self._row(r.key).attempts
                            + r.attempts,
                        ))  # fmt: skip
                continue
            self.states([r.key for r in group])
            for r in group:
                row = self._row(r.key)
                last = (
                    r.at if r.attempts > 0 or row.last_attempt_at is None else row.last_attempt_at
                )
                self.put(replace(
                    row, status=target(row.status, event), errno=r.errno, error=r.error,
                    uuid=r.uuid, attempts=row.attempts + r.attempts, last_attempt_at=last,
                    first_attempt_at=r.at if row.first_attempt_at is None
                    else row.first_attempt_at, latency_ms=r.latency_ms, reconciled=r.reconciled,
                ))  # fmt: skip

    def apply_event(
        self, keys: Sequence[str], event: Event, error: str | None = None
    ) -> list[Status]:
        """``event`` for each of ``keys``; ``error`` written to the rows it moves. Each key's
        state before, in order."""
        now = self.check(keys, event)
        for k in keys:
            if now[k] not in keeps(event):
                row = self._row(k)
                status = target(now[k], event)
                self.put(replace(row, status=status, error=row.error if error is None else error))
        return [now[k] for k in keys]

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event into the retry job at ``job_path``; never into a second one."""
        now = self.check(keys, Event.HAND_OVER)
        elsewhere = [k for k in keys if self._row(k).retried_in not in (None, job_path)]
        if elsewhere:
            raise LifecycleError(
                f"{len(set(elsewhere))} commands are handed to another retry job already"
                f" (e.g. {elsewhere[0]})"
            )
        for k in keys:
            status = target(now[k], Event.HAND_OVER)
            self.put(replace(self._row(k), status=status, retried_in=job_path))

    def _row(self, key: str) -> Row:
        row = self.get(key)
        if row is None:
            raise LedgerError(f"{key} is not in the ledger")
        return row
