"""When a job of steps reads an awaited delivery again (stepping.py ``Due``): at once the first
time, then after the poll, the wait doubling while the state stays the same up to ``BACKOFF``
polls, and at once again when the state moved."""

from __future__ import annotations

import itertools

from hypothesis import given, strategies as st

from dispatcher.run.stepping import Due
from tests.support.settling import make_row


def _reads(due: Due, states: list[int | None], step: float) -> list[float]:
    """The times one row is read, polled every ``step`` seconds, its state at each poll."""
    read = []
    for n, state in enumerate(states):
        now = n * step
        if due.of([make_row(1, send_status=state)], now):
            read.append(now)
    return read


def test_a_state_that_stays_is_read_ever_less_often_up_to_the_cap() -> None:
    due = Due(poll_s=1.0)
    read = _reads(due, [1] * 200, 1.0)
    gaps = [b - a for a, b in itertools.pairwise(read)]
    assert read[0] == 0.0
    assert gaps[:6] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    assert set(gaps[5:]) == {32.0}  # capped at BACKOFF polls


def test_a_state_that_moved_is_read_at_once_and_the_wait_starts_again() -> None:
    due = Due(poll_s=1.0)
    states = [1] * 20 + [3] * 10
    read = _reads(due, states, 1.0)
    assert 20.0 in read  # the poll the state changed at
    after = [t for t in read if t > 20.0]
    assert after[0] == 21.0  # the wait starts again at one poll


@given(st.lists(st.sampled_from([1, 3, None]), min_size=1, max_size=300))
def test_no_row_goes_unread_longer_than_the_cap_and_every_change_is_read(
    states: list[int | None],
) -> None:
    due = Due(poll_s=2.0)
    read = set(_reads(due, states, 2.0))
    assert 0.0 in read
    for n in range(1, len(states)):
        if states[n] != states[n - 1]:
            assert n * 2.0 in read
    times = [*sorted(read), len(states) * 2.0]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 2.0 * Due.BACKOFF
