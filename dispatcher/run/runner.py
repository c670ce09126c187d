"""run_job(): a job sent to OneNET through one lane and the paced fan-out, every outcome recorded.

A run has four phases, all writing to the same ledger:

1. *probe*: one cheap authenticated call (a history query for a device of the job) checks the
   api-key and the address before the fleet is touched, and reads OneNET's clock from its ``Date``
   header (probe.py); relative times and history searches use OneNET's clock;
2. *leftovers*: commands an earlier run left ``in_flight`` (it was killed) or ``in_doubt`` are
   looked up in OneNET's history (reconcile.py) before anything new is sent;
3. *send*: the job file streams in batches into the ledger (``register``) and from there through
   the fan-out (fanout.py) to the send operation (sending.py);
4. *recover*: answers lost on the way back (``in_doubt``) are looked up once they have had time to
   land (``settle_s``); those OneNET never created are sent again, for a few rounds.

Every call goes through the run's lane (lane.py): one OneNET product's client, pace, adaptive
slow-down and breakers. A job whose commands name products (``products``) runs one lane per
product at once, each with the phases above for its own commands: a lane whose breaker trips
stops alone, the others finish. A ``Stop`` ends a run early with a reason: the first request is
graceful (no new commands, in-flight ones finish within a grace period), a second one is
immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping

from dispatcher.clock import ServerClock
from dispatcher.config import Settings
from dispatcher.errors import LedgerError, RolloutAborted, RunAborted, WrongKeyError
from dispatcher.job.model import Command, Job
from dispatcher.job.plan import Rollout
from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import FINAL, TO_SEND, LedgerStore, Status
from dispatcher.run.fanout import fan_out
from dispatcher.run.gating import CanaryPhase, registered, skip_rest
from dispatcher.run.lane import Lane, OneNetApi
from dispatcher.run.outcomes import Outcomes
from dispatcher.run.pacing import Pace
from dispatcher.run.probe import check_lane, clock_notice, first_devices
from dispatcher.run.recovery import Item, Recovery
from dispatcher.run.rollout import Guard
from dispatcher.run.sending import Send
from dispatcher.run.state import RunResult, RunStats, Stop

__all__ = ["OneNetApi", "RunResult", "RunStats", "Stop", "run_job"]

log = logging.getLogger(__name__)

_OFFSET_WARNING_S = 5.0  # OneNET's clock this far from ours is worth a warning
_PAUSED = "paused after the canary"


async def run_job(
    job: Job,
    client: OneNetApi,
    ledger: LedgerStore,
    settings: Settings,
    *,
    stop: Stop | None = None,
    stats: RunStats | None = None,
    pace: Pace | None = None,
    reconcile_in_doubt: bool = True,
    resend_in_doubt: bool = False,
    probe: bool = True,
    rollout: Rollout | None = None,
    server_clock: ServerClock | None = None,
    notify: Callable[[str], None] | None = None,
    inform: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    products: Mapping[str, tuple[OneNetApi, Settings]] | None = None,
    default_lane: bool = True,
) -> RunResult:
    """Send every command of ``job`` not yet final in ``ledger``; return the ledger's counts.

    ``notify`` receives the notable events a person should see (a clock offset, a stop), one line
    each; ``inform`` the good news (a canary that went well); by default both are logged.
    ``rollout``: the job's own (``job.plan.rollout``) unless given (the command line's flags
    merged in). ``products``: the client and settings of each product the job's commands name,
    a lane each; ``client`` and ``settings`` are the lane of the commands that name none
    (``default_lane`` False: there are none, and it makes no call).
    """
    stop = stop or Stop()
    stats = stats or RunStats()
    recorder = Recorder(ledger)
    outcomes = Outcomes(recorder, stats)
    several = bool(products)
    lanes: list[tuple[str, OneNetApi, Settings]] = [("", client, settings)] if default_lane else []
    lanes += [(name, c, s) for name, (c, s) in (products or {}).items()]
    runners = [
        _Runner(
            dataclasses.replace(job, only_product=name) if several else job,
            Lane.of(
                lane_client,
                lane_settings,
                pace=pace if not name else None,
                server_clock=server_clock if not name else None,
                clock=clock,
                name=name or "default",
            ),
            recorder,
            outcomes,
            lane_settings,
            stop=stop.child() if several else stop,
            notify=notify or log.warning,
            inform=inform or log.info,
            clock=clock,
            sleep=sleep,
            rollout=job.plan.rollout if rollout is None else rollout,
            product=name if several else None,
        )
        for name, lane_client, lane_settings in lanes
    ]
    return await _run(
        job, runners, recorder, stop, stats, settings,
        options=(reconcile_in_doubt, resend_in_doubt, probe),
    )  # fmt: skip


async def _run(
    job: Job,
    runners: list[_Runner],
    recorder: Recorder,
    stop: Stop,
    stats: RunStats,
    settings: Settings,
    *,
    options: tuple[bool, bool, bool],
) -> RunResult:
    """The run record, the ledger's writer, and every lane's phases at once."""
    ledger = recorder.ledger
    error: BaseException | None = None
    run_id = 0
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(recorder.run())
            try:
                run_id = await recorder.call(ledger.start_run, str(job.path), settings.to_dict())
                stats.start(await recorder.call(ledger.counts))
                async with asyncio.TaskGroup() as lanes:
                    for runner in runners:
                        runner.run_id = run_id
                        lanes.create_task(runner.phases(*options))
            finally:
                await recorder.close()
    except BaseExceptionGroup as group:
        error = _sole(group)
    except BaseException as exc:  # cancelled from outside, or a KeyboardInterrupt
        error = exc
    try:
        recorder.drain_sync()
    except LedgerError as exc:
        error = error or exc
    if error is not None:
        if run_id:
            with contextlib.suppress(LedgerError):
                ledger.finish_run(run_id, {}, f"broken off: {error}"[:300])
        raise error
    counts = ledger.counts()
    aborted = [r.aborted for r in runners if r.aborted is not None]
    # The first wrong key (or address) says most; else the first rule that fired.
    aborted.sort(key=lambda why: not isinstance(why, WrongKeyError))
    reasons = [r.stop.reason for r in runners if r.stop.reason is not None and not r.paused]
    reason = stop.reason or (reasons[0] if reasons else None)
    if reason == _PAUSED:  # a pause is said as the pause, not as a stop
        reason = None
    ledger.finish_run(run_id, {s.value: n for s, n in counts.items()}, reason)
    paused = next((r.paused for r in runners if r.paused), None)
    stopped: dict[str, str | None] = {}
    if len(runners) > 1 and any(r.stop.requested for r in runners):
        stopped = {r.lane.name: r.stop.reason for r in runners}
    return RunResult(
        run_id, counts, stats, reason,
        aborted[0] if aborted else None, stats.total, paused, stopped, ledger.handed_over(),
    )  # fmt: skip


class _Runner:
    """One lane's share of a run: its commands (of one product, or all), its phases."""

    def __init__(
        self,
        job: Job,
        lane: Lane,
        recorder: Recorder,
        outcomes: Outcomes,
        settings: Settings,
        *,
        stop: Stop,
        notify: Callable[[str], None],
        inform: Callable[[str], None],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rollout: Rollout,
        product: str | None,
    ) -> None:
        self.job, self.lane, self.settings, self.rollout = job, lane, settings, rollout
        self.stop, self.stats, self.notify, self.inform = stop, outcomes.stats, notify, inform
        self.clock, self.sleep = clock, sleep
        self.recorder = recorder
        self.outcomes = outcomes
        self.product = product  # None: the run's only lane
        self.run_id = 0
        self.aborted: RunAborted | None = None
        self.paused: str | None = None  # the rollout stopped here on purpose
        self._cut_short = False  # in-flight requests were abandoned (immediate stop, grace over)

    # -- the phases -----------------------------------------------------------------------------

    async def phases(self, reconcile_in_doubt: bool, resend: bool, probe: bool) -> None:
        """The lane's phases: probe, leftovers, canary, send, recover (run_id set first)."""
        ledger = self.recorder.ledger
        self.reconcile_in_doubt = reconcile_in_doubt
        self.send = Send(
            self.lane,
            self.outcomes,
            self.recorder,
            self.settings,
            run_id=self.run_id,
            stop=self.stop,
            clock=self.clock,
            sleep=self._sleep,
            on_abort=self._abort,
        )
        self.recovery = Recovery(
            self.lane,
            self.recorder,
            self.outcomes,
            self.settings,
            stop=self.stop,
            clock=self.clock,
            sleep=self._sleep,
            resend=self._fan_out,
            cut_short=lambda: self._cut_short,
            product=self.product,
        )
        if probe:
            await self._probe()
        if self.aborted is not None and self.product is not None:
            # One lane of several stopped before it sent: its commands are in the ledger all
            # the same, pending, so that the run's report shows what is left for a rerun.
            await self.recorder.call(
                _register_all, ledger, self.job, self.settings.ledger.batch_size
            )
        if self.aborted is None and not self.stop.requested:
            await self.recovery.leftovers(reconcile_in_doubt, resend)
            if not self.stop.requested and await self._canary_passed():
                await self._send_job()
        if reconcile_in_doubt and self.aborted is None:
            await self.recovery.recover()
        if isinstance(self.aborted, RolloutAborted):
            n = await skip_rest(
                self.job,
                self.recorder,
                self.stats,
                self.aborted.reason,
                batch=self.settings.ledger.batch_size,
            )
            self.notify(f"{n:,} commands not sent are recorded as skipped; a rerun sends them")
        if isinstance(self.aborted, WrongKeyError):
            # The key was wrong, not the devices: these go out again on the next run.
            keys = self.lane.breakers.auth_rejects
            await self.recorder.flush()
            await self.recorder.call(ledger.move, keys, Event.WRONG_KEY)
            for _ in keys:
                self.stats.move(Status.REJECTED, Status.PENDING)
            self.stats.count(Status.REJECTED, -len(keys))

    async def _canary_passed(self) -> bool:
        """The rollout's guard set up, and its canary sent and judged (gating.py); False when
        the run is to send no more."""
        rollout = self.rollout
        if rollout.empty:
            return True
        guard = Guard(rollout, self.lane, self.settings.limits.rate_per_second, self._abort)
        self.outcomes.watchers.append(guard.observe)
        if rollout.canary is None:
            return True
        phase = CanaryPhase(
            self.job,
            rollout.canary,
            rollout.abort,
            # A lane's canary is drawn from its own product's commands.
            total=(
                self.stats.total
                if self.product is None and self.stats.total
                else await self.recorder.call(_count, self.job)
            ),
            product=self.product,
            lane=self.lane,
            recorder=self.recorder,
            settings=self.settings,
            send=self._fan_out,
            recover=self.recovery.recover,
            stop=self.stop,
            clock=self.clock,
            sleep=self._sleep,
        )
        gate = await phase.gate()
        if gate.failed is not None:
            self._abort(RolloutAborted(f"the canary failed: {gate.failed}"))
        elif gate.paused is not None:
            self.paused = gate.paused
            self.stop.request(_PAUSED)
        elif gate.said:
            self.inform(gate.said)
        return gate.go and not self.stop.requested

    async def _probe(self) -> None:
        """Check the key and the address with one cheap call, and read OneNET's clock."""
        lane = self.lane
        devices = first_devices(self.job, self.settings.reliability.breaker_threshold)
        probe = await check_lane(
            lane, devices, settings=self.settings, stop=self.stop, sleep=self._sleep,
            clock=self.clock,
        )  # fmt: skip
        self.stats.requests += probe.requests
        if probe.why is not None:
            self._abort(probe.why)
            return
        if lane.clock.known:
            self.stats.clock_offset = lane.clock.offset
        notice = clock_notice(probe, lane.clock, warn_beyond_s=_OFFSET_WARNING_S)
        if notice is not None:
            self.notify(notice)

    # -- sending --------------------------------------------------------------------------------

    async def _send_job(self) -> None:
        """Stream the job file through the ledger into the fan-out: in a job with steps, one
        step after the other, the answers lost in one settled before the next (a device's step
        goes out only once the one before is accepted: sending.py holds back the others)."""
        steps = len(self.job.steps)
        if not steps:
            await self._send_step(None)
            return
        for step in range(1, steps + 1):
            if step > 1:
                if self.reconcile_in_doubt:
                    await self.recovery.recover()
                await self.recorder.flush()  # the step before's outcomes, read by hold-backs
            if self.stop.requested:
                return
            await self._send_step(step)

    async def _send_step(self, step: int | None) -> None:
        """Stream the job's commands (of one step, or all) through the ledger into the fan-out."""
        every = self.job.commands()
        commands = every if step is None else (c for c in every if c.step == step)
        size = self.settings.ledger.batch_size

        async def to_send() -> AsyncIterator[Item]:
            # Reading, checking and registering a batch all run on the ledger thread, so the
            # event loop keeps sending meanwhile.
            while batch := await self.recorder.call(
                _register_next, self.recorder.ledger, commands, size
            ):
                for command, status in batch:
                    if status in TO_SEND:
                        yield command, status
                    elif status in FINAL and command.key not in self.recovery.found:
                        self.stats.skipped += 1

        try:
            await self._fan_out(to_send())
        finally:
            # The job's reader holds a temporary SQLite table bound to the ledger thread.
            await self.recorder.call(every.close)

    async def _fan_out(self, items: AsyncIterator[Item] | list[Item]) -> None:
        cut = await fan_out(
            items,
            self.send,
            workers=self.settings.limits.concurrency,
            stop=self.stop,
            taking=lambda: not self.stop.requested,
            grace_s=self.settings.reliability.stop_grace_s,
        )
        if cut:
            self._cut_short = True
            self.notify(f"stopped at once ({self.stop.reason}): commands on the wire are in doubt")

    def _abort(self, why: RunAborted) -> None:
        """A breaker tripped: stop gracefully, with the reason (naming the product's lane when
        a run has several: the others go on)."""
        if self.product is not None:
            why = type(why)(f"product {self.product or '(default)'}: {why.reason}")
        if self.aborted is None:
            self.aborted = why
        self.stop.request(why.reason)

    async def _sleep(self, seconds: float) -> None:
        """Sleep (the injected way), but wake early when a stop is requested."""
        await self.stop.sleeper(self.sleep)(seconds)


def _count(job: Job) -> int:
    """How many commands the job has (when the caller gave no total)."""
    commands = job.commands()
    try:
        return sum(1 for _ in commands)
    finally:
        commands.close()


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error of a failed TaskGroup (cancellations are its echoes)."""
    errors = [e for e in _leaves(group) if not isinstance(e, asyncio.CancelledError)]
    return errors[0] if errors else group


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _register_all(ledger: LedgerStore, job: Job, size: int) -> None:
    """On the ledger thread: register every command of ``job`` (those new become pending)."""
    for _ in registered(ledger, job, size):
        pass


def _register_next(ledger: LedgerStore, commands: Iterator[Command], size: int) -> list[Item]:
    """The next ``size`` commands of the job, registered, with their status in the ledger."""
    batch = list(itertools.islice(commands, size))
    return list(zip(batch, ledger.register(batch), strict=True)) if batch else []
