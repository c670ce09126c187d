"""run_job() over a ledger slow to commit: outcomes that arrive while the disk is busy, in-flight
marks (once each, none left after an immediate stop, no server time before OneNET's clock is
known)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from dispatcher.config import Settings
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Status
from dispatcher.run.pacing import Pace
from dispatcher.run.runner import Stop, run_job
from tests.support.e2e import fast_settings
from tests.support.runs import (
    Setup,
    VirtualTime,
    no_wait,
    rows,
    run,
    statuses,
    timed_job,
)
from tests.support.scripted import Hold, Lost, ScriptedOneNet, Step, answer


class BusyDiskLedger(Ledger):
    """A real ledger whose commit of one command's outcome is held until ``go`` is set."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.hold_key = ""
        self.writing = threading.Event()
        self.go = threading.Event()

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        if any(r.key == self.hold_key for r in results):
            self.writing.set()
            self.go.wait(30)
        super().write_batch(items, results)


async def run_with_a_late_outcome(
    tmp_path: Path, first: Step, late: Step, settings: Settings
) -> Setup:
    """Two commands: the first one's outcome is being committed when the second one's arrives
    (its answer held until then)."""
    setup = timed_job(tmp_path, 2)
    imeis = setup.imeis
    late_answer = Hold({"execute"}, {imeis[1]})
    client = ScriptedOneNet({imeis[0]: [first], imeis[1]: [late]}, on_call=late_answer)
    vt = VirtualTime()
    with BusyDiskLedger.open(setup.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, BusyDiskLedger)
        ledger.hold_key = next(setup.job.commands()).key

        async def second_outcome_during_the_first_commit() -> None:
            await asyncio.to_thread(ledger.writing.wait, 30)
            late_answer.release.set()
            await late_answer.passed.wait()
            for _ in range(1000):  # let the run go on until it needs the ledger again
                await asyncio.sleep(0)
            ledger.go.set()

        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(second_outcome_during_the_first_commit())
            pace = Pace(None, clock=vt, sleep=vt.sleep)
            # no probe: the breaker on the sends is what these runs are about
            tg.create_task(
                run_job(
                    setup.job,
                    client.client,
                    ledger,
                    settings,
                    sleep=no_wait,
                    pace=pace,
                    probe=False,
                )
            )
    return setup


async def test_a_lost_answer_recorded_while_the_disk_is_busy_is_still_settled(
    tmp_path: Path,
) -> None:
    lost = Lost(created=True)
    setup = await run_with_a_late_outcome(tmp_path, lost, lost, fast_settings(concurrency=2))

    assert statuses(setup) == {Status.ACCEPTED: 2}


async def test_wrong_key_answers_recorded_while_the_disk_is_busy_are_still_pending_again(
    tmp_path: Path,
) -> None:
    wrong = answer(1, "auth failed")
    settings = fast_settings(concurrency=2, breaker_threshold=2)
    setup = await run_with_a_late_outcome(tmp_path, wrong, wrong, settings)

    assert statuses(setup) == {Status.PENDING: 2}


# -- in-flight marks ------------------------------------------------------------------------------


class SlowMarksLedger(Ledger):
    """A real ledger whose in-flight marks take a while to commit; counts the marks per key."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.marking = threading.Event()
        self.release = threading.Event()
        self.marks: dict[str, int] = {}

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        for item in items:
            self.marks[item.key] = self.marks.get(item.key, 0) + 1
        if items and not self.release.is_set():
            self.marking.set()
            self.release.wait(30)
        super().write_batch(items, results)


async def test_an_immediate_stop_while_waiting_for_the_first_mark_leaves_nothing_in_flight(
    small_job: Setup,
) -> None:
    stop = Stop()
    with SlowMarksLedger.open(small_job.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, SlowMarksLedger)

        async def stop_while_marking() -> None:
            await asyncio.to_thread(ledger.marking.wait, 30)
            stop.request("operator asked twice", immediate=True)
            for _ in range(50):
                await asyncio.sleep(0)
            ledger.release.set()

        client = ScriptedOneNet()
        async with asyncio.timeout(30), asyncio.TaskGroup() as tg:
            tg.create_task(stop_while_marking())
            running = tg.create_task(
                run_job(
                    small_job.job, client.client, ledger, fast_settings(), stop=stop, sleep=no_wait
                )
            )
        result = running.result()

    assert client.sent == []
    assert result.counts[Status.IN_FLIGHT] == 0
    assert set(statuses(small_job)) == {Status.PENDING}
    assert result.stats.done == 0


async def test_marks_before_onenets_clock_is_known_carry_no_server_time(small_job: Setup) -> None:
    client = ScriptedOneNet()  # its answers carry no Date header
    await run(small_job, client)

    assert {r.first_server_at for r in rows(small_job).values()} == {None}


async def test_at_a_rate_far_below_the_concurrency_each_command_is_marked_once(
    tmp_path: Path,
) -> None:
    vt = VirtualTime(start=time.time())
    setup = timed_job(tmp_path, 60, expired_time="+1h")
    pace = Pace(20, clock=vt, sleep=vt.sleep)
    settings = fast_settings(rate=20, concurrency=200)
    with SlowMarksLedger.open(setup.ledger_path, synchronous="normal") as ledger:
        assert isinstance(ledger, SlowMarksLedger)
        ledger.release.set()
        await run_job(
            setup.job,
            ScriptedOneNet(clock=vt).client,
            ledger,
            settings,
            pace=pace,
            clock=vt,
            sleep=vt.sleep,
        )
        marks = ledger.marks
    assert set(marks.values()) == {1}  # never marked a second time for a stale wait
    assert statuses(setup) == {Status.ACCEPTED: 60}
