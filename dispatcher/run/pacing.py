"""Pacing: the strict rate limiter (``Pace``); the adaptive pace over it is finder.py's.

``Pace`` lets at most ``floor(rate)`` requests start in any sliding 1-second window, evenly
spaced, with no initial burst. It schedules each start from the theoretical arrival time of the
previous one, as GCRA does (the Generic Cell Rate Algorithm, ITU-T I.371, with burst tolerance 0),
so late wake-ups do not add up to drift; and it keeps the recent start times, so that late wake-ups
cannot squeeze more than ``floor(rate)`` starts into one window either.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["WINDOW_SLACK_S", "Clock", "Pace"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_WINDOW = 1.0  # seconds: the sliding window the rate is promised over
# The window is checked this much wider: a granted request reaches the wire a little later when it
# has to open its connection first, or when the loop is busy (several lanes at once), and then
# arrives closer to the next one than its slot was. Costs at most 1% of the rate.
WINDOW_SLACK_S = 0.010
_LOG = 256  # start times kept at least, for the window check and the observed rate
_SLICE = 0.5  # longest single sleep, so rate raises and holds are noticed while waiting
_EPSILON = 1e-9  # a wake-up this close to its time is on time (sleep may end a clock tick early)


class Pace:
    """Strict limiter: at most floor(rate) starts in any sliding 1-second window, evenly spaced."""

    def __init__(
        self, rate: float | None, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()  # FIFO: waiters are served in arrival order
        self._starts: deque[float] = deque(maxlen=_LOG)
        self._started = 0
        self._base = -math.inf  # the theoretical time of the latest start (GCRA's TAT - interval)
        self._hold = 0.0  # nobody starts before this (0.0: no hold)
        self._gate = 0.0  # nor before this: a gate that may be lifted early (0.0: open)
        self._rate: float | None = None
        self._interval = 0.0  # 0.0: unlimited
        self._cap = 0  # starts allowed per window (0: unlimited)
        self._free = True  # unlimited and no hold: acquire() returns at once
        self.waited_at = -math.inf  # when a start last had to wait for its turn (busy: run/share)
        self.set_rate(rate)

    @property
    def rate(self) -> float | None:
        """The rate in requests per second (None: unlimited)."""
        return self._rate

    @property
    def started(self) -> int:
        """How many starts have been granted so far."""
        return self._started

    @property
    def clock(self) -> Clock:
        """The clock this limiter reads."""
        return self._clock

    def set_rate(self, rate: float | None) -> None:
        """Change the rate; it applies to the next start (None: unlimited)."""
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number or None, not {rate!r}")
        self._rate = rate
        if rate is None:
            self._interval, self._cap = 0.0, 0
        else:
            # Spaced at 1/floor(rate): a fractional rate cannot be evenly spaced *and* keep
            # floor(rate) per window, so the fraction is dropped (below 1/s, spaced at 1/rate).
            self._cap = max(1, math.floor(rate))
            self._interval = 1.0 / self._cap if rate >= 1 else 1.0 / rate
            if self._cap > (self._starts.maxlen or 0):
                self._starts = deque(self._starts, maxlen=self._cap)
        self._free = self._interval == 0.0 and self._hold == 0.0 and self._gate == 0.0

    def hold_until(self, when: float) -> None:
        """Let nobody start before ``when`` (on this limiter's clock); a later hold wins."""
        if when > self._hold:
            self._hold = when
            self._free = False

    def gate_until(self, when: float) -> None:
        """Let nobody start before ``when``, until the gate is moved again: unlike a hold, a
        later call may lift it early (0.0: open now). A lane's share of 0 (run/share.py)."""
        self._gate = when
        self._free = self._interval == 0.0 and self._hold == 0.0 and when == 0.0

    def observed_rate(self) -> float | None:
        """Starts per second over the last second (or over the recent log); None before any."""
        starts = self._starts
        n = len(starts)
        if not n:
            return None
        now = self._clock()
        horizon = now - _WINDOW
        count = 0
        for t in reversed(starts):
            if t <= horizon:
                break
            count += 1
        if count == n:  # every start logged is from the last second: over their own span
            return n / max(now - starts[0], 0.1)
        if count >= 2:
            return float(count)
        return n / max(now - starts[0], _WINDOW)  # quiet lately: the average over the log

    async def acquire(self) -> None:
        """Return when this request may start (FIFO among concurrent callers)."""
        if self._free:
            self._started += 1
            self._starts.append(self._clock())
            return
        async with self._lock:
            while True:
                now = self._clock()
                due = self._due(now)
                if due - now <= _EPSILON:
                    break
                self.waited_at = now
                await self._sleep(min(due - now, _SLICE))
            self._grant(now)

    async def acquire_for(
        self,
        ready: Callable[[float], Awaitable[None]] | None = None,
        *,
        abandon: Callable[[], bool] | None = None,
    ) -> bool:
        """Like :meth:`acquire`, for a request that must be prepared for its moment of sending.

        At the head of the queue (nobody before it), ``ready(seconds_until_start)`` is awaited
        before the wait for the start, and again whenever the start moves (a hold): so a request
        can fix its times for the moment it will really leave. ``abandon()`` is asked before each
        slice of waiting: when it says True, nothing is granted and False is returned (a stop does
        not wait out a long hold). An exception from ``ready`` goes up, granting nothing.
        """
        if self._free:
            if abandon is not None and abandon():
                return False
            if ready is not None:
                await ready(0.0)
            self._started += 1
            self._starts.append(self._clock())
            return True
        async with self._lock:
            prepared_for: float | None = None
            while True:
                if abandon is not None and abandon():
                    return False
                now = self._clock()
                due = self._due(now)
                if ready is not None and due != prepared_for:
                    await ready(max(due - now, 0.0))
                    prepared_for = due
                    continue  # preparing took time: look again
                if due - now <= _EPSILON:
                    break
                self.waited_at = now
                await self._sleep(min(due - now, _SLICE))
            self._grant(now)
        return True

    def _due(self, now: float) -> float:
        """The earliest time the next start may happen, given the hold, schedule and window."""
        due = self._hold
        if due and now >= due:
            self._hold = due = 0.0
            self._free = self._interval == 0.0 and self._gate == 0.0
        if self._gate:
            due = max(due, self._gate)
        if self._interval:
            due = max(due, self._base + self._interval)
            starts, cap = self._starts, self._cap
            if len(starts) >= cap:
                due = max(due, starts[-cap] + _WINDOW + WINDOW_SLACK_S)
        return due

    def _grant(self, now: float) -> None:
        interval = self._interval
        if interval:
            scheduled = self._base + interval
            # On schedule, or late by less than one interval: keep the theoretical time (no drift).
            # Later than that (idle, or held): start a fresh schedule from now (no catch-up burst).
            self._base = scheduled if 0.0 <= now - scheduled < interval else now
        self._started += 1
        self._starts.append(now)
