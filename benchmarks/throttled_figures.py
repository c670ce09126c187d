"""The throttled measurements' records and the figures drawn from arrival times: the share of
the limit used, how fast the admitted rate follows a change of the limit (replayed from the
arrivals as the server's sliding-second throttle admits them). Pure: no processes, no I/O.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.procs import Measured

__all__ = [
    "FOLLOW_TARGET_S",
    "THROTTLED_TARGET_PCT",
    "TOLERANCE",
    "USED_TARGET_PCT",
    "Follow",
    "LimitChange",
    "StatusCalls",
    "ThrottledRun",
    "admitted_per_s",
    "follow_times",
    "per_second",
    "replay_admissions",
    "span",
]

USED_TARGET_PCT = 95.0  # of R, at least
THROTTLED_TARGET_PCT = 2.0  # of requests, at most
FOLLOW_TARGET_S = 5.0  # after a change of the limit, at most
TOLERANCE = 0.10  # "back at the limit": the admitted rate within 10% of it


@dataclass(frozen=True, slots=True)
class StatusCalls:
    """``dispatcher status`` of one run's ledger: OneNET's history and detail calls."""

    devices: int
    history: int
    detail: int
    run: Measured

    @property
    def per_device(self) -> float:
        """History + detail calls per device."""
        return (self.history + self.detail) / self.devices if self.devices else 0.0


@dataclass(frozen=True, slots=True)
class ThrottledRun:
    """One client over ``n`` commands against an emulator admitting ``limit`` per second."""

    client: str  # "dispatcher" or "cubic"
    limit: float  # R
    rate: float  # the configured rate (0: unlimited)
    mode: str  # errno7 or http429
    n: int
    run: Measured
    span_s: float  # first arrival to last
    posts: int
    throttled: int
    accepted: int  # by the emulator
    duplicates: int
    client_accepted: int  # by the ledger, or by the client's own count
    failed: int  # commands not accepted, by the same
    admitted_per_s: tuple[int, ...] = ()  # admissions in each second from the first arrival
    status: StatusCalls | None = None

    @property
    def used_pct(self) -> float:
        """Accepted commands over what R admits in the span, in percent."""
        return self.accepted / (self.limit * self.span_s) * 100 if self.span_s > 0 else 0.0

    @property
    def throttled_pct(self) -> float:
        """Throttled POSTs over all POSTs, in percent."""
        return self.throttled / self.posts * 100 if self.posts else 0.0

    @property
    def consistent(self) -> bool:
        """No duplicates, and the client's count of accepted commands is the emulator's."""
        return (
            self.duplicates == 0
            and self.accepted == self.client_accepted
            and self.client_accepted + self.failed == self.n
        )

    def misses(self) -> list[str]:
        """The targets missed, each with by how much."""
        found = []
        if self.used_pct < USED_TARGET_PCT:
            found.append(f"used {USED_TARGET_PCT - self.used_pct:.1f} pts short")
        if self.throttled_pct > THROTTLED_TARGET_PCT:
            found.append(f"throttled {self.throttled_pct - THROTTLED_TARGET_PCT:.1f} pts over")
        if self.failed:
            found.append(f"{self.failed:,} failed")
        return found


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One change of the server's limit, and how the admitted rate followed it."""

    at_s: float  # after the first arrival
    before: float | None  # None: the start of the run
    after: float
    first_s: int | None  # the end of the first second admitting within 10% of ``after``
    settled_s: int | None  # of the first second from which every one did (None: not so)
    per_s: tuple[int, ...]  # admissions in each whole second after the change

    @property
    def met(self) -> bool:
        """Settled within the target."""
        return self.settled_s is not None and self.settled_s <= FOLLOW_TARGET_S


@dataclass(frozen=True, slots=True)
class Follow:
    """The dispatcher at ``rate`` while the server's limit changes at runtime."""

    n: int
    rate: float
    limit: float
    step_s: float
    mode: str
    run: Measured
    changes: tuple[LimitChange, ...]
    span_s: float
    posts: int
    throttled: int
    accepted: int
    duplicates: int
    replayed: int  # admissions found by replaying the throttle: should be ``accepted``
    failed: int
    admitted_per_s: tuple[int, ...]  # admissions in each second from the first arrival
    arrived_per_s: tuple[int, ...]  # POSTs in each second from the first arrival

    @property
    def throttled_pct(self) -> float:
        """Throttled POSTs over all POSTs, in percent."""
        return self.throttled / self.posts * 100 if self.posts else 0.0

    @property
    def consistent(self) -> bool:
        """No duplicates; every command accepted or failed; each change was applied."""
        return (
            self.duplicates == 0
            and self.accepted + self.failed == self.n
            and len(self.changes) == 3
        )


def replay_admissions(
    arrivals: Sequence[float], limits: Sequence[tuple[float, float]]
) -> list[float]:
    """Which arrivals the emulator admitted, by its throttle's rule (state.Throttle: at most
    floor(rps) admitted in any sliding second; below 1/s, one per 1/rps seconds) replayed over
    the arrival times. ``limits``: (from when, rps), in order; the first holds from the start."""
    admitted: list[float] = []
    window: deque[float] = deque()
    i = 0
    for t in sorted(arrivals):
        while i + 1 < len(limits) and limits[i + 1][0] <= t:
            i += 1
        rps = limits[i][1]
        cap, span = (math.floor(rps), 1.0) if rps >= 1 else (1, 1.0 / rps)
        while window and window[0] <= t - span:
            window.popleft()
        if len(window) < cap:
            window.append(t)
            admitted.append(t)
    return admitted


def follow_times(
    admitted: Sequence[float],
    change_at: float,
    limit: float,
    seconds: int,
    *,
    tolerance: float = TOLERANCE,
) -> tuple[int | None, int | None, tuple[int, ...]]:
    """How the admitted rate followed a change of the limit, in whole seconds from the change.

    Counts the admissions in each second [change_at + k, change_at + k + 1) for the ``seconds``
    after it. Returns (first, settled, counts): the end of the first second whose count is within
    ``tolerance`` of ``limit``; the end of the first second from which every count is (None
    where none is, or the last is not); and the counts. ``admitted`` must be sorted."""
    counts = tuple(
        bisect.bisect_left(admitted, change_at + k + 1)
        - bisect.bisect_left(admitted, change_at + k)
        for k in range(max(0, seconds))
    )
    good = [abs(count - limit) <= tolerance * limit for count in counts]
    first = next((k + 1 for k, ok in enumerate(good) if ok), None)
    settled = None
    for k in range(len(good) - 1, -1, -1):
        if not good[k]:
            break
        settled = k + 1
    return first, settled, counts


def per_second(times: Sequence[float], start: float) -> tuple[int, ...]:
    """How many of ``times`` fall in each second [start + k, start + k + 1)."""
    counts: list[int] = []
    for t in times:
        k = math.floor(t - start)
        if k < 0:
            continue
        counts.extend([0] * (k + 1 - len(counts)))
        counts[k] += 1
    return tuple(counts)


def admitted_per_s(arrivals: Sequence[float], limit: float) -> tuple[int, ...]:
    """The arrivals a sliding-second throttle at ``limit`` admits, per second."""
    times = sorted(arrivals)
    return per_second(replay_admissions(times, [(-math.inf, limit)]), times[0]) if times else ()


def span(arrivals: Sequence[float]) -> float:
    """From the first arrival to the last, in seconds."""
    return max(arrivals) - min(arrivals) if arrivals else 0.0
