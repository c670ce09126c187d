"""Which commands of a ledger's job did not get through, and why: what a retry job is made of.

Sent again: commands OneNET ``rejected``, those that ``failed`` (transient trouble outlasted the
retries), that ``expired`` before they could be sent, that were never sent (``pending``: left by a
stop or a breaker), and accepted ones whose delivery expired (send_status 4: the device never woke
inside the window) or failed (6, 7, 8: failed on the device). Left out: cancelled, delivered and
still open deliveries, retired rows, and the commands ``in_doubt`` or ``in_flight``, which may
exist at OneNET: sending them again could run them twice (the original job's next run settles
them against OneNET's history first). They are counted, to be pointed out. So are the commands
an earlier retry job took over (``retried_in``): that job's own ledger says what became of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final

from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import LedgerStore, Row, Status
from dispatcher.times import start_of

__all__ = [
    "UNSETTLED",
    "Reason",
    "Retry",
    "RetryTally",
    "passed_times",
    "reason_of",
    "retries",
    "told",
]


class Reason(StrEnum):
    """Why a command is sent again."""

    REJECTED = "rejected"  # OneNET refused it
    FAILED = "failed"  # transient trouble on every attempt
    EXPIRED = "expired"  # its window passed before it could be sent
    NOT_SENT = "not sent"  # pending: a stop or a breaker came first
    SKIPPED = "skipped"  # a rollout rule stopped the run before it was sent
    DELIVERY_EXPIRED = "delivery expired"  # accepted; the device never woke in the window
    DELIVERY_FAILED = "delivery failed"  # accepted; it failed on the device


UNSETTLED: Final = (Status.IN_DOUBT, Status.IN_FLIGHT)
"""Statuses of commands that may be at OneNET: never sent again before they are settled."""
_BY_STATUS: Final = {
    Status.REJECTED: Reason.REJECTED,
    Status.FAILED: Reason.FAILED,
    Status.EXPIRED: Reason.EXPIRED,
    Status.PENDING: Reason.NOT_SENT,
    Status.SKIPPED: Reason.SKIPPED,
}
_HANDED_BEFORE: Final = Reason.NOT_SENT  # retried: handed to the same file before, never sent
_BY_DELIVERY: Final = {
    DeliveryState.EXPIRED: Reason.DELIVERY_EXPIRED,
    DeliveryState.FAILED: Reason.DELIVERY_FAILED,
}


_TELLS: Final = {  # the row's field that says more of a reason
    Reason.REJECTED: "errno",
    Reason.FAILED: "errno",
    Reason.DELIVERY_EXPIRED: "send_status",
    Reason.DELIVERY_FAILED: "send_status",
}


def told(reason: Reason, row: Row) -> str:
    """The reason as a retry job's note says it, with the errno or send_status that tells it
    ("delivery failed (send_status 6)")."""
    field = _TELLS.get(reason)
    value = None if field is None else getattr(row, field)
    return reason.value if value is None else f"{reason.value} ({field} {value})"


@dataclass(frozen=True, slots=True)
class Retry:
    """A command to send again: its row, why, and which of its absolute times have passed."""

    row: Row
    reason: Reason
    passed: tuple[str, ...] = ()  # "valid_time", "expired_time": validate refuses them as they are


@dataclass(slots=True)
class RetryTally:
    """What ``retries`` went past, counted as it goes (complete once it is exhausted)."""

    rows: int = 0  # the job's (active) rows read
    reasons: dict[Reason, int] = field(default_factory=lambda: dict.fromkeys(Reason, 0))
    unsettled: dict[Status, int] = field(default_factory=lambda: dict.fromkeys(UNSETTLED, 0))
    passed: int = 0  # commands to send again with an absolute time that has passed
    handed: dict[str, int] = field(default_factory=dict)  # already in a retry job: by its path

    @property
    def total(self) -> int:
        """How many commands are to be sent again."""
        return sum(self.reasons.values())


def reason_of(row: Row) -> Reason | None:
    """Why ``row`` should be sent again, or None when it got through, may yet, or may be at
    OneNET already."""
    if row.retired is not None:
        return None
    delivery = row.delivery
    if delivery is not None:
        return _BY_DELIVERY.get(delivery)
    return _BY_STATUS.get(row.status)


def passed_times(row: Row, now: datetime) -> tuple[str, ...]:
    """The fields of ``row`` holding an absolute time at or before ``now`` (relative ones never)."""
    found = []
    c = row.command
    for name, spec in (("valid_time", c.valid_time), ("expired_time", c.expired_time)):
        if spec is not None and spec.at is not None and spec.at <= now:
            found.append(name)
    return tuple(found)


def retries(
    ledger: LedgerStore, tally: RetryTally, *, now: datetime | None = None, into: str | None = None
) -> Iterator[Retry]:
    """The job's commands to send again, in job order, streamed; ``tally`` counts as they go.

    ``now``: the moment absolute times are checked against (None: now; naive: UTC+8).
    ``into``: the retry job being written; the commands handed to it before go into it again.
    """
    at = start_of(now)
    for row in ledger.rows(retired=None if into is not None else False):
        again = row.retried_in is not None and row.retried_in == into
        if row.retired is not None and not again:
            continue  # a retired row stays out, unless this very file already holds it
        tally.rows += row.retired is None
        if row.retried_in is not None and not again:  # a retry job sends it: never a second one
            tally.handed[row.retried_in] = tally.handed.get(row.retried_in, 0) + 1
            continue
        reason = (
            _HANDED_BEFORE
            if again and (row.status is Status.RETRIED or row.retired is not None)
            else reason_of(row)
        )
        if reason is None:
            if row.status in tally.unsettled:
                tally.unsettled[row.status] += 1
            continue
        tally.reasons[reason] += 1
        passed = passed_times(row, at)
        if passed:
            tally.passed += 1
        yield Retry(row, reason, passed)
