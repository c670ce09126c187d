"""Pace on a virtual clock: exact, and without waiting."""

from __future__ import annotations

import asyncio
import bisect
import math
import random

import pytest

from dispatcher.run.pacing import WINDOW_SLACK_S, Pace
from tests.support.clocks import FakeClock


def worst_window_excess(starts: list[tuple[float, int]]) -> int:
    """Most starts in a 1 s window (t - 1, t] ending at a start t, beyond the cap in force at t."""
    times = sorted(t for t, _ in starts)
    worst = -math.inf
    for t, cap in starts:
        inside = bisect.bisect_right(times, t) - bisect.bisect_right(times, t - 1.0)
        worst = max(worst, inside - cap)
    return int(worst)


async def run_acquirers(
    pace: Pace, clock: FakeClock, workers: int, each: int
) -> list[tuple[float, int]]:
    """``workers`` tasks acquire ``each`` times; returns (start time, cap in force) per start."""
    starts: list[tuple[float, int]] = []

    async def worker() -> None:
        for _ in range(each):
            await pace.acquire()
            rate = pace.rate
            assert rate is not None
            starts.append((clock(), max(1, math.floor(rate))))

    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())
    return starts


def make_pace(rate: float | None, clock: FakeClock) -> Pace:
    return Pace(rate, clock=clock, sleep=clock.sleep)


async def test_first_start_is_immediate_then_evenly_spaced_without_burst() -> None:
    clock = FakeClock()
    pace = make_pace(10, clock)
    starts = []
    for _ in range(5):
        await pace.acquire()
        starts.append(clock() - 1000.0)
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4], abs=1e-9)


async def test_no_window_exceeds_rate_with_concurrent_acquirers_and_late_wakeups() -> None:
    rng = random.Random(7)
    clock = FakeClock(jitter=lambda: rng.uniform(0.0, 0.03))  # up to 60% of the interval late
    pace = make_pace(20, clock)
    starts = await run_acquirers(pace, clock, workers=8, each=300)
    assert len(starts) == 2400
    assert worst_window_excess(starts) <= 0


async def test_run_of_n_takes_n_over_rate_without_drift() -> None:
    rng = random.Random(3)
    clock = FakeClock(jitter=lambda: rng.uniform(0.0, 0.0002))  # a busy event loop's lateness
    pace = make_pace(50, clock)
    starts = await run_acquirers(pace, clock, workers=4, each=1250)
    span = max(t for t, _ in starts) - min(t for t, _ in starts)
    ideal = (5000 - 1) / 50
    # The window slack costs at most its share of each second.
    assert ideal <= span < ideal * (1.0005 + WINDOW_SLACK_S)
    assert worst_window_excess(starts) <= 0


async def test_rate_changes_mid_run_never_exceed_the_rate_in_force() -> None:
    rng = random.Random(11)
    clock = FakeClock(jitter=lambda: rng.uniform(0.0, 0.01))
    pace = make_pace(25, clock)
    for second in range(1, 120, 3):
        clock.at(1000.0 + second, lambda: pace.set_rate(rng.choice([3, 7.5, 12, 25, 40, 0.7])))
    starts = await run_acquirers(pace, clock, workers=6, each=250)
    assert len(starts) == 1500
    assert worst_window_excess(starts) <= 0


async def test_fractional_rates_are_spaced_evenly_at_the_whole_rate() -> None:
    clock = FakeClock()
    pace = make_pace(2.5, clock)
    starts = []
    for _ in range(4):
        await pace.acquire()
        starts.append(clock() - 1000.0)
    slack = WINDOW_SLACK_S
    assert starts == pytest.approx([0.0, 0.5, 1.0 + slack, 1.5 + slack])
    pace.set_rate(0.5)
    await pace.acquire()
    assert clock() - 1000.0 == pytest.approx(3.5)  # the schedule: 2 s after the last slot


async def test_concurrent_acquirers_are_served_in_arrival_order() -> None:
    clock = FakeClock()
    pace = make_pace(5, clock)
    order: list[int] = []

    async def one(i: int) -> None:
        await pace.acquire()
        order.append(i)

    async with asyncio.TaskGroup() as tg:
        for i in range(12):
            tg.create_task(one(i))
    assert order == list(range(12))


async def test_hold_until_delays_everyone_and_restarts_without_burst() -> None:
    clock = FakeClock()
    pace = make_pace(10, clock)
    await pace.acquire()
    pace.hold_until(1005.0)
    pace.hold_until(1002.0)  # an earlier hold does not shorten the pause
    starts = await run_acquirers(pace, clock, workers=3, each=1)
    assert sorted(t for t, _ in starts) == pytest.approx([1005.0, 1005.1, 1005.2])


async def test_unlimited_acquire_returns_at_once_but_honours_a_hold() -> None:
    clock = FakeClock()
    pace = make_pace(None, clock)
    for _ in range(1000):
        await pace.acquire()
    assert clock.sleeps == 0
    assert clock() == 1000.0
    assert pace.started == 1000
    pace.hold_until(1003.0)
    await pace.acquire()
    assert clock() >= 1003.0
    sleeps = clock.sleeps
    await pace.acquire()
    assert clock.sleeps == sleeps  # the hold is over: free again


async def test_rate_raise_is_noticed_by_a_waiter_before_its_old_slot() -> None:
    clock = FakeClock(start=0.0)
    pace = make_pace(0.5, clock)  # one start every 2 s
    await pace.acquire()
    clock.at(0.6, lambda: pace.set_rate(10))
    await pace.acquire()
    assert clock() == pytest.approx(1.0)  # the next 0.5 s check, not the old slot at 2.0


async def test_cancelled_waiter_leaves_its_slot_to_the_next() -> None:
    clock = FakeClock(start=0.0)
    pace = make_pace(1, clock)
    await pace.acquire()
    waiter = asyncio.ensure_future(pace.acquire())
    await asyncio.sleep(0)  # it is now asleep in the limiter
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await pace.acquire()
    assert clock() == pytest.approx(1.0 + WINDOW_SLACK_S)
    assert pace.started == 2


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_rate_must_be_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        Pace(bad)


async def test_observed_rate_counts_starts_in_the_last_second() -> None:
    clock = FakeClock()
    pace = make_pace(None, clock)
    assert pace.observed_rate() is None
    for _ in range(30):
        await pace.acquire()
        clock.now += 0.02
    assert pace.observed_rate() == pytest.approx(50.0, abs=1.0)


async def test_a_gate_stops_starts_until_lifted_early_and_a_hold_still_holds() -> None:
    clock = FakeClock()
    pace = Pace(None, clock=clock, sleep=clock.sleep)
    pace.gate_until(clock() + 100.0)
    clock.at(clock() + 3.0, lambda: pace.gate_until(0.0))  # lifted after 3 s, not 100
    start = clock()
    await pace.acquire()
    assert 3.0 <= clock() - start < 4.0
    pace.hold_until(clock() + 5.0)
    pace.gate_until(0.0)  # lifting a gate never lifts a hold (the server's Retry-After)
    start = clock()
    await pace.acquire()
    assert clock() - start >= 5.0
