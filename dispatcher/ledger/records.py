"""The ledger's records: a command's status, its row, and what is written about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dispatcher.errors import LedgerError
from dispatcher.ledger.lifecycle import Event, Status
from dispatcher.model.command import Command

__all__ = [
    "FINAL",
    "OPEN_DELIVERY",
    "SEND_STATUS",
    "TO_SEND",
    "Delivery",
    "DeliveryState",
    "InFlight",
    "LedgerFullError",
    "LedgerStats",
    "Result",
    "Retired",
    "Row",
    "RunInfo",
    "Status",
    "delivery_state",
]


class LedgerFullError(LedgerError):
    """A write found the disk (or the ledger file's size limit) full; nothing of it was kept."""


class Retired(StrEnum):
    """Why a row is no longer part of the job (an active row has none)."""

    REMOVED = "removed"  # the job file no longer lists it
    CHANGED = "changed"  # replaced by an edited version under its key; the row kept as it was


FINAL: Final = frozenset({Status.ACCEPTED, Status.REJECTED, Status.EXPIRED, Status.RETRIED})
TO_SEND: Final = frozenset({Status.PENDING, Status.FAILED, Status.SKIPPED})


class DeliveryState(StrEnum):
    """What became of an accepted command on OneNET, from its ``send_status``
    (docs/onenet-api.md, "Follow-up calls")."""

    UNREAD = "unread"  # not read yet (dispatcher status reads it)
    WAITING = "waiting"  # 1: cached, the device has not woken inside the window yet
    SENT = "sent"  # 3: sent to the device, no answer yet
    DELIVERED = "delivered"  # 5: the device ran it
    EXPIRED = "expired"  # 4: the window closed before the device woke
    FAILED = "failed"  # 6 (the device answered with an error), 7, 8 or a number not documented
    CANCELLED = "cancelled"  # 2


SEND_STATUS: Final = {
    1: DeliveryState.WAITING,
    2: DeliveryState.CANCELLED,
    3: DeliveryState.SENT,
    4: DeliveryState.EXPIRED,
    5: DeliveryState.DELIVERED,
    6: DeliveryState.FAILED,
    7: DeliveryState.FAILED,
    8: DeliveryState.FAILED,
}
# States that can still change: OneNET is asked about them again.
OPEN_DELIVERY: Final = frozenset({DeliveryState.UNREAD, DeliveryState.WAITING, DeliveryState.SENT})


def delivery_state(send_status: int | None) -> DeliveryState:
    """The state of a ``send_status`` as OneNET gave it (None: not read yet)."""
    if send_status is None:
        return DeliveryState.UNREAD
    return SEND_STATUS.get(send_status, DeliveryState.FAILED)


@dataclass(frozen=True, slots=True)
class Row:
    """One command as the ledger holds it: where (seq, key), the command, and its state."""

    seq: int
    key: str  # the row's key: its command's, or <key>~<n> for an earlier version set aside
    command: Command  # as registered (its source and line follow the job file); occurrence 0
    status: Status
    errno: int | None
    error: str
    uuid: str | None
    attempts: int
    first_attempt_at: float | None  # unix seconds
    last_attempt_at: float | None
    latency_ms: float | None
    sent_valid_time: str | None  # exactly what went on the wire
    sent_expired_time: str | None
    reconciled: bool
    first_server_at: float | None = None  # OneNET's clock at the first attempt, unix seconds
    last_server_at: float | None = None  # and at the latest
    retired: Retired | None = None  # None: part of the job
    send_status: int | None = None  # OneNET's send_status as last read (dispatcher status)
    confirm_status: str | None = None  # the device's answer, by name
    send_time: str | None = None  # as OneNET wrote them
    confirm_time: str | None = None
    cmd_result: str | None = None  # from the command's detail, once final
    status_checked_at: float | None = None  # when it was read (unix seconds)
    cancelled_at: float | None = None  # when a cancel was asked for (dispatcher cancel)
    cancel_error: str | None = None  # why OneNET refused it; None: cancelled, or never asked
    retried_in: str | None = None  # the retry job it was handed to (retry-failed)

    @property
    def delivery(self) -> DeliveryState | None:
        """Where delivery stands for an accepted command; None for one OneNET does not hold."""
        if self.status is not Status.ACCEPTED or self.uuid is None:
            return None
        return delivery_state(self.send_status)


@dataclass(frozen=True, slots=True)
class InFlight:
    """A command about to be sent: written before its request goes out."""

    key: str
    at: float  # unix seconds
    sent_valid_time: str | None
    sent_expired_time: str
    run_id: int
    server_at: float | None = None  # OneNET's clock at this attempt (unix seconds), if known


@dataclass(frozen=True, slots=True)
class Result:
    """A command's outcome. ``attempts`` (HTTP attempts made for it) adds to the row's count."""

    key: str
    status: Status
    errno: int | None
    error: str
    uuid: str | None
    attempts: int
    at: float  # when the outcome came; the last attempt time when attempts > 0
    latency_ms: float | None
    reconciled: bool = False
    event: Event | None = None  # None: the event of its status (lifecycle.event_of)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What OneNET's history says became of one accepted command (docs/onenet-api.md)."""

    key: str
    send_status: int | None
    confirm_status: str | None
    send_time: str | None
    confirm_time: str | None
    cmd_result: str | None
    checked_at: float  # unix seconds


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of the runs table."""

    id: int
    job_path: str
    started_at: float
    finished_at: float | None
    settings: dict[str, Any]
    summary: dict[str, Any] | None
    stop_reason: str | None


@dataclass(frozen=True, slots=True)
class LedgerStats:
    """Figures over the active rows (retired ones excluded), computed in one pass by SQLite."""

    total: int
    with_outcome: int  # accepted, rejected, failed or in doubt
    first_at: float | None
    last_at: float | None
    attempts: int
    retries: int  # attempts beyond the first, over attempted commands
    reconciled: int
    latencies: int  # commands with a latency
