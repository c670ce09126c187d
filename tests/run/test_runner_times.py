"""run_job() against a scripted OneNET on a virtual clock: the pace holds, Retry-After is waited
out, and the times of a command are resolved at the moment it is sent."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dispatcher.ledger.store import Status
from dispatcher.run.pacing import WINDOW_SLACK_S, Pace
from dispatcher.times import BEIJING, parse_onenet
from tests.support.e2e import fast_settings
from tests.support.runs import (
    Setup,
    VirtualTime,
    beijing,
    rows,
    run,
    statuses,
    timed_job,
)
from tests.support.scripted import ScriptedOneNet, http


def _max_in_any_window(starts: Sequence[float], window: float = 1.0) -> int:
    ordered = sorted(starts)
    most = 0
    for i, t in enumerate(ordered):
        j = i
        while j < len(ordered) and ordered[j] < t + window - 1e-9:
            j += 1
        most = max(most, j - i)
    return most


@pytest.mark.parametrize(("rate", "concurrency"), [(10, 8), (25, 4), (7.5, 16)])
async def test_pacing_holds_on_a_virtual_clock(
    tmp_path: Path, rate: float, concurrency: int
) -> None:
    setup = timed_job(tmp_path, 100)
    vt = VirtualTime()
    pace = Pace(rate, clock=vt, sleep=vt.sleep)
    client = ScriptedOneNet(clock=vt)
    settings = fast_settings(rate=rate, concurrency=concurrency)
    result = await run(setup, client, settings, pace=pace, clock=vt, sleep=vt.sleep)

    assert result.complete
    starts = client.sent_at
    per_window = int(rate)
    assert len(starts) == 100
    assert _max_in_any_window(starts) <= per_window
    span = max(starts) - min(starts)
    # Total time ~ N / rate; the window's slack may add its share (pacing.WINDOW_SLACK_S).
    low, high = 98 / per_window, 100 / per_window * (1 + WINDOW_SLACK_S)
    assert low <= span <= high
    first_second = [t for t in starts if t < min(starts) + 1.0]
    assert len(first_second) <= per_window  # no initial burst


async def test_relative_times_are_resolved_just_before_sending(tmp_path: Path) -> None:
    """Times are resolved when the command is marked in flight, right before it waits for its
    pace slot (so that nothing but the send follows the slot): at most concurrency / rate early."""
    setup = timed_job(tmp_path, 12, valid_time="+10m", expired_time="+6h")
    vt = VirtualTime()
    pace = Pace(2, clock=vt, sleep=vt.sleep)
    client = ScriptedOneNet(clock=vt)
    await run(
        setup, client, fast_settings(rate=2, concurrency=4), pace=pace, clock=vt, sleep=vt.sleep
    )

    assert len({r.expired_time for r in client.sent}) > 1  # the clock did move
    longest_wait = timedelta(seconds=4 / 2 + 1)  # concurrency / rate, plus whole seconds
    for req, at in zip(client.sent, client.sent_at, strict=True):
        sent = datetime.fromtimestamp(at, BEIJING)
        assert req.valid_time is not None
        resolved = parse_onenet(req.valid_time) - timedelta(minutes=10)
        assert sent - longest_wait <= resolved <= sent
        assert parse_onenet(req.expired_time) - timedelta(hours=6) == resolved
    recorded = rows(setup)
    for req in client.sent:
        assert recorded[req.imei].sent_valid_time == req.valid_time
        assert recorded[req.imei].sent_expired_time == req.expired_time


async def test_retry_after_is_honoured_before_the_next_attempt(small_job: Setup) -> None:
    target = small_job.imeis[0]
    vt = VirtualTime()
    client = ScriptedOneNet({target: [http(429, b"", **{"Retry-After": "7"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(small_job, client, fast_settings(concurrency=1), pace=pace, clock=vt, sleep=vt.sleep)

    tries = [at for req, at in zip(client.sent, client.sent_at, strict=True) if req.imei == target]
    assert len(tries) == 2
    assert tries[1] - tries[0] >= 7.0
    assert rows(small_job)[target].status is Status.ACCEPTED


# -- times at the moment of sending ---------------------------------------------------------------


async def test_an_absolute_valid_time_passed_during_a_retry_after_hold_is_dropped(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    valid = beijing(vt.now + 10)
    setup = timed_job(tmp_path, 1, valid_time=valid)
    target = setup.imeis[0]
    client = ScriptedOneNet({target: [http(429, b"slow down", **{"Retry-After": "30"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(setup, client, fast_settings(), pace=pace, clock=vt, sleep=vt.sleep)

    first, retried = client.sent
    assert first.valid_time == valid
    assert retried.valid_time is None  # passed during the hold: "from now", never a 5006
    row = rows(setup)[target]
    assert (row.status, row.sent_valid_time) == (Status.ACCEPTED, None)


async def test_an_expired_time_passed_during_backoff_is_expired_locally_and_not_sent(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 1, expired_time=beijing(vt.now + 20))
    target = setup.imeis[0]
    client = ScriptedOneNet({target: [http(429, b"slow down", **{"Retry-After": "60"})]}, clock=vt)
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    result = await run(setup, client, fast_settings(), pace=pace, clock=vt, sleep=vt.sleep)

    assert len(client.sent) == 1  # the retry would have come after its expired_time
    row = rows(setup)[target]
    assert (row.status, row.attempts) == (Status.EXPIRED, 1)
    assert "expired_time passed" in row.error
    assert result.stats.expired == 1 and not result.complete


async def test_at_a_low_rate_relative_times_count_from_the_real_moment_of_sending(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 8, valid_time="+10s", expired_time="+1h")
    client = ScriptedOneNet(clock=vt)
    pace = Pace(1, clock=vt, sleep=vt.sleep)
    settings = fast_settings(rate=1, concurrency=8)
    await run(setup, client, settings, pace=pace, clock=vt, sleep=vt.sleep, probe=False)

    assert len(client.sent) == 8
    for req, sent in zip(client.sent, client.sent_at, strict=True):
        assert req.valid_time is not None
        ahead = parse_onenet(req.valid_time).timestamp() - sent
        assert 9 <= ahead <= 11  # not fixed up to concurrency / rate seconds early


async def test_a_job_whose_times_passed_since_it_was_validated_is_sent_without_raising(
    tmp_path: Path,
) -> None:
    past, soon = beijing(time.time() - 60), beijing(time.time() + 3600)
    setup = timed_job(tmp_path, 3, valid_time=past, expired_time=soon)
    client = ScriptedOneNet()
    result = await run(setup, client)

    assert result.complete
    assert [r.valid_time for r in client.sent] == [None, None, None]
    later = tmp_path / "later"
    later.mkdir()
    expired = timed_job(later, 2, expired_time=beijing(time.time() - 60))
    result = await run(expired, ScriptedOneNet())
    assert statuses(expired) == {Status.EXPIRED: 2}
    assert result.stats.expired == 2
