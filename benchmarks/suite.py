"""The measurements: the contenders on a job of each shape, validate of each shape and size, a
job of steps against the same commands without steps, a run at scale, and pacing.

Each measurement starts what it needs (a fresh emulator process, a fresh ledger), runs one child
process, checks the emulator's counters and returns a plain record; nothing here prints.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.gen_fleet import USUAL_FIELDS, write_fleet_csv
from benchmarks.gen_steps import write_steps_jobs
from benchmarks.procs import EmulatorProcess, Measured, child_env, measure
from benchmarks.records import (
    CONCURRENCY,
    BigRun,
    Check,
    Contender,
    Pacing,
    Sizes,
    StepsRun,
    Validate,
    busiest_window,
)

__all__ = ["API_KEY", "BASELINE", "Suite", "emulator_check", "timeout_for"]

API_KEY = "bench-key"
BASELINE = "dispatcher (baseline)"  # the contender of --baseline's source tree
_PY = sys.executable


def emulator_check(emulator: EmulatorProcess, expected: int) -> Check:
    """What the emulator saw: every one of ``expected`` commands accepted exactly once?"""
    stats = emulator.stats()
    return Check(expected, stats["accepted"], stats["duplicates"], stats["posts"])


def _ledger_bytes(path: Path) -> int:
    files = (path, path.with_name(path.name + "-wal"))  # the database, and a WAL left unmerged
    return sum(p.stat().st_size for p in files if p.exists())


class Suite:
    """Runs each measurement in ``work`` (job files, ledgers, logs)."""

    def __init__(self, work: Path, sizes: Sizes, baseline: Path | None = None) -> None:
        self.work = work
        self.sizes = sizes
        self.baseline = baseline  # another version's source tree, run next to this one
        self._jobs: dict[tuple[int, str], Path] = {}
        self._env = child_env({"ONENET_API_KEY": API_KEY})

    def job(self, n: int, shape: str = "long") -> Path:
        """A fleet CSV of ``n`` commands of ``shape`` (written once per run)."""
        path = self._jobs.get((n, shape))
        if path is None:
            name = f"fleet-{n}.csv" if shape == "long" else f"fleet-{n}-{shape}.csv"
            path = self.work / name
            write_fleet_csv(path, n, shape=shape)
            self._jobs[n, shape] = path
        return path

    def fresh_ledger(self, name: str) -> Path:
        """The path of a SQLite ledger ``name`` in the work folder, none of its files left."""
        path = self.work / f"{name}.ledger.db"
        for stale in path.parent.glob(path.name + "*"):
            stale.unlink()
        return path

    def dispatcher_run(
        self,
        job: Path,
        url: str,
        ledger: Path | str,
        rate: float,
        timeout: float,
        logs: str,
        env: dict[str, str] | None = None,
    ) -> Measured:
        """``dispatcher run`` of ``job`` against ``url`` into ``ledger`` (a SQLite file or a
        ``postgresql://…#job`` address) at ``rate`` (0: no limit), concurrency 64, measured."""
        argv = [_PY, "-m", "dispatcher", "run", str(job), "--rate", f"{rate:g}"]
        argv += ["--concurrency", str(CONCURRENCY), "--base-url", url]
        argv += ["--ledger", str(ledger), "--no-progress"]
        env = env or self._env
        return measure(argv, logs=self.work / logs, timeout=timeout, env=env, cwd=self.work)

    def baseline_env(self) -> dict[str, str]:
        """The children's environment with the baseline's source tree first on PYTHONPATH."""
        assert self.baseline is not None
        env = dict(self._env)
        env["PYTHONPATH"] = os.pathsep.join((str(self.baseline), env["PYTHONPATH"]))
        return env

    def _contender(
        self, name: str, n: int, argv: list[str], timeout: float, shape: str
    ) -> Contender:
        slug = _slug(name.split()[0], shape)
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            argv = [a.replace("{url}", emulator.url) for a in argv]
            run = measure(
                argv, logs=self.work / slug, timeout=timeout, env=self._env, cwd=self.work
            )
            check = emulator_check(emulator, n)
        return Contender(name, n, self.sizes.n, run, emulator.cpu_s, check, shape)

    def dispatcher(self, shape: str = "long", *, baseline: bool = False) -> Contender:
        """``dispatcher run`` of the job of ``shape``, no rate limit, concurrency 64, fresh
        ledger (``baseline``: the baseline's, named ``BASELINE``)."""
        name = BASELINE if baseline else "dispatcher"
        n, job = self.sizes.n, self.job(self.sizes.n, shape)
        slug = _slug("baseline" if baseline else "dispatcher", shape)
        env = self.baseline_env() if baseline else None
        with EmulatorProcess(logs=self.work / f"emulator-{slug}") as emulator:
            ledger = self.fresh_ledger(slug)
            run = self.dispatcher_run(job, emulator.url, ledger, 0, timeout_for(n, 300), slug, env)
            check = emulator_check(emulator, n)
        return Contender(name, n, n, run, emulator.cpu_s, check, shape)

    def bare(self, shape: str = "long") -> Contender:
        """The bare aiohttp loop over the job of ``shape``."""
        n, job = self.sizes.n, self.job(self.sizes.n, shape)
        argv = [_PY, "-m", "benchmarks.bare", str(job), "{url}", str(CONCURRENCY)]
        return self._contender("bare aiohttp loop", n, argv, timeout_for(n, 300), shape)

    def naive(self) -> Contender:
        """The naive script over the first naive_n commands of the shared job."""
        n, job = self.sizes.naive_n, self.job(self.sizes.n)
        argv = [_PY, "-m", "benchmarks.naive", str(job), "{url}", str(n)]
        return self._contender("naive script", n, argv, timeout_for(n, 50), "long")

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

    def validate(self, n: int, shape: str = "long") -> Validate:
        """``dispatcher validate`` and a csv.DictReader pass over ``n`` rows of 7 columns of
        ``shape``."""
        slug = _slug(f"validate-{n}", shape)
        job = self.work / f"{slug}.csv"
        write_fleet_csv(job, n, fields=USUAL_FIELDS, shape=shape)
        timeout = timeout_for(n, 5000)
        checker = measure(
            [_PY, "-m", "dispatcher", "validate", str(job)],
            logs=self.work / slug,
            timeout=timeout,
            env=self._env,
            cwd=self.work,
        )
        plain = measure(
            [_PY, "-m", "benchmarks.dictreader", str(job)],
            logs=self.work / _slug(f"dictreader-{n}", shape),
            timeout=timeout,
            env=self._env,
        )
        return Validate(n, len(USUAL_FIELDS), checker, plain, shape)

    def steps(self) -> StepsRun:
        """``dispatcher run`` of a YAML job of steps x devices, and of the same commands as a
        plain YAML job, each against a fresh emulator and ledger, no rate limit."""
        steps, devices = self.sizes.steps, self.sizes.steps_devices
        n = steps * devices
        with_path = self.work / f"steps-{steps}x{devices}.yaml"
        without_path = self.work / f"plain-{steps}x{devices}.yaml"
        write_steps_jobs(with_path, without_path, steps, devices)
        # A step waits for the one before to be accepted; each re-reads the job today: generous.
        timeout = 120 + n / 2
        found: list[tuple[Measured, Check]] = []
        for job in (with_path, without_path):
            with EmulatorProcess(logs=self.work / f"emulator-{job.stem}") as emulator:
                ledger = self.fresh_ledger(job.stem)
                run = self.dispatcher_run(job, emulator.url, ledger, 0, timeout, job.stem)
                found.append((run, emulator_check(emulator, n)))
        (with_run, with_check), (without_run, without_check) = found
        return StepsRun(steps, devices, with_run, without_run, with_check, without_check)

    def big_run(self) -> BigRun:
        """``dispatcher run`` of run_n commands, no rate limit, against a record-less emulator."""
        n = self.sizes.run_n
        job = self.job(n)
        with EmulatorProcess(keep_records=False, logs=self.work / "emulator-big") as emulator:
            ledger = self.fresh_ledger("big")
            run = self.dispatcher_run(job, emulator.url, ledger, 0, timeout_for(n, 400), "big-run")
            check = emulator_check(emulator, n)
        return BigRun(n, run, _ledger_bytes(ledger), emulator.cpu_s, check)

    def pacing(self) -> Pacing:
        """``dispatcher run`` of pacing_n commands at ``rate``; arrivals timed by the emulator."""
        n, rate = self.sizes.pacing_n, self.sizes.rate
        job = self.job(n)
        expected = (n - 1) / rate
        with EmulatorProcess(logs=self.work / "emulator-pacing") as emulator:
            ledger = self.fresh_ledger("pacing")
            timeout = 120 + 2 * expected
            run = self.dispatcher_run(job, emulator.url, ledger, rate, timeout, "pacing")
            check = emulator_check(emulator, n)
            arrivals = emulator.arrivals()
        duration = max(arrivals) - min(arrivals) if arrivals else 0.0
        return Pacing(n, rate, run, duration, expected, busiest_window(arrivals), check)


def _slug(name: str, shape: str) -> str:
    """A file name for ``name`` on the job of ``shape``: the long (shared) job's as before."""
    return name if shape == "long" else f"{name}-{shape}"


def timeout_for(n: int, slowest_per_s: float) -> float:
    """Seconds allowed for ``n`` commands at no less than ``slowest_per_s``, plus start-up."""
    return 120 + n / slowest_per_s
