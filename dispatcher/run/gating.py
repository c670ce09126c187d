"""A rollout's phases in a run: the canary sent and judged before the rest, and, when a rule
fires, every command not sent marked ``skipped`` with the rule (rollout.py has the rules)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from dispatcher.job.model import Command, Job
from dispatcher.job.plan import Abort, Canary
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.records import OPEN_DELIVERY, TO_SEND, Delivery, Status
from dispatcher.ledger.store import LedgerStore
from dispatcher.run.context import RunContext
from dispatcher.run.recovery import Item
from dispatcher.run.registering import registered
from dispatcher.run.rollout import CanaryVerdict, canary_positions, judge_canary
from dispatcher.run.state import RunStats
from dispatcher.run.status import read_round
from dispatcher.run.stepping import SendReady, StepGate, canary_pages

__all__ = ["CanaryPhase", "Gate", "skip_rest"]

log = logging.getLogger(__name__)

_NOT_SENT: Final = (Status.PENDING, Status.FAILED)


@dataclass(frozen=True, slots=True)
class Gate:
    """What the canary decided: go on, or why not (it failed, or the rollout pauses)."""

    go: bool
    failed: str | None = None
    paused: str | None = None
    said: str = ""


class CanaryPhase:
    """The canary of a run: registered, sent, settled, followed to delivery if asked, judged."""

    def __init__(
        self,
        ctx: RunContext,
        job: Job,
        canary: Canary,
        abort: Abort | None,
        *,
        total: int,
        send: Callable[[list[Item]], Awaitable[None]],
        recover: Callable[[], Awaitable[None]],
        send_ready: SendReady | None = None,
    ) -> None:
        """``ctx.product``: the lane's, when a run has several: its canary passes on its own.
        ``send_ready``: how a job whose steps wait for delivery sends a device's next step
        (stepping.py); its canary's devices go through their steps the same way."""
        self.ctx, self.send_ready = ctx, send_ready
        self.job, self.canary, self.abort, self.total = job, canary, abort, total
        self.product = ctx.product
        self.lane, self.recorder, self.settings = ctx.lane, ctx.recorder, ctx.settings
        self.send, self.recover = send, recover
        self.stop, self.clock, self.sleep = ctx.stop, ctx.clock, ctx.nap

    async def gate(self) -> Gate:
        """Whether the run goes on past the canary: at once when passed canaries cover every
        command left to send; else once a canary of those not covered is sent and judged (a
        good one is recorded in the ledger, covering the lane's commands)."""
        ledger = self.recorder.ledger
        eligible: list[int] | None = None  # row positions the canary is drawn from (None: all)
        if await self.recorder.call(ledger.canary_covered_before, self.product):
            # Only what no passed canary judged fit needs one: an edit, a command added.
            eligible = await self.recorder.call(
                _uncovered_rows, ledger, self.job, self.settings.ledger.batch_size, self._steps
            )
            if not eligible:
                return Gate(go=True)
            log.info("canary: %d rows are not covered by a passed canary", len(eligible))
        verdict = await self.run(eligible)
        if verdict is None:
            return Gate(go=False)
        if verdict.failed_because is not None:
            return Gate(go=False, failed=verdict.failed_because)
        await self.recorder.call(_pass, ledger, self.product, verdict.keys, self.job)
        done = "delivered" if self.canary.wait == "delivered" else "accepted"
        said = (
            f"the canary went well: {verdict.decided - verdict.failures:,} of"
            f" {verdict.commands:,} commands {done}"
        )
        if self.canary.then == "pause":
            return Gate(go=False, paused=f"{said}; paused, as rollout.canary.then says")
        return Gate(go=True, said=said)

    @property
    def _steps(self) -> int:
        return len(self.job.steps) or 1

    async def run(self, eligible: list[int] | None = None) -> CanaryVerdict | None:
        """The canary's verdict; None when a stop came first. ``eligible``: the row positions
        to draw it from (None: every row of the job)."""
        ledger = self.recorder.ledger
        steps = self._steps
        # With steps, the canary is of devices: each gets every step, one step after the other.
        if eligible is None:
            positions = canary_positions(self.total // steps, self.canary)
        else:
            drawn = canary_positions(len(eligible), self.canary)
            positions = frozenset(eligible[i] for i in drawn)
        items = await self.recorder.call(_register_canary, ledger, self.job, positions, steps)
        keys = [command.key for command, _ in items]
        log.info("canary: %d commands, %d to send", len(items), sum(s in TO_SEND for _, s in items))
        gated = self.job.gated and self.send_ready is not None
        for step in sorted({command.step for command, _ in items}):
            if gated and step > 1:
                break  # a device's later steps go out as its steps before are delivered
            to_send = [(c, status) for c, status in items if status in TO_SEND and c.step == step]
            if to_send:
                await self.send(to_send)
            if self.stop.requested:
                return None
            await self.recover()  # answers lost on the way back are settled before going on
        if gated and self.send_ready is not None:
            pages = canary_pages(ledger, [command for command, _ in items])
            gate = StepGate(self.ctx, self.job, pages, send=self.send_ready, recover=self.recover)
            log.info("canary: %s", await gate.run())
            if self.stop.requested:
                return None
        if self.canary.wait == "delivered":
            await self._follow(keys)
            if self.stop.requested:
                return None
        await self.recorder.flush()
        rows = await self.recorder.call(ledger.rows_of, keys)
        return judge_canary(rows, self.canary, self.abort)

    async def _follow(self, keys: list[str]) -> None:
        """Status rounds over the canary's accepted commands until each is final or the
        canary's timeout ran out."""
        ledger = self.recorder.ledger
        deadline = self.clock() + self.canary.timeout_s
        poll = self.settings.reliability.delivery_poll_s

        async def record(batch: list[Delivery]) -> None:
            await self.recorder.call(ledger.record_delivery, batch)

        while not self.stop.requested:
            await self.recorder.flush()
            rows = await self.recorder.call(ledger.rows_of, keys)
            open_rows = [r for r in rows if r.delivery in OPEN_DELIVERY]
            if not open_rows:
                return
            await read_round(
                open_rows, self.lane, record, self.settings, stop=self.stop, clock=self.clock
            )
            left = deadline - self.clock()
            if left <= 0:
                log.info("canary: %d commands not final at the timeout", len(open_rows))
                return
            await self.sleep(min(poll, left))


def _uncovered_rows(ledger: LedgerStore, job: Job, size: int, steps: int) -> list[int]:
    """On the ledger thread: the positions of the job's rows (each ``steps`` commands) with a
    command to send that no passed canary covers; every command registered on the way."""
    rows: set[int] = set()
    n = 0
    for items in registered(ledger, job, size):
        found = ledger.uncovered([command.key for command, _ in items])
        rows.update((n + i) // steps for i, (c, _) in enumerate(items) if c.key in found)
        n += len(items)
    return sorted(rows)


def _pass(ledger: LedgerStore, product: str | None, judged: list[str], job: Job) -> int:
    """On the ledger thread: the canary's pass recorded, covering the lane's commands."""
    commands = job.commands()
    try:
        return ledger.pass_canary(product, judged, commands)
    finally:
        commands.close()


def _register_canary(
    ledger: LedgerStore, job: Job, positions: frozenset[int], steps: int
) -> list[Item]:
    """The canary's commands (those of the rows at ``positions`` of the job: each row is
    ``steps`` commands in a row), registered, with their status."""
    picked: list[Command] = []
    commands = job.commands()
    try:
        for n, command in enumerate(commands):
            if n // steps in positions:
                picked.append(command)
    finally:
        commands.close()
    return list(zip(picked, ledger.register(picked), strict=True)) if picked else []


async def skip_rest(job: Job, recorder: Recorder, stats: RunStats, why: str, *, batch: int) -> int:
    """Mark every command of ``job`` not sent yet ``skipped`` with ``why``; how many."""
    await recorder.flush()
    moved = await recorder.call(_skip_all, recorder.ledger, job, why, batch)
    for old in moved:
        stats.move(old, Status.SKIPPED)
    return len(moved)


def _skip_all(ledger: LedgerStore, job: Job, why: str, size: int) -> list[Status]:
    """On the ledger thread: register the rest of the job, and skip what is not sent."""
    moved: list[Status] = []
    for items in registered(ledger, job, size):
        keys = []
        for command, status in items:
            if status in _NOT_SENT:
                keys.append(command.key)
                moved.append(status)
        ledger.skip(keys, why[:300])
    return moved
