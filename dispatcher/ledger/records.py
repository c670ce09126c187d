"""The ledger's records: a command's status, its row, and what is written about it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dispatcher.errors import LedgerError

__all__ = [
    "FINAL",
    "NOT_FINAL_SEND",
    "TO_SEND",
    "Delivery",
    "InFlight",
    "LedgerFullError",
    "LedgerStats",
    "Result",
    "Retired",
    "Row",
    "RunInfo",
    "Status",
]


class LedgerFullError(LedgerError):
    """A write found the disk (or the ledger file's size limit) full; nothing of it was kept."""


class Status(StrEnum):
    """Where a command stands."""

    PENDING = "pending"  # not sent yet
    IN_FLIGHT = "in_flight"  # its request may be on the wire
    ACCEPTED = "accepted"  # OneNET holds it (uuid)
    REJECTED = "rejected"  # OneNET refused it (errno)
    FAILED = "failed"  # transient trouble outlasted the retries; safe to send again
    IN_DOUBT = "in_doubt"  # the answer was lost: settle against OneNET's history before resending
    EXPIRED = "expired"  # its expired_time passed before it could be sent: never sent


class Retired(StrEnum):
    """Why a row is no longer part of the job (an active row has none)."""

    REMOVED = "removed"  # the job file no longer lists it
    CHANGED = "changed"  # replaced by an edited version under its key; the row kept as it was


FINAL: Final = frozenset({Status.ACCEPTED, Status.REJECTED, Status.EXPIRED})
TO_SEND: Final = frozenset({Status.PENDING, Status.FAILED})
NOT_FINAL_SEND: Final = (1, 3)  # OneNET's send_status that can still change: waiting, sent


@dataclass(frozen=True, slots=True)
class Row:
    """One command as the ledger holds it (for reconcile, report and export)."""

    seq: int
    key: str
    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    args: str | None
    valid_time: str | None  # as written in the job (TimeSpec.text)
    expired_time: str
    retry: int
    timeout: int
    trigger_msg: int
    source: str
    line: int
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
