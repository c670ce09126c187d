"""Exit codes, what each means to each command (its ``--help`` ends with them: ``epilog``), and
the two ways a command ends early: failing with a message, or a Ctrl-C.

0 every command accepted, or handed to a retry job (or the job file is valid); 1 job file, config
or ledger invalid, nothing sent; 2 usage error; 3 finished, but some commands rejected, failed,
expired or in doubt (status: some delivery states unreadable; cancel: some waiting commands not
cancelled); 4 stopped by a breaker (a wrong api-key, address or server); 5 the run broke off (the
ledger could not be written, e.g. a full disk): some commands may have been sent, run again once
fixed; 130 stopped by a signal (resume by running the same command). ``MEANINGS`` says it per
command.

The use cases below the command line raise typed errors (errors.py); ``interruptible`` turns each
into its message and exit code here, in one place.
"""

from __future__ import annotations

import functools
import sys
import textwrap
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
    "MEANINGS",
    "epilog",
    "exit_for",
    "fail",
    "interruptible",
]

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_BREAKER, EXIT_BROKEN = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130

_BROKE_OFF = "broke off: the ledger could not be written (e.g. a full disk); run again once fixed"
_STOPPED = "stopped by Ctrl-C or SIGTERM; the same command goes on from where it stopped"
_UNREADABLE = "the ledger or config is invalid, or the ledger is another job's"

# What each code means to each command whose help lists them, keyed by the constants above so
# that the numbers in the help are the ones the code exits with.
MEANINGS: dict[str, dict[int, str]] = {
    "validate": {
        EXIT_OK: "every job file is valid (warnings aside, unless --strict)",
        EXIT_INVALID: "some job file is invalid: each problem is named by file, line and field",
        EXIT_USAGE: "a wrong flag, argument or flag value",
    },
    "run": {
        EXIT_OK: "every command accepted, or handed to a retry job; also a job already"
        " finished, a rollout paused after its canary, and --dry-run",
        EXIT_INVALID: "the job file, config or ledger is invalid, or the job was edited since"
        " its ledger recorded it: nothing was sent",
        EXIT_USAGE: "a wrong flag or flag value, or a targets_query's devices not confirmed",
        EXIT_INCOMPLETE: "finished, but some commands were rejected, failed, expired or are in"
        " doubt (retry-failed writes them out)",
        EXIT_BREAKER: "stopped by a breaker (a wrong api-key, address or server) or by a"
        " rollout rule; run again once fixed",
        EXIT_BROKEN: "broke off: the ledger could not be written (e.g. a full disk), and some"
        " commands may have been sent; run again once fixed (they are looked up first)",
        EXIT_INTERRUPTED: "stopped by Ctrl-C, SIGTERM or before --start-at: the same command"
        " resumes, sending nothing twice",
    },
    "status": {
        EXIT_OK: "every delivery state was read, whatever the states are",
        EXIT_INVALID: _UNREADABLE,
        EXIT_USAGE: "a wrong flag or flag value",
        EXIT_INCOMPLETE: "some states could not be read (or none: a wrong api-key, address or"
        " server); they keep the state last read",
        EXIT_BROKEN: _BROKE_OFF,
        EXIT_INTERRUPTED: _STOPPED,
    },
    "verify": {
        EXIT_OK: "every device is on target",
        EXIT_INVALID: "some devices failed (retry-failed --not-verified writes them out), or "
        + _UNREADABLE,
        EXIT_USAGE: "a wrong flag or flag value",
        EXIT_INCOMPLETE: "some devices are not on target yet, never seen, or could not be read",
        EXIT_BROKEN: _BROKE_OFF,
        EXIT_INTERRUPTED: _STOPPED,
    },
    "ledger copy": {
        EXIT_OK: "copied, and the copy read back the same as its source",
        EXIT_INVALID: "refused (a missing source, a destination that holds a ledger, the same"
        " ledger twice, a ledger a run holds) or failed: the destination is left as it was",
        EXIT_USAGE: "a wrong argument (a malformed postgresql:// URL)",
        EXIT_INTERRUPTED: "stopped by Ctrl-C: nothing was copied (a destination made for the"
        " copy is removed)",
    },
    "cancel": {
        EXIT_OK: "every waiting command was cancelled (or none was waiting, or the answer was no)",
        EXIT_INVALID: _UNREADABLE + ": nothing was cancelled",
        EXIT_USAGE: "a wrong flag or flag value, or off a terminal without --yes",
        EXIT_INCOMPLETE: "some waiting commands could not be cancelled, or their state could"
        " not be read",
        EXIT_BROKEN: _BROKE_OFF,
        EXIT_INTERRUPTED: _STOPPED,
    },
}

# The commands that call OneNET, hence need its key.
_KEYED = frozenset({"run", "status", "verify", "cancel", "devices"})
_KEY = (
    "the api-key (the product's master key), read from the environment only and never"
    " printed. A config names other variables: onenet.api_key_env; under products: each"
    " product's api_key_env; on the newer platform (iot-api) token.access_key_env, its"
    " access key."
)
_WIDTH = 76  # click indents the closing text by 2: within an 80-column terminal


def epilog(command: str) -> str | None:
    """The closing text of ``command``'s help: where its key comes from and its exit codes."""
    paragraphs = []
    if command in _KEYED:
        paragraphs.append(_listed("Environment:", [("ONENET_API_KEY", _KEY)]))
    meanings = MEANINGS.get(command)
    if meanings:
        paragraphs.append(_listed("Exit codes:", [(str(c), m) for c, m in meanings.items()]))
    return "\n\n".join(paragraphs) or None


def _listed(title: str, rows: list[tuple[str, str]]) -> str:
    """A titled list of terms and their meanings, wrapped here and marked (click's ``\\b``)
    so that click keeps the lines as they are instead of running them into one paragraph."""
    term_width = max(len(term) for term, _ in rows) + 2
    lines = ["\b", title]
    for term, meaning in rows:
        lines += textwrap.wrap(
            meaning,
            _WIDTH,
            initial_indent="  " + term.ljust(term_width),
            subsequent_indent=" " * (2 + term_width),
        )
    return "\n".join(lines)


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
