"""The flags of ``dispatcher run`` that shape how a job is sent: the rollout (each key of the job
file's ``rollout:`` section), the scheduled start, and the ledger path's placeholders."""

from __future__ import annotations

import functools
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import click

from dispatcher.cli.numbers import FiniteFloat
from dispatcher.job.plan import Plan, rollout_from_flags
from dispatcher.times import BEIJING, parse_timespec

__all__ = ["PLACEHOLDERS", "ledger_path_for", "plan_options", "planned", "resume_command"]

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
# What a ledger path may hold, for recurring jobs (each occurrence its own ledger): the start's
# date and time in OneNET's zone (UTC+8), and the job file's name without its suffix.
PLACEHOLDERS: Final = ("date", "time", "job")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_LATE_S: Final = 60.0  # a --start-at this far past is a mistake, not "now"
_AHEAD_S: Final = 366 * 86400.0  # a start further ahead than this is a typo


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


def planned(plan: Plan, flags: dict[str, Any]) -> Plan:
    """The job file's plan with the flags in place of its keys; a usage error when one is
    wrong."""
    rollout_flags = {name: flags[name] for name in _ROLLOUT_FLAGS}
    rollout_flags["abort_on_errnos"] = tuple(rollout_flags["abort_on_errnos"] or ())
    try:
        rollout = rollout_from_flags(plan.rollout, **rollout_flags)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    start_at = plan.start_at
    text = flags.get("start_at")
    if text is not None:
        try:
            spec = parse_timespec(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--start-at") from None
        if spec.at is None:
            raise click.BadParameter(
                "give an absolute time, e.g. 2026-12-02T02:00:00 (UTC+8 unless a zone is given)",
                param_hint="--start-at",
            )
        if spec.at.timestamp() < time.time() - _LATE_S:
            raise click.BadParameter(
                f"{text} has passed: give a time to come, or leave --start-at out to start now",
                param_hint="--start-at",
            )
        start_at = spec.at
    if start_at is not None and start_at.timestamp() > time.time() + _AHEAD_S:
        raise click.UsageError(
            f"the start {start_at.isoformat()} is more than a year ahead: is it a typo?"
        )
    return replace(plan, rollout=rollout, start_at=start_at)


def resume_command(argv: list[str], ledger: Path) -> str:
    """The command that resumes this run: ``argv`` with the ledger as resolved (a placeholder
    filled again would name a new ledger, and send the whole job again), shell-quoted."""
    shown: list[str] = []
    skip = given = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--ledger" or arg.startswith("--ledger="):
            skip = given = arg == "--ledger"
            given = True
            continue
        shown.append(arg)
    return shlex.join(["dispatcher", *shown, *(["--ledger", str(ledger)] if given else [])])


def ledger_path_for(given: Path, *, job_path: Path, start: datetime) -> Path:
    """``given`` with its placeholders filled: {date} (YYYY-MM-DD) and {time} (HHMMSS) of the
    start in UTC+8, {job} (the job file's name without its suffix); a usage error for any
    other."""
    at = start.astimezone(BEIJING)
    values = {"date": at.strftime("%Y-%m-%d"), "time": at.strftime("%H%M%S"), "job": job_path.stem}

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise click.BadParameter(
                f"{{{name}}} is not a placeholder of a ledger path (there are {known})",
                param_hint="--ledger",
            )
        return values[name]

    return Path(_PLACEHOLDER.sub(fill, str(given)))
