"""The PostgreSQL ledger: a :class:`~dispatcher.ledger.store.LedgerStore` kept in a database that
many jobs (and hosts) share, one job per ledger (``postgresql://…/dbname#job``).

It answers as the SQLite ledger does, operation by operation (the contract suite and the twins,
tests/ledger/, hold all three ledgers to it): the same rows with the same ``seq``, run and verdict
ids (gapless per job), every status change through the lifecycle table, each write one
transaction (all of it kept or none), durable when it returns. The schema is
postgres_schema.py's; the session (connection, the job's single-writer lock across hosts,
errors) postgres_session.py's; the SQL the other postgres_*.py modules'.

psycopg is imported by these modules only, and they only when a PostgreSQL ledger is opened:
``import dispatcher`` never loads them. Not thread-safe, like the SQLite ledger: one thread at a
time (the recorder gives it one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from dispatcher.errors import LedgerError
from dispatcher.ledger import (
    postgres_figures as figures,
    postgres_follow_ups as follow_ups,
    postgres_identity as identity,
    postgres_moves as moves,
    postgres_table as table,
)
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.identity import JobDiff, JobRecord
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.postgres_devices import PostgresDevices
from dispatcher.ledger.postgres_follow_ups import PostgresFollowUps
from dispatcher.ledger.postgres_schema import NAMESPACE, schema_version
from dispatcher.ledger.postgres_session import Session
from dispatcher.ledger.records import (
    InFlight,
    LedgerStats,
    Result,
    Row,
    RunInfo,
    Status,
)

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = ["PostgresLedger"]


# The job's writer lock, as this session holds it (pg_locks: two int4 keys are objsubid 2).
_HOLDS_LOCK: Final = (
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()"
    " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 2"
)


class PostgresLedger(PostgresFollowUps, PostgresDevices):
    """One job of a PostgreSQL results ledger (a LedgerStore). Not thread-safe."""

    def __init__(self, session: Session, clock: Callable[[], float]) -> None:
        """Use :meth:`open`."""
        self._s = session
        self._job = session.job_id
        self._clock = clock

    @classmethod
    def open(
        cls,
        address: PostgresAddress,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> PostgresLedger:
        """Open the job ``address.job`` (ValueError: none named): to write, the schema made or
        upgraded, the job added if new and locked (LedgerLockedError: another writer holds it);
        ``read_only`` writes nothing and takes no lock."""
        return cls(Session.open(address, read_only=read_only, clock=clock), clock)

    @property
    def path(self) -> PostgresAddress:
        """The job's address (printed without its password)."""
        return self._s.address

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the database."""
        with self._s.read("read the schema version") as conn:
            return schema_version(conn)

    def __enter__(self) -> PostgresLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session, which releases the job's lock (idempotent)."""
        self._s.close()

    def check(self) -> None:
        """LedgerError when the session is gone (the server restarted, the session was ended,
        the network between here and the server split) or no longer holds the job's lock: then
        another host may take the job over, and this one must stop sending."""
        with self._s.read("check the ledger's session") as conn:
            held = conn.execute(_HOLDS_LOCK, (NAMESPACE, self._job)).fetchone()
        if not self._s.read_only and held is None:
            raise LedgerError(f"{self.path}: this process no longer holds the job's lock")

    # -- runs and the job ---------------------------------------------------------------------

    def start_run(self, job_path: str, settings: Mapping[str, object]) -> int:
        """Record the start of a run (settings without any secret); return its id."""
        with self._s.write("start a run") as conn:
            return identity.start_run(conn, self._job, job_path, self._clock(), settings)

    def finish_run(
        self,
        run_id: int,
        summary: Mapping[str, object],
        stop_reason: str | None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Record how a run ended; when that fails and ``error`` ended the run, raise ``error``
        with a note."""
        try:
            with self._s.write("finish a run") as conn:
                identity.end_run(conn, self._job, run_id, self._clock(), summary, stop_reason)
        except LedgerError as exc:
            if error is None:
                raise
            error.add_note(f"the end of run {run_id} could not be recorded either: {exc}")
            raise error from None

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        with self._s.read("read the runs") as conn:
            return identity.read_runs(conn, self._job)

    def recorded_job_paths(self) -> list[str]:
        """The job paths the runs were started with (distinct, as given, first run first)."""
        with self._s.read("read the runs") as conn:
            return identity.recorded_job_paths(conn, self._job)

    def job(self) -> JobRecord | None:
        """The job this ledger belongs to, or None (never recorded)."""
        with self._s.read("read the job record") as conn:
            return identity.read_job(conn, self._job)

    def set_job(self, record: JobRecord) -> None:
        """Record the job this ledger belongs to (replacing any earlier record)."""
        with self._s.write("record the job") as conn:
            identity.write_job(conn, self._job, record)

    # -- commands -------------------------------------------------------------------------------

    def register(self, cmds: Sequence[Command]) -> list[Status]:
        """Add new commands as pending (existing keys stay as they are); each status, in order."""
        if not cmds:
            return []
        with self._s.write("register commands") as conn:
            return table.register(conn, self._job, cmds)

    def queue(self, cmds: Sequence[Command]) -> list[Status]:
        """Register ``cmds`` and queue them to send, in one statement; each status."""
        if not cmds:
            return []
        made = self._s.queue_made
        with self._s.write("register commands") as conn:
            found = table.register(conn, self._job, cmds, queue=True, make_queue=not made)
        self._s.queue_made = True  # committed: the session's queue table exists from now on
        return found

    def queued(
        self, step: int, product: str | None = None
    ) -> Generator[tuple[Command, Status], None, None]:
        """The queued commands of ``step`` (of ``product``; None: any) in queue order, as
        queued, each with its status when its page is read (nothing stays open between pages)."""
        after = -1
        while True:
            with self._s.read("read the send queue") as conn:
                made = self._s.queue_made  # no queue yet: nothing queued
                page = table.page_of_queue(conn, self._job, step, product, after) if made else []
            for _, command, status in page:
                yield command, status
            if len(page) < table.PAGE:
                return
            after = page[-1][0]

    def clear_queue(self, product: str | None = None) -> None:
        """Empty the send queue (of ``product``'s commands; None: all of it)."""
        with self._s.read("clear the send queue") as conn:
            if self._s.queue_made:
                table.clear_queue(conn, product)

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        """In-flight marks, then outcomes, in one transaction (one commit for both); each
        through the lifecycle table (a move it does not allow raises LifecycleError)."""
        if not items and not results:
            return
        with self._s.write("write outcomes") as conn:
            moves.mark_in_flight(conn, self._job, items)
            moves.record_outcomes(conn, self._job, results)

    def move(self, keys: Sequence[str], event: Event, *, error: str | None = None) -> list[Status]:
        """Apply ``event`` to commands, in one transaction; each one's status before, in order.
        ``error`` is written to those whose status it changes."""
        if not keys:
            return []
        with self._s.write(f"record {event.value}") as conn:
            return moves.apply_event(conn, self._job, keys, event, error=error)

    def skip(self, keys: Sequence[str], why: str) -> list[Status]:
        """The ABORT event, with the rule as the error; each one's status before."""
        if not keys:
            return []
        with self._s.write("record skipped commands") as conn:
            return moves.apply_event(conn, self._job, keys, Event.ABORT, error=why)

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event into the retry job at ``job_path``, in one transaction (never to
        a second retry job; a key not held: nothing is recorded)."""
        if not keys:
            return
        with self._s.write("record the retry job") as conn:
            moves.hand_over(conn, self._job, keys, job_path)

    def rows(
        self, statuses: Collection[Status] | None = None, *, retired: bool | None = None
    ) -> Generator[Row, None, None]:
        """Commands (all, or those in ``statuses``) in job order, a page at a time by seq
        (nothing stays open between pages); ``retired`` as LedgerStore's."""
        after = 0
        while True:
            with self._s.read("read commands") as conn:
                page = table.page_of_rows(conn, self._job, statuses, retired, after)
            yield from page
            if len(page) < table.PAGE:
                return
            after = page[-1].seq

    def rows_of(self, keys: Sequence[str]) -> list[Row]:
        """The rows of ``keys`` (those held), in job order."""
        with self._s.read("read commands") as conn:
            return table.rows_of(conn, self._job, keys)

    def compare(
        self, commands: Iterable[Command], *, apply: bool = False, sample: int = 20
    ) -> JobDiff:
        """How the job's commands differ from the ledger, streamed once; ``apply`` brings the
        ledger in line (identity.py says how), else nothing is written."""
        return identity.compare(self._s, commands, apply=apply, sample=sample)

    def known_uuids(self, imei: str) -> set[str]:
        """Every uuid the ledger holds for one device (retired rows too)."""
        with self._s.read("read uuids") as conn:
            return table.uuids_of(conn, self._job, imei)

    def counts(self) -> dict[Status, int]:
        """How many of the job's (active) commands are in each status (every status present)."""
        with self._s.read("count commands") as conn:
            return table.count_by_status(conn, self._job)

    def handed_over(self) -> int:
        """Active commands that kept their outcome when handed to a retry job."""
        with self._s.read("count commands") as conn:
            return table.count_handed_over(conn, self._job)

    def retry_jobs(self) -> dict[str, int]:
        """The retry jobs the job's (active) commands were handed to, each with how many."""
        with self._s.read("count commands") as conn:
            return table.count_by_retry_job(conn, self._job)

    def total(self) -> int:
        """How many commands the job holds (retired ones included)."""
        with self._s.read("count commands") as conn:
            return table.count_rows(conn, self._job)

    # -- figures ----------------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Figures over the job's (active) rows in one pass."""
        with self._s.read("compute figures") as conn:
            return figures.stats(conn, self._job)

    def retired_counts(self) -> dict[str, int]:
        """How many rows are retired, by why: {'removed': n, 'changed': m}."""
        with self._s.read("count retired commands") as conn:
            return figures.retired_counts(conn, self._job)

    def product_counts(self) -> dict[str, dict[str, int]]:
        """The job's commands by product ('': the default one) and status."""
        with self._s.read("count commands by product") as conn:
            return figures.product_counts(conn, self._job)

    def errno_groups(self) -> list[tuple[int, str, int]]:
        """(errno, error text, count) for every errno of an active row, most common text first."""
        with self._s.read("count errnos") as conn:
            return figures.errno_groups(conn, self._job)

    def latencies_at(self, ranks: Sequence[int]) -> list[float]:
        """Active rows' latencies at 1-based ``ranks`` in ascending order."""
        with self._s.read("read latencies") as conn:
            return figures.latencies_at(conn, self._job, ranks)

    def delivery_breakdown(self) -> DeliveryBreakdown:
        """The job's accepted commands and devices by delivery state (delivery.py)."""
        with self._s.read("count deliveries") as conn:
            return figures.breakdown(conn, self._job)

    # -- canary verdicts --------------------------------------------------------------------------

    def canary_covered_before(self, product: str | None) -> bool:
        """Whether a canary of the lane (``product``; None: the only lane) ever passed."""
        with self._s.read("read the canary verdicts") as conn:
            return follow_ups.covered_before(conn, self._job, product)

    def uncovered(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` not sent yet and covered by no passed canary (keys not held too)."""
        with self._s.read("read the canary verdicts") as conn:
            return follow_ups.uncovered(conn, self._job, keys)

    def pass_canary(
        self, product: str | None, judged: Sequence[str], commands: Iterable[Command]
    ) -> int:
        """Record a passed canary of the lane, covering every command of it (``commands``,
        registered if new) not covered yet, in one transaction; the verdict's id."""
        with self._s.write("record the canary's verdict") as conn:
            at = self._clock()
            return follow_ups.pass_canary(conn, self._job, product, judged, commands, at)
