"""What became of the accepted commands: counts by delivery state, per command and per device.

A device counts under one state: its least happy command's. A device with a failed command is
failed, one with an expired command (and none failed) expired, and so on down to delivered, which
a device is only when every accepted command of it was delivered (docs/onenet-api.md,
``send_status``). Counting devices, not commands or attempts, is what the status and report
breakdowns show. Each figure is one SQL pass over the job's (active) rows, with a small page cache.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.schema import ACTIVE, small_cache

__all__ = ["DEVICE_ORDER", "DeliveryBreakdown", "breakdown"]

# Least happy first: a device counts under the first state one of its commands is in.
DEVICE_ORDER: Final = (
    DeliveryState.FAILED,
    DeliveryState.EXPIRED,
    DeliveryState.CANCELLED,
    DeliveryState.UNREAD,
    DeliveryState.WAITING,
    DeliveryState.SENT,
    DeliveryState.DELIVERED,
)
_RANK: Final = (
    "CASE WHEN send_status IS NULL THEN 3 WHEN send_status = 1 THEN 4 WHEN send_status = 2"
    " THEN 2 WHEN send_status = 3 THEN 5 WHEN send_status = 4 THEN 1 WHEN send_status = 5"
    " THEN 6 ELSE 0 END"
)
_HELD: Final = f"{ACTIVE} AND status = 'accepted' AND uuid IS NOT NULL"
_BY_COMMAND: Final = f"SELECT {_RANK} AS r, COUNT(*) FROM commands WHERE {_HELD} GROUP BY r"
_BY_DEVICE: Final = (
    f"SELECT r, COUNT(*) FROM (SELECT MIN({_RANK}) AS r FROM commands WHERE {_HELD}"
    " GROUP BY imei) GROUP BY r"
)
_NOT_HELD: Final = (
    "SELECT COUNT(*), COUNT(DISTINCT imei) FROM commands"
    f" WHERE {ACTIVE} AND NOT (status = 'accepted' AND uuid IS NOT NULL)"
)
# Expired (rank 1) and failed (0) deliveries a retry job took over: no problem of this job's.
_HANDED: Final = (
    f"SELECT COUNT(*) FROM commands WHERE {_HELD} AND retried_in IS NOT NULL AND {_RANK} <= 1"
)
_CONFIRMS: Final = (
    f"SELECT confirm_status, COUNT(*) FROM commands WHERE {_HELD} AND confirm_status IS NOT NULL"
    " GROUP BY confirm_status ORDER BY COUNT(*) DESC, confirm_status"
)


@dataclass(frozen=True, slots=True)
class DeliveryBreakdown:
    """Accepted commands and their devices by delivery state (every state present), the job's
    commands OneNET does not hold (rejected, failed, in doubt, expired unsent, not sent yet) with
    their devices, and the devices' answers (confirm_status, most common first)."""

    commands: dict[DeliveryState, int]
    devices: dict[DeliveryState, int]
    not_held: int
    devices_not_held: int  # devices with at least one command OneNET does not hold
    confirm_statuses: list[tuple[str, int]]
    handed: int = 0  # of the expired and failed deliveries, those handed to a retry job

    @property
    def open(self) -> int:
        """Accepted commands whose delivery may still change (unread, waiting, sent)."""
        c = self.commands
        return c[DeliveryState.UNREAD] + c[DeliveryState.WAITING] + c[DeliveryState.SENT]


def breakdown(conn: sqlite3.Connection) -> DeliveryBreakdown:
    """The delivery breakdown of the job's (active) rows."""
    commands = dict.fromkeys(DeliveryState, 0)
    devices = dict.fromkeys(DeliveryState, 0)
    with small_cache(conn):
        for rank, n in conn.execute(_BY_COMMAND):
            commands[DEVICE_ORDER[rank]] = n
        for rank, n in conn.execute(_BY_DEVICE):
            devices[DEVICE_ORDER[rank]] = n
        not_held, devices_not_held = conn.execute(_NOT_HELD).fetchone()
        confirms = [(str(name), int(n)) for name, n in conn.execute(_CONFIRMS)]
        (handed,) = conn.execute(_HANDED).fetchone()
    return DeliveryBreakdown(
        commands, devices, int(not_held), int(devices_not_held), confirms, int(handed)
    )
