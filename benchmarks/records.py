"""What each measurement returns (plain records, their derived figures) and the targets' limits.

Pure: no processes, no I/O; suite.py fills these, report.py and report_json.py show them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.gen_fleet import SHAPES  # the job shapes by name; "long" is the shared job's
from benchmarks.procs import Measured

__all__ = [
    "CONCURRENCY",
    "CPU_TARGET_X",
    "RSS_TARGET_MB",
    "SHAPES",
    "STEPS_TARGET_X",
    "VALIDATE_TARGET_X",
    "BigRun",
    "Check",
    "Contender",
    "Pacing",
    "Sizes",
    "StepsRun",
    "Validate",
    "busiest_window",
]

CONCURRENCY = 64
CPU_TARGET_X = 1.3  # dispatcher's client CPU per command over the bare loop's, at most
VALIDATE_TARGET_X = 5.0  # validate's CPU over a bare csv.DictReader pass's, at most
STEPS_TARGET_X = 2.0  # a job of steps' run CPU over the same commands' without steps, at most
RSS_TARGET_MB = 100.0  # peak RSS of validate and of the large run, below


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
    steps: int = 500  # steps of the job of steps (0: no such measurement)
    steps_devices: int = 2  # devices it sends them to
    loop_fleet: int = 2_000  # registered devices the device lists read (0: no closed loop)
    loop_devices: int = 500  # devices of the job of steps gated on delivery (0: no such run)
    loop_wake_s: float = 2.0  # how often those devices wake
    loop_poll_s: float = 1.0  # its reliability.delivery_poll_s
    ledger_rounds: int = 3  # paired SQLite / PostgreSQL ledger runs of n commands (0: none)


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
    shape: str = "long"  # the job's shape, a key of SHAPES

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
    shape: str = "long"  # the file's shape, a key of SHAPES

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


@dataclass(frozen=True, slots=True)
class StepsRun:
    """``dispatcher run`` of a job of steps against the same commands without steps."""

    steps: int
    devices: int
    with_steps: Measured
    without: Measured
    with_check: Check
    without_check: Check

    @property
    def commands(self) -> int:
        """Commands of each job: steps x devices."""
        return self.steps * self.devices

    @property
    def cpu_x(self) -> float:
        """The job of steps' CPU seconds over the plain job's."""
        return self.with_steps.cpu_s / self.without.cpu_s


def busiest_window(arrivals: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals in any half-open window [t, t + window)."""
    times = sorted(arrivals)
    best = j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + window:
            j += 1
        best = max(best, j - i)
    return best
