"""What a run shares with its caller: the stop request, the live counters, the result."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dispatcher.errors import RunAborted
from dispatcher.ledger.store import Status

__all__ = ["RunResult", "RunStats", "Stop", "first_of"]


async def first_of(*waits: Awaitable[object]) -> None:
    """Return when the first of ``waits`` is done; the others are cancelled (and awaited)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Stop:
    """A request to end a run, with a reason: graceful first, immediate if asked again."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.requested = False
        """True once any stop was asked for (a plain flag: read for every command sent)."""
        self._requested = asyncio.Event()
        self._immediate = asyncio.Event()
        self._children: list[Stop] = []

    def request(self, reason: str, *, immediate: bool = False) -> None:
        """Stop taking new commands; with ``immediate``, also abandon the in-flight ones."""
        if self.reason is None:
            self.reason = reason
        self.requested = True
        self._requested.set()
        if immediate:
            self._immediate.set()
        for child in self._children:
            child.request(reason, immediate=immediate)

    def child(self) -> Stop:
        """A stop of one part (a lane): requested whenever this one is, and on its own too."""
        child = Stop()
        self._children.append(child)
        if self.requested:
            child.request(self.reason or "stopped", immediate=self.immediate)
        return child

    def taking(self) -> bool:
        """Whether new work may start: no stop was asked for."""
        return not self.requested

    @property
    def immediate(self) -> bool:
        """True once an immediate stop was asked for."""
        return self._immediate.is_set()

    async def wait(self) -> None:
        """Return when a stop is requested."""
        await self._requested.wait()

    async def wait_immediate(self) -> None:
        """Return when an immediate stop is requested."""
        await self._immediate.wait()

    def sleeper(
        self, sleep: Callable[[float], Awaitable[None]]
    ) -> Callable[[float], Awaitable[None]]:
        """``sleep`` that wakes early when a stop is requested (a backoff, a poll interval)."""

        async def nap(seconds: float) -> None:
            if self.requested or seconds <= 0:
                return
            await first_of(sleep(seconds), self.wait())

        return nap


_DONE = (
    Status.ACCEPTED,
    Status.REJECTED,
    Status.FAILED,
    Status.IN_DOUBT,
    Status.EXPIRED,
    Status.RETRIED,
)
_COUNTERS = {
    Status.ACCEPTED: "accepted",
    Status.REJECTED: "rejected",
    Status.FAILED: "failed",
    Status.IN_DOUBT: "in_doubt",
    Status.EXPIRED: "expired",
}


@dataclass(slots=True)
class RunStats:
    """Live counters of a run (read by the progress display; written only by the runner).

    ``ledger`` mirrors the ledger's count of the job's commands in each status, from every run
    (read once at the start, then kept by the runner as outcomes are written), so progress shows
    the whole job from the first second; commands not yet registered count as pending. The other
    counters are this run's.
    """

    total: int = 0  # commands in the job file
    ledger: dict[Status, int] = field(default_factory=dict)
    skipped: int = 0  # already final in the ledger from an earlier run
    accepted: int = 0  # accepted by this run (found by reconciling included)
    rejected: int = 0
    failed: int = 0
    in_doubt: int = 0
    expired: int = 0  # expired_time passed before the command could be sent
    requests: int = 0  # HTTP attempts (sends, look-ups and the clock probe)
    throttled: int = 0
    reconciled: int = 0  # in-doubt commands found in OneNET's history (also in ``accepted``)
    clock_offset: float | None = None  # OneNET's clock minus ours, once read
    done_at_start: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def start(self, counts: dict[Status, int]) -> None:
        """Begin from the ledger's counts."""
        self.ledger = {s: n for s, n in counts.items() if s is not Status.PENDING}
        self.done_at_start = self.done

    def move(self, old: Status | None, new: Status) -> None:
        """One command of the job went from ``old`` to ``new`` (None: not registered before)."""
        if old is new:
            return
        if old is not None and old is not Status.PENDING:
            self.ledger[old] = self.ledger.get(old, 0) - 1
        if new is not Status.PENDING:
            self.ledger[new] = self.ledger.get(new, 0) + 1

    def count(self, status: Status, n: int = 1) -> None:
        """Add ``n`` to this run's counter of ``status`` (statuses without one are ignored)."""
        name = _COUNTERS.get(status)
        if name is not None:
            setattr(self, name, getattr(self, name) + n)

    @property
    def done(self) -> int:
        """Commands of the job with an outcome, from every run."""
        ledger = self.ledger
        return sum(ledger.get(s, 0) for s in _DONE)

    @property
    def pending(self) -> int:
        """Commands of the job not sent yet (registered or not)."""
        return max(self.total - sum(self.ledger.values()), 0)


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run ended with: the ledger's counts, the job's total and why it stopped, if it did."""

    run_id: int
    counts: dict[Status, int]
    stats: RunStats
    stop_reason: str | None = None
    aborted: RunAborted | None = None
    total: int = 0  # commands in the job (0: unknown)
    paused: str | None = None  # a rollout stopped here on purpose (a good canary, then: pause)
    # With several products: each lane's stop, by product (None: it finished), when any stopped.
    lanes: dict[str, str | None] = field(default_factory=dict)
    handed: int = 0  # rejected or expired here, and handed to a retry job (ledger.handed_over)

    @property
    def unregistered(self) -> int:
        """Commands of the job the ledger has not registered yet."""
        return max(self.total - sum(self.counts.values()), 0)

    @property
    def complete(self) -> bool:
        """Every command of the job was accepted."""
        others = sum(n for s, n in self.counts.items() if s is not Status.ACCEPTED)
        return others == 0 and self.unregistered == 0
