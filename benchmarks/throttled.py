"""Pacing against a server that admits R requests per second: how much of R a client uses.

The emulator throttles every POST past ``throttle_rps`` = R in any sliding second (errno 7, or
HTTP 429 with Retry-After 1 s). Against it, each measurement starts a fresh emulator, runs one
client over the job and reads the emulator's counters and arrival times:

- ``dispatcher run`` with ``limits.adaptive`` at a configured rate of R, 2R, 10R or none, in each
  throttle mode: the share of R used (accepted / (R x the first-to-last arrival span)), the share
  of requests throttled, the commands failed (from the ledger) and the exit code;
- the contender ``benchmarks.cubic`` (the AWS SDKs' adaptive retry mode) on the same job;
- the changing limit: the dispatcher at 2R while the limit goes R -> R/2 -> R (PUT
  /_emulator/faults); the admitted arrivals give how long the admitted rate takes to come back
  within 10% of each new limit and stay there;
- ``dispatcher status`` once after the first run: OneNET calls per device.

Nothing here prints; the records are plain.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import ChildFailed, EmulatorProcess, Measured, child_env, measure, tail

__all__ = [
    "FOLLOW_TARGET_S",
    "THROTTLED_TARGET_PCT",
    "USED_TARGET_PCT",
    "Follow",
    "LimitChange",
    "StatusCalls",
    "Throttled",
    "ThrottledRun",
    "follow_times",
    "per_second",
    "replay_admissions",
]

USED_TARGET_PCT = 95.0  # of R, at least
THROTTLED_TARGET_PCT = 2.0  # of requests, at most
FOLLOW_TARGET_S = 5.0  # after a change of the limit, at most
TOLERANCE = 0.10  # "back at the limit": the admitted rate within 10% of it
RETRY_AFTER_S = 1.0  # of an HTTP 429
CONCURRENCY = 64
MAX_ATTEMPTS = 6
MODES = {"errno7": "errno 7", "http429": "HTTP 429, Retry-After 1 s"}
_PY = sys.executable
_CONFIG = """\
limits: {{rate_per_second: {rate:g}, concurrency: {concurrency}, adaptive: true}}
retry: {{max_attempts: {attempts}, initial_backoff_s: 0.05, max_backoff_s: 2}}
reliability: {{settle_s: 0.5}}
ledger: {{synchronous: normal}}
"""


@dataclass(frozen=True, slots=True)
class StatusCalls:
    """``dispatcher status`` of one run's ledger: OneNET's history and detail calls."""

    devices: int
    history: int
    detail: int
    run: Measured

    @property
    def per_device(self) -> float:
        """History + detail calls per device."""
        return (self.history + self.detail) / self.devices if self.devices else 0.0


@dataclass(frozen=True, slots=True)
class ThrottledRun:
    """One client over ``n`` commands against an emulator admitting ``limit`` per second."""

    client: str  # "dispatcher" or "cubic"
    limit: float  # R
    rate: float  # the configured rate (0: unlimited)
    mode: str  # errno7 or http429
    n: int
    run: Measured
    span_s: float  # first arrival to last
    posts: int
    throttled: int
    accepted: int  # by the emulator
    duplicates: int
    client_accepted: int  # by the ledger, or by the client's own count
    failed: int  # commands not accepted, by the same
    admitted_per_s: tuple[int, ...] = ()  # admissions in each second from the first arrival
    status: StatusCalls | None = None

    @property
    def used_pct(self) -> float:
        """Accepted commands over what R admits in the span, in percent."""
        return self.accepted / (self.limit * self.span_s) * 100 if self.span_s > 0 else 0.0

    @property
    def throttled_pct(self) -> float:
        """Throttled POSTs over all POSTs, in percent."""
        return self.throttled / self.posts * 100 if self.posts else 0.0

    @property
    def consistent(self) -> bool:
        """No duplicates, and the client's count of accepted commands is the emulator's."""
        return (
            self.duplicates == 0
            and self.accepted == self.client_accepted
            and self.client_accepted + self.failed == self.n
        )

    def misses(self) -> list[str]:
        """The targets missed, each with by how much."""
        found = []
        if self.used_pct < USED_TARGET_PCT:
            found.append(f"used {USED_TARGET_PCT - self.used_pct:.1f} pts short")
        if self.throttled_pct > THROTTLED_TARGET_PCT:
            found.append(f"throttled {self.throttled_pct - THROTTLED_TARGET_PCT:.1f} pts over")
        if self.failed:
            found.append(f"{self.failed:,} failed")
        return found


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One change of the server's limit, and how the admitted rate followed it."""

    at_s: float  # after the first arrival
    before: float | None  # None: the start of the run
    after: float
    first_s: int | None  # the end of the first second admitting within 10% of ``after``
    settled_s: int | None  # of the first second from which every one did (None: not so)
    per_s: tuple[int, ...]  # admissions in each whole second after the change

    @property
    def met(self) -> bool:
        """Settled within the target."""
        return self.settled_s is not None and self.settled_s <= FOLLOW_TARGET_S


@dataclass(frozen=True, slots=True)
class Follow:
    """The dispatcher at ``rate`` while the server's limit changes at runtime."""

    n: int
    rate: float
    limit: float
    step_s: float
    mode: str
    run: Measured
    changes: tuple[LimitChange, ...]
    span_s: float
    posts: int
    throttled: int
    accepted: int
    duplicates: int
    replayed: int  # admissions found by replaying the throttle: should be ``accepted``
    failed: int
    admitted_per_s: tuple[int, ...]  # admissions in each second from the first arrival
    arrived_per_s: tuple[int, ...]  # POSTs in each second from the first arrival

    @property
    def throttled_pct(self) -> float:
        """Throttled POSTs over all POSTs, in percent."""
        return self.throttled / self.posts * 100 if self.posts else 0.0

    @property
    def consistent(self) -> bool:
        """No duplicates; every command accepted or failed; each change was applied."""
        return (
            self.duplicates == 0
            and self.accepted + self.failed == self.n
            and len(self.changes) == 3
        )


def replay_admissions(
    arrivals: Sequence[float], limits: Sequence[tuple[float, float]]
) -> list[float]:
    """Which arrivals the emulator admitted, by its throttle's rule (state.Throttle: at most
    floor(rps) admitted in any sliding second; below 1/s, one per 1/rps seconds) replayed over
    the arrival times. ``limits``: (from when, rps), in order; the first holds from the start."""
    admitted: list[float] = []
    window: deque[float] = deque()
    i = 0
    for t in sorted(arrivals):
        while i + 1 < len(limits) and limits[i + 1][0] <= t:
            i += 1
        rps = limits[i][1]
        cap, span = (math.floor(rps), 1.0) if rps >= 1 else (1, 1.0 / rps)
        while window and window[0] <= t - span:
            window.popleft()
        if len(window) < cap:
            window.append(t)
            admitted.append(t)
    return admitted


def follow_times(
    admitted: Sequence[float],
    change_at: float,
    limit: float,
    seconds: int,
    *,
    tolerance: float = TOLERANCE,
) -> tuple[int | None, int | None, tuple[int, ...]]:
    """How the admitted rate followed a change of the limit, in whole seconds from the change.

    Counts the admissions in each second [change_at + k, change_at + k + 1) for the ``seconds``
    after it. Returns (first, settled, counts): the end of the first second whose count is within
    ``tolerance`` of ``limit``; the end of the first second from which every count is (None
    where none is, or the last is not); and the counts. ``admitted`` must be sorted."""
    counts = tuple(
        bisect.bisect_left(admitted, change_at + k + 1)
        - bisect.bisect_left(admitted, change_at + k)
        for k in range(max(0, seconds))
    )
    good = [abs(count - limit) <= tolerance * limit for count in counts]
    first = next((k + 1 for k, ok in enumerate(good) if ok), None)
    settled = None
    for k in range(len(good) - 1, -1, -1):
        if not good[k]:
            break
        settled = k + 1
    return first, settled, counts


def per_second(times: Sequence[float], start: float) -> tuple[int, ...]:
    """How many of ``times`` fall in each second [start + k, start + k + 1)."""
    counts: list[int] = []
    for t in times:
        k = math.floor(t - start)
        if k < 0:
            continue
        counts.extend([0] * (k + 1 - len(counts)))
        counts[k] += 1
    return tuple(counts)


def _admitted_per_s(arrivals: Sequence[float], limit: float) -> tuple[int, ...]:
    times = sorted(arrivals)
    return per_second(replay_admissions(times, [(-math.inf, limit)]), times[0]) if times else ()


def _span(arrivals: Sequence[float]) -> float:
    return max(arrivals) - min(arrivals) if arrivals else 0.0


def _ledger_counts(path: Path) -> tuple[int, int]:
    """(accepted, not accepted) commands of a ledger."""
    if not path.exists():
        raise ChildFailed(f"{path.name}: no ledger was written")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = dict(conn.execute("SELECT status, COUNT(*) FROM commands GROUP BY status"))
    conn.close()
    accepted = rows.pop("accepted", 0)
    return accepted, sum(rows.values())


def _devices(job: Path) -> int:
    with open(job, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows, None)
        return len({row[0] for row in rows if row})


class Throttled:
    """Runs the throttled measurements in ``work``; job files come from ``job(n)``."""

    def __init__(self, work: Path, job: Callable[[int], Path], api_key: str) -> None:
        self.work = work
        self._job = job  # the suite's job files, each size written once
        self._env = child_env({"ONENET_API_KEY": api_key})

    def _ledger(self, name: str) -> Path:
        path = self.work / f"{name}.ledger.db"
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        return path

    def _config(self, rate: float) -> Path:
        path = self.work / f"throttled-{rate:g}.yaml"
        text = _CONFIG.format(rate=rate, concurrency=CONCURRENCY, attempts=MAX_ATTEMPTS)
        path.write_text(text, encoding="utf-8")
        return path

    @staticmethod
    def _throttle(emulator: EmulatorProcess, limit: float, mode: str) -> None:
        emulator.put_faults(
            {"throttle_rps": limit, "throttle_mode": mode, "throttle_retry_after": RETRY_AFTER_S}
        )

    def _run_argv(self, job: Path, config: Path, url: str, ledger: Path) -> list[str]:
        argv = [_PY, "-m", "dispatcher", "run", str(job), "--config", str(config)]
        return [*argv, "--base-url", url, "--ledger", str(ledger), "--no-progress"]

    def dispatcher(
        self, n: int, limit: float, rate: float, mode: str, *, status: bool = False
    ) -> ThrottledRun:
        """``dispatcher run`` of ``n`` commands at configured ``rate`` (0: none); with
        ``status``, then ``dispatcher status`` of its ledger against the same emulator."""
        job, config = self._job(n), self._config(rate)
        slug = f"throttled-{mode}-{rate:g}"
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            self._throttle(emulator, limit, mode)
            ledger = self._ledger(slug)
            argv = self._run_argv(job, config, emulator.url, ledger)
            timeout = 120 + n / (0.2 * limit)
            run = measure(
                argv, logs=self.work / slug, timeout=timeout, env=self._env, cwd=self.work,
                check=False,
            )  # fmt: skip
            stats, arrivals = emulator.stats(), emulator.arrivals()
            client_accepted, failed = _ledger_counts(ledger)
            calls = self._status(emulator, job, config, ledger, stats) if status else None
        return ThrottledRun(
            "dispatcher", limit, rate, mode, n, run, _span(arrivals), stats["posts"],
            stats["throttled"], stats["accepted"], stats["duplicates"], client_accepted, failed,
            _admitted_per_s(arrivals, limit), calls,
        )  # fmt: skip

    def _status(
        self,
        emulator: EmulatorProcess,
        job: Path,
        config: Path,
        ledger: Path,
        before: dict[str, Any],
    ) -> StatusCalls:
        argv = [_PY, "-m", "dispatcher", "status", str(ledger), "--config", str(config)]
        argv += ["--base-url", emulator.url, "--rate", "0", "--no-progress"]
        run = measure(
            argv, logs=self.work / "status", timeout=300, env=self._env, cwd=self.work,
            check=False,
        )  # fmt: skip
        after = emulator.stats()["calls"]
        was = before["calls"]
        history = after.get("history", 0) - was.get("history", 0)
        detail = after.get("detail", 0) - was.get("detail", 0)
        return StatusCalls(_devices(job), history, detail, run)

    def cubic(self, n: int, limit: float, mode: str) -> ThrottledRun:
        """The AWS SDKs' adaptive retry mode (benchmarks/cubic.py) over the same ``n``."""
        job = self._job(n)
        slug = f"cubic-{mode}"
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            self._throttle(emulator, limit, mode)
            argv = [_PY, "-m", "benchmarks.cubic", str(job), emulator.url, str(CONCURRENCY)]
            argv += ["--max-attempts", str(MAX_ATTEMPTS)]
            run = measure(
                argv, logs=self.work / slug, timeout=120 + n / (0.1 * limit), env=self._env,
                cwd=self.work, check=False,
            )  # fmt: skip
            stats, arrivals = emulator.stats(), emulator.arrivals()
        try:
            counts = json.loads(run.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            raise ChildFailed(
                f"benchmarks.cubic: exit code {run.returncode}, no counts; stderr ends:\n"
                f"{tail(run.stderr)}"
            ) from None
        return ThrottledRun(
            "cubic", limit, 0.0, mode, n, run, _span(arrivals), stats["posts"],
            stats["throttled"], stats["accepted"], stats["duplicates"], counts["accepted"],
            counts["rejected"] + counts["failed"], _admitted_per_s(arrivals, limit),
        )  # fmt: skip

    def follow(self, n: int, limit: float, step_s: float, mode: str = "errno7") -> Follow:
        """The dispatcher at 2 x ``limit`` while the limit goes to half after ``step_s`` seconds
        of sending and back after ``step_s`` more; followed in the admitted arrivals."""
        rate = 2 * limit
        job, config = self._job(n), self._config(rate)
        slug = "throttled-follow"
        plan = ((step_s, limit / 2), (2 * step_s, limit))
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            self._throttle(emulator, limit, mode)
            ledger = self._ledger(slug)
            argv = self._run_argv(job, config, emulator.url, ledger)
            done = threading.Event()
            applied: list[tuple[float, float]] = []
            trouble: list[BaseException] = []
            changer = threading.Thread(
                target=_change_limits, args=(emulator, plan, done, applied, trouble), daemon=True
            )
            changer.start()
            try:
                run = measure(
                    argv, logs=self.work / slug, timeout=120 + 4 * step_s + n / (0.2 * limit),
                    env=self._env, cwd=self.work, check=False,
                )  # fmt: skip
            finally:
                done.set()
                changer.join(timeout=70)
            if trouble:
                raise ChildFailed(f"changing the limit failed: {trouble[0]!r}")
            stats, arrivals = emulator.stats(), sorted(emulator.arrivals())
            _, failed = _ledger_counts(ledger)
        start = arrivals[0] if arrivals else 0.0
        limits = [(-math.inf, limit), *applied]
        admitted = replay_admissions(arrivals, limits)
        end = admitted[-1] - 1.0 if admitted else start  # the job running out is not followed
        marks = [(start, None, limit), *((t, limits[i][1], r) for i, (t, r) in enumerate(applied))]
        changes = []
        for i, (at, before, after) in enumerate(marks):
            until = min(at + step_s, marks[i + 1][0] if i + 1 < len(marks) else math.inf, end)
            seconds = math.floor(until - at + 0.01)  # a change set a few ms late still counts
            first, settled, counts = follow_times(admitted, at, after, seconds)
            changes.append(LimitChange(at - start, before, after, first, settled, counts))
        return Follow(
            n, rate, limit, step_s, mode, run, tuple(changes), _span(arrivals), stats["posts"],
            stats["throttled"], stats["accepted"], stats["duplicates"], len(admitted), failed,
            per_second(admitted, start), per_second(arrivals, start),
        )  # fmt: skip


def _change_limits(
    emulator: EmulatorProcess,
    plan: Sequence[tuple[float, float]],
    done: threading.Event,
    applied: list[tuple[float, float]],
    trouble: list[BaseException],
) -> None:
    """From the first arrival, set each (seconds after it, rps) of ``plan``; note when each was
    set on the monotonic clock, which the emulator's arrival times share (Linux: one clock for
    every process). Stops when ``done`` is set."""
    try:
        while not done.is_set() and emulator.stats()["posts"] == 0:
            done.wait(0.02)
        if done.is_set():
            return
        first = min(emulator.arrivals())
        for after_s, rps in plan:
            if done.wait(max(0.0, first + after_s - time.monotonic())):
                return
            before = time.monotonic()
            emulator.put_faults({"throttle_rps": rps})
            applied.append(((before + time.monotonic()) / 2, rps))
    except BaseException as exc:  # reported by the measurement
        trouble.append(exc)
