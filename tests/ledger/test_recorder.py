"""The recorder: in-flight marks committed before they return, outcomes in groups, drained last."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from dispatcher.errors import LedgerError
from dispatcher.job.model import Command, command_key
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import InFlight, Result, Status
from dispatcher.times import parse_timespec


def commands(n: int) -> list[Command]:
    made = []
    for i in range(n):
        imei = f"86{i:013d}"
        key = command_key(imei, 3203, 0, 5750, "fw")
        made.append(
            Command(imei, 3203, 0, 5750, parse_timespec("+1d"), args="fw", line=i + 2, key=key)
        )
    return made


def mark(c: Command) -> InFlight:
    return InFlight(c.key, 1000.0, None, "2024-05-02T12:00:00", 1)


def accepted(c: Command) -> Result:
    return Result(c.key, Status.ACCEPTED, 0, "", f"uuid-{c.line}", 1, 1001.0, 12.0)


class SpyLedger(Ledger):
    """A real ledger that remembers each group written, and can hold a write until released."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.groups: list[tuple[int, int]] = []
        self.hold: threading.Event | None = None
        self.writing = threading.Event()

    def write_batch(self, items: Sequence[InFlight], results: Sequence[Result]) -> None:
        self.groups.append((len(items), len(results)))
        self.writing.set()
        if self.hold is not None:
            self.hold.wait(30)
        super().write_batch(items, results)


@pytest.fixture
def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "rec.db"


@pytest.fixture
def ledger(ledger_path: Path) -> SpyLedger:
    spy = SpyLedger.open(ledger_path)
    assert isinstance(spy, SpyLedger)
    return spy


@pytest.fixture
async def recorder(ledger: SpyLedger) -> AsyncIterator[Recorder]:
    rec = Recorder(ledger)
    task = asyncio.create_task(rec.run())
    yield rec
    await rec.close()
    await task
    rec.drain_sync()
    ledger.close()


def status_seen_from_outside(path: Path) -> dict[str, str]:
    """Statuses as another connection sees them: only what was committed."""
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT key, status FROM commands"))
    finally:
        conn.close()


async def test_a_mark_is_committed_before_mark_in_flight_returns(
    recorder: Recorder, ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(3)
    ledger.register(cmds)
    await recorder.mark_in_flight(mark(cmds[1]))

    seen = status_seen_from_outside(ledger_path)
    assert seen[cmds[1].key] == "in_flight"
    assert seen[cmds[0].key] == "pending"


async def test_mark_in_flight_waits_while_its_commit_is_held(
    recorder: Recorder, ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(1)
    ledger.register(cmds)
    ledger.hold = threading.Event()
    marking = asyncio.ensure_future(recorder.mark_in_flight(mark(cmds[0])))
    await asyncio.to_thread(ledger.writing.wait, 30)

    assert not marking.done()
    assert status_seen_from_outside(ledger_path)[cmds[0].key] == "pending"
    ledger.hold.set()
    await marking
    assert status_seen_from_outside(ledger_path)[cmds[0].key] == "in_flight"


async def test_outcomes_recorded_together_are_written_in_one_group(
    recorder: Recorder, ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(100)
    ledger.register(cmds)
    Ledger.write_batch(ledger, [mark(c) for c in cmds], ())  # sent, as a run does: not a group
    for c in cmds:
        recorder.record(accepted(c))
    await recorder.mark_in_flight(mark(cmds[0]))  # queued in the same moment: the same group

    assert ledger.groups == [(1, 100)]
    assert set(status_seen_from_outside(ledger_path).values()) <= {"accepted", "in_flight"}


async def test_marks_and_outcomes_that_arrive_during_a_commit_share_the_next_one(
    recorder: Recorder, ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(41)
    ledger.register(cmds)
    Ledger.write_batch(ledger, [mark(c) for c in cmds], ())  # sent, as a run does: not a group
    ledger.hold = threading.Event()
    first = asyncio.ensure_future(recorder.mark_in_flight(mark(cmds[0])))
    await asyncio.to_thread(ledger.writing.wait, 30)
    later = [asyncio.ensure_future(recorder.mark_in_flight(mark(c))) for c in cmds[1:21]]
    for c in cmds[21:]:
        recorder.record(accepted(c))
    await asyncio.sleep(0)  # let the later marks queue up behind the held commit
    ledger.hold.set()
    await asyncio.gather(first, *later)

    assert ledger.groups[:2] == [(1, 0), (20, 20)]
    seen = status_seen_from_outside(ledger_path)
    assert sum(s == "in_flight" for s in seen.values()) == 21
    assert sum(s == "accepted" for s in seen.values()) == 20


async def test_drain_after_cancellation_writes_what_was_left(
    ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(10)
    ledger.register(cmds)
    Ledger.write_batch(ledger, [mark(c) for c in cmds], ())  # sent, as a run does: not a group
    rec = Recorder(ledger)
    flusher = asyncio.create_task(rec.run())
    await asyncio.sleep(0)  # the flusher waits for work
    flusher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flusher
    for c in cmds:
        rec.record(accepted(c))
    assert set(status_seen_from_outside(ledger_path).values()) == {"in_flight"}

    rec.drain_sync()

    assert set(status_seen_from_outside(ledger_path).values()) == {"accepted"}
    ledger.close()


async def test_drain_writes_a_mark_whose_waiter_was_abandoned(
    ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(2)
    ledger.register(cmds)
    Ledger.write_batch(ledger, [mark(c) for c in cmds], ())  # sent, as a run does: not a group
    rec = Recorder(ledger)  # no flusher running: nothing gets written on its own
    waiting = asyncio.ensure_future(rec.mark_in_flight(mark(cmds[0])))
    rec.record(accepted(cmds[1]))
    await asyncio.sleep(0)
    assert not waiting.done()

    rec.drain_sync()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    seen = status_seen_from_outside(ledger_path)
    assert (seen[cmds[0].key], seen[cmds[1].key]) == ("in_flight", "accepted")
    ledger.close()


async def test_close_drains_everything_queued_before_the_flusher_ends(
    ledger: SpyLedger, ledger_path: Path
) -> None:
    cmds = commands(30)
    ledger.register(cmds)
    Ledger.write_batch(ledger, [mark(c) for c in cmds], ())  # sent, as a run does: not a group
    rec = Recorder(ledger)
    flusher = asyncio.create_task(rec.run())
    for c in cmds:
        rec.record(accepted(c))
    await rec.close()
    await flusher

    assert set(status_seen_from_outside(ledger_path).values()) == {"accepted"}
    rec.drain_sync()
    ledger.close()


async def test_a_failed_commit_fails_the_marks_waiting_on_it_and_the_flusher(
    ledger: SpyLedger,
) -> None:
    rec = Recorder(ledger)
    flusher = asyncio.create_task(rec.run())
    missing = commands(1)[0]  # never registered: the ledger refuses to mark it
    with pytest.raises(LedgerError, match="not in the ledger"):
        await rec.mark_in_flight(mark(missing))
    with pytest.raises(LedgerError):
        await flusher  # a ledger that cannot be written ends the run
    rec.drain_sync()
    ledger.close()
