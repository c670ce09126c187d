"""``dispatcher status``: what became of a job's accepted commands, read from OneNET into the
ledger, and the breakdown by device; with ``--watch``, until every command is final."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dispatcher.app.verifying import ledger_of
from dispatcher.app.watching import StatusRequest, status as read_status
from dispatcher.cli import console
from dispatcher.cli.delivery_view import answers_line, breakdown_table
from dispatcher.cli.exits import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, interruptible
from dispatcher.cli.lanes import lane_options, load_config
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.next_view import show_next, steps_of_path
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.signals import run_with_signals
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import job_named
from dispatcher.model.command import product_label
from dispatcher.report.next_steps import After
from dispatcher.run.status import Watch

__all__ = ["status"]


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=LedgerParam())
@lane_options
@click.option("--watch", is_flag=True, help="Poll until every command is final.")
@click.option(
    "--interval",
    type=FiniteFloat(min=0.1, max=86400),
    metavar="S",
    help="Seconds between polls with --watch (default 30; at most a day).",
)
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
@interruptible
def status(
    ledger_path: LedgerAddress,
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    watch: bool,
    interval: float | None,
    progress: bool | None,
) -> None:
    """Read from OneNET what became of the job's accepted commands, and show it by device.

    LEDGER is the job's ledger, or its job file (its ledger beside it).
    """
    if interval is not None and not watch:
        raise click.UsageError("--interval needs --watch")
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    ledger = job_named(ledger_of(ledger_path, settings.ledger.url))  # a database: its only job
    config = None if config_path is None else str(config_path)
    request = StatusRequest(ledger, watch, 30.0 if interval is None else interval, config)
    outcome = read_status(settings, request, events=ConsoleEvents(progress), drive=run_with_signals)
    breakdown = outcome.breakdown
    console.show(breakdown_table(breakdown, f"{outcome.title}: delivery by device"))
    answers = answers_line(breakdown)
    if answers:
        # The devices' answers are OneNET's text: shown as a plain string (console.show), never
        # read as markup, without control or bidi characters.
        console.show(answers)
    # The notes about what is still open are of the whole ledger: said once.
    codes = [
        _exit_code(w, breakdown.open if i == 0 else 0, watch, outcome.several)
        for i, w in enumerate(outcome.lanes)
    ]
    code = EXIT_INTERRUPTED if EXIT_INTERRUPTED in codes else max(codes)
    if code == EXIT_OK:  # else the lines above say what to do (the same command, mostly)
        show_next(steps_of_path(ledger, After(config=config, base_url=base_url)))
    sys.exit(code)


def _exit_code(watcher: Watch, still_open: int, watch: bool, several: bool = False) -> int:
    """0 every state read; 3 some could not be read (the probe's findings too: a wrong key,
    address or server reads none); 130 stopped."""
    if watcher.aborted is not None:  # the probe: the key, the address or the server is wrong
        lane = f"{product_label(watcher.product or '')}: " if several else ""
        console.error(lane + watcher.aborted.replace("nothing was sent", "no state was read"))
        return EXIT_INCOMPLETE
    stop = watcher.stop
    if stop.requested:
        console.note(f"stopped ({stop.reason}); the same command goes on from where it stopped")
        return EXIT_INTERRUPTED
    if watcher.gave_up is not None:
        console.error(f"{watcher.gave_up}; the states not read keep the state last read")
        return EXIT_INCOMPLETE
    if watcher.unreadable:
        console.warn(
            f"the state of {len(watcher.unreadable):,} commands could not be read; they keep"
            " the state last read, and the same command asks again"
        )
        return EXIT_INCOMPLETE
    if watch and watcher.windows_closed and still_open:
        console.note(
            f"every window has closed; {still_open:,} commands are still not final on OneNET"
        )
    return EXIT_OK
