"""The ledger: SQLite and PostgreSQL side by side.

The same ``dispatcher run`` of the suite's N-command job (long args, no rate limit, concurrency
64), each against a fresh emulator in its own process: once into a fresh SQLite ledger (the
default ``synchronous=full``), once into a fresh job of a PostgreSQL ledger on a local cluster
that this measurement starts (pg_cluster.py: fsync and synchronous_commit on). The two alternate,
SQLite then PostgreSQL, for R rounds; the figures are medians over the rounds, the ratios the
median of each round's PostgreSQL/SQLite pair (two runs a few seconds apart share the machine's
mood). The cluster's own CPU during each PostgreSQL run is read from /proc: the server's, not the
client's.

Every run must exit 0 and leave the emulator with each command accepted exactly once.
Nothing here prints; the records are plain.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from benchmarks.pg_cluster import Cluster, bindir, missing
from benchmarks.procs import EmulatorProcess, Measured
from benchmarks.records import Check
from benchmarks.suite import Suite, emulator_check, timeout_for

__all__ = ["PG_CPU_TARGET_X", "POSTGRESQL", "SQLITE", "LedgerCompare", "LedgerRun", "compare"]

SQLITE, POSTGRESQL = "sqlite", "postgresql"
PG_CPU_TARGET_X = 1.5  # client CPU with a PostgreSQL ledger over a SQLite ledger's, at most


@dataclass(frozen=True, slots=True)
class LedgerRun:
    """One ``dispatcher run`` into one ledger."""

    ledger: str  # SQLITE or POSTGRESQL
    round: int  # 1, 2, ...
    run: Measured
    check: Check
    emulator_cpu_s: float
    server_cpu_s: float | None = None  # the PostgreSQL cluster's, during the run (SQLite: None)


@dataclass(frozen=True, slots=True)
class LedgerCompare:
    """The paired runs, or why there are none (``skipped``)."""

    n: int
    rounds: int
    runs: tuple[LedgerRun, ...] = ()
    server: str = ""  # PostgreSQL's version
    skipped: str | None = None

    def of(self, ledger: str) -> list[LedgerRun]:
        """The runs into ``ledger``, round by round."""
        return [r for r in self.runs if r.ledger == ledger]

    @property
    def checks(self) -> list[Check]:
        """What the emulator saw of each run."""
        return [r.check for r in self.runs]

    @property
    def ok(self) -> bool:
        """Skipped, or every run's emulator check passed."""
        return all(c.ok for c in self.checks)

    def cpu_per_1k(self, ledger: str) -> float:
        """Median client CPU seconds (user + sys) per 1,000 commands."""
        return median(r.run.cpu_s for r in self.of(ledger)) / self.n * 1000

    def sys_per_1k(self, ledger: str) -> float:
        """Median client CPU seconds in the kernel per 1,000 commands."""
        return median(r.run.sys_s for r in self.of(ledger)) / self.n * 1000

    def wall_s(self, ledger: str) -> float:
        """Median wall seconds of the whole run."""
        return median(r.run.wall_s for r in self.of(ledger))

    def server_per_1k(self) -> float:
        """Median CPU seconds of the PostgreSQL cluster per 1,000 commands."""
        return median(r.server_cpu_s or 0.0 for r in self.of(POSTGRESQL)) / self.n * 1000

    def cpu_ratios(self) -> list[float]:
        """Each round's PostgreSQL/SQLite client CPU."""
        return [p.run.cpu_s / s.run.cpu_s for s, p in self._pairs()]

    def wall_ratios(self) -> list[float]:
        """Each round's PostgreSQL/SQLite wall time."""
        return [p.run.wall_s / s.run.wall_s for s, p in self._pairs()]

    def total_ratios(self) -> list[float]:
        """Each round's PostgreSQL client + server CPU over the SQLite client's."""
        return [(p.run.cpu_s + (p.server_cpu_s or 0.0)) / s.run.cpu_s for s, p in self._pairs()]

    @property
    def cpu_x(self) -> float:
        """The median round's client CPU ratio, PostgreSQL/SQLite."""
        return median(self.cpu_ratios())

    @property
    def wall_x(self) -> float:
        """The median round's wall time ratio, PostgreSQL/SQLite."""
        return median(self.wall_ratios())

    @property
    def total_x(self) -> float:
        """The median round's client + server CPU ratio, PostgreSQL/SQLite."""
        return median(self.total_ratios())

    @property
    def measured(self) -> bool:
        """At least one full pair ran."""
        return bool(self._pairs())

    def _pairs(self) -> list[tuple[LedgerRun, LedgerRun]]:
        pg = {r.round: r for r in self.of(POSTGRESQL)}
        return [(s, pg[s.round]) for s in self.of(SQLITE) if s.round in pg]


def compare(suite: Suite, rounds: int) -> LedgerCompare:
    """The paired runs (module docstring); skipped when PostgreSQL is not installed."""
    n = suite.sizes.n
    reason = missing()
    found = bindir()
    if reason is not None or found is None:
        return LedgerCompare(n, rounds, skipped=reason or "PostgreSQL is not installed")
    job = suite.job(n)
    timeout = timeout_for(n, 200)
    runs: list[LedgerRun] = []
    with Cluster(found) as cluster:
        for round_ in range(1, rounds + 1):
            slug = f"ledger-sqlite-{round_}"
            with EmulatorProcess(logs=suite.work / f"emulator-{slug}") as emulator:
                ledger = suite.fresh_ledger(slug)
                run = suite.dispatcher_run(job, emulator.url, ledger, 0, timeout, slug)
                check = emulator_check(emulator, n)
            runs.append(LedgerRun(SQLITE, round_, run, check, emulator.cpu_s))
            slug = f"ledger-postgresql-{round_}"
            with EmulatorProcess(logs=suite.work / f"emulator-{slug}") as emulator:
                before = cluster.cpu_s()
                address = cluster.url(f"bench-{round_}")
                run = suite.dispatcher_run(job, emulator.url, address, 0, timeout, slug)
                server = cluster.cpu_s() - before
                check = emulator_check(emulator, n)
            runs.append(LedgerRun(POSTGRESQL, round_, run, check, emulator.cpu_s, server))
        version = cluster.version
    return LedgerCompare(n, rounds, tuple(runs), version)
