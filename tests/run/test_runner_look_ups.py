"""run_job() and OneNET's history: the settle wait, look-ups paced and counted, asked again after
a failure; a proven key; the retry policy of look-ups."""

from __future__ import annotations

import dataclasses
import time

import pytest

from dispatcher.config import RetrySettings
from dispatcher.errors import OneNetUnavailable, WrongKeyError
from dispatcher.ledger.store import Status
from dispatcher.run.pacing import Pace
from dispatcher.run.retrying import retry_query
from dispatcher.run.runner import Stop
from tests.support.e2e import fast_settings
from tests.support.runs import (
    Setup,
    VirtualTime,
    no_wait,
    rows,
    run,
    statuses,
)
from tests.support.scripted import Lost, ScriptedOneNet, answer, http


async def test_the_settle_wait_counts_from_the_last_attempt_retries_included(
    small_job: Setup,
) -> None:
    vt = VirtualTime(start=time.time())
    target = small_job.imeis[0]
    client = ScriptedOneNet({target: [http(500), http(500), Lost(created=True)]}, clock=vt)
    settings = dataclasses.replace(
        fast_settings(), reliability=dataclasses.replace(fast_settings().reliability, settle_s=10)
    )
    pace = Pace(None, clock=vt, sleep=vt.sleep)
    await run(small_job, client, settings, pace=pace, clock=vt, sleep=vt.sleep)

    last_attempt = max(
        at for req, at in zip(client.sent, client.sent_at, strict=True) if req.imei == target
    )
    assert client.looked_up_at and min(client.looked_up_at) >= last_attempt + 10
    assert rows(small_job)[target].status is Status.ACCEPTED
    assert len(client.created_per_imei()) == 20


async def test_look_ups_take_pace_slots_and_count_as_requests(small_job: Setup) -> None:
    lost = small_job.imeis[:3]
    client = ScriptedOneNet({i: [Lost(created=True)] for i in lost})
    pace = Pace(None)
    result = await run(small_job, client, fast_settings(), pace=pace)

    sends, probes = len(client.sent), len(client.probed)
    look_ups = 3 * 2  # one history page and one detail per lost command
    assert pace.started == sends + probes + look_ups
    assert result.stats.requests == pace.started
    assert result.stats.accepted == 20 and result.stats.reconciled == 3  # each counted once


async def test_a_proven_key_makes_errno_1_a_devices_own_answer(small_job: Setup) -> None:
    foreign = small_job.imeis[:12]  # more than the breaker counts, all before any acceptance
    client = ScriptedOneNet({i: [answer(1, "auth failed")] for i in foreign})
    result = await run(small_job, client, fast_settings(concurrency=1, breaker_threshold=10))

    assert result.aborted is None  # the probe's errno 0 showed the key is right
    assert statuses(small_job) == {Status.REJECTED: 12, Status.ACCEPTED: 8}


async def test_foreign_devices_at_the_head_of_a_job_are_not_a_wrong_key(small_job: Setup) -> None:
    auth_failed = answer(1, "auth failed")
    # the first three devices are not the product's
    client = ScriptedOneNet(probes=[auth_failed] * 3)
    result = await run(small_job, client, fast_settings(breaker_threshold=10))

    assert result.aborted is None and result.complete
    assert client.probed == small_job.imeis[:4]  # asked on until one answered


async def test_errno_1_for_as_many_devices_as_the_breaker_counts_is_a_wrong_key(
    small_job: Setup,
) -> None:
    auth_failed = answer(1, "auth failed")
    client = ScriptedOneNet(probes=[auth_failed] * 20)
    result = await run(small_job, client, fast_settings(breaker_threshold=5))

    assert isinstance(result.aborted, WrongKeyError)
    assert client.probed == small_job.imeis[:5] and client.sent == []


async def test_a_look_up_that_fails_once_is_asked_again_and_nothing_is_resent(
    small_job: Setup,
) -> None:
    lost = small_job.imeis[:2]
    client = ScriptedOneNet({i: [Lost(created=True)] for i in lost}, history_failures=1)
    result = await run(small_job, client, fast_settings())

    assert result.complete and result.stats.reconciled == 2
    assert len(client.pages) > 2  # each device asked again after the first failure
    assert all(n == 1 for n in client.created_per_imei().values())


async def test_a_query_retry_ends_when_a_stop_comes_during_its_backoff() -> None:
    stop = Stop()
    calls: list[int] = []

    async def look_up() -> None:
        calls.append(1)
        raise OneNetUnavailable("history: HTTP 502")

    async def backoff(seconds: float) -> None:
        stop.request("operator asked")  # the stop comes while it waits to ask again

    policy = retry_query(RetrySettings(max_attempts=5), stop=stop, sleep=backoff)
    with pytest.raises(OneNetUnavailable):
        await policy(look_up)
    assert len(calls) == 1


async def test_a_query_that_timed_out_is_not_asked_again() -> None:
    calls: list[int] = []

    async def look_up() -> None:
        calls.append(1)
        try:
            raise TimeoutError
        except TimeoutError as exc:
            raise OneNetUnavailable("history: TimeoutError") from exc

    policy = retry_query(RetrySettings(max_attempts=5), stop=Stop(), sleep=no_wait)
    with pytest.raises(OneNetUnavailable):
        await policy(look_up)
    assert len(calls) == 1  # a hung server would make every look-up wait several timeouts
