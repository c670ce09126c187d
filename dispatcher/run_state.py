"""What a run shares with its caller: the stop request, the live counters, the result."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from dispatcher.errors import RunAborted
from dispatcher.ledger import Status

__all__ = ["RunResult", "RunStats", "Stop"]


class Stop:
    """A request to end a run, with a reason: graceful first, immediate if asked again."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._requested = asyncio.Event()
        self._immediate = asyncio.Event()

    def request(self, reason: str, *, immediate: bool = False) -> None:
        """Stop taking new commands; with ``immediate``, also abandon the in-flight ones."""
        if self.reason is None:
            self.reason = reason
        self._requested.set()
        if immediate:
            self._immediate.set()

    @property
    def requested(self) -> bool:
        """True once any stop was asked for."""
        return self._requested.is_set()

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


@dataclass(slots=True)
class RunStats:
    """Live counters of a run (read by the progress display; written only by the runner)."""

    total: int = 0  # commands in the job file
    skipped: int = 0  # already final in the ledger from an earlier run
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    in_doubt: int = 0
    requests: int = 0  # HTTP attempts
    throttled: int = 0
    reconciled: int = 0  # in-doubt commands found in OneNET's history
    started_at: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> int:
        """Commands with an outcome in this run, plus those skipped."""
        return self.skipped + self.accepted + self.rejected + self.failed + self.in_doubt


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run ended with: the ledger's counts and why it stopped, if it did."""

    run_id: int
    counts: dict[Status, int]
    stats: RunStats
    stop_reason: str | None = None
    aborted: RunAborted | None = None

    @property
    def complete(self) -> bool:
        """Every command of the ledger was accepted."""
        return sum(n for s, n in self.counts.items() if s is not Status.ACCEPTED) == 0
