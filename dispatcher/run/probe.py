"""The first call of a run: check the key and the address, and read OneNET's clock.

Before the fleet is touched, one cheap authenticated call (a one-item history query for a device
of the job) tells whether the api-key works (errno 1 for every device asked: it does not), whether
the address is OneNET's (an HTML 404 from a wrong path, a proxy's 403/407: it is not), whether the
server answers at all, and what OneNET's clock says (the ``Date`` header). A few attempts with a
short backoff ride out a blip; what is certain stops the run before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from dispatcher.clock import ServerClock, describe_offset
from dispatcher.config import Settings
from dispatcher.errors import (
    MisroutedError,
    RunAborted,
    ServerHungError,
    UnreachableError,
    WrongKeyError,
)
from dispatcher.job.model import Job
from dispatcher.onenet.answers import Outcome, Verdict
from dispatcher.run.breakers import API_KEY_BLAME
from dispatcher.run.pacing import Pace
from dispatcher.run.state import Stop
from dispatcher.times import BEIJING

if TYPE_CHECKING:
    from dispatcher.run.lane import Lane

__all__ = ["PROBE_ATTEMPTS", "Probe", "ProbeClient", "check_lane", "clock_notice", "first_devices"]

log = logging.getLogger(__name__)

PROBE_ATTEMPTS: Final = 3  # a few attempts with a short backoff ride out a blip

T = TypeVar("T")


class ProbeClient(Protocol):
    """What the probe needs of a OneNET client."""

    @property
    def execute_url(self) -> str: ...

    async def probe(self, imei: str, start: datetime) -> Outcome: ...


class Probe:
    """One run's first call; ``run`` returns the reason to stop, if any."""

    def __init__(
        self,
        client: ProbeClient,
        pace: Pace,
        server_clock: ServerClock,
        stop: Stop,
        *,
        attempts: int,
        backoff_s: float,
        timeout_s: float,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        blame: str = API_KEY_BLAME,
    ) -> None:
        self.blame = blame  # what errno 1 from every device says is wrong (breakers.auth_blame)
        self.client, self.pace, self.server_clock, self.stop = client, pace, server_clock, stop
        self.attempts, self.backoff_s, self.timeout_s = attempts, backoff_s, timeout_s
        self.sleep, self.clock = sleep, clock
        self.requests = 0
        self.key_proven = False  # OneNET answered errno 0: the key is right
        self.last: Outcome | None = None  # the last answer, when no usable one came
        self.why: RunAborted | None = None  # what check_lane's probe found wrong, if anything

    async def run(self, imeis: Sequence[str]) -> RunAborted | None:
        """Ask about ``imeis`` (the next device after each errno 1) until an answer is usable."""
        if not imeis:
            return None
        start = datetime.fromtimestamp(self.clock() - 86400, BEIJING)
        base = self.client.execute_url.removesuffix("/nbiot/execute/offline")
        device = failures = 0
        while True:
            if not await self.pace.acquire_for(abandon=lambda: self.stop.requested):
                return None
            sent = self.clock()
            outcome = await self._unless_stopped(self.client.probe(imeis[device], start))
            if outcome is None:
                return None
            self.requests += 1
            if outcome.server_date is not None:
                self.server_clock.observe(outcome.server_date, sent, self.clock())
            if outcome.verdict is Verdict.ACCEPTED:
                self.last = None
                self.key_proven = True
                return None
            self.last = outcome
            if outcome.errno == 1:  # the key, or only that device: ask another one
                device += 1
                if device < len(imeis):
                    continue
                return WrongKeyError(
                    f"OneNET answered errno 1 (auth failed) for {len(imeis)} devices of the job"
                    f" before anything was sent: {self.blame}"
                )
            failures += 1
            why = self._verdict(outcome, failures, base)
            if why is not None or failures >= self.attempts:
                return why
            await self.sleep(self.backoff_s * 2**failures)
            if self.stop.requested:
                return None

    def _verdict(self, outcome: Outcome, failures: int, base: str) -> RunAborted | None:
        """The reason to stop after ``failures`` unusable answers, once it is certain enough."""
        if outcome.misrouted and failures >= self.attempts:
            return MisroutedError(
                f"{base}/nbiot/offline/history did not answer as OneNET does ({outcome.error}):"
                " check onenet.base_url (a wrong path, or a proxy in between); nothing was sent"
            )
        if not outcome.reached and failures >= self.attempts:
            return UnreachableError(
                f"no connection to OneNET at {base} ({outcome.error}): check onenet.base_url and"
                " the network; nothing was sent"
            )
        if outcome.timed_out and failures >= 2:
            return ServerHungError(
                f"{base} took the connection but sent no answer within {self.timeout_s:g}s,"
                " twice: the server hangs; nothing was sent"
            )
        return None

    async def _unless_stopped(self, call: Awaitable[T]) -> T | None:
        """The result of ``call``, or None when an immediate stop comes first."""
        task = asyncio.ensure_future(call)
        stopper = asyncio.ensure_future(self.stop.wait_immediate())
        try:
            await asyncio.wait((task, stopper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        return task.result() if not task.cancelled() else None


async def check_lane(
    lane: Lane,
    imeis: Sequence[str],
    *,
    settings: Settings,
    stop: Stop,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float],
) -> Probe:
    """Probe ``lane`` with a few of ``imeis`` (as many as the errno-1 breaker counts, so that a
    few IMEIs outside the product are not a wrong key); the probe, whose ``why`` is the reason to
    stop when the key, the address or the server is wrong. OneNET's clock is read into the lane."""
    probe = Probe(
        lane.client,
        lane.pace,
        lane.clock,
        stop,
        attempts=PROBE_ATTEMPTS,
        backoff_s=settings.retry.initial_backoff_s,
        timeout_s=settings.retry.request_timeout_s,
        sleep=sleep,
        clock=clock,
        blame=lane.breakers.auth.blame,
    )
    probe.why = await probe.run(imeis[: settings.reliability.breaker_threshold])
    if probe.why is None and probe.key_proven:
        lane.breakers.auth.key_proven = True
    return probe


def clock_notice(probe: Probe, clock: ServerClock, *, warn_beyond_s: float) -> str | None:
    """What a person should know of OneNET's clock after the probe: unread, or far off ours."""
    if probe.requests and not clock.known:
        cause = "its answer had no Date header" if probe.last is None else probe.last.error
        return (
            f"could not read OneNET's clock ({cause or 'no usable answer'}): relative times use"
            " this machine's clock"
        )
    if clock.known and abs(clock.offset) > warn_beyond_s:
        return (
            f"OneNET's clock is {describe_offset(clock.offset)} this machine's: relative times"
            " and history searches use OneNET's clock"
        )
    return None


def first_devices(job: Job, n: int) -> list[str]:
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
