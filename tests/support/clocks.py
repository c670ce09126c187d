"""Clocks for tests: a fixed one, one shifted from the real clock, and virtual time whose sleeps
advance it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

NOW = datetime(2024, 5, 1, 4, 0, 0, tzinfo=UTC).timestamp()  # 2024-05-01 12:00:00 in UTC+8


@dataclass
class Clock:
    """A clock that reads ``now`` until a test moves it."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class ShiftedClock:
    """The real clock plus ``shift`` seconds."""

    shift: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


class FakeClock:
    """Virtual time: ``sleep`` advances it (plus jitter, if any) and runs callbacks falling due."""

    def __init__(self, start: float = 1000.0, jitter: Callable[[], float] | None = None) -> None:
        self.now = start
        self.jitter = jitter
        self.sleeps = 0
        self._events: list[tuple[float, Callable[[], None]]] = []

    def __call__(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._events.append((when, action))
        self._events.sort(key=lambda e: e[0])

    async def sleep(self, delay: float) -> None:
        assert delay > 0, "the limiter never sleeps for nothing"
        self.sleeps += 1
        self.now += delay + (self.jitter() if self.jitter else 0.0)
        while self._events and self._events[0][0] <= self.now:
            self._events.pop(0)[1]()
        await asyncio.sleep(0)
