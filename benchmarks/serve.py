"""Serve the OneNET emulator on a free loopback port; print its URL on stdout, stop on SIGINT.

Usage: python -m benchmarks.serve [--no-records] [--fleet N] [--wake-every S] [--seed N]

``--no-records`` keeps counters and the duplicate check but not the accepted commands themselves,
so a million-command run does not measure the emulator's memory. ``--fleet N`` registers N
made-up devices (seeded tags ``city:..`` and ``batch:..``, firmware 2.4.0), as ``dispatcher
emulator --fleet`` does; ``--wake-every S`` makes the devices wake every S seconds and take
their cached commands (``--answer-delay`` after each is sent to them).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time

from dispatcher import emulator


def _ready(url: str) -> None:
    print(url, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve")
    p.add_argument("--no-records", action="store_true", help="keep counters only")
    p.add_argument("--fleet", type=int, default=0, help="made-up registered devices")
    p.add_argument("--wake-every", type=float, default=0.0, help="seconds (0: no devices)")
    p.add_argument("--answer-delay", type=float, default=0.2, help="seconds")
    p.add_argument("--seed", type=int, default=1, help="of the fleet and its wakes")
    return p


def main(argv: list[str]) -> int:
    """Command line: see the module's docstring."""
    args = _parser().parse_args(argv)
    if args.fleet < 0 or args.wake_every < 0 or args.answer_delay < 0:
        print("--fleet, --wake-every and --answer-delay must not be negative", file=sys.stderr)
        return 2
    fleet = emulator.Fleet(
        wake_every_s=args.wake_every or None, answer_delay_s=args.answer_delay, seed=args.seed
    )
    devices = emulator.made_up(args.fleet, seed=args.seed, now=time.time())
    # A shell without job control starts background children with SIGINT ignored: undo that, so
    # SIGINT (and SIGTERM) always end the server cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):  # how the suite stops it
        emulator.run(
            "127.0.0.1",
            0,
            ready=_ready,
            keep_records=not args.no_records,
            fleet=fleet,
            devices=devices,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
