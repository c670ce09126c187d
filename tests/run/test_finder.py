"""The rate finder on a simulated clock: a server that admits R requests in any sliding second,
and a sender paced by the finder; counts of what the server admitted and refused, never time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import pytest

from dispatcher.run.finder import RateFinder
from dispatcher.run.pacing import Pace
from tests.support.clocks import Clock, FakeClock


@dataclass
class Server:
    """Admits ``limit`` requests in any sliding 1-second window; refuses the rest."""

    limit: float
    admitted: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> bool:
        while self.admitted and self.admitted[0] <= now - 1.0:
            self.admitted.popleft()
        if len(self.admitted) >= self.limit:
            return False
        self.admitted.append(now)
        return True


@dataclass
class Tally:
    sent: int = 0
    throttled: int = 0


def simulate(
    finder: RateFinder,
    pace: Pace,
    clock: Clock,
    server: Server,
    seconds: float,
    *,
    flat_out: float = 2000.0,
    retry_after: float | None = None,
) -> Tally:
    """Send for ``seconds`` of the simulated clock, each request as soon as the pace allows (at
    ``flat_out`` per second when unpaced); answers come back at once."""
    tally = Tally()
    end = clock.now + seconds
    while clock.now < end:
        rate = pace.rate
        clock.now += 1.0 / (rate if rate is not None else flat_out)
        tally.sent += 1
        pace._starts.append(clock.now)  # what the pace saw start (observed_rate)
        if server.take(clock.now):
            finder.on_success()
        else:
            tally.throttled += 1
            finder.on_throttle(retry_after)
    return tally


def setup(ceiling: float | None) -> tuple[RateFinder, Pace, Clock]:
    clock = Clock(1000.0)
    pace = Pace(ceiling, clock=clock)
    return RateFinder(pace, ceiling, clock=clock), pace, clock


@pytest.mark.parametrize("ceiling", [100.0, 200.0, 1000.0, None])
def test_it_uses_at_least_95_percent_of_the_limit_with_under_2_percent_throttled(
    ceiling: float | None,
) -> None:
    finder, pace, clock = setup(ceiling)
    server = Server(100)
    simulate(finder, pace, clock, server, 10)  # finding the limit
    steady = simulate(finder, pace, clock, server, 120)
    admitted = steady.sent - steady.throttled
    assert admitted >= 0.95 * 100 * 120
    assert steady.throttled <= 0.02 * steady.sent
    if ceiling is None or ceiling > 100:
        assert finder.cuts >= 2 and finder.probes >= 2  # it probes, and comes back under


def test_at_the_limit_a_straggling_throttle_does_not_cut() -> None:
    # Configured at exactly what the server admits: a throttle now and then (a request that met
    # the server's window late) is no news, and the pace stays where it is.
    finder, pace, clock = setup(100.0)
    tally = simulate(finder, pace, clock, Server(100), 60)
    assert tally.throttled > 0
    assert (finder.cuts, pace.rate) == (0, 100.0)


def test_at_a_configured_rate_under_the_limit_it_never_probes_above_it() -> None:
    finder, pace, clock = setup(50.0)
    tally = simulate(finder, pace, clock, Server(100), 30)
    assert (tally.throttled, finder.probes, pace.rate) == (0, 0, 50.0)


@pytest.mark.parametrize("ceiling", [200.0, None])
def test_a_limit_that_halves_and_comes_back_is_followed_within_5_seconds(
    ceiling: float | None,
) -> None:
    finder, pace, clock = setup(ceiling)
    server = Server(100)
    simulate(finder, pace, clock, server, 20)
    server.limit = 50
    simulate(finder, pace, clock, server, 5)
    assert pace.rate is not None and 40 <= pace.rate <= 52
    server.limit = 100
    # Each second's admissions: within 10% of the new limit before 5 s, and for good from then
    # (the probe that finds the risen limit overshoots; the cut after it must hold near it).
    admitted = []
    for _ in range(10):
        tally = simulate(finder, pace, clock, server, 1)
        admitted.append(tally.sent - tally.throttled)
        if len(admitted) == 5:
            assert pace.rate >= 90
    first = next(i for i, n in enumerate(admitted) if n >= 90)
    assert first < 5, admitted
    assert all(n >= 90 for n in admitted[first:]), admitted


def test_a_short_retry_after_holds_only_the_request_a_long_one_the_lane() -> None:
    finder, pace, clock = setup(200.0)
    finder.on_success()
    finder.on_throttle(1.0)
    assert pace._hold == 0.0
    clock.now += 2.0
    finder.on_throttle(30.0)
    assert pace._hold == clock.now + 30.0


def test_a_ramp_ceiling_is_followed_and_never_exceeded() -> None:
    finder, pace, clock = setup(100.0)
    finder.set_ceiling(20.0)
    assert pace.rate == 20.0
    simulate(finder, pace, clock, Server(1000), 10)
    assert pace.rate == 20.0
    finder.set_ceiling(80.0)
    assert pace.rate == 80.0


# -- with the real Pace, on a virtual clock (test_pacing's FakeClock) ------------------------


def test_a_burst_of_throttles_cuts_the_pace_once_per_cooldown() -> None:
    clock = FakeClock()
    pace = Pace(20, clock=clock, sleep=clock.sleep)
    finder = RateFinder(pace, 20, clock=clock)
    for _ in range(5):
        finder.on_throttle(None)
    assert (finder.cuts, pace.rate) == (1, 10)  # nothing admitted yet: halved, once
    clock.now += 0.5
    finder.on_throttle(None)
    assert (finder.cuts, pace.rate) == (1, 10)


def test_the_pace_never_falls_below_the_floor() -> None:
    clock = FakeClock()
    pace = Pace(20, clock=clock, sleep=clock.sleep)
    finder = RateFinder(pace, 20, clock=clock)
    for _ in range(20):
        finder.on_throttle(None)
        clock.now += 1.0
    assert pace.rate == 0.5


async def test_a_server_slower_than_the_ceiling_is_matched_with_few_wasted_requests() -> None:
    """OneNET allows 100/s, the config says 400/s: the finder holds just under 100/s."""
    clock = FakeClock()
    pace = Pace(400, clock=clock, sleep=clock.sleep)
    finder = RateFinder(pace, 400, clock=clock)
    served: list[float] = []
    throttled = requests = 0
    while len(served) < 6000:
        await pace.acquire()
        requests += 1
        now = clock()
        if len(served) >= 100 and served[-100] > now - 1.0:  # the server's own 1 s window
            throttled += 1
            finder.on_throttle(None)
        else:
            served.append(now)
            finder.on_success()
    assert throttled / requests < 0.02
    assert served[-1] - served[0] < 6000 / 100 / 0.95  # at least 95% of what the server allows
