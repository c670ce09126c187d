"""run_job(): stream a job to OneNET through a paced worker pool, recording every outcome.

A run has three phases, all writing to the same ledger:

1. *leftovers*: commands an earlier run left ``in_flight`` (it was killed) or ``in_doubt`` are
   settled against OneNET's history (reconcile.py) before anything new is sent;
2. *send*: the job file streams in batches into the ledger (``register``) and from there into a
   bounded queue; ``concurrency`` workers in one TaskGroup take commands, mark them in flight
   (durably), wait for the pace, send, retry what is worth retrying (tenacity), queue the outcome;
3. *settle*: answers lost on the way back (``in_doubt``) are looked up in the history once they have
   had time to land; those OneNET never created are sent again, for a few rounds.

A ``Stop`` ends a run early with a reason: the first request is graceful (no new commands, in-flight
ones finish within a grace period), a second one is immediate. The pace can be changed while the run
goes on (``Pace.set_rate``), and throttling answers slow the whole pool (``Aimd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.client import ExecuteRequest, Outcome, Verdict
from dispatcher.config import Settings
from dispatcher.errors import RunAborted, UnreachableError, WrongKeyError
from dispatcher.jobs import Command, Job
from dispatcher.ledger import TO_SEND, InFlight, Ledger, Result, Row, Status
from dispatcher.pacing import Aimd, Pace
from dispatcher.reconcile import CommandClient, reconcile
from dispatcher.recorder import Recorder
from dispatcher.retrying import Attempts
from dispatcher.run_state import RunResult, RunStats, Stop
from dispatcher.times import BEIJING, format_onenet, parse_timespec

__all__ = ["RunResult", "RunStats", "Stop", "run_job"]

log = logging.getLogger(__name__)

# A valid_time this close to the moment of sending has passed by the time OneNET checks it.
_START_MARGIN = timedelta(seconds=2)


@dataclass(slots=True)
class _Flight:
    """One command on its way: what is sent, and whether a request is out right now."""

    key: str
    request: ExecuteRequest
    attempts: int = 0
    on_wire: bool = False
    latency_ms: float | None = None


class _NotSent(Exception):
    """A stop arrived while the command waited for its pace slot."""


class _ImmediateStop(Exception):
    """Raised inside the pool's TaskGroup to cancel the workers."""


async def run_job(
    job: Job,
    client: CommandClient,
    ledger: Ledger,
    settings: Settings,
    *,
    stop: Stop | None = None,
    stats: RunStats | None = None,
    pace: Pace | None = None,
    reconcile_in_doubt: bool = True,
    resend_in_doubt: bool = False,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunResult:
    """Send every command of ``job`` not yet final in ``ledger``; return the ledger's counts."""
    runner = _Runner(
        job,
        client,
        ledger,
        settings,
        stop=stop or Stop(),
        stats=stats or RunStats(),
        pace=pace or Pace(settings.limits.rate_per_second),
        clock=clock,
        sleep=sleep,
    )
    return await runner.run(reconcile_in_doubt=reconcile_in_doubt, resend=resend_in_doubt)


class _Runner:
    def __init__(
        self,
        job: Job,
        client: CommandClient,
        ledger: Ledger,
        settings: Settings,
        *,
        stop: Stop,
        stats: RunStats,
        pace: Pace,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.job, self.client, self.settings = job, client, settings
        self.stop, self.stats, self.pace = stop, stats, pace
        self.clock, self.sleep = clock, sleep
        self.recorder = Recorder(ledger)
        ceiling = settings.limits.rate_per_second
        self.aimd = Aimd(pace, ceiling) if settings.limits.adaptive else None
        self.attempts = Attempts(settings.retry, stop=stop, sleep=self._sleep)
        self.run_id = 0
        self.aborted: RunAborted | None = None
        self._auth_rejects: list[str] = []
        self._unreached = 0  # attempts in a row that could not connect, while nothing is accepted
        self._doubted: set[str] = set()  # counted in_doubt by this run, until settled
        self._cut_short = False  # in-flight requests were abandoned (immediate stop, grace over)

    # -- the phases -----------------------------------------------------------------------------

    async def run(self, *, reconcile_in_doubt: bool, resend: bool) -> RunResult:
        ledger = self.recorder.ledger
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.recorder.run())
                try:
                    await self._phases(reconcile_in_doubt, resend)
                finally:
                    await self.recorder.close()
        except BaseExceptionGroup as group:
            raise _sole(group) from None
        finally:
            self.recorder.drain_sync()
        counts = ledger.counts()
        ledger.finish_run(self.run_id, {s.value: n for s, n in counts.items()}, self.stop.reason)
        return RunResult(self.run_id, counts, self.stats, self.stop.reason, self.aborted)

    async def _phases(self, reconcile_in_doubt: bool, resend: bool) -> None:
        ledger = self.recorder.ledger
        self.run_id = await self.recorder.call(
            ledger.start_run, str(self.job.path), self.settings.to_dict()
        )
        await self._leftovers(reconcile_in_doubt, resend)
        if not self.stop.requested:
            await self._send_job()
        if reconcile_in_doubt:
            await self._settle()
        if isinstance(self.aborted, WrongKeyError):
            # The key was wrong, not the devices: these go out again on the next run.
            await self.recorder.flush()
            await self.recorder.call(ledger.set_status, self._auth_rejects, Status.PENDING)

    async def _leftovers(self, reconcile_in_doubt: bool, resend: bool) -> None:
        ledger = self.recorder.ledger
        await self.recorder.flush()
        doubtful = await self.recorder.call(_collect, ledger, (Status.IN_FLIGHT, Status.IN_DOUBT))
        if not doubtful:
            return
        log.info("%d commands from an earlier run are in doubt", len(doubtful))
        if reconcile_in_doubt:
            await self._reconcile(doubtful)
        elif resend:
            await self.recorder.call(ledger.set_status, [r.key for r in doubtful], Status.PENDING)
        else:
            keys = [r.key for r in doubtful if r.status is Status.IN_FLIGHT]
            await self.recorder.call(ledger.set_status, keys, Status.IN_DOUBT)

    async def _settle(self) -> None:
        ledger = self.recorder.ledger
        for _ in range(self.settings.reliability.reconcile_rounds):
            # After a graceful stop too, so that a Ctrl-C leaves nothing in doubt (nothing is
            # resent then); an immediate stop or a grace run out leaves it to the next run.
            if self.stop.immediate or self._cut_short:
                return
            await self.recorder.flush()  # outcomes still queued may be in doubt too
            rows = await self.recorder.call(_collect, ledger, (Status.IN_DOUBT,))
            if not rows:
                return
            resend = await self._reconcile(rows)
            if not resend or self.stop.requested:
                return
            await self._pool(_batches([(_command_of(r), Status.PENDING) for r in resend]))

    async def _reconcile(self, rows: list[Row]) -> list[Row]:
        """Settle ``rows`` against the history; return those OneNET never created (now pending)."""
        rel = self.settings.reliability
        latest = max((r.last_attempt_at or 0.0) for r in rows)
        wait = latest + rel.settle_s - self.clock()
        if wait > 0:
            await self._sleep(wait)
        if wait > 0 and self.stop.requested:
            # The wait was cut short, and a request may still be landing at OneNET: only the
            # rows that had their time are looked up; the others stay in doubt for the next run.
            settled = self.clock() - rel.settle_s
            early = [r for r in rows if (r.last_attempt_at or 0.0) > settled]
            self._still_in_doubt(early)
            rows = [r for r in rows if (r.last_attempt_at or 0.0) <= settled]
        report = await reconcile(
            rows,
            self.client,
            known_uuids=lambda imei: self.recorder.call(self.recorder.ledger.known_uuids, imei),
            lookback_s=rel.reconcile_lookback_s,
            pace=self.pace,
            concurrency=self.settings.limits.concurrency,
        )
        now = self.clock()
        for row, uuid in report.found:
            self.recorder.record(
                Result(row.key, Status.ACCEPTED, 0, "", uuid, 0, now, None, reconciled=True)
            )
        self.stats.reconciled += len(report.found)
        for row, _ in report.found:
            if row.key in self._doubted:
                self._doubted.discard(row.key)
                self.stats.in_doubt -= 1
                self.stats.accepted += 1
        for row in report.missing:  # sent again below, and counted by that outcome
            if row.key in self._doubted:
                self._doubted.discard(row.key)
                self.stats.in_doubt -= 1
        self._still_in_doubt(report.unreachable, "history unreachable")
        await self.recorder.flush()
        if report.missing:
            await self.recorder.call(
                self.recorder.ledger.set_status, [r.key for r in report.missing], Status.PENDING
            )
        log.info(
            "reconciled %d: %d found, %d never created, %d unreachable",
            len(rows),
            len(report.found),
            len(report.missing),
            len(report.unreachable),
        )
        return report.missing

    def _still_in_doubt(self, rows: list[Row], why: str = "not looked up yet") -> None:
        """Rows left unsettled: those a killed run left in flight become in doubt."""
        now = self.clock()
        for row in rows:
            if row.status is Status.IN_FLIGHT:
                self.recorder.record(
                    Result(row.key, Status.IN_DOUBT, None, why, None, 0, now, None)
                )

    # -- the pool -------------------------------------------------------------------------------

    async def _send_job(self) -> None:
        """Stream the job file through the ledger into the pool."""
        commands = self.job.commands()
        size = self.settings.ledger.batch_size

        async def batches() -> AsyncIterator[list[tuple[Command, Status]]]:
            # Reading, checking and registering a batch all run on the ledger thread, so the
            # event loop keeps sending meanwhile.
            while batch := await self.recorder.call(
                _register_next, self.recorder.ledger, commands, size
            ):
                yield batch

        try:
            await self._pool(batches())
        finally:
            # The job's reader holds a temporary SQLite table bound to the ledger thread.
            await self.recorder.call(commands.close)

    async def _pool(self, batches: AsyncIterator[list[tuple[Command, Status]]]) -> None:
        concurrency = self.settings.limits.concurrency
        queue: asyncio.Queue[Command | None] = asyncio.Queue(maxsize=concurrency * 4)
        try:
            async with asyncio.TaskGroup() as tg:
                producer = tg.create_task(self._produce(batches, queue, concurrency))
                watcher = tg.create_task(self._watch_stop())
                workers = [tg.create_task(self._work(queue)) for _ in range(concurrency)]
                await asyncio.gather(*workers)
                producer.cancel()
                watcher.cancel()
        except* _ImmediateStop:
            self._cut_short = True
            log.warning("stopped at once: %s", self.stop.reason)

    async def _produce(
        self,
        batches: AsyncIterator[list[tuple[Command, Status]]],
        queue: asyncio.Queue[Command | None],
        workers: int,
    ) -> None:
        async for batch in batches:
            if self.stop.requested:
                break
            for command, status in batch:
                if status in TO_SEND:
                    await queue.put(command)
                else:
                    self.stats.skipped += 1
        for _ in range(workers):
            await queue.put(None)

    async def _watch_stop(self) -> None:
        await self.stop.wait()
        grace = self.settings.reliability.stop_grace_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.stop.wait_immediate()
        raise _ImmediateStop

    async def _work(self, queue: asyncio.Queue[Command | None]) -> None:
        while not self.stop.requested:
            command = await queue.get()
            if command is None:
                return
            await self._send(command)

    async def _send(self, command: Command) -> None:
        now = self.clock()
        request = self._request(command, datetime.fromtimestamp(now, BEIJING))
        if request is None:
            self._finish(command.key, Status.REJECTED, None, _EXPIRED, 0, now, None)
            return
        mark = InFlight(command.key, now, request.valid_time, request.expired_time, self.run_id)
        await self.recorder.mark_in_flight(mark)
        flight = _Flight(command.key, request)
        try:
            outcome = await self.attempts.run(self._attempt, flight)
        except _NotSent:
            # A stop came while it waited for its slot: it goes out with the next run.
            self._finish(command.key, Status.PENDING, None, "", flight.attempts, now, None)
            return
        except asyncio.CancelledError:
            status = Status.IN_DOUBT if flight.on_wire else Status.PENDING
            self._finish(command.key, status, None, "stopped at once", flight.attempts, now, None)
            raise
        self._finish_outcome(command.key, outcome, flight.attempts, flight.latency_ms)

    async def _attempt(self, flight: _Flight) -> Outcome:
        await self.pace.acquire()
        if self.stop.requested:
            raise _NotSent
        flight.attempts += 1
        flight.on_wire = True
        started = time.perf_counter()
        outcome = await self.client.execute_offline(flight.request)
        flight.latency_ms = (time.perf_counter() - started) * 1000.0
        flight.on_wire = False
        self.stats.requests += 1
        self._observe(outcome, flight.key)
        return outcome

    def _request(self, c: Command, now: datetime) -> ExecuteRequest | None:
        expired = c.expired_time.resolve(now)
        if expired <= now + _START_MARGIN:
            return None
        valid = c.valid_time.resolve(now) if c.valid_time is not None else None
        if valid is not None and valid <= now + _START_MARGIN:
            valid = None  # a start that has passed means "from now", which is OneNET's default
        return ExecuteRequest(
            imei=c.imei,
            obj_id=c.obj_id,
            obj_inst_id=c.obj_inst_id,
            res_id=c.res_id,
            expired_time=format_onenet(expired),
            valid_time=format_onenet(valid) if valid is not None else None,
            args=c.args,
            retry=c.retry,
            timeout=c.timeout,
            trigger_msg=c.trigger_msg,
        )

    def _observe(self, outcome: Outcome, key: str) -> None:
        """Feed the pool-wide controls: the adaptive pace and the two early-run breakers."""
        if outcome.throttled:
            self.stats.throttled += 1
            if self.aimd is not None:
                self.aimd.on_throttle(outcome.retry_after)
        elif outcome.verdict is Verdict.ACCEPTED and self.aimd is not None:
            self.aimd.on_success()
        if self.stats.accepted or self.stats.reconciled:
            return  # after a success, errno 1 is one device's, and a lost connection a blip
        threshold = self.settings.reliability.breaker_threshold
        self._unreached = 0 if outcome.reached else self._unreached + 1
        if self._unreached >= threshold and self.aborted is None:
            self._abort(
                UnreachableError(
                    f"no connection to OneNET on {threshold} attempts in a row with nothing"
                    f" accepted ({outcome.error}): check onenet.base_url and the network"
                )
            )
        if outcome.errno == 1:
            self._auth_rejects.append(key)
            if len(self._auth_rejects) >= threshold and self.aborted is None:
                self._abort(
                    WrongKeyError(
                        f"OneNET answered errno 1 (auth failed) to the first {threshold} commands"
                        " with none accepted: the api-key is wrong or not this product's master key"
                    )
                )

    def _abort(self, why: RunAborted) -> None:
        """A breaker tripped: stop gracefully, with the reason."""
        self.aborted = why
        self.stop.request(why.reason)

    def _finish_outcome(
        self, key: str, outcome: Outcome, attempts: int, latency: float | None
    ) -> None:
        verdict = outcome.verdict
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
        error = outcome.error
        self._finish(key, status, outcome.errno, error, attempts, self.clock(), latency, outcome)

    def _finish(
        self,
        key: str,
        status: Status,
        errno: int | None,
        error: str,
        attempts: int,
        at: float,
        latency: float | None,
        outcome: Outcome | None = None,
    ) -> None:
        uuid = outcome.uuid if outcome is not None and status is Status.ACCEPTED else None
        self.recorder.record(Result(key, status, errno, error, uuid, attempts, at, latency))
        if status is Status.IN_DOUBT:
            self._doubted.add(key)
        counter = _COUNTERS.get(status)
        if counter is not None:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)

    async def _sleep(self, seconds: float) -> None:
        """Sleep (the injected way), but wake early when a stop is requested."""
        if self.stop.requested or seconds <= 0:
            return
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        stopper = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait((sleeper, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            stopper.cancel()


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


_EXPIRED = "expired_time passed before the command could be sent"
_COUNTERS = {
    Status.ACCEPTED: "accepted",
    Status.REJECTED: "rejected",
    Status.FAILED: "failed",
    Status.IN_DOUBT: "in_doubt",
}


def _register_next(
    ledger: Ledger, commands: Iterator[Command], size: int
) -> list[tuple[Command, Status]]:
    """The next ``size`` commands of the job, registered, with their status in the ledger."""
    batch = list(itertools.islice(commands, size))
    return list(zip(batch, ledger.register(batch), strict=True)) if batch else []


def _collect(ledger: Ledger, statuses: Iterable[Status]) -> list[Row]:
    return list(ledger.rows(set(statuses)))


async def _batches(
    items: list[tuple[Command, Status]],
) -> AsyncIterator[list[tuple[Command, Status]]]:
    yield items


def _command_of(row: Row) -> Command:
    """The command a ledger row was made from, to send it again."""
    return Command(
        imei=row.imei,
        obj_id=row.obj_id,
        obj_inst_id=row.obj_inst_id,
        res_id=row.res_id,
        expired_time=parse_timespec(row.expired_time),
        valid_time=parse_timespec(row.valid_time) if row.valid_time else None,
        args=row.args,
        retry=row.retry,
        timeout=row.timeout,
        trigger_msg=row.trigger_msg,
        source=row.source,
        line=row.line,
        key=row.key,
    )
