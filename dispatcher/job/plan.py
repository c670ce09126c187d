"""How a job is to be sent, besides its commands: the rollout (a canary first, a ramp of the pace,
abort rules) and the schedule (a start time). Read from the job file's ``rollout:`` and
``schedule:`` sections, each key also settable by a flag of ``dispatcher run`` (the flag wins).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

__all__ = ["Abort", "Canary", "Plan", "Ramp", "Rollout"]

CanaryWait = Literal["accepted", "delivered"]
CanaryThen = Literal["continue", "pause"]


@dataclass(frozen=True, slots=True)
class Canary:
    """A small group sent first, drawn evenly across the job; the rest only once it went well."""

    size: int | None = None  # a number of commands ...
    percent: float | None = None  # ... or a share of the job (0 < percent <= 100)
    wait: CanaryWait = "accepted"  # accepted: its answers; delivered: its devices ran it
    timeout_s: float = 1800.0  # with wait: delivered, how long to wait for its devices
    then: CanaryThen = "continue"  # pause: stop after a good canary (exit 0); the next run goes on

    def count(self, total: int) -> int:
        """How many commands of a job of ``total`` the canary holds (at least 1, at most all)."""
        if total <= 0:
            return 0
        if self.percent is not None:
            n = math.ceil(total * self.percent / 100.0)
        else:
            n = self.size or 0
        return max(1, min(total, n))


@dataclass(frozen=True, slots=True)
class Ramp:
    """The pace grows while results stay good: ``start_per_second``, times ``factor`` after each
    ``every_accepted`` more accepted, up to the configured rate (as AWS IoT's exponentialRate)."""

    start_per_second: float
    factor: float = 2.0
    every_accepted: int = 100

    def rate(self, accepted: int, ceiling: float | None) -> float | None:
        """The pace after ``accepted`` accepted commands (None: no limit)."""
        steps = accepted // self.every_accepted if self.every_accepted > 0 else 0
        rate = self.start_per_second * self.factor ** min(steps, 64)
        return rate if ceiling is None else min(rate, ceiling)


@dataclass(frozen=True, slots=True)
class Abort:
    """When to stop a rollout: a failure rate over what was decided, or one of some errnos."""

    max_failure_rate: float | None = None  # rejected+failed (and device failures) over decided
    min_decided: int = 50  # the rate is checked once this many commands have an outcome
    on_errnos: frozenset[int] = frozenset()  # stop at once on any of these


@dataclass(frozen=True, slots=True)
class Rollout:
    """The rollout section: each part optional."""

    canary: Canary | None = None
    ramp: Ramp | None = None
    abort: Abort | None = None

    @property
    def empty(self) -> bool:
        """True when the job is simply sent."""
        return self.canary is None and self.ramp is None and self.abort is None


@dataclass(frozen=True, slots=True)
class Plan:
    """How the job is sent: its rollout and when it starts (None: at once)."""

    rollout: Rollout = field(default_factory=Rollout)
    start_at: datetime | None = None  # aware

    def with_rollout(self, rollout: Rollout) -> Plan:
        """This plan with another rollout."""
        return replace(self, rollout=rollout)
