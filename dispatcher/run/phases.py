"""One lane's share of a run: its phases (probe, leftovers, canary, send, recover), in order.

Each phase takes the lane's RunContext (context.py). A lane's commands are all of the job's, or
those of its product when a run has several (``job.only_product``). A breaker that trips, or a
rollout rule that fires, stops the lane gracefully with the reason (``aborted``); a canary that
went well with ``then: pause`` stops it on purpose (``paused``).

May import: errors, config, job, ledger, run. Never report, cli, app or emulator.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Final

from dispatcher.errors import RolloutAborted, RunAborted, WrongKeyError
from dispatcher.job.model import Job
from dispatcher.job.plan import Rollout
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.store import Row, Status
from dispatcher.model.command import product_label
from dispatcher.run.context import RunContext
from dispatcher.run.fanout import More, fan_out
from dispatcher.run.gating import CanaryPhase, skip_rest
from dispatcher.run.probe import check_lane, clock_notice, first_devices
from dispatcher.run.recovery import Item, Recovery
from dispatcher.run.registering import (
    Batch,
    count_commands,
    next_queued,
    next_registered,
    next_to_send,
    queue_all,
    register_all,
    to_send,
)
from dispatcher.run.rollout import Guard
from dispatcher.run.sending import Send
from dispatcher.run.stepping import StepGate, queue_pages

__all__ = ["PAUSED", "LanePhases"]

log = logging.getLogger(__name__)

_OFFSET_WARNING_S: Final = 5.0  # OneNET's clock this far from ours is worth a warning
PAUSED: Final = "paused after the canary"


class LanePhases:
    """One lane's share of a run: its commands (of one product, or all), its phases."""

    def __init__(self, ctx: RunContext, job: Job, rollout: Rollout) -> None:
        self.ctx, self.job, self.rollout = ctx, job, rollout
        self.run_id = 0
        self.aborted: RunAborted | None = None
        self.paused: str | None = None  # the rollout stopped here on purpose
        self._cut_short = False  # in-flight requests were abandoned (immediate stop, grace over)
        self._settling = asyncio.Lock()  # step 1 and the passes of a gated job settle in turn

    # -- the phases -----------------------------------------------------------------------------

    async def phases(self, reconcile_in_doubt: bool, resend: bool, probe: bool) -> None:
        """The lane's phases: probe, leftovers, canary, send, recover (run_id set first)."""
        ctx = self.ctx
        recorder, stop, stats = ctx.recorder, ctx.stop, ctx.stats
        self.reconcile_in_doubt = reconcile_in_doubt
        self.send = Send(ctx, run_id=self.run_id, on_abort=self._abort)
        self.recovery = Recovery(ctx, resend=self._fan_out, cut_short=lambda: self._cut_short)
        if probe:
            await self._probe()
        if self.aborted is not None and ctx.product is not None:
            # One lane of several stopped before it sent: its commands are in the ledger all
            # the same, pending, so that the run's report shows what is left for a rerun.
            await recorder.call(
                register_all, recorder.ledger, self.job, ctx.settings.ledger.batch_size
            )
        if self.aborted is None and not stop.requested:
            await self.recovery.leftovers(reconcile_in_doubt, resend)
            if not stop.requested and await self._canary_passed():
                await self._send_job()
        if reconcile_in_doubt and self.aborted is None:
            await self.recovery.recover()
        if isinstance(self.aborted, RolloutAborted):
            n = await skip_rest(
                self.job, recorder, stats, self.aborted.reason, batch=ctx.settings.ledger.batch_size
            )
            ctx.notify(f"{n:,} commands not sent are recorded as skipped; a rerun sends them")
        if isinstance(self.aborted, WrongKeyError):
            # The key was wrong, not the devices: these go out again on the next run.
            keys = ctx.lane.breakers.auth_rejects
            await recorder.flush()
            await recorder.call(recorder.ledger.move, keys, Event.WRONG_KEY)
            for _ in keys:
                stats.move(Status.REJECTED, Status.PENDING)
            stats.count(Status.REJECTED, -len(keys))

    async def _canary_passed(self) -> bool:
        """The rollout's guard set up, and its canary sent and judged (gating.py); False when
        the run is to send no more."""
        ctx, rollout = self.ctx, self.rollout
        if rollout.empty:
            return True
        guard = Guard(rollout, ctx.lane, ctx.settings.limits.rate_per_second, self._abort)
        ctx.outcomes.watchers.append(guard.observe)
        if rollout.canary is None:
            return True
        # A lane's canary is drawn from its own product's commands.
        total = ctx.stats.total
        if ctx.product is not None or not total:
            total = await ctx.recorder.call(count_commands, self.job)
        phase = CanaryPhase(
            ctx,
            self.job,
            rollout.canary,
            rollout.abort,
            total=total,
            send=self._fan_out,
            recover=self.recovery.recover,
            send_ready=self._send_ready,
        )
        gate = await phase.gate()
        if gate.failed is not None:
            self._abort(RolloutAborted(f"the canary failed: {gate.failed}"))
        elif gate.paused is not None:
            self.paused = gate.paused
            ctx.stop.request(PAUSED)
        elif gate.said:
            ctx.inform(gate.said)
        return gate.go and not ctx.stop.requested

    async def _probe(self) -> None:
        """Check the key and the address with one cheap call, and read OneNET's clock."""
        ctx = self.ctx
        lane = ctx.lane
        devices = first_devices(self.job, ctx.settings.reliability.breaker_threshold)
        probe = await check_lane(
            lane, devices, settings=ctx.settings, stop=ctx.stop, sleep=ctx.nap, clock=ctx.clock
        )
        ctx.stats.requests += probe.requests
        if probe.why is not None:
            self._abort(probe.why)
            return
        if lane.clock.known:
            ctx.stats.clock_offset = lane.clock.offset
        notice = clock_notice(probe, lane.clock, warn_beyond_s=_OFFSET_WARNING_S)
        if notice is not None:
            ctx.notify(notice)

    # -- sending --------------------------------------------------------------------------------

    async def _send_job(self) -> None:
        """Stream the job through the ledger into the fan-out: in a job with steps, one step
        after the other, the answers lost in one settled before the next (a device's step goes
        out only once the one before is accepted: sending.py holds back the others). The job is
        read once: while it is sent, or, with steps, into the ledger's queue before step 1."""
        ctx = self.ctx
        recorder, size = ctx.recorder, ctx.settings.ledger.batch_size
        steps = len(self.job.steps)
        if not steps:
            every = self.job.commands()
            try:
                await self._send(next_registered(recorder.ledger, every, size), size)
            finally:
                # The job's reader holds a temporary SQLite table bound to the ledger thread.
                await recorder.call(every.close)
            return
        await recorder.call(queue_all, recorder.ledger, self.job, size)
        if self.job.gated:
            try:
                await self._send_gated(size)
            finally:
                await recorder.call(recorder.ledger.clear_queue, ctx.product)
            return
        try:
            for step in range(1, steps + 1):
                if step > 1:
                    if self.reconcile_in_doubt:
                        await self.recovery.recover()
                    await recorder.flush()  # the step before's outcomes, read by hold-backs
                if ctx.stop.requested:
                    return
                queued = recorder.ledger.queued(step, ctx.product)
                try:
                    await self._send(next_queued(queued, size), size)
                finally:
                    if inspect.getgeneratorstate(queued) != inspect.GEN_CLOSED:
                        await recorder.call(queued.close)  # where it reads: the ledger thread
        finally:
            await recorder.call(recorder.ledger.clear_queue, ctx.product)

    async def _send_gated(self, size: int) -> None:
        """A job whose steps wait for delivery: step 1 streamed to every device while the
        passes of stepping.py send each device's next step as soon as its step before is
        through, and follow the deliveries awaited."""
        ctx = self.ctx
        recorder = ctx.recorder
        first_sent = asyncio.Event()
        pages = queue_pages(recorder.ledger, ctx.product, size)
        gate = StepGate(
            ctx, self.job, pages, send=self._send_ready, recover=self._settle, first_sent=first_sent
        )

        async def first_step() -> None:
            queued = recorder.ledger.queued(1, ctx.product)
            try:
                await self._send(next_queued(queued, size), size)
            finally:
                if inspect.getgeneratorstate(queued) != inspect.GEN_CLOSED:
                    await recorder.call(queued.close)
            try:
                await self._settle()
            finally:
                first_sent.set()

        async with asyncio.TaskGroup() as group:
            group.create_task(first_step())
            passes = group.create_task(gate.run())
        log.info("%s", passes.result())

    async def _settle(self) -> None:
        """The answers this run lost, settled (when the run reconciles); one settling at a
        time, so that a command OneNET never created is sent again once."""
        if self.reconcile_in_doubt:
            async with self._settling:
                await self.recovery.recover()

    async def _send_ready(self, items: list[Item], befores: list[Row]) -> None:
        """Steps ready to go, with the rows of their steps before (read already)."""
        self.send.steps_before(befores)
        try:
            await self._fan_out(items)
        finally:
            self.send.steps_before([])

    async def _send(self, batches: Batch, size: int) -> None:
        """The commands of ``batches`` (``size`` a batch) to send through the fan-out; those
        already final count as skipped (unless this run found them in the history)."""
        ctx = self.ctx

        def skipped(key: str) -> None:
            if key not in self.recovery.found:
                ctx.stats.skipped += 1

        first = await ctx.recorder.call(batches)
        items = to_send(first, skipped)
        if len(first) < size:  # all there is (a step of a few devices): sent as a list
            # The steps before, read at once: the step's commands go out together.
            if afters := [command.after for command, _ in items if command.after]:
                rows = await ctx.recorder.call(ctx.recorder.ledger.rows_of, afters)
                self.send.steps_before(rows)
            try:
                await self._fan_out(items)
            finally:
                self.send.steps_before([])  # read afresh for anything sent later
        else:
            await self._fan_out(items, more=next_to_send(ctx.recorder, batches, skipped))

    async def _fan_out(self, items: list[Item], more: More[Item] | None = None) -> None:
        ctx = self.ctx
        workers = ctx.settings.limits.concurrency
        if more is None:  # no more workers than commands: a step of a few is cheap
            workers = max(1, min(workers, len(items)))
        stop = ctx.stop
        cut = await fan_out(
            items,
            self.send,
            workers=workers,
            stop=stop,
            taking=stop.taking,
            grace_s=ctx.settings.reliability.stop_grace_s,
            more=more,
        )
        if cut:
            self._cut_short = True
            ctx.notify(f"stopped at once ({ctx.stop.reason}): commands on the wire are in doubt")

    def _abort(self, why: RunAborted) -> None:
        """A breaker tripped: stop gracefully, with the reason (naming the product's lane when
        a run has several: the others go on)."""
        product = self.ctx.product
        if product is not None:
            why = type(why)(f"{product_label(product)}: {why.reason}")
        if self.aborted is None:
            self.aborted = why
        self.ctx.stop.request(why.reason)
