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

import csv
import json
import math
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.procs import ChildFailed, EmulatorProcess, child_env, measure, tail
from benchmarks.throttled_figures import (
    FOLLOW_TARGET_S,
    THROTTLED_TARGET_PCT,
    TOLERANCE,
    USED_TARGET_PCT,
    Follow,
    LimitChange,
    StatusCalls,
    ThrottledRun,
    admitted_per_s,
    follow_times,
    per_second,
    replay_admissions,
    span,
)

__all__ = [
    "FOLLOW_TARGET_S",
    "MODES",
    "THROTTLED_TARGET_PCT",
    "TOLERANCE",
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
            "dispatcher", limit, rate, mode, n, run, span(arrivals), stats["posts"],
            stats["throttled"], stats["accepted"], stats["duplicates"], client_accepted, failed,
            admitted_per_s(arrivals, limit), calls,
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
            "cubic", limit, 0.0, mode, n, run, span(arrivals), stats["posts"],
            stats["throttled"], stats["accepted"], stats["duplicates"], counts["accepted"],
            counts["rejected"] + counts["failed"], admitted_per_s(arrivals, limit),
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
            n, rate, limit, step_s, mode, run, tuple(changes), span(arrivals), stats["posts"],
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
