"""The send operation: one cached command (execute, write or read) created at OneNET, exactly once.

For each command: its times are resolved for the moment of sending (on OneNET's clock), it is
marked ``in_flight`` in the ledger with exactly those times and the mark is on disk, it waits for
its lane's pace, and its request goes out; retries (tenacity, ``retrying.py``) only follow answers
that say nothing was created. When the wait made its times stale (a hold, a backoff, a slow pace),
they are resolved and marked again before the request leaves: an absolute ``valid_time`` that
passed is dropped, an ``expired_time`` that passed makes the command ``expired`` locally. With a
rate, at most ``_AHEAD_S`` seconds' worth of commands are marked ahead of the pace, so that this
is rare (a re-mark at the head of the queue is one durable write at a time).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from dispatcher.errors import RunAborted
from dispatcher.ledger.store import InFlight, Row, Status
from dispatcher.model import Command
from dispatcher.onenet.answers import Outcome, Verdict
from dispatcher.onenet.client import OfflineRequest
from dispatcher.run.context import RunContext
from dispatcher.run.retrying import Attempts, should_retry
from dispatcher.times import BEIJING, TimeSpec, format_onenet

__all__ = ["EXPIRED", "Send"]

# A valid_time this close to the moment of sending has passed by the time OneNET checks it.
_START_MARGIN = 2.0
# Times resolved longer ago than this before the request leaves are resolved again.
_STALE_S = 1.0
# With a rate, at most this many seconds' worth of commands are marked ahead of the pace.
_AHEAD_S = 0.4

EXPIRED = "expired_time passed before the command could be sent"


@dataclass(slots=True)
class _Flight:
    """One command on its way: what is sent, when its times were fixed, and whether it is out."""

    command: Command
    old: Status  # its status before this run sent it
    request: OfflineRequest
    resolved_at: float  # OneNET's clock when the times were fixed
    valid_at: float | None  # the instants sent (OneNET's clock), to check them cheaply
    expired_at: float
    attempts: int = 0
    on_wire: bool = False
    sent_at: float | None = None  # when its latest request left (our clock)
    latency_ms: float | None = None
    turn: _Turn | None = None  # its place among those marked ahead of the pace, until it leaves


class _NotSent(Exception):
    """A stop arrived while the command waited for its pace slot."""


class _Expired(Exception):
    """The command's expired_time passed before it could be sent."""


class Send:
    """The operation of the send path: ``await send((command, status_before))``."""

    def __init__(
        self, ctx: RunContext, *, run_id: int, on_abort: Callable[[RunAborted], None]
    ) -> None:
        lane, stop = ctx.lane, ctx.stop
        self.lane, self.outcomes, self.recorder = lane, ctx.outcomes, ctx.recorder
        self.run_id, self.stop, self.clock, self.on_abort = run_id, stop, ctx.clock, on_abort
        # A create is retried only after answers that say nothing was created (retrying.py).
        self.attempts = Attempts(ctx.settings.retry, stop=stop, sleep=ctx.nap)
        rate = lane.pace.rate
        self._turns = asyncio.Semaphore(max(1, int(rate * _AHEAD_S))) if rate else None
        self._stopping = lambda: stop.requested
        # What each time of the job means for a send in the current second (fleets share them).
        self._second = -1
        self._instants: dict[TimeSpec, tuple[float, str]] = {}
        self._before: dict[str, Row] = {}  # steps before, read for a whole step at once

    def steps_before(self, rows: list[Row]) -> None:
        """The rows of the steps before the commands about to be sent, read from the ledger in
        one call once their outcomes are written (each is used once, then read afresh)."""
        self._before = {row.key: row for row in rows}

    async def __call__(self, item: tuple[Command, Status]) -> None:
        command, old = item
        if command.after and await self._held_back(command, old):
            return
        turn: _Turn | None = None
        if self._turns is not None:
            turn = _Turn(self._turns)
            if not await turn.take(self._stopping):
                return  # a stop came first: nothing of it was written, it stays as it was
        try:
            await self._send(command, old, turn)
        finally:
            if turn is not None:
                turn.give()

    async def _held_back(self, command: Command, old: Status) -> bool:
        """A step whose step before is not accepted is not sent: recorded ``skipped`` with why
        (a rerun sends it once that one is); True when held back."""
        known = self._before.pop(command.after, None)
        if known is not None:
            before = [known]
        else:
            before = await self.recorder.call(self.recorder.ledger.rows_of, [command.after])
        if before and before[0].status is Status.ACCEPTED:
            return False
        if before:
            row, c = before[0], before[0].command
            path = "/".join(str(i) for i in (c.obj_id, c.obj_inst_id, c.res_id) if i is not None)
            why = f"held back: step {c.step} ({c.op} {path}) is {row.status.value}, not accepted"
        else:
            why = "held back: the step before is not in the ledger"
        self.outcomes.sent(command.key, old, Status.SKIPPED, None, why, 0, self.clock())
        return True

    async def _send(self, command: Command, old: Status, turn: _Turn | None) -> None:
        now = self.clock()
        flight = self._resolve(command, old, self.lane.clock.now())
        done = self.outcomes.sent
        if flight is None:
            done(command.key, old, Status.EXPIRED, None, EXPIRED, 0, now)
            return
        flight.turn = turn
        try:
            await self._mark(flight, now)
            outcome = await self._attempt(flight)
            if should_retry(outcome, 1):  # only then the retry policy (retrying.py) takes over
                outcome = await self.attempts.after(outcome, self._attempt, flight)
        except _NotSent:
            # A stop came while it waited for its slot: it goes out with the next run.
            done(command.key, old, Status.PENDING, None, "", flight.attempts, now)
            return
        except _Expired:
            done(command.key, old, Status.EXPIRED, None, EXPIRED, flight.attempts, self.clock())
            return
        except asyncio.CancelledError:
            # Its request on the wire: in doubt, looked up from the moment it left. Otherwise
            # (waiting for its mark, its slot or a retry) nothing of it is at OneNET.
            status = Status.IN_DOUBT if flight.on_wire else Status.PENDING
            error = "stopped at once" if flight.on_wire else ""
            done(command.key, old, status, None, error, flight.attempts, flight.sent_at or now)
            raise
        self._finish(flight, outcome)

    async def _attempt(self, flight: _Flight) -> Outcome:
        lane = self.lane
        if flight.attempts:
            # A retry, after its backoff: times for now, marked before the wait for the pace.
            await self._refresh(flight, lane.clock.now())
        ready = functools.partial(self._ready, flight)
        granted = await lane.pace.acquire_for(ready, abandon=self._stopping)
        if flight.turn is not None:
            flight.turn.give()  # at the head: the next one may be marked
            flight.turn = None
        if not granted:
            raise _NotSent
        flight.attempts += 1
        flight.on_wire = True
        flight.sent_at = sent = self.clock()
        started = time.perf_counter()
        outcome = await lane.client.create(flight.request)
        flight.latency_ms = (time.perf_counter() - started) * 1000.0
        flight.on_wire = False
        stats = self.outcomes.stats
        stats.requests += 1
        if outcome.server_date is not None:
            lane.clock.observe(outcome.server_date, sent, sent + flight.latency_ms / 1000.0)
        if outcome.throttled:
            stats.throttled += 1
        tripped = lane.observe(outcome, flight.command.key)
        if tripped is not None:
            self.on_abort(tripped)
        return outcome

    async def _ready(self, flight: _Flight, wait: float) -> None:
        """At the head of the pace queue: fix the times again if they would be stale on sending."""
        at = self.lane.clock.now() + wait
        if at - flight.resolved_at <= _STALE_S and _still_good(flight, at):
            return
        await self._refresh(flight, at)

    async def _refresh(self, flight: _Flight, at: float) -> None:
        """Resolve the times for a send at ``at`` (OneNET's clock); mark them if they changed."""
        fresh = self._resolve(flight.command, flight.old, at)
        if fresh is None:
            raise _Expired
        flight.resolved_at = fresh.resolved_at
        if fresh.request != flight.request:
            flight.request = fresh.request
            flight.valid_at, flight.expired_at = fresh.valid_at, fresh.expired_at
            await self._mark(flight, self.clock())

    async def _mark(self, flight: _Flight, now: float) -> None:
        req = flight.request
        mark = InFlight(
            flight.command.key,
            now,
            req.valid_time,
            req.expired_time,
            self.run_id,
            # OneNET's clock only once it is known: the history search falls back to ours plus
            # the offset known then, rather than trust a time that was only ours.
            server_at=flight.resolved_at if self.lane.clock.known else None,
        )
        await self.recorder.mark_in_flight(mark)

    def _resolve(self, c: Command, old: Status, at: float) -> _Flight | None:
        """The request for a send at ``at`` (OneNET's clock, unix seconds); None: expired."""
        second = int(at)
        expired_at, expired_text = self._instant(c.expired_time, second)
        if expired_at <= at + _START_MARGIN:
            return None
        valid_at: float | None = None
        valid_text: str | None = None
        if c.valid_time is not None:
            valid_at, valid_text = self._instant(c.valid_time, second)
            if valid_at <= at + _START_MARGIN:
                # A start that has passed means "from now", which is OneNET's default.
                valid_at, valid_text = None, None
        request = OfflineRequest(c, expired_text, valid_text)
        return _Flight(c, old, request, at, valid_at, expired_at)

    def _instant(self, spec: TimeSpec, second: int) -> tuple[float, str]:
        """What ``spec`` means for a send in ``second`` (unix): unix seconds and OneNET's text,
        worked out once per distinct time and second."""
        if second != self._second:
            self._second = second
            self._instants.clear()
        known = self._instants.get(spec)
        if known is None:
            instant = spec.resolve(datetime.fromtimestamp(second, BEIJING))
            known = self._instants[spec] = (instant.timestamp(), format_onenet(instant))
        return known

    def _finish(self, flight: _Flight, outcome: Outcome) -> None:
        """An answer becomes a status: the outcome-to-status rule of a create."""
        verdict, attempts = outcome.verdict, flight.attempts
        if verdict is Verdict.ACCEPTED:
            status = Status.ACCEPTED
        elif verdict is Verdict.IN_DOUBT:
            status = Status.IN_DOUBT
        elif verdict is Verdict.REJECTED or (verdict is Verdict.RETRY_ONCE and attempts > 1):
            status = Status.REJECTED
        elif self.stop.requested:
            status = Status.PENDING  # a retry cut short by a stop: OneNET created nothing
        else:
            status = Status.FAILED
        uuid = outcome.uuid if status is Status.ACCEPTED else None
        self.outcomes.sent(
            flight.command.key,
            flight.old,
            status,
            outcome.errno,
            outcome.error,
            attempts,
            self.clock(),
            flight.latency_ms,
            uuid=uuid,
        )


class _Turn:
    """A place among the commands marked ahead of the pace: taken before the mark, given back
    when the command's slot comes (or it ends first)."""

    __slots__ = ("_gate", "_held")

    def __init__(self, gate: asyncio.Semaphore) -> None:
        self._gate = gate
        self._held = False

    async def take(self, stopping: Callable[[], bool]) -> bool:
        """Wait for a place; False (and no place held) when a stop came meanwhile."""
        await self._gate.acquire()
        self._held = True
        if stopping():
            self.give()
            return False
        return True

    def give(self) -> None:
        """Give the place back (once)."""
        if self._held:
            self._held = False
            self._gate.release()


def _still_good(flight: _Flight, at: float) -> bool:
    """Whether the times fixed for ``flight`` are still what OneNET would take at ``at``."""
    if flight.expired_at <= at + _START_MARGIN:
        return False
    return flight.valid_at is None or flight.valid_at > at + _START_MARGIN
