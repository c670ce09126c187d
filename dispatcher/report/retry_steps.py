"""Where each device of a job with steps left off: the step a retry job starts it at, or why it is
left out.

A device's steps are read in order. A step is done when OneNET accepted it and, when the step
waits for delivery (``wait: delivered``), delivered it (send_status 5); under ``wait: accepted`` an
accepted step is done unless its delivery is known to have expired or failed. The first step not
done decides: one that did not get through (report/retry.py's reasons: rejected, failed, expired,
never sent, held back, delivery expired or failed) is where the device starts; one that may be at
OneNET (in doubt, in flight, or a delivery still open under ``wait: delivered``) or was cancelled
leaves the device out. So does a later step that may be at OneNET or was delivered: the device's
steps from its start are all sent again, and a step it completed is never sent again.

A device whose steps were handed to a retry job before is left out (that job's ledger says what
became of them), unless they were handed to the very file being written (the same hand-over).
A device that finished its steps is left out, unless the caller names it to be sent them all
again (``--not-verified``: its verify result is "not yet").
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from dispatcher.ledger.records import OPEN_DELIVERY, DeliveryState
from dispatcher.ledger.store import LedgerStore, Row, Status
from dispatcher.report.retry import UNSETTLED, Reason, passed_times, reason_of
from dispatcher.times import start_of

__all__ = ["Left", "Start", "StepTally", "devices_of", "starts"]


class Left(StrEnum):
    """Why a device of a job with steps is not in the retry job."""

    FINISHED = "finished"  # every step done
    UNSETTLED = "may be at OneNET"  # a step in doubt or in flight: its next run settles it
    OPEN = "delivery still open"  # a step waiting for delivery is still held by OneNET
    CANCELLED = "cancelled"  # a step was cancelled (dispatcher cancel)
    DONE_LATER = "a later step done"  # resending from the start would send a done step again


@dataclass(frozen=True, slots=True)
class Start:
    """A device to send its steps again: from ``from_step`` (1-based), those steps' rows (in
    order, the first one's reason why), and which of its absolute times have passed."""

    imei: str
    from_step: int
    rows: tuple[Row, ...]
    reason: Reason | None  # None: finished, sent again as its verify result is "not yet"
    passed: tuple[str, ...] = ()


@dataclass(slots=True)
class StepTally:
    """What ``starts`` went past, counted by device as it goes (complete once exhausted)."""

    devices: int = 0  # the job's devices read
    reasons: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))
    not_verified: int = 0  # finished devices sent again (their verify result is "not yet")
    left: dict[Left, int] = field(default_factory=lambda: dict.fromkeys(Left, 0))
    handed: dict[str, int] = field(default_factory=dict)  # devices in a retry job: by its path
    passed: int = 0  # devices with an absolute time that has passed

    @property
    def total(self) -> int:
        """How many devices are to be sent steps again."""
        return sum(self.reasons.values()) + self.not_verified


class _Done(StrEnum):
    DONE = "done"


_Verdict = Reason | Left | _Done


def _verdict(row: Row, delivered: bool, into: str | None) -> _Verdict:
    """What one step of a device comes to: done, a reason to send it again, or to leave it."""
    if into is not None and row.retried_in == into:
        return reason_of(row) or Reason.NOT_SENT  # handed to this file before: the same again
    if row.status in UNSETTLED:
        return Left.UNSETTLED
    reason = reason_of(row)
    if reason is not None:
        return reason
    state = row.delivery
    if state is DeliveryState.CANCELLED:
        return Left.CANCELLED
    if state is not None and state in OPEN_DELIVERY and delivered:
        return Left.OPEN
    if row.status is Status.ACCEPTED:
        return _Done.DONE
    return Left.UNSETTLED  # a state no step is left in (retried without its file)


def _device(
    rows: Sequence[Row], waits: Sequence[bool], into: str | None, redo: bool
) -> Start | Left:
    """Where one device starts again, or why it is left out."""
    verdicts = [_verdict(row, _waits(waits, row), into) for row in rows]
    first = next((n for n, v in enumerate(verdicts) if v is not _Done.DONE), None)
    if first is None:
        if redo:
            return Start(rows[0].command.imei, rows[0].command.step, tuple(rows), None)
        return Left.FINISHED
    verdict = verdicts[first]
    if isinstance(verdict, Left):
        return verdict
    for later in verdicts[first + 1 :]:
        if later is _Done.DONE:
            return Left.DONE_LATER
        if isinstance(later, Left):
            return later
    step = rows[first].command.step
    assert isinstance(verdict, Reason)
    return Start(rows[0].command.imei, step, tuple(rows[first:]), verdict)


def _waits(waits: Sequence[bool], row: Row) -> bool:
    step = row.command.step
    return 0 < step <= len(waits) and waits[step - 1]


def devices_of(rows: Iterator[Row]) -> Iterator[list[Row]]:
    """The rows of a job with steps, a device at a time: a target's steps lie together, in
    order, in the job's order the ledger keeps."""
    group: list[Row] = []
    for row in rows:
        if group and (
            row.command.imei != group[-1].command.imei or row.command.step <= group[-1].command.step
        ):
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def starts(
    ledger: LedgerStore,
    waits: Sequence[bool],
    tally: StepTally,
    *,
    now: datetime | None = None,
    into: str | None = None,
    redo: Collection[str] = (),
) -> Iterator[Start]:
    """The devices of the ledger's job (with steps) to send steps again, in job order, streamed;
    ``tally`` counts as they go.

    ``waits``: per step, whether it waits for delivery (``wait: delivered``).
    ``now``: the moment absolute times are checked against (None: now; naive: UTC+8).
    ``into``: the retry job being written; devices handed to it before go into it again.
    ``redo``: IMEIs sent all their steps again when they finished them (not verified).
    """
    at = start_of(now)
    for rows in devices_of(iter(ledger.rows(retired=False))):
        tally.devices += 1
        handed = next((r.retried_in for r in rows if r.retried_in not in (None, into)), None)
        if handed is not None:  # a retry job sends its steps: never a second one
            tally.handed[handed] = tally.handed.get(handed, 0) + 1
            continue
        found = _device(rows, waits, into, rows[0].command.imei in redo)
        if isinstance(found, Left):
            tally.left[found] += 1
            continue
        if found.reason is None:
            tally.not_verified += 1
        else:
            tally.reasons[found.reason] += 1
        passed = tuple(dict.fromkeys(name for row in found.rows for name in passed_times(row, at)))
        if passed:
            tally.passed += 1
            found = Start(found.imei, found.from_step, found.rows, found.reason, passed)
        yield found
