"""The SQLite ledger: the :class:`~dispatcher.ledger.store.LedgerStore` a run writes, one file.

A command is registered (``pending``) before it is sent, marked ``in_flight`` with the exact times
that go on the wire *before* its request leaves (the crash-safety point: a row still in flight after
a crash is one whose request may have reached OneNET), and given its outcome when the answer comes.
Each batch is one transaction. The file is owner-only (0600), in WAL mode, and one process at a time
may write it: an exclusive ``flock`` on the database file itself, its symlinks resolved, so that
no other name for it (symlink, hard link) gets past the lock (lock.py). The files kept beside
it, and how a ledger is deleted, are sqlite_files.py's.

Rows edited or removed in the job file are *retired* (kept, with their outcomes, but no longer
counted as the job's): see :meth:`Ledger.compare`. A full disk raises :class:`LedgerFullError`.

A :class:`Ledger` is not thread-safe: use it from one thread at a time (the recorder gives it a
dedicated thread).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from dispatcher.errors import LedgerError
from dispatcher.ledger import (
    follow_ups,
    identity,
    moves,
    queue as send_queue,
    runs as run_records,
    table,
    verdicts,
)
from dispatcher.ledger.columns import row_of
from dispatcher.ledger.figures import SqliteFigures
from dispatcher.ledger.identity import JobDiff, JobRecord
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.lock import lock, unlock
from dispatcher.ledger.records import (
    Delivery,
    InFlight,
    LedgerFullError,
    Result,
    Row,
    RunInfo,
    Status,
)
from dispatcher.ledger.schema import connect, schema_version, sqlite_error, transaction
from dispatcher.ledger.sqlite_copy import SqliteCopy
from dispatcher.ledger.targets import SqliteTargets
from dispatcher.ledger.verify import SqliteVerify

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["Ledger", "LedgerFullError"]

log = logging.getLogger(__name__)

_FETCH: Final = 1000  # rows per fetchmany


class Ledger(SqliteFigures, SqliteTargets, SqliteVerify, SqliteCopy):
    """The SQLite results ledger of one job (a LedgerStore). Not thread-safe: one thread at a
    time."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock_fd: int | None, clock: Callable[[], float]
    ) -> None:
        """Use :meth:`open`."""
        self.path = path
        self._conn: sqlite3.Connection | None = conn
        self._lock_fd = lock_fd
        self._clock = clock

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: str = "full",
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        busy_timeout_ms: int = 5000,
        max_pages: int | None = None,
    ) -> Ledger:
        """Open (or create, mode 0600) the ledger and lock it; ``read_only`` takes no lock.

        ``max_pages`` is a test hook: it caps the file at that many pages, so that writes beyond
        them fail as on a full disk.
        """
        path = Path(path)
        sync = synchronous.upper()
        if sync not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        lock_fd = None if read_only else lock(path)
        try:
            conn = connect(path, sync, read_only, busy_timeout_ms, max_pages)
        except BaseException:
            if lock_fd is not None:
                unlock(lock_fd)
            raise
        return cls(path, conn, lock_fd, clock)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database and release the lock (idempotent)."""
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                conn.close()
        except sqlite3.Error as exc:
            raise sqlite_error(self.path, "close the ledger", exc) from exc
        finally:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                unlock(fd)

    def check(self) -> None:
        """LedgerError once closed (the file's lock lives as long as this process)."""
        self._live()

    # -- runs -------------------------------------------------------------------------------------

    def start_run(self, job_path: str, settings: Mapping[str, object]) -> int:
        """Record the start of a run (settings without any secret); return its id."""
        with self._write("start a run") as conn:
            return run_records.start_run(conn, job_path, self._clock(), settings)

    def finish_run(
        self,
        run_id: int,
        summary: Mapping[str, object],
        stop_reason: str | None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Record how a run ended: its summary and why it stopped (None: it finished the job);
        when that fails and ``error`` ended the run (a full disk), raise ``error`` with a note."""
        try:
            with self._write("finish a run") as conn:
                run_records.end_run(conn, run_id, self._clock(), summary, stop_reason)
        except LedgerError as exc:
            if error is None:
                raise
            error.add_note(f"the end of run {run_id} could not be recorded either: {exc}")
            raise error from None

    def job(self) -> JobRecord | None:
        """The job this ledger belongs to, or None (never recorded, e.g. a schema-1 ledger)."""
        with self._read("read the job record") as conn:
            return identity.read_job(conn)

    def set_job(self, record: JobRecord) -> None:
        """Record the job this ledger belongs to (replacing any earlier record)."""
        with self._write("record the job") as conn:
            identity.write_job(conn, record)

    def recorded_job_paths(self) -> list[str]:
        """The job paths the runs were started with (distinct, as given, first run first)."""
        with self._read("read the runs") as conn:
            return identity.recorded_job_paths(conn)

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._read("read the runs") as conn:
            return run_records.read_runs(conn)

    # -- commands ---------------------------------------------------------------------------------

    def register(self, cmds: Sequence[Command]) -> list[Status]:
        """Add new commands as pending (existing keys stay as they are); each status, in order."""
        if not cmds:
            return []
        with self._write("register commands") as conn:
            return table.register(conn, cmds)

    def queue(self, cmds: Sequence[Command]) -> list[Status]:
        """Register ``cmds`` and queue them to send (queue.py), in one transaction; each status."""
        if not cmds:
            return []
        with self._write("register commands") as conn:
            return send_queue.put(conn, cmds)

    def queued(
        self, step: int, product: str | None = None
    ) -> Generator[tuple[Command, Status], None, None]:
        """The queued commands of ``step`` (of ``product``; None: any) in queue order, as
        queued, each with its status when its page is read (no cursor stays open)."""
        return send_queue.stream(lambda: self._read("read the send queue"), step, product)

    def clear_queue(self, product: str | None = None) -> None:
        """Empty the send queue (of ``product``'s commands; None: all of it)."""
        with self._read("clear the send queue") as conn:
            send_queue.clear(conn, product)

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        """In-flight marks, then outcomes, in one transaction (one disk sync for both); each
        through the lifecycle table (a move it does not allow raises LifecycleError)."""
        if not items and not results:
            return
        with self._write("write outcomes") as conn:
            moves.mark_in_flight(conn, items)
            moves.record_outcomes(conn, results)

    def move(self, keys: Sequence[str], event: Event, *, error: str | None = None) -> list[Status]:
        """Apply ``event`` to commands (lifecycle.py), in one transaction; each one's status
        before, in order. ``error`` is written to those whose status it changes."""
        if not keys:
            return []
        with self._write(f"record {event.value}") as conn:
            return moves.apply_event(conn, keys, event, error=error)

    def rows(
        self, statuses: Collection[Status] | None = None, *, retired: bool | None = None
    ) -> Generator[Row, None, None]:
        """Commands (all, or those in ``statuses``) in job order, streamed from a cursor;
        ``retired`` as LedgerStore's. Rows written meanwhile may or may not be seen."""
        query = table.select_rows(statuses, retired)
        if query is None:
            return
        cur = self._live().cursor()
        try:
            cur.execute(*query)
            while chunk := cur.fetchmany(_FETCH):
                yield from map(row_of, chunk)
        except sqlite3.Error as exc:
            raise sqlite_error(self.path, "read commands", exc) from exc
        finally:
            cur.close()

    def compare(
        self, commands: Iterable[Command], *, apply: bool = False, sample: int = 20
    ) -> JobDiff:
        """How the job's commands differ from the ledger, streamed once; ``apply`` brings the
        ledger in line (identity.py says how), else nothing is written."""
        with self._read("compare the job") as conn:
            return identity.compare(conn, self._write, commands, apply=apply, sample=sample)

    def known_uuids(self, imei: str) -> set[str]:
        """Every uuid the ledger holds for one device."""
        with self._read("read uuids") as conn:
            return table.uuids_of(conn, imei)

    def counts(self) -> dict[Status, int]:
        """How many of the job's (active) commands are in each status (every status present)."""
        with self._read("count commands") as conn:
            return table.count_by_status(conn)

    def handed_over(self) -> int:
        """Active commands that kept their outcome when handed to a retry job."""
        with self._read("count commands") as conn:
            return table.count_handed_over(conn)

    def retry_jobs(self) -> dict[str, int]:
        """The retry jobs the job's (active) commands were handed to, each with how many."""
        with self._read("count commands") as conn:
            return table.count_by_retry_job(conn)

    def total(self) -> int:
        """How many commands the ledger holds (retired ones included)."""
        with self._read("count commands") as conn:
            return table.count_rows(conn)

    def rows_of(self, keys: Sequence[str]) -> list[Row]:
        """The rows of ``keys`` (those the ledger holds), in job order."""
        with self._read("read commands") as conn:
            return table.rows_of(conn, keys)

    def skip(self, keys: Sequence[str], why: str) -> list[Status]:
        """The ABORT event for commands not sent yet (pending, skipped: now ``skipped`` with the
        rule as their error; a failed one keeps its failure); each one's status before."""
        if not keys:
            return []
        with self._write("record skipped commands") as conn:
            return moves.apply_event(conn, keys, Event.ABORT, error=why)

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event into the retry job at ``job_path``, in one transaction (moves.py:
        never to a second retry job; a key not held: nothing is recorded)."""
        if not keys:
            return
        with self._write("record the retry job") as conn:
            moves.hand_over(conn, keys, job_path)

    # -- canary verdicts (verdicts.py) ----------------------------------------------------------

    def canary_covered_before(self, product: str | None) -> bool:
        """Whether a canary of the lane (``product``; None: the only lane) ever passed."""
        with self._read("read the canary verdicts") as conn:
            return verdicts.covered_before(conn, product)

    def uncovered(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` not sent yet and covered by no passed canary (verdicts.py)."""
        with self._read("read the canary verdicts") as conn:
            return verdicts.uncovered(conn, keys)

    def pass_canary(
        self, product: str | None, judged: Sequence[str], commands: Iterable[Command]
    ) -> int:
        """Record a passed canary of the lane, covering every command of it (``commands``,
        registered if new) not covered yet, in one transaction; the verdict's id."""
        with self._write("record the canary's verdict") as conn:
            return verdicts.pass_canary(conn, product, judged, commands, self._clock())

    # -- follow-ups: delivery and cancels (follow_ups.py) ---------------------------------------

    def record_delivery(self, items: Sequence[Delivery]) -> None:
        """What OneNET's history says of accepted commands, in one transaction."""
        with self._write("record deliveries") as conn:
            follow_ups.record_delivery(conn, items)

    def rows_to_check(self, product: str | None = None) -> Generator[Row, None, None]:
        """Accepted rows whose delivery may still change, by imei then job order, a page at a
        time (no cursor stays open, memory stays flat); ``product`` as LedgerStore's."""
        after: tuple[str, int] = ("", -1)
        while True:
            size = follow_ups.PAGE
            with self._read("read the commands to check") as conn:
                page = follow_ups.page_to_check(conn, after, product, size)
            yield from page
            if len(page) < size:
                return
            after = (page[-1].command.imei, page[-1].seq)

    def count_to_check(self, product: str | None = None) -> tuple[int, int, str | None]:
        """How many rows :meth:`rows_to_check` gives, on how many devices, and the latest
        ``sent_expired_time`` among them (None when there are none)."""
        with self._read("count the commands to check") as conn:
            return follow_ups.count_to_check(conn, product)

    def products_to_check(self) -> list[str]:
        """The products of the rows to check ("": the default one), by name."""
        with self._read("read the products") as conn:
            return follow_ups.products_to_check(conn)

    def record_cancel(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Cancels asked for, as (key, OneNET's refusal or None when cancelled, send_status
        as then known or None), in one transaction; a cancelled command is send_status 2."""
        with self._write("record cancels") as conn:
            follow_ups.record_cancel(conn, items, self._clock())

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._read("read the schema version") as conn:
            return schema_version(conn)

    # -- plumbing ---------------------------------------------------------------------------------

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError(f"{self.path}: the ledger is closed")
        return self._conn

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[sqlite3.Connection]:
        try:
            yield self._live()
        except sqlite3.Error as exc:
            raise sqlite_error(self.path, what, exc) from exc

    def _write(self, what: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._live(), self.path, what)
