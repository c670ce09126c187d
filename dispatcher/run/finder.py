"""Finding the rate OneNET admits, and holding just under it (a lane's adaptive pace).

OneNET documents no rate limit: the limit is whatever the platform enforces that day, shown by
throttling answers (errno 7, HTTP 429, Retry-After). Halving on each throttle (AIMD) saws between
half the limit and the limit; this follows BBR's idea instead (Cardwell et al., "BBR:
Congestion-Based Congestion Control", ACM Queue 2016): measure the rate the server *delivered*
(answers that were not throttled, over the last second) and pace from that measurement.

- On a throttle, the pace goes to ``margin`` (97%) of the admitted rate just measured (never above
  the pace it had, nor, soon after a cut, below half of it), once per ``cooldown``: one burst
  of throttled answers from requests already in flight counts once. The rate then *cruises* for
  ``cruise_s``; a throttle while cruising under the rate just admitted is a straggler, and
  changes nothing.
- After the cruise it probes upward, briefly and by little at first: every ``period`` it raises
  the pace by a gain that starts at 2% and doubles while no throttle comes (2%, 4%, 8%, ...), so
  at a steady limit it meets the limit within a step or two and loses one or two requests, and
  after the limit rose it climbs back in a few seconds (the doubling is BBR's startup).
- A configured rate is a ceiling, never exceeded; at the ceiling nothing is probed. Without one,
  nothing is paced until the first throttle, which measures the limit as above.
- A ``Retry-After`` of ``hold_after_s`` or more holds the whole lane that long (the server asked
  everyone to go away); a shorter one is honoured by the throttled request itself, whose retry
  waits at least that long (retrying.py), while the others go on at the lowered pace.
"""

from __future__ import annotations

import math
from collections import deque

from dispatcher.run.pacing import Clock, Pace

__all__ = ["RateFinder"]

_WINDOW = 1.0  # seconds over which the admitted rate is measured


class RateFinder:
    """A lane's adaptive pace: the limit measured on throttles, probed for between them."""

    def __init__(
        self,
        pace: Pace,
        ceiling: float | None,
        *,
        clock: Clock | None = None,
        margin: float = 0.97,
        first_gain: float = 0.02,
        cruise_s: float = 2.0,
        period: float = 0.5,
        cooldown: float = 1.0,
        floor: float = 0.5,
        hold_after_s: float = 5.0,
    ) -> None:
        if not 0 < margin < 1:
            raise ValueError(f"margin must be between 0 and 1, not {margin}")
        self._pace = pace
        self._clock = clock or pace.clock
        self._ceiling = ceiling
        self._margin, self._first_gain = margin, first_gain
        self._cruise_s, self._period, self._cooldown = cruise_s, period, cooldown
        self._floor = floor if ceiling is None else min(floor, ceiling)
        self._hold_after_s = hold_after_s
        self._answers: deque[float] = deque()  # when each answer that was not throttled came
        self._last_cut = -math.inf
        self._next_raise = math.inf  # nothing to probe until a throttle has measured the limit
        self._gain = first_gain
        self.cuts = 0  # throttles that lowered the pace
        self.probes = 0  # raises of the pace after a cruise

    @property
    def rate(self) -> float | None:
        """The current rate in requests per second (None: unlimited)."""
        return self._pace.rate

    @property
    def ceiling(self) -> float | None:
        """The configured rate, never exceeded (None: no limit)."""
        return self._ceiling

    def admitted_rate(self) -> float:
        """Answers not throttled per second, over the last second."""
        self._forget(self._clock())
        return len(self._answers) / _WINDOW

    def set_ceiling(self, ceiling: float | None) -> None:
        """A new ceiling (a rollout's ramp): the lower of it and what was measured wins. At the
        old ceiling (nothing measured yet), the pace goes straight to the new one."""
        at_ceiling = self._next_raise == math.inf
        self._ceiling = ceiling
        if ceiling is not None:
            self._floor = min(self._floor, ceiling)
        current = self._pace.rate
        if at_ceiling or (ceiling is not None and (current is None or current > ceiling)):
            self._pace.set_rate(ceiling)
        elif ceiling is None or current is None or current < ceiling:
            self._next_raise = min(self._next_raise, self._clock() + self._period)

    def on_throttle(self, retry_after: float | None = None) -> None:
        """The server throttled a request: pace under the rate it just admitted."""
        now = self._clock()
        if retry_after is not None and retry_after >= self._hold_after_s:
            self._pace.hold_until(now + retry_after)
        if now - self._last_cut < self._cooldown:
            return
        admitted = self.admitted_rate()
        current = self._pace.rate
        if current is not None and now < self._next_raise and admitted >= current:
            # Cruising under what the server admits: a straggler (a retry of a request throttled
            # before the cut, a request that met the server's window late), not a new limit.
            return
        # A cut soon after another is never below half the pace: right after the limit drops,
        # the server's own window is still full of the old rate's requests and it refuses nearly
        # everything for a moment, so what it admitted in that second is far below its new
        # limit. A first cut (from a high start, or after a clean cruise) measures it well.
        again = now - self._last_cut < self._cruise_s + self._cooldown
        self._last_cut = now
        self.cuts += 1
        if current is None:
            current = self._pace.observed_rate() or admitted
        if admitted:
            rate = self._margin * min(current, admitted)
            if again:
                rate = max(rate, current / 2)
        else:  # nothing admitted for a second: the limit is far below what was sent; halve
            rate = current / 2
        rate = max(self._floor, rate)
        if self._ceiling is not None:
            rate = min(rate, self._ceiling)
        self._pace.set_rate(rate)
        self._gain = self._first_gain
        self._next_raise = now + self._cruise_s

    def on_success(self) -> None:
        """An answer that was not throttled: counted, and past the cruise, the pace probed up."""
        now = self._clock()
        answers = self._answers
        answers.append(now)
        if len(answers) > 4096 or answers[0] <= now - _WINDOW:
            self._forget(now)
        if now < self._next_raise:
            return
        current = self._pace.rate
        if current is None:  # unlimited: nothing to raise
            self._next_raise = math.inf
            return
        raised = current * (1.0 + self._gain)
        self.probes += 1
        self._gain = min(self._gain * 2.0, 1.0)
        if self._ceiling is not None and raised >= self._ceiling:
            raised = self._ceiling
            self._next_raise = math.inf  # at the ceiling: nothing to probe for
        else:
            self._next_raise = now + self._period
        self._pace.set_rate(raised)

    def _forget(self, now: float) -> None:
        answers = self._answers
        edge = now - _WINDOW
        while answers and answers[0] <= edge:
            answers.popleft()
