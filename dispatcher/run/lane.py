"""A lane: one OneNET product as a run sees it.

A lane holds that product's client, its pace, its adaptive slow-down on throttling, its breakers
and OneNET's clock as read from its answers. Every call a run makes goes through a lane, so a
throttling product slows only its own lane and a wrong key stops only its own. A run has one lane
today and is written for several.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from dispatcher.clock import ServerClock
from dispatcher.config import Settings
from dispatcher.errors import OneNetUnavailable, RunAborted
from dispatcher.onenet.answers import Outcome, Verdict
from dispatcher.onenet.requests import CancelResult
from dispatcher.run.breakers import Breakers, auth_blame
from dispatcher.run.finder import RateFinder
from dispatcher.run.pacing import Pace
from dispatcher.run.reconcile import CommandClient

if TYPE_CHECKING:
    from dispatcher.run.share import RateShare

__all__ = ["Lane", "OneNetApi"]

_BUSY_S = 2.0  # a pace that made a request wait this recently: the lane wants all it may have

T = TypeVar("T")


class OneNetApi(CommandClient, Protocol):
    """What a run needs from a OneNET client (``OneNetClient`` is one): the calls reconciliation
    needs, plus the probe, cancel and the URL it sends to (for messages)."""

    @property
    def execute_url(self) -> str: ...

    async def probe(self, imei: str, start: datetime) -> Outcome: ...

    async def cancel(self, imei: str, uuid: str) -> CancelResult: ...


@dataclass(slots=True)
class Lane:
    """One product's client, pace, adaptive slow-down, breakers and clock."""

    client: OneNetApi
    pace: Pace
    clock: ServerClock
    breakers: Breakers
    finder: RateFinder | None = None  # the adaptive pace (limits.adaptive)
    name: str = "default"
    own: float | None = None  # its own ceiling: the configured rate, or a rollout's ramp
    shared: float | None = None  # its share of the product's rate (run/share.py; None: alone)
    share: RateShare | None = None  # its membership of the product's board, told of throttles

    @classmethod
    def of(
        cls,
        client: OneNetApi,
        settings: Settings,
        *,
        pace: Pace | None = None,
        server_clock: ServerClock | None = None,
        clock: Callable[[], float] = time.time,
        name: str = "default",
    ) -> Lane:
        """A lane for ``client`` with the settings' pace, slow-down and breakers. Its clock is
        ``server_clock``, else the one the client dates its tokens on (the newer platform's:
        what the lane reads of OneNET's clock keeps them fresh by it), else a new one."""
        pace = pace or Pace(settings.limits.rate_per_second)
        breakers = Breakers(
            settings.reliability.breaker_threshold,
            url=client.execute_url,
            timeout_s=settings.retry.request_timeout_s,
            blame=auth_blame(settings),
        )
        adaptive = settings.limits.adaptive
        finder = RateFinder(pace, settings.limits.rate_per_second) if adaptive else None
        own = getattr(client, "server_clock", None)  # OneNetClient's; a test's fake has none
        if server_clock is None:
            server_clock = own if isinstance(own, ServerClock) else ServerClock(clock)
        own = settings.limits.rate_per_second
        return cls(client, pace, server_clock, breakers, finder, name, own)

    def limit_to(self, rate: float | None) -> None:
        """A new own ceiling (a rollout's ramp; None: no limit), under any share."""
        self.own = rate
        self._apply()

    def share_to(self, rate: float | None) -> None:
        """A new share of the product's rate (run/share.py; None: the lane paces alone); a
        gate of :meth:`hold_for` is lifted."""
        self.shared = rate
        self._apply()
        self.pace.gate_until(0.0)

    def hold_for(self, seconds: float) -> None:
        """Start nothing for ``seconds``, or until a share comes (a share of 0: nothing free
        yet, or the rate board out of reach)."""
        self.pace.gate_until(self.pace.clock() + seconds)

    def wanted_rate(self) -> float | None:
        """What the lane would send per second now (None: its own ceiling, no limit): its own
        ceiling while its pace makes requests wait (or before it has sent anything), else a
        little more than it sends (a lane waiting on deliveries leaves its share to others)."""
        pace = self.pace
        if pace.started == 0 or pace.clock() - pace.waited_at <= _BUSY_S:
            return self.own
        sending = pace.observed_rate() or 0.0
        wanted = sending * 1.5 + 1.0
        return wanted if self.own is None else min(self.own, wanted)

    def admitted_rate(self) -> float:
        """Answers the server admitted per second over the last second (as the finder counts
        them; without a finder, the pace's starts)."""
        if self.finder is not None:
            return self.finder.admitted_rate()
        return self.pace.observed_rate() or 0.0

    def _apply(self) -> None:
        """The ceiling in force, the lower of the own and the shared, to the finder or pace."""
        rates = [r for r in (self.own, self.shared) if r is not None]
        ceiling = min(rates) if rates else None
        if self.finder is not None:
            self.finder.set_ceiling(ceiling)
        else:
            self.pace.set_rate(ceiling)

    async def query(self, call: Callable[[], Awaitable[T]]) -> T:
        """A follow-up call (history, detail, cancel) under the lane's slow-down: a throttling
        answer slows the whole lane as a throttled send does, a clean one lets it recover."""
        try:
            result = await call()
        except OneNetUnavailable as exc:
            if exc.throttled and self.finder is not None:
                self.finder.on_throttle(exc.retry_after)
            if exc.throttled and self.share is not None:
                self.share.throttled()
            raise
        if self.finder is not None:
            self.finder.on_success()
        return result

    def observe(self, outcome: Outcome, key: str | None) -> RunAborted | None:
        """Feed one answer to the lane's controls; the reason to stop if a breaker tripped."""
        if outcome.verdict is Verdict.ACCEPTED and not outcome.throttled:
            # The common case: the breakers disarmed (nothing left to count), the pace told.
            self.breakers.disarm()
            if self.finder is not None and outcome.http_status is not None:
                self.finder.on_success()
            return None
        if outcome.throttled:
            if self.finder is not None:
                self.finder.on_throttle(outcome.retry_after)
            if self.share is not None:
                self.share.throttled()
        else:
            if outcome.verdict is Verdict.ACCEPTED:
                self.breakers.disarm()
            if self.finder is not None and outcome.http_status is not None:
                self.finder.on_success()  # the server answered: it admitted the request
        return self.breakers.observe(outcome, key)
