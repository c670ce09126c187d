"""Serve the OneNET emulator on a free loopback port; print its URL on stdout, stop on SIGINT.

Usage: python -m benchmarks.serve [--no-records]

``--no-records`` keeps counters and the duplicate check but not the accepted commands themselves,
so a million-command run does not measure the emulator's memory.
"""

from __future__ import annotations

import contextlib
import signal
import sys

from dispatcher import emulator


def _ready(url: str) -> None:
    print(url, flush=True)


def main(argv: list[str]) -> int:
    """Command line: [--no-records]."""
    if argv not in ([], ["--no-records"]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    # A shell without job control starts background children with SIGINT ignored: undo that, so
    # SIGINT (and SIGTERM) always end the server cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):  # how the suite stops it
        emulator.run("127.0.0.1", 0, ready=_ready, keep_records=not argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
