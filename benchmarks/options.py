"""The command line's options, and the sizes of each measurement they give (full or quick)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.records import Sizes
from benchmarks.throttled import MODES

__all__ = ["parser", "sizes_of"]

# (n, validate_ns, run_n, pacing_n, rate, steps): the full suite, and a quick look
_FULL = (20_000, (200_000, 1_000_000), 1_000_000, 2_000, 200.0, 500)
_QUICK = (500, (20_000,), 5_000, 300, 100.0, 50)
# (registered devices listed, devices of the gated job, their wake period s, delivery_poll_s)
_LOOP_FULL = (2_000, 500, 2.0, 1.0)
_LOOP_QUICK = (300, 50, 1.0, 0.5)
# (R, commands per run, configured rates as multiples of R, follow step): against a throttle
_THROTTLED_FULL = (100.0, 3_000, (1.0, 2.0, 10.0, 0.0), 10.0)
_THROTTLED_QUICK = (100.0, 300, (1.0, 0.0), 3.0)
# paired rounds of the ledger runs (SQLite, then PostgreSQL) of the shared job's N commands
_LEDGER_ROUNDS_FULL, _LEDGER_ROUNDS_QUICK = 3, 1


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


def parser() -> argparse.ArgumentParser:
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
    le = p.add_argument_group("the ledger: SQLite and PostgreSQL side by side")
    le.add_argument(
        "--ledger-rounds",
        type=int,
        help="rounds of the same run of N commands into a SQLite ledger, then into a "
        "PostgreSQL ledger on a local cluster (default 3; quick 1; 0: no such runs)",
    )
    le.add_argument(
        "--ledgers-only", action="store_true", help="only the SQLite / PostgreSQL ledger runs"
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


def sizes_of(args: argparse.Namespace) -> Sizes:
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
        ledger_rounds=_ledger_rounds(args),
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
    if sizes.ledger_rounds < 0 or (args.ledgers_only and sizes.ledger_rounds < 1):
        raise SystemExit("--ledger-rounds must not be negative (at least 1 with --ledgers-only)")
    if sizes.throttle_rps < 2 or sizes.throttle_n < 1 or sizes.follow_step_s < 0:
        raise SystemExit(
            "--throttle-rps must be 2 or more, --throttle-n and --follow-step-s positive"
        )
    if min(sizes.throttle_rates, default=0) < 0:
        raise SystemExit("--throttle-rates must not be negative")
    return sizes


def _ledger_rounds(args: argparse.Namespace) -> int:
    if args.ledger_rounds is not None:
        return int(args.ledger_rounds)
    return _LEDGER_ROUNDS_QUICK if args.quick else _LEDGER_ROUNDS_FULL
