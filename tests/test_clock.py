"""OneNET's clock read off its answers' Date headers, and offsets said for people."""

from __future__ import annotations

import math

import pytest

from dispatcher.clock import ServerClock, describe_offset


def _answers(
    offset: float, start: float, every: float, count: int, rtt: float
) -> list[tuple[float, float, float]]:
    """(Date, sent, received) of answers from a server whose clock is ours plus ``offset``."""
    found = []
    for i in range(count):
        sent = start + i * every
        made = sent + rtt / 2
        found.append((float(math.floor(made + offset)), sent, sent + rtt))
    return found


def test_the_server_clock_narrows_to_the_true_offset_at_a_steady_rate() -> None:
    clock = ServerClock(lambda: 0.0)
    for shown, sent, received in _answers(100.0, 1_700_000_000.37, 0.007, 600, 0.002):
        clock.observe(shown, sent, received)
    assert clock.known
    assert abs(clock.offset - 100.0) < 0.01  # not half a second off, as a lone reading may be


def test_one_reading_gives_the_middle_of_what_it_allows() -> None:
    clock = ServerClock(lambda: 0.0)
    clock.observe(1_700_000_100.0, 1_700_000_000.2, 1_700_000_000.4)
    assert clock.offset == pytest.approx(100.0 + 0.5 - 0.3)


def test_a_stepped_server_clock_is_followed() -> None:
    clock = ServerClock(lambda: 0.0)
    for shown, sent, received in _answers(100.0, 1_700_000_000.0, 0.05, 100, 0.002):
        clock.observe(shown, sent, received)
    for shown, sent, received in _answers(40.0, 1_700_000_010.0, 0.05, 100, 0.002):
        clock.observe(shown, sent, received)
    assert abs(clock.offset - 40.0) < 0.05


def test_offsets_are_described_for_people() -> None:
    assert describe_offset(359.6) == "6m00s ahead of"
    assert describe_offset(-125.2) == "2m05s behind"
    assert describe_offset(4.04) == "4.0s ahead of"
