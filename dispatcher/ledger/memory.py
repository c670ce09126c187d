"""MemoryLedger: a :class:`~dispatcher.ledger.store.LedgerStore` held in memory.

For tests and trials: nothing is written to disk, and it is gone when the process ends. It keeps
the SQLite ledger's semantics operation by operation (the contract suite holds both to them): the
same rows, in job order; every status change through the lifecycle table (memory_table.py); each
write all or nothing; the same job comparison (memory_compare.py), canary coverage, delivery
figures and run records (as JSON would keep them, without secrets). Not thread-safe.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.errors import LedgerError
from dispatcher.ledger import follow_ups, memory_compare, memory_figures
from dispatcher.ledger.columns import new_row
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.identity import JobDiff, JobRecord
from dispatcher.ledger.lifecycle import Event, target
from dispatcher.ledger.memory_table import Table
from dispatcher.ledger.records import (
    TO_SEND,
    Delivery,
    InFlight,
    LedgerStats,
    Result,
    Row,
    RunInfo,
    Status,
)
from dispatcher.ledger.runs import to_json
from dispatcher.ledger.targets import FrozenTarget, MemoryTargets
from dispatcher.ledger.verify import MemoryVerify

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["MemoryLedger"]


@dataclass(slots=True)
class _State:
    """Everything a MemoryLedger holds besides its rows."""

    runs: list[RunInfo] = field(default_factory=list)
    job: JobRecord | None = None
    verdicts: list[tuple[str, float, tuple[str, ...], int]] = field(default_factory=list)
    queue: list[Command] = field(default_factory=list)  # the send queue, as the job gave it


class MemoryLedger(MemoryTargets, MemoryVerify):
    """A results ledger in memory (a LedgerStore). Not thread-safe: one thread at a time."""

    def __init__(
        self, path: str | Path = "memory.ledger", *, clock: Callable[[], float] = time.time
    ) -> None:
        """An empty ledger; ``path`` is only the name messages give it."""
        self._path = Path(path)
        self._clock = clock
        self._table = Table()
        self._state = _State()
        self._frozen: dict[str, FrozenTarget] = {}  # targets.py's frozen list
        self._closed = False

    @property
    def path(self) -> Path:
        """The name messages give this ledger."""
        return self._path

    def __enter__(self) -> MemoryLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the ledger (idempotent); what it holds can no longer be read."""
        self._closed = True

    def check(self) -> None:
        """LedgerError once closed (nothing else can take it from this process)."""
        self._read()

    # -- runs and the job ---------------------------------------------------------------------

    def start_run(self, job_path: str, settings: Mapping[str, object]) -> int:
        """Record the start of a run (settings without any secret); return its id."""
        with self._write():
            run = RunInfo(len(self._state.runs) + 1, job_path, self._clock(), None,
                          json.loads(to_json(settings)), None, None)  # fmt: skip
            self._state.runs.append(run)
        return run.id

    def finish_run(
        self,
        run_id: int,
        summary: Mapping[str, object],
        stop_reason: str | None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Record how a run ended; when that fails and ``error`` ended the run, raise ``error``."""
        try:
            with self._write():
                runs = self._state.runs
                if 0 < run_id <= len(runs):
                    runs[run_id - 1] = replace(runs[run_id - 1], finished_at=self._clock(),
                                               summary=json.loads(to_json(summary)),
                                               stop_reason=stop_reason)  # fmt: skip
        except LedgerError as exc:
            if error is None:
                raise
            error.add_note(f"the end of run {run_id} could not be recorded either: {exc}")
            raise error from None

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return list(self._read()[1].runs)

    def recorded_job_paths(self) -> list[str]:
        """The job paths the runs were started with (distinct, as given, first run first)."""
        return list(dict.fromkeys(run.job_path for run in self._read()[1].runs))

    def job(self) -> JobRecord | None:
        """The job this ledger belongs to, or None (never recorded)."""
        return self._read()[1].job

    def set_job(self, record: JobRecord) -> None:
        """Record the job this ledger belongs to (replacing any earlier record)."""
        with self._write():
            self._state.job = record

    # -- commands -------------------------------------------------------------------------------

    def register(self, cmds: Sequence[Command]) -> list[Status]:
        """Add new commands as pending (existing keys stay as they are); each status, in order."""
        with self._write() as table:
            return [table.insert(c) for c in cmds]

    def queue(self, cmds: Sequence[Command]) -> list[Status]:
        """Register ``cmds`` and append them to the send queue, all or nothing; each status."""
        with self._write() as table:
            statuses = [table.insert(c) for c in cmds]
        self._state.queue.extend(new_row(0, c).command for c in cmds)  # as SQLite reads it back
        return statuses

    def queued(
        self, step: int, product: str | None = None
    ) -> Generator[tuple[Command, Status], None, None]:
        """The queued commands of ``step`` (of ``product``; None: any) in queue order, as
        queued, each with its status when it is given."""
        queue = self._read()[1].queue
        for i in range(len(queue)):
            c = queue[i]
            if c.step == step and (product is None or c.product == product):
                row = self._read()[0].get(c.key)
                if row is not None:  # as SQLite's join: a key no longer held is left out
                    yield c, row.status

    def clear_queue(self, product: str | None = None) -> None:
        """Empty the send queue (of ``product``'s commands; None: all of it)."""
        state = self._read()[1]
        state.queue = [c for c in state.queue if product is not None and c.product != product]

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        """In-flight marks, then outcomes, all or nothing, through the lifecycle table."""
        with self._write() as table:
            table.mark_in_flight(items)
            table.record_outcomes(results)

    def move(self, keys: Sequence[str], event: Event, *, error: str | None = None) -> list[Status]:
        """Apply ``event`` to commands; each one's status before, in order."""
        with self._write() as table:
            return table.apply_event(keys, event, error)

    def skip(self, keys: Sequence[str], why: str) -> list[Status]:
        """The ABORT event, with the rule as the error; each one's status before."""
        return self.move(keys, Event.ABORT, error=why)

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event into the retry job at ``job_path`` (never a second one)."""
        with self._write() as table:
            table.hand_over(keys, job_path)

    def rows(
        self, statuses: Collection[Status] | None = None, *, retired: bool | None = None
    ) -> Generator[Row, None, None]:
        """Commands (all, or those in ``statuses``) in job order; ``retired`` as LedgerStore's."""
        wanted = None if statuses is None else frozenset(Status(s) for s in statuses)
        for row in self._read()[0]:
            if (wanted is None or row.status in wanted) and (
                retired is None or (row.retired is not None) is retired
            ):
                yield row

    def rows_of(self, keys: Sequence[str]) -> list[Row]:
        """The rows of ``keys`` (those held), in job order."""
        table = self._read()[0]
        found = {row.seq: row for k in keys if (row := table.get(k)) is not None}
        return [found[seq] for seq in sorted(found)]

    def compare(
        self, commands: Iterable[Command], *, apply: bool = False, sample: int = 20
    ) -> JobDiff:
        """How the job's commands differ from the ledger (memory_compare.py)."""
        return memory_compare.compare(self._read()[0], commands, apply=apply, sample=sample)

    def known_uuids(self, imei: str) -> set[str]:
        """Every uuid the ledger holds for one device (retired rows too)."""
        return {r.uuid for r in self._read()[0] if r.command.imei == imei and r.uuid is not None}

    def counts(self) -> dict[Status, int]:
        """How many of the job's (active) commands are in each status (every status present)."""
        counts = dict.fromkeys(Status, 0)
        counts.update(Counter(r.status for r in self._active()))
        return counts

    def handed_over(self) -> int:
        """Active commands that kept their outcome when handed to a retry job."""
        through = (Status.ACCEPTED, Status.RETRIED)
        return sum(1 for r in self._active() if r.retried_in and r.status not in through)

    def retry_jobs(self) -> dict[str, int]:
        """The retry jobs the job's (active) commands were handed to, each with how many."""
        found: dict[str, int] = {}
        for r in self._active():  # in job order: the first handed first
            if r.retried_in is not None:
                found[r.retried_in] = found.get(r.retried_in, 0) + 1
        return found

    def total(self) -> int:
        """How many commands the ledger holds (retired ones included)."""
        return len(self._read()[0])

    # -- figures ----------------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Figures over the job's (active) rows."""
        return memory_figures.stats(list(self._active()))

    def retired_counts(self) -> dict[str, int]:
        """How many rows are retired, by why: {'removed': n, 'changed': m}."""
        return memory_figures.retired_counts(self._read()[0])

    def product_counts(self) -> dict[str, dict[str, int]]:
        """The job's commands by product ('': the default one, products sorted) and status."""
        return memory_figures.product_counts(self._active())

    def errno_groups(self) -> list[tuple[int, str, int]]:
        """(errno, error text, count) for every errno of an active row: by errno, then most
        common text first."""
        return memory_figures.errno_groups(self._active())

    def latencies_at(self, ranks: Sequence[int]) -> list[float]:
        """Active rows' latencies at 1-based ``ranks`` in ascending order."""
        return memory_figures.latencies_at(self._active(), ranks)

    def delivery_breakdown(self) -> DeliveryBreakdown:
        """The job's accepted commands and devices by delivery state (delivery.py)."""
        return memory_figures.delivery_breakdown(self._active())

    # -- canary verdicts ------------------------------------------------------------------------

    def canary_covered_before(self, product: str | None) -> bool:
        """Whether a canary of the lane (``product``; None: the only lane) ever passed."""
        table = self._read()[0]
        return any(_of_lane(r, product) for r in table if r.seq in table.canary)

    def uncovered(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` not sent yet and covered by no passed canary (keys not held too)."""
        table = self._read()[0]
        return {
            k
            for k in keys
            if (row := table.get(k)) is None
            or (row.retired is None and row.seq not in table.canary and row.status in TO_SEND)
        }

    def pass_canary(
        self, product: str | None, judged: Sequence[str], commands: Iterable[Command]
    ) -> int:
        """Record a passed canary of the lane: ``commands`` registered if new, and every active
        command of the lane not covered yet covered by it; the verdict's id."""
        with self._write() as table:
            verdict = len(self._state.verdicts) + 1
            for c in commands:
                table.insert(c)
            covered = [r.seq for r in table if r.retired is None and r.seq not in table.canary
                       and _of_lane(r, product)]  # fmt: skip
            table.canary.update(dict.fromkeys(covered, verdict))
            self._state.verdicts.append((product or "", self._clock(), tuple(judged), len(covered)))
        return verdict

    # -- follow-ups: delivery and cancels -------------------------------------------------------

    def record_delivery(self, items: Sequence[Delivery]) -> None:
        """What OneNET's history says of accepted commands (another status: LifecycleError)."""
        with self._write() as table:
            table.states([d.key for d in items])
            for d in items:
                row = _held(table, d.key, Event.STATUS_READ)
                table.put(replace(
                    row, send_status=d.send_status, confirm_status=d.confirm_status,
                    send_time=d.send_time, confirm_time=d.confirm_time,
                    cmd_result=row.cmd_result if d.cmd_result is None else d.cmd_result,
                    status_checked_at=d.checked_at,
                ))  # fmt: skip

    def rows_to_check(self, product: str | None = None) -> Generator[Row, None, None]:
        """Accepted rows with a uuid whose delivery may still change (retired ones too), by imei
        then job order, a page at a time as the SQLite ledger reads them."""
        after: tuple[str, int] = ("", -1)
        while True:
            size = follow_ups.PAGE
            page = sorted(
                (r for r in self._to_check(product) if (r.command.imei, r.seq) > after),
                key=lambda r: (r.command.imei, r.seq),
            )[:size]
            yield from page
            if len(page) < size:
                return
            after = (page[-1].command.imei, page[-1].seq)

    def count_to_check(self, product: str | None = None) -> tuple[int, int, str | None]:
        """How many rows :meth:`rows_to_check` gives, on how many devices, and the latest
        ``sent_expired_time`` among them (None when there are none)."""
        rows = list(self._to_check(product))
        ends = [r.sent_expired_time for r in rows if r.sent_expired_time is not None]
        return len(rows), len({r.command.imei for r in rows}), max(ends, default=None)

    def products_to_check(self) -> list[str]:
        """The products of the rows to check ("": the default one), by name."""
        return sorted({r.command.product for r in self._to_check(None)})

    def record_cancel(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Cancels asked for, as (key, OneNET's refusal or None when cancelled, send_status as
        then known or None); a cancelled command is send_status 2."""
        at = self._clock()
        with self._write() as table:
            table.states([key for key, _, _ in items])
            for key, error, status in items:
                row = _held(table, key, Event.CANCEL)
                now = 2 if error is None else status
                table.put(replace(
                    row, cancelled_at=at, cancel_error=error,
                    send_status=row.send_status if now is None else now,
                ))  # fmt: skip

    # -- plumbing ---------------------------------------------------------------------------------

    def _read(self) -> tuple[Table, _State]:
        if self._closed:
            raise LedgerError(f"{self._path}: the ledger is closed")
        return self._table, self._state

    def _active(self) -> Iterator[Row]:
        return (r for r in self._read()[0] if r.retired is None)

    def _to_check(self, product: str | None) -> Iterator[Row]:
        return (
            r
            for r in self._read()[0]
            if r.status is Status.ACCEPTED
            and r.uuid is not None
            and r.send_status in (None, 1, 3)
            and (product is None or r.command.product == product)
        )

    @contextlib.contextmanager
    def _write(self) -> Iterator[Table]:
        """One transaction: everything it changed is put back if it raises."""
        table, state = self._read()
        saved = table.snapshot()
        runs, job, verdicts = list(state.runs), state.job, list(state.verdicts)
        try:
            yield table
        except BaseException:
            table.restore(saved)
            state.runs, state.job, state.verdicts = runs, job, verdicts
            raise


def _of_lane(row: Row, product: str | None) -> bool:
    """Whether ``row`` is of the lane ``product`` (None: the only lane, every row)."""
    return product is None or row.command.product == product


def _held(table: Table, key: str, event: Event) -> Row:
    """The row of ``key``, once ``event`` is allowed in its state (LifecycleError if not)."""
    row = table.get(key)
    assert row is not None  # table.states() checked every key first
    target(row.status, event)
    return row
