"""run_job() stopped: a graceful stop lets what is on the wire finish and sends nothing more, an
immediate one leaves it in doubt; a stop during reconciliation or a long hold ends the run."""

from __future__ import annotations

import asyncio
import itertools

from dispatcher.ledger.store import Status
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import Stop
from tests.support.e2e import fast_settings
from tests.support.runs import (
    Setup,
    VirtualTime,
    rows,
    run,
    statuses,
)
from tests.support.scripted import Hold, Lost, ScriptedOneNet, http


def held(stop: Stop, after: int) -> tuple[ScriptedOneNet, Hold, list[str]]:
    """A OneNET that stores each command, then holds its answer until the hold's ``release`` (or
    forever), its ``held`` set once ``after`` answers are held; and the devices sent to after
    ``stop`` was asked for."""
    hold = Hold({"execute"}, after=after)
    after_stop: list[str] = []

    async def on_call(kind: str, subject: str) -> None:
        if kind == "execute" and stop.requested:
            after_stop.append(subject)
        await hold(kind, subject)

    return ScriptedOneNet(on_call=on_call), hold, after_stop


async def test_graceful_stop_lets_in_flight_commands_finish_and_leaves_the_rest_pending(
    small_job: Setup,
) -> None:
    stop = Stop()
    client, hold, after_stop = held(stop, 4)
    settings = fast_settings(concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await hold.held.wait()
        stop.request("operator asked")
        hold.release.set()
    result = running.result()

    assert len(client.sent) == 4
    assert after_stop == []
    assert result.stop_reason == "operator asked"
    assert statuses(small_job) == {Status.ACCEPTED: 4, Status.PENDING: 16}
    assert {r.uuid for r in rows(small_job).values() if r.uuid} == set(client.commands)


class GatedSleep:
    """A virtual sleep that waits for ``gate`` before time moves; ``entered`` once anyone sleeps."""

    def __init__(self, vt: VirtualTime) -> None:
        self.vt = vt
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.entered.set()
        await self.gate.wait()
        await self.vt.sleep(seconds)


async def test_graceful_stop_sends_nothing_that_was_still_waiting_for_the_pace(
    small_job: Setup,
) -> None:
    stop = Stop()
    vt = VirtualTime()
    gated = GatedSleep(vt)
    pace = Pace(1, clock=vt, sleep=gated)
    client, hold, after_stop = held(stop, 1)
    settings = fast_settings(rate=1, concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(
            # no clock probe: it would take the first pace slot
            run(
                small_job,
                client,
                settings,
                stop=stop,
                pace=pace,
                clock=vt,
                sleep=vt.sleep,
                probe=False,
            )
        )
        await hold.held.wait()  # one request on the wire
        await gated.entered.wait()  # the next one waits for its turn
        stop.request("operator asked")
        gated.gate.set()
        hold.release.set()
    result = running.result()

    assert after_stop == []
    assert len(client.sent) == 1
    assert statuses(small_job) == {Status.ACCEPTED: 1, Status.PENDING: 19}
    assert result.stop_reason == "operator asked"


async def test_immediate_stop_leaves_in_flight_commands_in_doubt_and_the_rest_pending(
    small_job: Setup,
) -> None:
    stop = Stop()
    client, hold, _ = held(stop, 4)  # never released: the answers never come
    settings = fast_settings(concurrency=4)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await hold.held.wait()
        stop.request("operator asked twice", immediate=True)
    result = running.result()

    sent = set(client.sent_imeis())
    assert len(sent) == 4
    after = rows(small_job)
    assert {i for i, r in after.items() if r.status is Status.IN_DOUBT} == sent
    assert {r.status for i, r in after.items() if i not in sent} == {Status.PENDING}
    assert result.stop_reason == "operator asked twice"

    # resumed: the in-doubt ones are found in the history, the rest sent; nothing twice
    resumed = ScriptedOneNet()
    resumed.add(*client.commands.values())
    resumed.ids = itertools.count(1000)
    final = await run(small_job, resumed)
    assert final.complete
    assert not set(resumed.sent_imeis()) & sent
    assert all(n == 1 for n in resumed.created_per_imei().values())
    assert len(resumed.commands) == 20


async def test_graceful_stop_past_its_grace_puts_in_flight_commands_in_doubt(
    small_job: Setup,
) -> None:
    stop = Stop()
    client, hold, _ = held(stop, 4)
    settings = fast_settings(concurrency=4, stop_grace_s=0.0)
    async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, client, settings, stop=stop))
        await hold.held.wait()
        stop.request("operator asked")
    running.result()

    assert statuses(small_job) == {Status.IN_DOUBT: 4, Status.PENDING: 16}


# -- stopping while settling or holding off ----------------------------------------------------


async def test_a_second_stop_during_reconciliation_ends_the_run_at_once(small_job: Setup) -> None:
    first = ScriptedOneNet({i: [Lost(created=True)] for i in small_job.imeis})
    await run(small_job, first, fast_settings(settle_s=0.0), reconcile_in_doubt=False)
    assert statuses(small_job) == {Status.IN_DOUBT: 20}

    stop = Stop()
    hung = ScriptedOneNet(on_call=Hold({"history"}))  # the history never answers
    hung.add(*first.commands.values())
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        running = tg.create_task(run(small_job, hung, fast_settings(), stop=stop))
        for _ in range(200):
            await asyncio.sleep(0)
        stop.request("operator asked")
        stop.request("operator asked twice", immediate=True)
    result = running.result()

    assert hung.sent == []  # nothing sent while in doubt
    assert statuses(small_job) == {Status.IN_DOUBT: 20}
    assert result.stop_reason == "operator asked"


async def test_a_graceful_stop_does_not_wait_out_a_long_hold(small_job: Setup) -> None:
    stop = Stop()
    hold = http(429, b"slow down", **{"Retry-After": "600"})
    client = ScriptedOneNet({i: [hold] for i in small_job.imeis})
    settings = fast_settings(concurrency=4, stop_grace_s=3600.0)
    notes: list[str] = []
    async with asyncio.timeout(10), asyncio.TaskGroup() as tg:
        running = tg.create_task(
            run(small_job, client, settings, stop=stop, pace=Pace(None), notify=notes.append)
        )
        for _ in range(1000):  # until a first answer asked to hold off for ten minutes
            if client.sent:
                break
            await asyncio.sleep(0.01)
        stop.request("operator asked")
    result = running.result()

    assert result.stop_reason == "operator asked"
    assert set(statuses(small_job)) == {Status.PENDING}  # nothing in doubt: none was on the wire
    assert not any("stopped at once" in n for n in notes)  # the grace was not waited out
