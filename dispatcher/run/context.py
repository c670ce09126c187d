"""RunContext: what every phase of one lane's run shares, passed as one value.

A run's time (``clock``, ``sleep``), its stop, its settings, where its outcomes go (the ledger's
recorder, the outcome writer with the live counters), its lane and how it speaks to people
(``notify`` for what a person should see, ``inform`` for good news). The phases (probe, leftovers,
canary, send, recover) take the context instead of a dozen loose parameters; tests inject a clock
and a sleep here, once.

May import: config, ledger, run (state, lane, outcomes). Never cli, app, report or emulator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.config import Settings
from dispatcher.ledger.recorder import Recorder
from dispatcher.run.lane import Lane
from dispatcher.run.outcomes import Outcomes
from dispatcher.run.state import RunStats, Stop

__all__ = ["Clock", "RunContext", "Sleep"]

Clock = Callable[[], float]
"""Seconds since the epoch, as time.time (injected in tests)."""

Sleep = Callable[[float], Awaitable[None]]
"""A wait of some seconds, as asyncio.sleep (injected in tests)."""


def _quiet(_: str) -> None:
    """Say nothing (a context built without anyone to tell)."""


@dataclass(frozen=True, slots=True)
class RunContext:
    """One lane's share of a run: settings, stop, recorder, outcomes, lane, time, and voice."""

    settings: Settings
    stop: Stop
    recorder: Recorder
    outcomes: Outcomes
    lane: Lane
    product: str | None = None  # the lane's product when a run has several ("": the default)
    clock: Clock = time.time
    sleep: Sleep = asyncio.sleep  # as injected: ``nap`` is the one that wakes on a stop
    notify: Callable[[str], None] = _quiet  # what a person should see (a clock offset, a stop)
    inform: Callable[[str], None] = _quiet  # the good news (a canary that went well)

    @property
    def stats(self) -> RunStats:
        """The run's live counters."""
        return self.outcomes.stats

    async def nap(self, seconds: float) -> None:
        """Sleep (the injected way), but wake early when a stop is requested."""
        await self.stop.sleeper(self.sleep)(seconds)
