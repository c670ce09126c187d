"""OneNET's clock, as read from the ``Date`` headers of its answers (``ServerClock``), and an
offset between two clocks said for people.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from dispatcher.times import BEIJING

__all__ = ["ServerClock", "describe_offset"]


class ServerClock:
    """OneNET's clock as seen from here: the local clock plus an offset read off its answers.

    OneNET checks ``valid_time`` against its own clock and keeps its history in it, so relative
    times and history searches must use it. An answer's ``Date`` header (RFC 9110 5.6.7) shows
    the server's time truncated to the second, D: the answer was made at a server time in
    [D, D + 1), and at a local time between the request's leaving and the answer's arrival, so the
    offset lies in [D - received, D + 1 - sent]. The offset kept is the middle of the intersection
    of the recent intervals. The tight ones come from the answers made just after and just before
    a second changes: the first and the last answer showing each Date, which are the only ones
    taken (the others are one comparison each). Intervals that do not meet (OneNET's clock was
    stepped) start the intersection again from the newest.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, keep: int = 16) -> None:
        self._clock = clock
        self._bounds: deque[tuple[float, float]] = deque(maxlen=keep)
        self._date: float | None = None
        self._last: tuple[float, float] | None = None  # the latest answer showing that Date
        self.offset = 0.0
        """OneNET's clock minus the local one, in seconds (0.0 until an answer is seen)."""

    @property
    def known(self) -> bool:
        """True once a Date header has been read."""
        return self._date is not None

    def local(self) -> float:
        """The local clock (unix seconds)."""
        return self._clock()

    def now(self) -> float:
        """OneNET's now, in unix seconds."""
        return self._clock() + self.offset

    def now_beijing(self) -> datetime:
        """OneNET's now as an aware UTC+8 datetime, to the second."""
        return datetime.fromtimestamp(int(self.now()), BEIJING)

    def observe(self, server_date: float, sent_at: float, received_at: float) -> None:
        """Take an answer's Date (unix seconds), its request having left at ``sent_at`` and the
        answer arrived at ``received_at`` (local clock)."""
        if server_date == self._date:
            self._last = (sent_at, received_at)
            return
        if self._date is not None and self._last is not None:
            sent, received = self._last  # made just before the second changed
            self._add(self._date - received, self._date + 1.0 - sent)
        self._date, self._last = server_date, None
        self._add(server_date - received_at, server_date + 1.0 - sent_at)

    def _add(self, low: float, high: float) -> None:
        bounds = self._bounds
        bounds.append((low, high))
        lo = max(b[0] for b in bounds)
        hi = min(b[1] for b in bounds)
        if lo > hi:  # they do not meet: the clock moved; start again from this one
            bounds.clear()
            bounds.append((low, high))
            lo, hi = low, high
        self.offset = (lo + hi) / 2


def describe_offset(seconds: float) -> str:
    """An offset for people: '6m02s ahead', '4.1s behind'."""
    size = abs(seconds)
    way = "ahead of" if seconds > 0 else "behind"
    whole = round(size)
    if size < 60:
        text = f"{size:.1f}s"
    elif whole < 3600:
        text = f"{whole // 60}m{whole % 60:02d}s"
    else:
        text = f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{text} {way}"
