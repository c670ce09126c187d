"""Exit codes, and the two ways a command ends early: failing with a message, or a Ctrl-C.

0 every command accepted, or handed to a retry job (or the job file is valid); 1 job file, config
or ledger invalid, nothing sent; 2 usage error; 3 finished, but some commands rejected, failed,
expired or in doubt (status: some delivery states unreadable; cancel: some waiting commands not
cancelled); 4 stopped by a breaker (a wrong api-key, address or server); 5 the run broke off (the
ledger could not be written, e.g. a full disk): some commands may have been sent, run again once
fixed; 130 stopped by a signal (resume by running the same command).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec

from dispatcher.cli import console

__all__ = [
    "EXIT_BREAKER",
    "EXIT_BROKEN",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "fail",
    "interruptible",
]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_BREAKER, EXIT_BROKEN = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130

P = ParamSpec("P")


def interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """A Ctrl-C outside a run's own handling (reading and checking the job) ends quietly, 130."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            console.note("interrupted; the same command goes on from where it stopped")
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Say what went wrong, and exit with ``code``."""
    console.error(message)
    sys.exit(code)
