"""Exit codes, and the two ways a command ends early: failing with a message, or a Ctrl-C.

0 every command accepted, or handed to a retry job (or the job file is valid); 1 job file, config
or ledger invalid, nothing sent; 2 usage error; 3 finished, but some commands rejected, failed,
expired or in doubt (status: some delivery states unreadable; cancel: some waiting commands not
cancelled); 4 stopped by a breaker (a wrong api-key, address or server); 5 the run broke off (the
ledger could not be written, e.g. a full disk): some commands may have been sent, run again once
fixed; 130 stopped by a signal (resume by running the same command).

The use cases below the command line raise typed errors (errors.py); ``interruptible`` turns each
into its message and exit code here, in one place.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec

import click

from dispatcher.cli import console
from dispatcher.errors import (
    BrokeOff,
    DispatcherError,
    FlagError,
    Incomplete,
    Interrupted,
    NothingToDo,
    Refused,
    RunAborted,
)

__all__ = [
    "EXIT_BREAKER",
    "EXIT_BROKEN",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "exit_for",
    "fail",
    "interruptible",
]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_BREAKER, EXIT_BROKEN = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130

P = ParamSpec("P")


def interruptible(command: Callable[P, None]) -> Callable[P, None]:
    """A Ctrl-C outside a run's own handling (reading and checking the job) ends quietly, 130;
    an error of the use case ends with its message and exit code (``exit_for``)."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except KeyboardInterrupt:
            console.note("interrupted; the same command goes on from where it stopped")
            sys.exit(EXIT_INTERRUPTED)
        except DispatcherError as exc:
            exit_for(exc)

    return wrapper


def exit_for(exc: DispatcherError) -> NoReturn:
    """Say what ``exc`` means, and exit with its code: a flag's error is a usage error (2, as
    click shows it); a refusal 2; nothing to do 0 or 3; a stop 130; a breaker 4; a run that
    broke off 5; part of the work not done 3; any other error 1 (nothing was done)."""
    if isinstance(exc, FlagError):
        if exc.flag is None:
            raise click.UsageError(str(exc))
        raise click.BadParameter(str(exc), param_hint=exc.flag)
    if isinstance(exc, NothingToDo):
        console.note(str(exc))
        sys.exit(EXIT_OK if exc.through else EXIT_INCOMPLETE)
    from dispatcher.run.binding import JobChangedError

    if isinstance(exc, JobChangedError):
        from dispatcher.cli.binding_view import tell_refused_edit

        tell_refused_edit(exc)
    code = (
        EXIT_USAGE
        if isinstance(exc, Refused)
        else EXIT_INTERRUPTED
        if isinstance(exc, Interrupted)
        else EXIT_BREAKER
        if isinstance(exc, RunAborted)
        else EXIT_BROKEN
        if isinstance(exc, BrokeOff)
        else EXIT_INCOMPLETE
        if isinstance(exc, Incomplete)
        else EXIT_INVALID
    )
    fail(str(exc), code)


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    """Say what went wrong, and exit with ``code``."""
    console.error(message)
    sys.exit(code)
