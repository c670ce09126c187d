"""``dispatcher cancel``: cancel the job's commands still waiting on OneNET, one by one by uuid,
after reading their state and a confirmation; sent and delivered ones are reported, not touched.
The use case is app/cancelling.py; this shows what it found and did, and picks the exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dispatcher.app.cancelling import CancelOutcome, CancelRequest, cancel as cancel_commands
from dispatcher.cli import console
from dispatcher.cli.exits import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    interruptible,
)
from dispatcher.cli.lanes import lane_options, load_config
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.signals import run_with_signals
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import job_named

__all__ = ["cancel"]


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=LedgerParam())
@lane_options
@click.option(
    "--imei",
    "imeis",
    multiple=True,
    metavar="IMEI",
    help="Only this device's commands (again for more devices).",
)
@click.option("--yes", is_flag=True, help="Do not ask for a confirmation.")
@interruptible
def cancel(
    ledger_path: LedgerAddress,
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    imeis: tuple[str, ...],
    yes: bool,
) -> None:
    """Cancel the job's commands still waiting on OneNET (never another job's).

    Their state is read first; commands already sent or delivered are reported, not touched.
    """
    if not yes and not sys.stdin.isatty():  # before anything is asked of OneNET
        fail("not on a terminal: confirm with --yes; nothing was cancelled", EXIT_USAGE)
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    ledger_path = job_named(ledger_path)  # a database alone: its only job, named
    outcome = cancel_commands(
        settings,
        CancelRequest(ledger_path, imeis),
        confirm=None if yes else _confirmed,
        events=ConsoleEvents(),
        drive=run_with_signals,
    )
    sys.exit(_exit_code(outcome))


def _confirmed(commands: int, devices: int) -> bool:
    """A yes on the terminal; a no (or Ctrl-C, Ctrl-D: exit 130) cancels nothing."""
    try:
        if click.confirm(f"cancel {commands:,} commands on {devices:,} devices?", default=False):
            return True
    except click.Abort:  # Ctrl-C or Ctrl-D at the question
        console.note("nothing was cancelled")
        sys.exit(EXIT_INTERRUPTED)
    console.note("nothing was cancelled")
    return False


def _exit_code(outcome: CancelOutcome) -> int:
    """0 every waiting command cancelled (or none waiting, or the answer was no); 3 some could
    not be, or some states could not be read; 130 stopped."""
    if outcome.plan.waiting == 0:
        console.note("nothing to cancel")
        return EXIT_INCOMPLETE if outcome.unreadable else EXIT_OK
    if not outcome.confirmed:
        return EXIT_OK
    if outcome.stopped:
        return EXIT_INTERRUPTED
    short = any(lane.report.unanswered or lane.report.not_asked for lane in outcome.lanes)
    if outcome.unreadable and not short:
        console.warn(
            f"the state of {outcome.unreadable:,} commands could not be read: those not known"
            " to be waiting were not cancelled; the same command tries them again"
        )
    return EXIT_INCOMPLETE if short or outcome.unreadable else EXIT_OK
