"""The flags of ``dispatcher run`` that shape how a job is sent: the rollout (each key of the job
file's ``rollout:`` section) and the scheduled start (applied by app/planning.py); the flags of
``validate`` and ``run`` that say how a CSV or sheet job file is read; and the command that
resumes a run."""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from typing import Any, Final

import click

from dispatcher.cli.numbers import FiniteFloat
from dispatcher.job.encodings import encoding_problem
from dispatcher.job.model import Reading
from dispatcher.ledger.address import LedgerAddress
from dispatcher.report.next_steps import resume_argv

__all__ = ["input_options", "plan_options", "resume_command"]

_ROLLOUT_FLAGS: Final = (
    "canary",
    "canary_wait",
    "canary_timeout",
    "canary_then",
    "ramp_start",
    "ramp_factor",
    "ramp_every",
    "max_failure_rate",
    "min_decided",
    "abort_on_errnos",
)


def plan_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add the rollout and schedule flags; they reach ``command`` as ``plan_flags``."""

    @functools.wraps(command)
    def with_flags(*args: Any, **kwargs: Any) -> None:
        flags = {name: kwargs.pop(name) for name in (*_ROLLOUT_FLAGS, "start_at")}
        command(*args, plan_flags=flags, **kwargs)

    options = (
        click.option("--canary", metavar="SIZE", help="Send SIZE commands (or N%) first."),
        click.option(
            "--canary-wait",
            type=click.Choice(["accepted", "delivered"]),
            help="Judge the canary on OneNET's answers, or on delivery to its devices.",
        ),
        click.option(
            "--canary-timeout", metavar="DURATION", help="With delivered: wait this long (30m)."
        ),
        click.option(
            "--canary-then",
            type=click.Choice(["continue", "pause"]),
            help="After a good canary: go on, or stop (exit 0) until the next run.",
        ),
        click.option(
            "--ramp-start-per-second",
            "ramp_start",
            type=FiniteFloat(),
            help="The ramp's first pace.",
        ),
        click.option("--ramp-factor", type=FiniteFloat(), help="The ramp's pace multiplier."),
        click.option(
            "--ramp-every-accepted", "ramp_every", type=int, help="Accepted per ramp step."
        ),
        click.option(
            "--max-failure-rate",
            type=FiniteFloat(),
            help="Abort above this share refused or failed.",
        ),
        click.option("--min-decided", type=int, help="Decided commands before the rate counts."),
        click.option(
            "--abort-on-errno",
            "abort_on_errnos",
            type=int,
            multiple=True,
            metavar="ERRNO",
            help="Abort at once on this errno (again for more).",
        ),
        click.option("--start-at", metavar="TIME", help="Validate now, start at TIME (UTC+8)."),
    )
    decorated: Callable[..., None] = with_flags
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def input_options(command: Callable[..., None]) -> Callable[..., None]:
    """Add --encoding and --ignore-column; they reach ``command`` as ``reading``."""

    @functools.wraps(command)
    def with_flags(*args: Any, **kwargs: Any) -> None:
        encoding, ignore = kwargs.pop("encoding"), kwargs.pop("ignore_columns")
        columns = tuple(dict.fromkeys(name.strip().lower() for name in ignore))
        command(*args, reading=Reading(encoding, columns), **kwargs)

    encoding = click.option(
        "--encoding",
        metavar="NAME",
        callback=_encoding,
        help="Read a CSV job file in this encoding (gbk, gb18030, utf-16, ...; default: found).",
    )
    ignore = click.option(
        "--ignore-column",
        "ignore_columns",
        metavar="NAME",
        multiple=True,
        help="Skip this column of a CSV or .xlsx job file (again for more).",
    )
    decorated: Callable[..., None] = ignore(encoding(with_flags))
    return decorated


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and (problem := encoding_problem(value)):
        raise click.BadParameter(problem)
    return value


def resume_command(argv: list[str], ledger: LedgerAddress) -> str:
    """The command that resumes this run (report.next_steps.resume_argv), shell-quoted."""
    return shlex.join(resume_argv(argv, ledger))
