"""run_job(): a job sent to OneNET through one lane and the paced fan-out, every outcome recorded.

A run has four phases, all writing to the same ledger:

1. *probe*: one cheap authenticated call (a history query for a device of the job) checks the
   api-key and the address before the fleet is touched, and reads OneNET's clock from its ``Date``
   header (probe.py); relative times and history searches use OneNET's clock;
2. *leftovers*: commands an earlier run left ``in_flight`` (it was killed) or ``in_doubt`` are
   looked up in OneNET's history (reconcile.py) before anything new is sent;
3. *send*: the job file streams in batches into the ledger (``register``) and from there through
   the fan-out (fanout.py) to the send operation (sending.py); a job of steps is read once into
   the ledger's send queue, and each step is sent from there (registering.py);
4. *recover*: answers lost on the way back (``in_doubt``) are looked up once they have had time to
   land (``settle_s``); those OneNET never created are sent again, for a few rounds.

Each lane runs its phases (phases.py) with its RunContext (context.py): the settings, stop,
recorder, clock, sleep and voice every phase shares. Every call goes through the run's lane
(lane.py): one OneNET product's client, pace, adaptive slow-down and breakers. A job whose
commands name products (``products``) runs one lane per product at once, each with the phases
above for its own commands: a lane whose breaker trips stops alone, the others finish. A
``Stop`` ends a run early with a reason: the first request is graceful (no new commands,
in-flight ones finish within a grace period), a second one is immediate.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from dispatcher.clock import ServerClock
from dispatcher.config import Settings
from dispatcher.errors import LedgerError, WrongKeyError
from dispatcher.job.model import Job
from dispatcher.job.plan import Rollout
from dispatcher.ledger.board import ShareBoard
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import LedgerStore
from dispatcher.run.context import RunContext
from dispatcher.run.lane import Lane, OneNetApi
from dispatcher.run.outcomes import Outcomes
from dispatcher.run.pacing import Pace
from dispatcher.run.phases import PAUSED, LanePhases
from dispatcher.run.share import RateShare
from dispatcher.run.state import RunResult, RunStats, Stop
from dispatcher.run.takeover import HOLDER, WATCH_S, holder

__all__ = ["OneNetApi", "RunResult", "RunStats", "Stop", "run_job"]

log = logging.getLogger(__name__)


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
    boards: Mapping[str, tuple[ShareBoard, str, str]] | None = None,
) -> RunResult:
    """Send every command of ``job`` not yet final in ``ledger``; return the ledger's counts.

    ``notify`` receives the notable events a person should see (a clock offset, a stop), one line
    each; ``inform`` the good news (a canary that went well); by default both are logged.
    ``rollout``: the job's own (``job.plan.rollout``) unless given (the command line's flags
    merged in). ``products``: the client and settings of each product the job's commands name,
    a lane each; ``client`` and ``settings`` are the lane of the commands that name none
    (``default_lane`` False: there are none, and it makes no call). ``boards``: by lane ("":
    the default one), the board its product's rate is shared on, the product's name there and
    this lane's (run/share.py); a lane without one (or without a configured rate) paces alone.
    """
    stop = stop or Stop()
    recorder = Recorder(ledger)
    outcomes = Outcomes(recorder, stats or RunStats())
    several = bool(products)
    lanes: list[tuple[str, OneNetApi, Settings]] = [("", client, settings)] if default_lane else []
    lanes += [(name, c, s) for name, (c, s) in (products or {}).items()]
    runners = []
    shares: list[RateShare] = []
    for name, lane_client, lane_settings in lanes:
        lane = Lane.of(
            lane_client,
            lane_settings,
            pace=pace if not name else None,
            server_clock=server_clock if not name else None,
            clock=clock,
            name=name or "default",
        )
        board = (boards or {}).get(name)
        limit = lane_settings.limits.rate_per_second
        if board is not None and limit is not None:
            lane.share = RateShare(board[0], board[1], board[2], lane, limit)
            shares.append(lane.share)
        ctx = RunContext(
            lane_settings,
            stop.child() if several else stop,
            recorder,
            outcomes,
            lane,
            product=name if several else None,
            clock=clock,
            sleep=sleep,
            notify=notify or log.warning,
            inform=inform or log.info,
        )
        lane_job = dataclasses.replace(job, only_product=name) if several else job
        runners.append(LanePhases(ctx, lane_job, job.plan.rollout if rollout is None else rollout))
    return await _run(
        job, runners, recorder, stop, outcomes.stats, settings,
        options=(reconcile_in_doubt, resend_in_doubt, probe), shares=shares,
    )  # fmt: skip


async def _run(
    job: Job,
    runners: list[LanePhases],
    recorder: Recorder,
    stop: Stop,
    stats: RunStats,
    settings: Settings,
    *,
    options: tuple[bool, bool, bool],
    shares: list[RateShare],
) -> RunResult:
    """The run record, the ledger's writer, every lane's phases at once, and each shared lane's
    beats on its product's board (the first before the lane sends anything)."""
    ledger = recorder.ledger
    error: BaseException | None = None
    run_id = 0
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(recorder.run())
            try:
                # Who runs it, with its settings: a run that takes the job over knows whether
                # this one may still live if it never records its end (takeover.py).
                recorded = {**settings.to_dict(), HOLDER: holder()}
                run_id = await recorder.call(ledger.start_run, str(job.path), recorded)
                stats.start(await recorder.call(ledger.counts))
                # Each shared lane beats until its own phases end (then it leaves the board: a
                # lane done in a run of several products holds none of its product's rate).
                ended = {id(r.ctx.lane): asyncio.Event() for r in runners}
                for share in shares:
                    await share.beat()  # its share before its first send
                    tg.create_task(share.keep(ended[id(share.lane)]))
                sending = asyncio.Event()
                tg.create_task(_watch(recorder, sending))
                try:
                    async with asyncio.TaskGroup() as lanes:
                        for runner in runners:
                            runner.run_id = run_id
                            lanes.create_task(
                                _until_done(runner, options, ended[id(runner.ctx.lane)])
                            )
                finally:
                    sending.set()
                    for event in ended.values():
                        event.set()
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
    stops = [r.ctx.stop for r in runners]
    reasons = [
        s.reason
        for r, s in zip(runners, stops, strict=True)
        if s.reason is not None and not r.paused
    ]
    reason = stop.reason or (reasons[0] if reasons else None)
    if reason == PAUSED:  # a pause is said as the pause, not as a stop
        reason = None
    ledger.finish_run(run_id, {s.value: n for s, n in counts.items()}, reason)
    paused = next((r.paused for r in runners if r.paused), None)
    stopped: dict[str, str | None] = {}
    if len(runners) > 1 and any(s.requested for s in stops):
        stopped = {r.ctx.lane.name: r.ctx.stop.reason for r in runners}
    return RunResult(
        run_id, counts, stats, reason,
        aborted[0] if aborted else None, stats.total, paused, stopped, ledger.handed_over(),
    )  # fmt: skip


async def _watch(recorder: Recorder, done: asyncio.Event, every: float = WATCH_S) -> None:
    """The ledger asked every ``every`` seconds while the lanes send whether this run is still
    its one writer (LedgerStore.check): a PostgreSQL session lost (a failover, a restart, the
    session ended) stops the run at once (LedgerError), so that no retry of a command marked
    in flight leaves while another host may take the job over."""
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), every)
        if not done.is_set():
            await recorder.call(recorder.ledger.check)


async def _until_done(
    runner: LanePhases, options: tuple[bool, bool, bool], done: asyncio.Event
) -> None:
    """A lane's phases; ``done`` set when they end, however."""
    try:
        await runner.phases(*options)
    finally:
        done.set()


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
