"""The measurements: three contenders on one job, validate and run at scale, and pacing.

Each measurement starts what it needs (a fresh emulator process, a fresh ledger), runs one child
process, checks the emulator's counters and returns a plain record; nothing here prints.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.gen_fleet import USUAL_FIELDS, write_fleet_csv
from benchmarks.procs import EmulatorProcess, Measured, child_env, measure

__all__ = [
    "API_KEY",
    "CPU_TARGET_X",
    "RSS_TARGET_MB",
    "VALIDATE_TARGET_X",
    "BigRun",
    "Check",
    "Contender",
    "Pacing",
    "Sizes",
    "Suite",
    "Validate",
    "busiest_window",
]

API_KEY = "bench-key"
CONCURRENCY = 64
CPU_TARGET_X = 1.3  # dispatcher's client CPU per command over the bare loop's, at most
VALIDATE_TARGET_X = 5.0  # validate's CPU over a bare csv.DictReader pass's, at most
RSS_TARGET_MB = 100.0  # peak RSS of validate and of the large run, below
_PY = sys.executable


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each measurement sends or reads."""

    n: int  # commands of the shared job
    naive_n: int  # of which the naive script sends the first naive_n
    validate_ns: tuple[int, ...]  # rows validated: one 7-column file of each size
    run_n: int  # commands of the large run
    pacing_n: int  # commands of the paced run
    rate: float  # its rate
    throttle_rps: float = 100.0  # R: what the throttled emulator admits per second
    throttle_n: int = 3_000  # commands of each throttled run
    throttle_rates: tuple[float, ...] = (1.0, 2.0, 10.0, 0.0)  # configured rates, x R (0: none)
    throttle_modes: tuple[str, ...] = ("errno7", "http429")
    follow_step_s: float = 10.0  # the limit goes R -> R/2 -> R every this long (0: no such run)
    follow_n: int = 3_000  # commands of that run


@dataclass(frozen=True, slots=True)
class Check:
    """What the emulator saw of one run: every command accepted exactly once?"""

    expected: int
    accepted: int
    duplicates: int
    posts: int

    @property
    def ok(self) -> bool:
        """accepted == expected and no duplicates."""
        return self.accepted == self.expected and self.duplicates == 0

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"emulator accepted {self.accepted:,} of {self.expected:,}, "
            f"{self.duplicates} duplicates, {self.posts:,} POSTs: {verdict}"
        )


@dataclass(frozen=True, slots=True)
class Contender:
    """One client's run over ``n`` commands of a job of ``scale_to`` commands."""

    name: str
    n: int
    scale_to: int
    run: Measured
    server_cpu_s: float
    check: Check

    @property
    def per_s(self) -> float:
        """Commands per second."""
        return self.n / self.run.wall_s

    @property
    def cpu_per_1k(self) -> float:
        """Client CPU seconds (user + sys) per 1,000 commands."""
        return self.run.cpu_s / self.n * 1000

    @property
    def wall_s(self) -> float:
        """Wall time for the whole job (projected when only part of it was sent)."""
        return self.run.wall_s * self.scale_to / self.n


@dataclass(frozen=True, slots=True)
class Validate:
    """``dispatcher validate`` against a bare csv.DictReader pass over the same file."""

    rows: int
    columns: int
    dispatcher: Measured
    dictreader: Measured

    @property
    def cpu_x(self) -> float:
        """Validate's CPU seconds over the DictReader pass's."""
        return self.dispatcher.cpu_s / self.dictreader.cpu_s

    @property
    def wall_x(self) -> float:
        """Validate's wall time over the DictReader pass's."""
        return self.dispatcher.wall_s / self.dictreader.wall_s


@dataclass(frozen=True, slots=True)
class BigRun:
    """A large ``dispatcher run`` at no rate limit: memory and ledger size."""

    n: int
    run: Measured
    ledger_bytes: int
    server_cpu_s: float
    check: Check


@dataclass(frozen=True, slots=True)
class Pacing:
    """A ``dispatcher run`` at a rate, seen from the emulator's arrival times."""

    n: int
    rate: float
    run: Measured
    duration_s: float  # last arrival - first
    expected_s: float  # (n - 1) / rate
    busiest: int  # most arrivals in any 1-second window
    check: Check

    @property
    def error_pct(self) -> float:
        """How far the duration is from the expected one, in percent (+: slower)."""
        return (self.duration_s / self.expected_s - 1) * 100 if self.expected_s else 0.0


def busiest_window(arrivals: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window [t, t + window)."""
    times = sorted(arrivals)
    best = j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best


def _check(emulator: EmulatorProcess, expected: int) -> Check:
    stats = emulator.stats()
    return Check(expected, stats["accepted"], stats["duplicates"], stats["posts"])


def _ledger_bytes(path: Path) -> int:
    files = (path, path.with_name(path.name + "-wal"))  # the database, and a WAL left unmerged
    return sum(p.stat().st_size for p in files if p.exists())


class Suite:
    """Runs each measurement in ``work`` (job files, ledgers, logs)."""

    def __init__(self, work: Path, sizes: Sizes) -> None:
        self.work = work
        self.sizes = sizes
        self._jobs: dict[int, Path] = {}
        self._env = child_env({"ONENET_API_KEY": API_KEY})

    def job(self, n: int) -> Path:
        """A fleet CSV of ``n`` commands with relative times (written once per run)."""
        path = self._jobs.get(n)
        if path is None:
            path = self.work / f"fleet-{n}.csv"
            write_fleet_csv(path, n)
            self._jobs[n] = path
        return path

    def _ledger(self, name: str) -> Path:
        path = self.work / f"{name}.ledger.db"
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        return path

    def _dispatcher_run(
        self, job: Path, url: str, ledger: Path, rate: float, timeout: float, logs: str
    ) -> Measured:
        argv = [_PY, "-m", "dispatcher", "run", str(job), "--rate", f"{rate:g}"]
        argv += ["--concurrency", str(CONCURRENCY), "--base-url", url]
        argv += ["--ledger", str(ledger), "--no-progress"]
        return measure(argv, logs=self.work / logs, timeout=timeout, env=self._env, cwd=self.work)

    def _contender(self, name: str, n: int, argv: list[str], timeout: float) -> Contender:
        slug = name.split()[0]
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            argv = [a.replace("{url}", emulator.url) for a in argv]
            run = measure(
                argv, logs=self.work / slug, timeout=timeout, env=self._env, cwd=self.work
            )
            check = _check(emulator, n)
        return Contender(name, n, self.sizes.n, run, emulator.cpu_s, check)

    def dispatcher(self) -> Contender:
        """``dispatcher run`` of the shared job, no rate limit, concurrency 64, fresh ledger."""
        n, job = self.sizes.n, self.job(self.sizes.n)
        with EmulatorProcess(logs=self.work / "emulator-dispatcher") as emulator:
            ledger = self._ledger("dispatcher")
            run = self._dispatcher_run(job, emulator.url, ledger, 0, _timeout(n, 300), "dispatcher")
            check = _check(emulator, n)
        return Contender("dispatcher", n, n, run, emulator.cpu_s, check)

    def bare(self) -> Contender:
        """The bare aiohttp loop over the shared job."""
        n, job = self.sizes.n, self.job(self.sizes.n)
        argv = [_PY, "-m", "benchmarks.bare", str(job), "{url}", str(CONCURRENCY)]
        return self._contender("bare aiohttp loop", n, argv, _timeout(n, 300))

    def naive(self) -> Contender:
        """The naive script over the first naive_n commands of the shared job."""
        n, job = self.sizes.naive_n, self.job(self.sizes.n)
        argv = [_PY, "-m", "benchmarks.naive", str(job), "{url}", str(n)]
        return self._contender("naive script", n, argv, _timeout(n, 50))

    def startup(self) -> dict[str, float]:
        """CPU seconds of starting each client and importing what it needs (best of three)."""
        probes = {
            "dispatcher": [_PY, "-m", "dispatcher", "--version"],
            "bare aiohttp loop": [_PY, "-c", "import benchmarks.bare, uvloop"],
            "naive script": [_PY, "-c", "import benchmarks.naive"],
        }
        found: dict[str, float] = {}
        for name, argv in probes.items():
            runs = [
                measure(argv, logs=self.work / "startup", timeout=60, env=self._env, check=False)
                for _ in range(3)
            ]
            found[name] = min(r.cpu_s for r in runs)
        return found

    def validate(self, n: int) -> Validate:
        """``dispatcher validate`` and a csv.DictReader pass over ``n`` rows of 7 columns."""
        job = self.work / f"validate-{n}.csv"
        write_fleet_csv(job, n, fields=USUAL_FIELDS)
        timeout = _timeout(n, 5000)
        checker = measure(
            [_PY, "-m", "dispatcher", "validate", str(job)],
            logs=self.work / f"validate-{n}",
            timeout=timeout,
            env=self._env,
            cwd=self.work,
        )
        plain = measure(
            [_PY, "-m", "benchmarks.dictreader", str(job)],
            logs=self.work / f"dictreader-{n}",
            timeout=timeout,
            env=self._env,
        )
        return Validate(n, len(USUAL_FIELDS), checker, plain)

    def big_run(self) -> BigRun:
        """``dispatcher run`` of run_n commands, no rate limit, against a record-less emulator."""
        n = self.sizes.run_n
        job = self.job(n)
        with EmulatorProcess(keep_records=False, logs=self.work / "emulator-big") as emulator:
            ledger = self._ledger("big")
            run = self._dispatcher_run(job, emulator.url, ledger, 0, _timeout(n, 400), "big-run")
            check = _check(emulator, n)
        return BigRun(n, run, _ledger_bytes(ledger), emulator.cpu_s, check)

    def pacing(self) -> Pacing:
        """``dispatcher run`` of pacing_n commands at ``rate``; arrivals timed by the emulator."""
        n, rate = self.sizes.pacing_n, self.sizes.rate
        job = self.job(n)
        expected = (n - 1) / rate
        with EmulatorProcess(logs=self.work / "emulator-pacing") as emulator:
            ledger = self._ledger("pacing")
            timeout = 120 + 2 * expected
            run = self._dispatcher_run(job, emulator.url, ledger, rate, timeout, "pacing")
            check = _check(emulator, n)
            arrivals = emulator.arrivals()
        duration = max(arrivals) - min(arrivals) if arrivals else 0.0
        return Pacing(n, rate, run, duration, expected, busiest_window(arrivals), check)


def _timeout(n: int, slowest_per_s: float) -> float:
    """Seconds allowed for ``n`` commands at no less than ``slowest_per_s``, plus start-up."""
    return 120 + n / slowest_per_s
