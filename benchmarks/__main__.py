"""python -m benchmarks: every measurement in one run, a Markdown table, results.md and .json.

Exit code 0 when every measurement ran and the emulator saw each command accepted exactly once.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from benchmarks.ledgers import compare
from benchmarks.loop import Loop, LoopResults
from benchmarks.options import parser, sizes_of
from benchmarks.procs import ChildFailed
from benchmarks.records import SHAPES, Contender, Sizes
from benchmarks.report import Results, machine, render_markdown
from benchmarks.report_json import to_json
from benchmarks.suite import API_KEY, Suite
from benchmarks.throttled import Throttled

T = TypeVar("T")


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


def _rate_name(rate: float, limit: float) -> str:
    return "unlimited" if rate == 0 else f"{rate:g}/s ({rate / limit:g}R)"


def run_throttled(results: Results, suite: Suite, work: Path) -> None:
    """The runs against a server that admits R/s: the dispatcher at each configured rate and
    throttle mode, the CUBIC contender unlimited in each mode, and the changing limit."""
    sizes = results.sizes
    limit, n = sizes.throttle_rps, sizes.throttle_n
    thr = Throttled(work, suite.job, API_KEY)
    first = True
    for mode in sizes.throttle_modes:
        for multiple in sizes.throttle_rates:
            rate = multiple * limit
            title = f"dispatcher, {n:,} at {_rate_name(rate, limit)} against {limit:g}/s, {mode}"
            found = _step(
                results, title, partial(thr.dispatcher, n, limit, rate, mode, status=first)
            )
            first = False
            if found is not None:
                results.throttled.append(found)
                _say(
                    f"   {found.used_pct:.1f}% of R used, {found.throttled_pct:.1f}% throttled, "
                    f"{found.failed} failed, exit {found.run.returncode}"
                )
                if found.status is not None:
                    _say(f"   status: {found.status.per_device:.2f} calls per device")
        title = f"AWS SDK adaptive (CUBIC), {n:,} unlimited against {limit:g}/s, {mode}"
        found = _step(results, title, partial(thr.cubic, n, limit, mode))
        if found is not None:
            results.throttled.append(found)
            _say(
                f"   {found.used_pct:.1f}% of R used, {found.throttled_pct:.1f}% throttled, "
                f"{found.failed} failed, exit {found.run.returncode}"
            )
    if sizes.follow_step_s > 0:
        step = sizes.follow_step_s
        title = (
            f"dispatcher, {sizes.follow_n:,} at {2 * limit:g}/s, the limit {limit:g} -> "
            f"{limit / 2:g} -> {limit:g}/s every {step:g} s"
        )
        results.follow = _step(results, title, lambda: thr.follow(sizes.follow_n, limit, step))
        if results.follow is not None:
            for c in results.follow.changes:
                _say(
                    f"   -> {c.after:g}/s at {c.at_s:.1f} s: first within 10% after "
                    f"{c.first_s} s, for good after {c.settled_s} s; {' '.join(map(str, c.per_s))}"
                )


def run_loop(results: Results, work: Path) -> None:
    """The closed loop's calls: the device lists of a fleet, then a job of steps gated on
    delivery and its verify by each source."""
    sizes = results.sizes
    if not sizes.loop_fleet:
        return
    loop = Loop(work, API_KEY)
    title = f"the closed loop: device lists of {sizes.loop_fleet:,} devices"
    lists = _step(results, title, partial(loop.lists, sizes.loop_fleet))
    results.loop = found = LoopResults(lists or [])
    for c in found.lists:
        _say(f"   {c.what}: {c.found:,} found, {c.pages} pages, {c.per_1k:.1f} per 1,000")
    if not sizes.loop_devices:
        return
    title = (
        f"the closed loop: a job of 2 gated steps and a read to {sizes.loop_devices:,} devices "
        f"waking every {sizes.loop_wake_s:g} s, then verify by each source"
    )
    run = partial(loop.closed_loop, sizes.loop_devices, sizes.loop_wake_s, sizes.loop_poll_s)
    ran = _step(results, title, run)
    if ran is not None:
        found.steps, found.verify = ran
        _say(f"   {found.steps.per_device_step:.2f} status reads per device per step")
        for v in found.verify:
            _say(f"   verify, source {v.source}: {v.per_device:.3f} calls per device {v.verdicts}")


def run_ledgers(results: Results, suite: Suite) -> None:
    """The same run into a SQLite ledger and into a PostgreSQL ledger, round by round."""
    sizes = results.sizes
    if not sizes.ledger_rounds:
        return
    title = (
        f"the ledger: dispatcher run, {sizes.n:,} commands, into SQLite and into PostgreSQL, "
        f"{sizes.ledger_rounds} round{'s' * (sizes.ledger_rounds > 1)}"
    )
    results.ledgers = found = _step(results, title, partial(compare, suite, sizes.ledger_rounds))
    if found is None:
        return
    if found.skipped is not None:
        _say(f"   skipped: {found.skipped}")
        return
    for r in found.runs:
        server = "" if r.server_cpu_s is None else f", server {r.server_cpu_s:.2f} CPU s"
        _say(
            f"   round {r.round}, {r.ledger}: {r.run.wall_s:.2f} s, "
            f"{r.run.cpu_s / found.n * 1000:.3f} CPU s / 1k{server}; {r.check}"
        )
    if found.measured:
        _say(f"   PostgreSQL/SQLite: client CPU {found.cpu_x:.2f}x, wall {found.wall_x:.2f}x")


def run_contenders(results: Results, suite: Suite) -> None:
    """The bare loop and the dispatcher on a job of each shape; the naive script on the long."""
    n = results.sizes.n
    for shape, job in SHAPES.items():
        _step(results, f"writing a {n:,}-command job, {job}", partial(suite.job, n, shape))
        runs: list[tuple[str, Callable[[], Contender]]] = [
            (f"bare aiohttp loop, {n:,} commands, {job}", partial(suite.bare, shape)),
            (f"dispatcher run, {n:,} commands, {job}", partial(suite.dispatcher, shape)),
        ]
        if suite.baseline is not None:
            title = f"dispatcher run of {suite.baseline}, {n:,} commands, {job}"
            runs.append((title, partial(suite.dispatcher, shape, baseline=True)))
        if shape == "long":
            runs.append((f"naive script, {results.sizes.naive_n:,} commands, {job}", suite.naive))
        for title, contender in runs:
            c = _step(results, title, contender)
            if c is not None:
                results.contenders.append(c)
                _say(f"   {c.run.wall_s:.2f} s, {c.cpu_per_1k:.3f} CPU s / 1k; {c.check}")


def run_suite(
    sizes: Sizes,
    out: Path,
    *,
    keep: bool = False,
    throttled_only: bool = False,
    loop_only: bool = False,
    ledgers_only: bool = False,
    baseline: Path | None = None,
) -> Results:
    """Every measurement, in order; the work files go to ``out``/work."""
    started = time.perf_counter()
    work = out.resolve() / "work"  # absolute: the clients run with the work folder as cwd
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results = Results(sizes, machine())
    suite = Suite(work, sizes, baseline.resolve() if baseline is not None else None)
    try:
        if throttled_only:
            run_throttled(results, suite, work)
            return results
        if loop_only:
            run_loop(results, work)
            return results
        if ledgers_only:
            run_ledgers(results, suite)
            return results
        run_contenders(results, suite)
        startup = _step(results, "start-up cost of each client", suite.startup)
        results.startup_cpu_s = startup or {}
        run_ledgers(results, suite)
        for rows in sizes.validate_ns:
            for shape, job in SHAPES.items():
                title = f"validate, {rows:,} rows of 7 columns, {job}"
                v = _step(results, title, partial(suite.validate, rows, shape))
                if v is not None:
                    results.validate.append(v)
                    rss = v.dispatcher.peak_rss_mb
                    _say(f"   {v.cpu_x:.2f}x the DictReader pass's CPU, peak RSS {rss:.0f} MB")
        if sizes.steps:
            title = f"a job of {sizes.steps:,} steps x {sizes.steps_devices} devices, and without"
            results.steps = _step(results, title, suite.steps)
            if results.steps is not None:
                st = results.steps
                _say(
                    f"   {st.cpu_x:.2f}x the CPU without steps; with: {st.with_check}; "
                    f"without: {st.without_check}"
                )
        results.pacing = _step(
            results, f"paced run, {sizes.pacing_n:,} at {sizes.rate:g}/s", suite.pacing
        )
        if results.pacing is not None:
            _say(f"   {results.pacing.check}")
        run_throttled(results, suite, work)
        run_loop(results, work)
        results.big_run = _step(results, f"large run, {sizes.run_n:,} commands", suite.big_run)
        if results.big_run is not None:
            _say(f"   {results.big_run.check}")
    finally:
        results.suite_s = time.perf_counter() - started
        if not keep:
            for path in work.glob("*"):
                if path.suffix in (".csv", ".yaml") or ".db" in path.name:  # and WAL, lock
                    path.unlink()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit code."""
    args = parser().parse_args(argv)
    sizes = sizes_of(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_suite(
        sizes,
        args.out,
        keep=args.keep,
        throttled_only=args.throttled_only,
        loop_only=args.loop_only,
        ledgers_only=args.ledgers_only,
        baseline=args.baseline,
    )
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
