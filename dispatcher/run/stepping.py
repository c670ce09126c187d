"""Steps gated on delivery: while step 1 goes out (phases.py), and after, each device's next
step is sent as soon as its step before is through (delivered, where that step says ``wait:
delivered``; accepted otherwise), device by device, never a whole step at a time.

``StepGate.run`` repeats a pass until every device finished, was held back, or a stop came: it
looks at the ledger (step_survey.py), holds back what cannot go (``Event.HOLD_BACK``, skipped with
the reason), then sends what is ready while a status round (run/status.py ``read_round``, paced by
the lane like every call) reads the deliveries awaited; a pass that sent nothing waits
``reliability.delivery_poll_s`` first. What a pass came to is told as progress (``StepProgress``,
a line through the run's ``inform`` whenever it changed). Everything it decides is read back
from the ledger, so a killed run's rerun takes each device up where it was, and sends nothing
twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from dispatcher.job.model import Command, Job
from dispatcher.ledger.records import Delivery, Row, Status
from dispatcher.ledger.store import LedgerStore
from dispatcher.run.context import RunContext
from dispatcher.run.recovery import Item
from dispatcher.run.state import first_of
from dispatcher.run.status import read_round
from dispatcher.run.step_survey import Pages, batched, survey

__all__ = ["SendReady", "StepGate", "StepProgress", "canary_pages", "queue_pages"]

log = logging.getLogger(__name__)

SendReady = Callable[[list[Item], list[Row]], Awaitable[None]]
"""Sends the commands ready (with the rows of their steps before, already read)."""


@dataclass(slots=True)
class StepProgress:
    """Where a gated run's devices stand after a pass."""

    passes: int = 0
    waiting: int = 0  # devices whose next step waits for a delivery
    moved_on: int = 0  # later steps this run sent
    held_back: int = 0  # steps this run held back
    following: int = 0  # last steps followed to their delivery
    lapsed: int = 0  # last steps not delivered in time (no longer followed)

    def __str__(self) -> str:
        line = (
            f"steps: {self.waiting:,} devices waiting for a delivery, {self.moved_on:,} steps"
            f" moved on, {self.held_back:,} held back"
        )
        if self.following:
            line += f", {self.following:,} last steps awaiting delivery"
        if self.lapsed:
            line += f", {self.lapsed:,} last steps not delivered in time"
        return line


def queue_pages(ledger: LedgerStore, product: str | None, size: int) -> Pages:
    """A run's steps, from the ledger's send queue (``LedgerStore.queued``)."""

    def pages(step: int) -> Iterator[list[Item]]:
        queued = ledger.queued(step, product)
        try:
            yield from batched(queued, size)
        finally:
            queued.close()

    return pages


def canary_pages(ledger: LedgerStore, commands: Iterable[Command]) -> Pages:
    """A canary's steps: its commands, each with its status as the ledger has it now."""
    by_step: dict[int, list[Command]] = {}
    for command in commands:
        by_step.setdefault(command.step, []).append(command)

    def pages(step: int) -> Iterator[list[Item]]:
        commands = by_step.get(step, [])
        status = {r.key: r.status for r in ledger.rows_of([c.key for c in commands])}
        yield [(c, status[c.key]) for c in commands if c.key in status]

    return pages


class Due:
    """When each awaited delivery is read again: at once the first time, then after the poll,
    the wait doubling while its state stays the same (up to ``BACKOFF`` polls), at once again when
    it moved. A fleet that wakes hourly is then asked a few times an hour, not every poll: the
    reads share the lane's pace with the sends."""

    BACKOFF: Final = 32

    def __init__(self, poll_s: float) -> None:
        self.poll_s = poll_s
        self._next: dict[str, tuple[float, float, int | None]] = {}  # at, wait, state seen

    def of(self, rows: Iterable[Row], now: float) -> list[Row]:
        """The rows to read now (and when each is due next)."""
        due: list[Row] = []
        known = self._next
        for row in rows:
            seen = known.get(row.key)
            if seen is None or seen[2] != row.send_status:
                wait = self.poll_s
            elif seen[0] <= now:
                wait = min(seen[1] * 2, self.poll_s * self.BACKOFF)
            else:
                continue
            known[row.key] = (now + wait, wait, row.send_status)
            due.append(row)
        return due


class StepGate:
    """The passes of a job of steps after step 1: send what is ready, hold back what cannot go,
    follow the deliveries awaited."""

    def __init__(
        self,
        ctx: RunContext,
        job: Job,
        pages: Pages,
        *,
        send: SendReady,
        recover: Callable[[], Awaitable[None]],
        first_sent: asyncio.Event | None = None,
    ) -> None:
        """``first_sent``: set once step 1 went out (and its lost answers were settled), when
        it is sent beside the passes (None: it was sent before)."""
        self.ctx, self.job, self.pages = ctx, job, pages
        self.send, self.recover, self.first_sent = send, recover, first_sent
        self.held: dict[str, str] = {}  # keys held back by this run, with why
        self.started = ctx.clock()
        self.progress = StepProgress()
        self._said = ""
        self._due = Due(ctx.settings.reliability.delivery_poll_s)

    async def run(self) -> StepProgress:
        """Passes until every device finished or was held back, or a stop came."""
        ctx = self.ctx
        recorder = ctx.recorder
        poll = ctx.settings.reliability.delivery_poll_s
        while not ctx.stop.requested:
            going = self.first_sent is not None and not self.first_sent.is_set()
            await recorder.flush()  # what the pass before wrote, read by this one
            look = functools.partial(
                survey,
                recorder.ledger,
                self.pages,
                self.job.waits,
                self.held,
                started=self.started,
                now=ctx.clock(),
                server_now=ctx.lane.clock.now(),
                grace_s=2 * poll,
                first_going=going,
                read_grace_s=2 * Due.BACKOFF * poll,
            )
            found = await recorder.call(look)
            for (command, old), why in found.held:
                ctx.outcomes.sent(command.key, old, Status.SKIPPED, None, why[:300], 0, ctx.clock())
                log.info("%s: %s", command.imei, why)
            progress = self.progress
            progress.passes += 1
            progress.held_back += len(found.held)
            progress.moved_on += len(found.ready)
            progress.waiting, progress.following = found.waiting, found.last_open
            progress.lapsed = found.lapsed
            self._tell()
            if not found.ready and not found.follow and not going:
                return progress
            async with asyncio.TaskGroup() as group:
                if found.ready:
                    group.create_task(self._send(found.ready, found.befores))
                due = self._due.of(found.follow.values(), ctx.clock())
                if due:
                    group.create_task(self._read(due))
            if found.ready:
                await self.recover()  # answers lost on the way back settled before the next look
            else:
                await self._pause(poll, going)
        return self.progress

    async def _pause(self, poll: float, going: bool) -> None:
        """The wait between two passes: a poll, cut short when step 1 is all sent meanwhile."""
        if not going or self.first_sent is None:
            await self.ctx.nap(poll)
            return
        await first_of(self.ctx.nap(poll), self.first_sent.wait())

    async def _send(self, items: list[Item], befores: list[Row]) -> None:
        await self.send(items, befores)

    async def _read(self, rows: list[Row]) -> None:
        """One status round over the rows whose delivery is awaited."""
        ctx = self.ctx
        recorder = ctx.recorder

        async def record(batch: list[Delivery]) -> None:
            await recorder.call(recorder.ledger.record_delivery, batch)

        result = await read_round(
            rows, ctx.lane, record, ctx.settings, stop=ctx.stop, clock=ctx.clock, sleep=ctx.sleep
        )
        if result.gave_up is not None:
            ctx.notify(f"steps: {result.gave_up}; trying again in the next pass")

    def _tell(self) -> None:
        """Progress, told when it changed (and once there is any)."""
        p = self.progress
        if not (p.waiting or p.moved_on or p.held_back or p.following or p.lapsed):
            return  # nothing to say yet: step 1 is still on its way
        said = str(p)
        if said != self._said:
            self._said = said
            self.ctx.inform(said)
