"""How fresh the delivery states are: when ``dispatcher status`` last read them, in words.

Each accepted command keeps when its state was last read (``status_checked_at``). The page says
"as of" the latest read, and how long ago, so a "waiting" read yesterday does not look current;
when a still-open state (waiting, sent) was read well before that (a status round cut short, or
one product read apart), the oldest of them is said too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from dispatcher.ledger.records import OPEN_DELIVERY, Row
from dispatcher.times import BEIJING

__all__ = ["Freshness", "ReadTimes", "ago", "as_of"]

NEVER: Final = "never read"
STALE_GAP: Final = 600.0  # seconds between the latest read and an open one's to mention it


def ago(seconds: float) -> str:
    """A span back from now in the largest whole unit: "just now", "5 min ago", "3 h ago"."""
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{int(seconds // size):,} {unit} ago"
    return f"{int(seconds // 60)} min ago"


def as_of(at: float | None, now: float) -> str:
    """``at`` (unix seconds) as "as of 2026-12-06 14:03 (UTC+8), 3 h ago"; "never read"."""
    if at is None:
        return NEVER
    stamp = datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M")
    return f"as of {stamp} (UTC+8), {ago(max(0.0, now - at))}"


@dataclass(frozen=True, slots=True)
class Freshness:
    """When the delivery states were read: the latest read, and the oldest open one when it is
    well before it (else None)."""

    latest: float | None  # None: never read
    oldest_open: float | None

    def lines(self, now: float) -> tuple[str, str | None]:
        """The "as of" text, and the oldest open state's (or None)."""
        oldest = None if self.oldest_open is None else as_of(self.oldest_open, now)
        return as_of(self.latest, now), oldest


class ReadTimes:
    """The read times of accepted rows given one by one (flat memory)."""

    __slots__ = ("_latest", "_oldest_open")

    def __init__(self) -> None:
        self._latest: float | None = None
        self._oldest_open: float | None = None

    def add(self, row: Row) -> None:
        """Take one row's read time (rows OneNET does not hold, or never read, add nothing)."""
        at = row.status_checked_at
        delivery = row.delivery
        if at is None or delivery is None:
            return
        if self._latest is None or at > self._latest:
            self._latest = at
        if delivery in OPEN_DELIVERY and (self._oldest_open is None or at < self._oldest_open):
            self._oldest_open = at

    def finish(self) -> Freshness:
        """The read times of every row taken."""
        oldest = self._oldest_open
        if oldest is not None and self._latest is not None and self._latest - oldest < STALE_GAP:
            oldest = None
        return Freshness(self._latest, oldest)
