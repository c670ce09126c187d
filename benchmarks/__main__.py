"""python -m benchmarks: every measurement in one run, a Markdown table, results.md and .json.

Exit code 0 when every measurement ran and the emulator saw each command accepted exactly once.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from benchmarks.procs import ChildFailed
from benchmarks.report import Results, machine, render_markdown, to_json
from benchmarks.suite import Sizes, Suite

T = TypeVar("T")

# (n, validate_n, run_n, pacing_n, rate): the full suite, and a quick look
_FULL = (20_000, 1_000_000, 1_000_000, 2_000, 200.0)
_QUICK = (500, 20_000, 5_000, 300, 100.0)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="dispatcher, a bare aiohttp loop and a naive script side by side, "
        "against the OneNET emulator in its own process.",
    )
    p.add_argument("--n", type=int, help="commands of the shared job (default 20,000)")
    p.add_argument("--quick", action="store_true", help="small sizes: a look in a few seconds")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="results and temp files")
    p.add_argument("--naive-n", type=int, help="commands the naive script sends (default N/10)")
    p.add_argument("--validate-n", type=int, help="rows to validate (default 1,000,000)")
    p.add_argument("--run-n", type=int, help="commands of the large run (default 1,000,000)")
    p.add_argument("--pacing-n", type=int, help="commands of the paced run (default 2,000)")
    p.add_argument("--rate", type=float, help="rate of the paced run (default 200/s)")
    p.add_argument("--keep", action="store_true", help="keep the job files and ledgers")
    return p


def _sizes(args: argparse.Namespace) -> Sizes:
    n, validate_n, run_n, pacing_n, rate = _QUICK if args.quick else _FULL
    n = args.n or n
    sizes = Sizes(
        n=n,
        naive_n=args.naive_n or min(n, max(200, n // 10)),
        validate_n=args.validate_n or validate_n,
        run_n=args.run_n or run_n,
        pacing_n=args.pacing_n or pacing_n,
        rate=args.rate or rate,
    )
    if min(sizes.n, sizes.naive_n, sizes.validate_n, sizes.run_n) < 1 or sizes.pacing_n < 2:
        raise SystemExit("sizes must be positive (--pacing-n at least 2)")
    if sizes.rate <= 0:
        raise SystemExit("--rate must be positive")
    return sizes


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _step(results: Results, title: str, fn: Callable[[], T]) -> T | None:
    """Run one measurement; a failure is reported and kept, and the suite goes on."""
    _say(f"-- {title}")
    start = time.perf_counter()
    try:
        found = fn()
    except ChildFailed as exc:
        _say(f"   FAILED: {exc}")
        results.errors.append(f"{title}: {exc}")
        return None
    _say(f"   done in {time.perf_counter() - start:.1f} s")
    return found


def run_suite(sizes: Sizes, out: Path, *, keep: bool = False) -> Results:
    """Every measurement, in order; the work files go to ``out``/work."""
    started = time.perf_counter()
    work = out.resolve() / "work"  # absolute: the clients run with the work folder as cwd
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = Results(sizes, machine())
    suite = Suite(work, sizes)
    try:
        _step(results, f"writing a {sizes.n:,}-command job", lambda: suite.job(sizes.n))
        for title, contender in (
            (f"bare aiohttp loop, {sizes.n:,} commands", suite.bare),
            (f"dispatcher run, {sizes.n:,} commands", suite.dispatcher),
            (f"naive script, {sizes.naive_n:,} commands", suite.naive),
        ):
            c = _step(results, title, contender)
            if c is not None:
                results.contenders.append(c)
                _say(f"   {c.run.wall_s:.2f} s, {c.cpu_per_1k:.3f} CPU s / 1k; {c.check}")
        startup = _step(results, "start-up cost of each client", suite.startup)
        results.startup_cpu_s = startup or {}
        results.validate = _step(results, f"validate, {sizes.validate_n:,} rows", suite.validate)
        results.pacing = _step(
            results, f"paced run, {sizes.pacing_n:,} at {sizes.rate:g}/s", suite.pacing
        )
        if results.pacing is not None:
            _say(f"   {results.pacing.check}")
        results.big_run = _step(results, f"large run, {sizes.run_n:,} commands", suite.big_run)
        if results.big_run is not None:
            _say(f"   {results.big_run.check}")
    finally:
        results.suite_s = time.perf_counter() - started
        if not keep:
            for path in work.glob("*"):
                if path.suffix == ".csv" or ".db" in path.name:  # ledgers, their WAL and lock
                    path.unlink()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code."""
    args = _parser().parse_args(argv)
    sizes = _sizes(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_suite(sizes, args.out, keep=args.keep)
    text = render_markdown(results)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    (args.out / "results.json").write_text(
        json.dumps(to_json(results), indent=2) + "\n", encoding="utf-8"
    )
    print(text)
    _say(f"written: {args.out / 'results.md'}, {args.out / 'results.json'}")
    if not results.ok:
        _say("some measurements failed or a check did not pass (see above)")
    return 0 if results.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
