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
from functools import partial
from pathlib import Path
from typing import TypeVar

from benchmarks.loop import Loop, LoopResults
from benchmarks.procs import ChildFailed
from benchmarks.records import SHAPES, Contender, Sizes
from benchmarks.report import Results, machine, render_markdown
from benchmarks.report_json import to_json
from benchmarks.suite import API_KEY, Suite
from benchmarks.throttled import MODES, Throttled

T = TypeVar("T")

# (n, validate_ns, run_n, pacing_n, rate, steps): the full suite, and a quick look
_FULL = (20_000, (200_000, 1_000_000), 1_000_000, 2_000, 200.0, 500)
_QUICK = (500, (20_000,), 5_000, 300, 100.0, 50)
# (registered devices listed, devices of the gated job, their wake period s, delivery_poll_s)
_LOOP_FULL = (2_000, 500, 2.0, 1.0)
_LOOP_QUICK = (300, 50, 1.0, 0.5)
# (R, commands per run, configured rates as multiples of R, follow step): against a throttle
_THROTTLED_FULL = (100.0, 3_000, (1.0, 2.0, 10.0, 0.0), 10.0)
_THROTTLED_QUICK = (100.0, 300, (1.0, 0.0), 3.0)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def _ints(text: str) -> tuple[int, ...]:
    try:
        found = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of row counts") from None
    if not found:
        raise argparse.ArgumentTypeError("a comma-separated list of row counts")
    return found


def _modes(text: str) -> tuple[str, ...]:
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(found) - set(MODES)
    if unknown or not found:
        raise argparse.ArgumentTypeError(f"modes are {', '.join(MODES)}")
    return found


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
    p.add_argument(
        "--validate-n",
        type=_ints,
        help="rows to validate, comma-separated: a 7-column file of each size and job shape "
        "(default 200000,1000000)",
    )
    p.add_argument(
        "--steps",
        type=int,
        help="steps of the job of steps, run against the same commands without steps "
        "(default 500; 0: no such run)",
    )
    p.add_argument("--steps-devices", type=int, help="devices of that job (default 2)")
    p.add_argument("--run-n", type=int, help="commands of the large run (default 1,000,000)")
    p.add_argument("--pacing-n", type=int, help="commands of the paced run (default 2,000)")
    p.add_argument("--rate", type=float, help="rate of the paced run (default 200/s)")
    p.add_argument("--keep", action="store_true", help="keep the job files and ledgers")
    p.add_argument(
        "--baseline",
        type=Path,
        help="the source tree of another version (a git worktree, say): its `dispatcher run` "
        "runs right after this one's on each job shape, as 'dispatcher (baseline)'",
    )
    lo = p.add_argument_group("the closed loop: OneNET calls counted, not timed")
    lo.add_argument(
        "--loop-fleet",
        type=int,
        help="registered devices the device lists read (default 2,000; 0: no closed loop)",
    )
    lo.add_argument(
        "--loop-devices",
        type=int,
        help="devices of the job of steps gated on delivery, then verified (default 500; "
        "0: lists only)",
    )
    lo.add_argument("--loop-wake-s", type=float, help="how often they wake (default 2 s)")
    lo.add_argument(
        "--loop-poll-s", type=float, help="the job's reliability.delivery_poll_s (default 1 s)"
    )
    lo.add_argument("--loop-only", action="store_true", help="only the closed loop's counts")
    t = p.add_argument_group("against a throttling server (R requests/s admitted)")
    t.add_argument("--throttle-rps", type=float, help="R (default 100)")
    t.add_argument("--throttle-n", type=int, help="commands of each throttled run (default 3,000)")
    t.add_argument(
        "--throttle-rates",
        type=_floats,
        help="configured rates as multiples of R, 0 for none (default 1,2,10,0)",
    )
    t.add_argument(
        "--throttle-modes", type=_modes, help="throttle answers (default errno7,http429)"
    )
    t.add_argument(
        "--follow-step-s",
        type=float,
        help="seconds between the limit's changes R -> R/2 -> R (default 10; 0: no such run)",
    )
    t.add_argument("--follow-n", type=int, help="commands of that run (default R x 3 x step)")
    t.add_argument(
        "--throttled-only", action="store_true", help="only the runs against a throttling server"
    )
    return p


def _sizes(args: argparse.Namespace) -> Sizes:
    n, validate_ns, run_n, pacing_n, rate, steps = _QUICK if args.quick else _FULL
    limit, throttle_n, rates, step = _THROTTLED_QUICK if args.quick else _THROTTLED_FULL
    limit = args.throttle_rps or limit
    step = step if args.follow_step_s is None else args.follow_step_s
    loop_fleet, loop_devices, wake_s, poll_s = _LOOP_QUICK if args.quick else _LOOP_FULL
    n = args.n or n
    sizes = Sizes(
        n=n,
        naive_n=args.naive_n or min(n, max(200, n // 10)),
        validate_ns=args.validate_n or validate_ns,
        run_n=args.run_n or run_n,
        pacing_n=args.pacing_n or pacing_n,
        rate=args.rate or rate,
        throttle_rps=limit,
        throttle_n=args.throttle_n or throttle_n,
        throttle_rates=rates if args.throttle_rates is None else args.throttle_rates,
        throttle_modes=args.throttle_modes or tuple(MODES),
        follow_step_s=step,
        follow_n=args.follow_n or max(2, round(limit * 3 * step)),
        steps=steps if args.steps is None else args.steps,
        steps_devices=args.steps_devices or 2,
        loop_fleet=loop_fleet if args.loop_fleet is None else args.loop_fleet,
        loop_devices=loop_devices if args.loop_devices is None else args.loop_devices,
        loop_wake_s=args.loop_wake_s or wake_s,
        loop_poll_s=args.loop_poll_s or poll_s,
    )
    if min(sizes.n, sizes.naive_n, *sizes.validate_ns, sizes.run_n) < 1 or sizes.pacing_n < 2:
        raise SystemExit("sizes must be positive (--pacing-n at least 2)")
    if sizes.steps < 0 or sizes.steps_devices < 1:
        raise SystemExit("--steps must not be negative, --steps-devices at least 1")
    if sizes.loop_fleet < 0 or sizes.loop_devices < 0:
        raise SystemExit("--loop-fleet and --loop-devices must not be negative")
    if sizes.loop_wake_s <= 0 or not 0.1 <= sizes.loop_poll_s <= 86400:
        raise SystemExit("--loop-wake-s must be positive, --loop-poll-s within 0.1..86400")
    if sizes.rate <= 0:
        raise SystemExit("--rate must be positive")
    if sizes.throttle_rps < 2 or sizes.throttle_n < 1 or sizes.follow_step_s < 0:
        raise SystemExit(
            "--throttle-rps must be 2 or more, --throttle-n and --follow-step-s positive"
        )
    if min(sizes.throttle_rates, default=0) < 0:
        raise SystemExit("--throttle-rates must not be negative")
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
        run_contenders(results, suite)
        startup = _step(results, "start-up cost of each client", suite.startup)
        results.startup_cpu_s = startup or {}
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
    args = _parser().parse_args(argv)
    sizes = _sizes(args)
    args.out.mkdir(parents=True, exist_ok=True)
    results = run_suite(
        sizes,
        args.out,
        keep=args.keep,
        throttled_only=args.throttled_only,
        loop_only=args.loop_only,
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
