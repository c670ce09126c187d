"""LedgerStore: what the rest of dispatcher asks of a results ledger, whatever holds it.

A ledger keeps one row per command (keyed by the command's key, in job order), the runs made with
it, the job it belongs to, canary verdicts and what OneNET said of accepted commands. Every change
of a row's ``status`` goes through the lifecycle table (lifecycle.py): an event the table does not
allow raises :class:`~dispatcher.ledger.lifecycle.LifecycleError` and nothing of that write is
kept. Each write operation is one transaction: all of it is kept, or none.

Implementations: :class:`~dispatcher.ledger.sqlite.Ledger` (the file a run writes, durable),
:class:`~dispatcher.ledger.postgres.PostgresLedger` (one job of a PostgreSQL database that many
jobs and hosts share) and :class:`~dispatcher.ledger.memory.MemoryLedger` (in memory, for tests and
trials); one contract test suite (tests/ledger/test_ledger_contract*.py) holds all three to this
interface. The records it speaks in
are re-exported here, so that a caller needs one import.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, Self

from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.identity import Change, JobDiff, JobRecord
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.records import (
    FINAL,
    TO_SEND,
    Delivery,
    InFlight,
    LedgerFullError,
    LedgerStats,
    Result,
    Retired,
    Row,
    RunInfo,
    Status,
)
from dispatcher.ledger.targets import FrozenTarget
from dispatcher.ledger.verify import VerifyResult, VerifyState

if TYPE_CHECKING:
    from dispatcher.model.command import Command

__all__ = [
    "FINAL",
    "TO_SEND",
    "Change",
    "Delivery",
    "DeliveryBreakdown",
    "FrozenTarget",
    "InFlight",
    "JobDiff",
    "JobRecord",
    "LedgerFullError",
    "LedgerStats",
    "LedgerStore",
    "Result",
    "Retired",
    "Row",
    "RunInfo",
    "Status",
    "VerifyResult",
    "VerifyState",
]


class LedgerStore(Protocol):
    """The operations of a results ledger (module docstring). Not thread-safe."""

    @property
    def path(self) -> LedgerAddress:
        """Where the ledger is (a file, or a job of a PostgreSQL ledger): the name messages and
        reports give it."""
        ...

    def __enter__(self) -> Self:
        """The ledger itself; it is closed on leaving."""
        ...

    def __exit__(self, *exc: object) -> None:
        """Close the ledger."""
        ...

    def close(self) -> None:
        """Release the ledger (idempotent)."""
        ...

    def check(self) -> None:
        """LedgerError when this process can no longer write the ledger as its one writer (a
        PostgreSQL session, and the job's lock with it, gone); nothing else happens."""
        ...

    # -- runs and the job ---------------------------------------------------------------------

    def start_run(self, job_path: str, settings: Mapping[str, object]) -> int:
        """Record the start of a run (settings without any secret); return its id."""
        ...

    def finish_run(
        self,
        run_id: int,
        summary: Mapping[str, object],
        stop_reason: str | None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """Record how a run ended; when that fails and ``error`` ended the run, raise ``error``
        (with a note), not the new one."""
        ...

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        ...

    def recorded_job_paths(self) -> list[str]:
        """The job paths the runs were started with (distinct, as given, first run first)."""
        ...

    def job(self) -> JobRecord | None:
        """The job this ledger belongs to, or None (never recorded)."""
        ...

    def set_job(self, record: JobRecord) -> None:
        """Record the job this ledger belongs to (replacing any earlier record)."""
        ...

    # -- commands -------------------------------------------------------------------------------

    def register(self, cmds: Sequence[Command]) -> list[Status]:
        """Add new commands as pending (existing keys stay as they are); each status, in order.
        A command without a key raises ValueError."""
        ...

    def queue(self, cmds: Sequence[Command]) -> list[Status]:
        """Register ``cmds`` (as :meth:`register`) and append them, in order, to the send queue:
        the job's commands as the job gives them, for this run to send step by step, kept while
        the ledger is open and never written to its file; each status, in order."""
        ...

    def queued(
        self, step: int, product: str | None = None
    ) -> Generator[tuple[Command, Status], None, None]:
        """The queued commands of ``step`` (0: a job without steps) and of ``product`` (None:
        any; "": the default one), in queue order, each as queued with its status in the ledger
        at the moment it is read; streamed, with no read left open between pages."""
        ...

    def clear_queue(self, product: str | None = None) -> None:
        """Empty the send queue (of ``product``'s commands; None: all of it)."""
        ...

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        """In-flight marks, then outcomes, in one transaction, each through the lifecycle table.
        The marks are durable when this returns: a request may leave only after it."""
        ...

    def move(self, keys: Sequence[str], event: Event, *, error: str | None = None) -> list[Status]:
        """Apply ``event`` to commands; each one's status before, in order. ``error`` is written
        to those whose status it changes. A key not held raises LedgerError."""
        ...

    def skip(self, keys: Sequence[str], why: str) -> list[Status]:
        """The ABORT event, with the rule as the error; each one's status before."""
        ...

    def hand_over(self, keys: Sequence[str], job_path: str) -> None:
        """The HAND_OVER event into the retry job at ``job_path``; a command handed to another
        retry job already is refused (LifecycleError), and then nothing is recorded."""
        ...

    def rows(
        self, statuses: Collection[Status] | None = None, *, retired: bool | None = None
    ) -> Generator[Row, None, None]:
        """Commands (all, or those in ``statuses``) in job order; ``retired``: None every row,
        False the job's (active) rows only, True retired rows only."""
        ...

    def rows_of(self, keys: Sequence[str]) -> list[Row]:
        """The rows of ``keys`` (those held), in job order."""
        ...

    def compare(
        self, commands: Iterable[Command], *, apply: bool = False, sample: int = 20
    ) -> JobDiff:
        """How the job's commands differ from the ledger; ``apply`` brings the ledger in line
        (identity.py says how)."""
        ...

    def known_uuids(self, imei: str) -> set[str]:
        """Every uuid the ledger holds for one device (retired rows too)."""
        ...

    def counts(self) -> dict[Status, int]:
        """How many of the job's (active) commands are in each status (every status present)."""
        ...

    def handed_over(self) -> int:
        """How many of the job's (active) commands kept their outcome here (rejected, expired)
        and were handed to a retry job, which sends them: no problem of this job any more."""
        ...

    def retry_jobs(self) -> dict[str, int]:
        """The retry jobs the job's (active) commands were handed to, each with how many, in
        the order the first of each appears in the job."""
        ...

    def total(self) -> int:
        """How many commands the ledger holds (retired ones included)."""
        ...

    # -- figures ----------------------------------------------------------------------------------

    def stats(self) -> LedgerStats:
        """Figures over the job's (active) rows."""
        ...

    def retired_counts(self) -> dict[str, int]:
        """How many rows are retired, by why: {'removed': n, 'changed': m}."""
        ...

    def product_counts(self) -> dict[str, dict[str, int]]:
        """The job's commands by product ('': the default one, products sorted) and status."""
        ...

    def errno_groups(self) -> list[tuple[int, str, int]]:
        """(errno, error text, count) for every errno of an active row: by errno, then most
        common text first."""
        ...

    def latencies_at(self, ranks: Sequence[int]) -> list[float]:
        """Active rows' latencies at 1-based ``ranks`` (each at most their number), ascending."""
        ...

    def delivery_breakdown(self) -> DeliveryBreakdown:
        """The job's accepted commands and devices by delivery state (delivery.py)."""
        ...

    # -- canary verdicts ------------------------------------------------------------------------

    def canary_covered_before(self, product: str | None) -> bool:
        """Whether a canary of the lane (``product``; None: the only lane) ever passed."""
        ...

    def uncovered(self, keys: Sequence[str]) -> set[str]:
        """Those of ``keys`` not sent yet and covered by no passed canary (keys not held too)."""
        ...

    def pass_canary(
        self, product: str | None, judged: Sequence[str], commands: Iterable[Command]
    ) -> int:
        """Record a passed canary of the lane: ``commands`` registered if new, and every active
        command of the lane not covered yet covered by it; the verdict's id."""
        ...

    # -- follow-ups: delivery and cancels -------------------------------------------------------

    def record_delivery(self, items: Sequence[Delivery]) -> None:
        """What OneNET's history says of accepted commands (another status: LifecycleError)."""
        ...

    def rows_to_check(self, product: str | None = None) -> Generator[Row, None, None]:
        """Accepted rows with a uuid whose delivery may still change (retired ones too), by
        imei then job order; ``product``: only that product's ("": the default one's)."""
        ...

    def count_to_check(self, product: str | None = None) -> tuple[int, int, str | None]:
        """How many rows :meth:`rows_to_check` gives, on how many devices, and the latest
        ``sent_expired_time`` among them (None when there are none)."""
        ...

    def products_to_check(self) -> list[str]:
        """The products of the rows to check ("": the default one), by name."""
        ...

    def record_cancel(self, items: Sequence[tuple[str, str | None, int | None]]) -> None:
        """Cancels asked for, as (key, OneNET's refusal or None when cancelled, send_status as
        then known or None); a cancelled command is send_status 2."""
        ...

    # -- the frozen fleet (targets.py) ------------------------------------------------------------

    def freeze_targets(self, targets: Sequence[FrozenTarget]) -> int:
        """Freeze the devices of a job's targets_query not frozen yet, in order (one write); how
        many were added. A frozen device is never removed."""
        ...

    def frozen_targets(self) -> list[FrozenTarget]:
        """The frozen devices, in the order they were frozen (none: the job has no frozen list)."""
        ...

    # -- verify (verify.py) -----------------------------------------------------------------------

    def record_verify(self, results: Sequence[VerifyResult]) -> None:
        """Each device's verdict against the job's verify:, in place of its last one."""
        ...

    def verify_results(self) -> list[VerifyResult]:
        """Every device's latest verdict, by imei then product (none: never verified)."""
        ...

    def record_device_ids(self, ids: Mapping[str, str]) -> None:
        """Platform device ids by IMEI (GET /devices/getbyimei's), kept for the next verify."""
        ...

    def device_ids(self) -> dict[str, str]:
        """The platform device ids kept, by IMEI."""
        ...
