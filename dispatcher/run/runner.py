"""run_job(): stream a job to OneNET through a paced worker pool, recording every outcome.

A run has four phases, all writing to the same ledger:

1. *probe*: one cheap authenticated call (a history query for a device of the job) checks the
   api-key and the address before the fleet is touched, and reads OneNET's clock from its
   ``Date`` header (clock.py); relative times and history searches use OneNET's clock;
2. *leftovers*: commands an earlier run left ``in_flight`` (it was killed) or ``in_doubt`` are
   settled against OneNET's history (reconcile.py) before anything new is sent;
3. *send*: the job file streams in batches into the ledger (``register``) and from there into a
   bounded queue; ``concurrency`` workers in one TaskGroup take commands, mark them in flight
   (durably), wait for the pace, send, retry what is worth retrying (tenacity), queue the outcome.
   Times are fixed for the moment a request really leaves: when the wait for the pace (a hold, a
   backoff) made them stale, they are resolved again and marked again before sending;
4. *settle*: answers lost on the way back (``in_doubt``) are looked up in the history once they have
   had time to land; those OneNET never created are sent again, for a few rounds.

A ``Stop`` ends a run early with a reason: the first request is graceful (no new commands, in-flight
ones finish within a grace period), a second one is immediate. The pace can be changed while the run
goes on (``Pace.set_rate``), and throttling answers slow the whole pool (``Aimd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from dispatcher.config import Settings
from dispatcher.errors import LedgerError, RunAborted, WrongKeyError
from dispatcher.job.model import Command, Job
from dispatcher.ledger.recorder import Recorder
from dispatcher.ledger.store import TO_SEND, InFlight, Ledger, Result, Row, Status
from dispatcher.onenet.client import ExecuteRequest, Outcome, Verdict
from dispatcher.run.breakers import Breakers
from dispatcher.run.pacing import Aimd, Pace
from dispatcher.run.probe import Probe
from dispatcher.run.reconcile import CommandClient, reconcile
from dispatcher.run.retrying import Attempts
from dispatcher.run.state import RunResult, RunStats, Stop
from dispatcher.times import BEIJING, ServerClock, describe_offset, format_onenet, parse_timespec

__all__ = ["OneNetApi", "RunResult", "RunStats", "Stop", "run_job"]

log = logging.getLogger(__name__)

# A valid_time this close to the moment of sending has passed by the time OneNET checks it.
_START_MARGIN = 2.0
# Times resolved longer ago than this before the request leaves are resolved again.
_STALE_S = 1.0
# With a rate, at most this many seconds' worth of commands are marked ahead of the pace, so that
# their times are rarely stale when they leave (a re-mark at the head of the queue is one durable
# write at a time).
_AHEAD_S = 0.4
# OneNET's clock this far from ours is worth a warning.
_OFFSET_WARNING_S = 5.0
_PROBE_ATTEMPTS = 3


class OneNetApi(CommandClient, Protocol):
    """What a run needs from a OneNET client: the calls, and the URL it sends to (for messages)."""

    @property
    def execute_url(self) -> str: ...

    async def probe(self, imei: str, start: datetime) -> Outcome: ...


@dataclass(slots=True)
class _Flight:
    """One command on its way: what is sent, when its times were fixed, and whether it is out."""

    command: Command
    old: Status  # its status before this run sent it
    request: ExecuteRequest
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


class _ImmediateStop(Exception):
    """Raised inside the pool's TaskGroup to cancel the workers."""


async def run_job(
    job: Job,
    client: OneNetApi,
    ledger: Ledger,
    settings: Settings,
    *,
    stop: Stop | None = None,
    stats: RunStats | None = None,
    pace: Pace | None = None,
    reconcile_in_doubt: bool = True,
    resend_in_doubt: bool = False,
    probe: bool = True,
    server_clock: ServerClock | None = None,
    notify: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> RunResult:
    """Send every command of ``job`` not yet final in ``ledger``; return the ledger's counts.

    ``notify`` receives the notable events a person should see (a clock offset, a stop), one line
    each; by default they are logged.
    """
    runner = _Runner(
        job,
        client,
        ledger,
        settings,
        stop=stop or Stop(),
        stats=stats or RunStats(),
        pace=pace or Pace(settings.limits.rate_per_second),
        server_clock=server_clock or ServerClock(clock),
        notify=notify or log.warning,
        clock=clock,
        sleep=sleep,
    )
    return await runner.run(
        reconcile_in_doubt=reconcile_in_doubt, resend=resend_in_doubt, probe=probe
    )


class _Runner:
    def __init__(
        self,
        job: Job,
        client: OneNetApi,
        ledger: Ledger,
        settings: Settings,
        *,
        stop: Stop,
        stats: RunStats,
        pace: Pace,
        server_clock: ServerClock,
        notify: Callable[[str], None],
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.job, self.client, self.settings = job, client, settings
        self.stop, self.stats, self.pace = stop, stats, pace
        self.server_clock, self.notify = server_clock, notify
        self.clock, self.sleep = clock, sleep
        self.recorder = Recorder(ledger)
        ceiling = settings.limits.rate_per_second
        self.aimd = Aimd(pace, ceiling) if settings.limits.adaptive else None
        self.attempts = Attempts(settings.retry, stop=stop, sleep=self._sleep)
        self.breakers = Breakers(
            settings.reliability.breaker_threshold,
            url=client.execute_url,
            timeout_s=settings.retry.request_timeout_s,
        )
        self.run_id = 0
        self.aborted: RunAborted | None = None
        self._doubted: set[str] = set()  # counted in_doubt by this run, until settled
        self._settled: set[str] = set()  # leftovers this run settled: not "already done"
        self._cut_short = False  # in-flight requests were abandoned (immediate stop, grace over)
        self._stopping = lambda: self.stop.requested
        rate = pace.rate
        self._turns = asyncio.Semaphore(max(1, int(rate * _AHEAD_S))) if rate else None

    # -- the phases -----------------------------------------------------------------------------

    async def run(self, *, reconcile_in_doubt: bool, resend: bool, probe: bool) -> RunResult:
        ledger = self.recorder.ledger
        error: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.recorder.run())
                try:
                    await self._phases(reconcile_in_doubt, resend, probe)
                finally:
                    await self.recorder.close()
        except BaseExceptionGroup as group:
            error = _sole(group)
        except BaseException as exc:  # cancelled from outside, or a KeyboardInterrupt
            error = exc
        try:
            self.recorder.drain_sync()
        except LedgerError as exc:
            error = error or exc
        if error is not None:
            if self.run_id:
                with contextlib.suppress(LedgerError):
                    ledger.finish_run(self.run_id, {}, f"broken off: {error}"[:300])
            raise error
        counts = ledger.counts()
        ledger.finish_run(self.run_id, {s.value: n for s, n in counts.items()}, self.stop.reason)
        return RunResult(
            self.run_id, counts, self.stats, self.stop.reason, self.aborted, self.stats.total
        )

    async def _phases(self, reconcile_in_doubt: bool, resend: bool, probe: bool) -> None:
        ledger = self.recorder.ledger
        self.run_id = await self.recorder.call(
            ledger.start_run, str(self.job.path), self.settings.to_dict()
        )
        self.stats.start(await self.recorder.call(ledger.counts))
        if probe:
            await self._probe()
        if self.aborted is None and not self.stop.requested:
            await self._leftovers(reconcile_in_doubt, resend)
            if not self.stop.requested:
                await self._send_job()
        if reconcile_in_doubt and self.aborted is None:
            await self._settle()
        if isinstance(self.aborted, WrongKeyError):
            # The key was wrong, not the devices: these go out again on the next run.
            keys = self.breakers.auth_rejects
            await self.recorder.flush()
            await self.recorder.call(ledger.set_status, keys, Status.PENDING)
            for _ in keys:
                self.stats.move(Status.REJECTED, Status.PENDING)
            self.stats.count(Status.REJECTED, -len(keys))

    async def _probe(self) -> None:
        """Check the key and the address with one cheap call, and read OneNET's clock."""
        probe = Probe(
            self.client,
            self.pace,
            self.server_clock,
            self.stop,
            attempts=_PROBE_ATTEMPTS,
            backoff_s=self.settings.retry.initial_backoff_s,
            timeout_s=self.settings.retry.request_timeout_s,
            sleep=self._sleep,
            clock=self.clock,
        )
        # As many devices as the breaker on errno 1 counts: a few IMEIs outside the product at
        # the head of a job are not a wrong key.
        devices = _first_devices(self.job, self.settings.reliability.breaker_threshold)
        why = await probe.run(devices)
        self.stats.requests += probe.requests
        if why is not None:
            self._abort(why)
            return
        if probe.key_proven:
            self.breakers.key_proven = True
        if probe.requests and not self.server_clock.known:
            cause = "its answer had no Date header" if probe.last is None else probe.last.error
            self.notify(
                f"could not read OneNET's clock ({cause or 'no usable answer'}): relative times"
                " use this machine's clock"
            )
        elif self.server_clock.known:
            offset = self.server_clock.offset
            self.stats.clock_offset = offset
            if abs(offset) > _OFFSET_WARNING_S:
                self.notify(
                    f"OneNET's clock is {describe_offset(offset)} this machine's: relative times"
                    " and history searches use OneNET's clock"
                )

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
            for row in doubtful:
                self._move(row, Status.PENDING)
        else:
            flying = [r for r in doubtful if r.status is Status.IN_FLIGHT]
            await self.recorder.call(ledger.set_status, [r.key for r in flying], Status.IN_DOUBT)
            for row in flying:
                self._move(row, Status.IN_DOUBT)

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
        """Settle ``rows`` against the history; return the active ones OneNET never created (now
        pending)."""
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
        if not rows:
            return []
        before = self.pace.started
        report = await reconcile(
            rows,
            self.client,
            known_uuids=lambda imei: self.recorder.call(self.recorder.ledger.known_uuids, imei),
            lookback_s=rel.reconcile_lookback_s,
            pace=self.pace,
            concurrency=self.settings.limits.concurrency,
            stop=self.stop,
            clock_offset_s=self.server_clock.offset,
        )
        self.stats.requests += self.pace.started - before
        now = self.clock()
        for row, uuid in report.found:
            self._finish(row, Status.ACCEPTED, 0, "", 0, now, None, uuid=uuid, reconciled=True)
            self.stats.reconciled += 1
            self._settled.add(row.key)
            self.breakers.disarm()
        for row, reason in report.ambiguous:
            self._finish(row, Status.IN_DOUBT, None, reason[:300], 0, now, None)
        self._still_in_doubt(report.unreachable, "history unreachable")
        self._still_in_doubt(report.not_looked_up)
        await self.recorder.flush()
        missing = report.missing
        if missing:
            await self.recorder.call(
                self.recorder.ledger.set_status, [r.key for r in missing], Status.PENDING
            )
            for row in missing:  # sent again below, and counted by that outcome
                self._move(row, Status.PENDING)
                self._uncount_doubt(row.key)
        log.info(
            "reconciled %d: %d found, %d never created, %d ambiguous, %d unreachable",
            len(rows),
            len(report.found),
            len(missing),
            len(report.ambiguous),
            len(report.unreachable),
        )
        return [r for r in missing if r.retired is None]

    def _still_in_doubt(self, rows: list[Row], why: str = "not looked up yet") -> None:
        """Rows left unsettled: those a killed run left in flight become in doubt."""
        now = self.clock()
        for row in rows:
            if row.status is Status.IN_FLIGHT:
                self._finish(row, Status.IN_DOUBT, None, why, 0, now, None)

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
        queue: asyncio.Queue[tuple[Command, Status] | None] = asyncio.Queue(concurrency * 4)
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
            self.notify(f"stopped at once ({self.stop.reason}): commands on the wire are in doubt")

    async def _produce(
        self,
        batches: AsyncIterator[list[tuple[Command, Status]]],
        queue: asyncio.Queue[tuple[Command, Status] | None],
        workers: int,
    ) -> None:
        async for batch in batches:
            if self.stop.requested:
                break
            for command, status in batch:
                if status in TO_SEND:
                    await queue.put((command, status))
                elif command.key not in self._settled:
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

    async def _work(self, queue: asyncio.Queue[tuple[Command, Status] | None]) -> None:
        while not self.stop.requested:
            item = await queue.get()
            if item is None:
                return
            await self._send(*item)

    async def _send(self, command: Command, old: Status) -> None:
        if self._turns is None:
            await self._send_marked(command, old, None)
            return
        turn = _Turn(self._turns)
        if not await turn.take(self._stopping):
            return  # a stop came first: nothing of it was written, it stays as it was
        try:
            await self._send_marked(command, old, turn)
        finally:
            turn.give()

    async def _send_marked(self, command: Command, old: Status, turn: _Turn | None) -> None:
        now = self.clock()
        flight = self._resolve(command, old, self.server_clock.now())
        if flight is None:
            self._finish_key(command.key, old, Status.EXPIRED, None, _EXPIRED, 0, now, None)
            return
        flight.turn = turn
        try:
            await self._mark(flight, now)
            outcome = await self.attempts.run(self._attempt, flight)
        except _NotSent:
            # A stop came while it waited for its slot: it goes out with the next run.
            self._finish_key(command.key, old, Status.PENDING, None, "", flight.attempts, now, None)
            return
        except _Expired:
            at = self.clock()
            self._finish_key(command.key, old, Status.EXPIRED, None, _EXPIRED, flight.attempts, at)
            return
        except asyncio.CancelledError:
            # Its request on the wire: in doubt, looked up from the moment it left. Otherwise
            # (waiting for its mark, its slot or a retry) nothing of it is at OneNET.
            status = Status.IN_DOUBT if flight.on_wire else Status.PENDING
            error = "stopped at once" if flight.on_wire else ""
            at = flight.sent_at or now
            self._finish_key(command.key, old, status, None, error, flight.attempts, at, None)
            raise
        self._finish_outcome(flight, outcome)

    async def _attempt(self, flight: _Flight) -> Outcome:
        if flight.attempts:
            # A retry, after its backoff: times for now, marked before the wait for the pace.
            await self._refresh(flight, self.server_clock.now())
        ready = functools.partial(self._ready, flight)
        granted = await self.pace.acquire_for(ready, abandon=self._stopping)
        if flight.turn is not None:
            flight.turn.give()  # at the head: the next one may be marked
            flight.turn = None
        if not granted:
            raise _NotSent
        flight.attempts += 1
        flight.on_wire = True
        flight.sent_at = sent = self.clock()
        started = time.perf_counter()
        outcome = await self.client.execute_offline(flight.request)
        flight.latency_ms = (time.perf_counter() - started) * 1000.0
        flight.on_wire = False
        self.stats.requests += 1
        if outcome.server_date is not None:
            self.server_clock.observe(outcome.server_date, sent, sent + flight.latency_ms / 1000.0)
        self._observe(outcome, flight.command.key)
        return outcome

    async def _ready(self, flight: _Flight, wait: float) -> None:
        """At the head of the pace queue: fix the times again if they would be stale on sending."""
        at = self.server_clock.now() + wait
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
            server_at=flight.resolved_at if self.server_clock.known else None,
        )
        await self.recorder.mark_in_flight(mark)

    def _resolve(self, c: Command, old: Status, at: float) -> _Flight | None:
        """The request for a send at ``at`` (OneNET's clock, unix seconds); None: expired."""
        when = datetime.fromtimestamp(int(at), BEIJING)
        expired = c.expired_time.resolve(when)
        expired_at = expired.timestamp()
        if expired_at <= at + _START_MARGIN:
            return None
        valid_at: float | None = None
        valid = c.valid_time.resolve(when) if c.valid_time is not None else None
        if valid is not None:
            valid_at = valid.timestamp()
            if valid_at <= at + _START_MARGIN:
                # A start that has passed means "from now", which is OneNET's default.
                valid, valid_at = None, None
        request = ExecuteRequest(
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
        return _Flight(c, old, request, at, valid_at, expired_at)

    def _observe(self, outcome: Outcome, key: str) -> None:
        """Feed the pool-wide controls: the adaptive pace and the early-run breakers."""
        if outcome.throttled:
            self.stats.throttled += 1
            if self.aimd is not None:
                self.aimd.on_throttle(outcome.retry_after)
        elif outcome.verdict is Verdict.ACCEPTED:
            self.breakers.disarm()
            if self.aimd is not None:
                self.aimd.on_success()
        tripped = self.breakers.observe(outcome, key)
        if tripped is not None:
            self._abort(tripped)

    def _abort(self, why: RunAborted) -> None:
        """A breaker tripped: stop gracefully, with the reason."""
        if self.aborted is None:
            self.aborted = why
        self.stop.request(why.reason)

    def _finish_outcome(self, flight: _Flight, outcome: Outcome) -> None:
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
        self._finish_key(
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

    def _finish(
        self,
        row: Row,
        status: Status,
        errno: int | None,
        error: str,
        attempts: int,
        at: float,
        latency: float | None,
        *,
        uuid: str | None = None,
        reconciled: bool = False,
    ) -> None:
        """Record the outcome of a row read from the ledger (retired rows are not counted)."""
        self.recorder.record(
            Result(row.key, status, errno, error, uuid, attempts, at, latency, reconciled)
        )
        if row.retired is not None:
            return
        self._move(row, status)
        if status is not Status.IN_DOUBT:  # still in doubt: counted where it was lost, if here
            self._uncount_doubt(row.key)
            self.stats.count(status)

    def _finish_key(
        self,
        key: str,
        old: Status,
        status: Status,
        errno: int | None,
        error: str,
        attempts: int,
        at: float,
        latency: float | None = None,
        *,
        uuid: str | None = None,
    ) -> None:
        """Record the outcome of a command this run sent."""
        self.recorder.record(Result(key, status, errno, error, uuid, attempts, at, latency))
        self.stats.move(old, status)
        if status is Status.IN_DOUBT:
            self._doubted.add(key)
        self.stats.count(status)

    def _move(self, row: Row, status: Status) -> None:
        if row.retired is None:
            self.stats.move(row.status, status)

    def _uncount_doubt(self, key: str) -> None:
        """A command this run counted in doubt was settled: it is counted by its new outcome."""
        if key in self._doubted:
            self._doubted.discard(key)
            self.stats.in_doubt -= 1

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


def _first_devices(job: Job, n: int) -> list[str]:
    """Up to ``n`` distinct IMEIs from the start of the job (for the probe)."""
    found: list[str] = []
    commands = job.commands()
    try:
        for command in itertools.islice(commands, 1000):
            if command.imei not in found:
                found.append(command.imei)
                if len(found) >= n:
                    break
    except Exception:  # the send phase reports a broken job; the probe just has fewer devices
        log.debug("reading the job for the probe failed", exc_info=True)
    finally:
        commands.close()
    return found


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
