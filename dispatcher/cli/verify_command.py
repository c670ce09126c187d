"""``dispatcher verify``: is the fleet on the target version? Each device of the job judged
against its ``verify:`` (on target, not yet, failed, never seen) from what it reads, written to
the ledger and shown; with ``--watch``, until every device is final (the use case is
app/verifying.py).

Exit 0 every device on target; 3 some not yet or never seen (or some values could not be read);
1 some failed (a step or its delivery failed: ``retry-failed`` makes their job), and for a wrong
job file, config or ledger, as every command; 4 the probe found the key, the address or the server
wrong; 5 reading broke off (the verdicts recorded are kept); 130 stopped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dispatcher.app.verifying import VerifyOutcome, VerifyRequest, verify as run_verify
from dispatcher.cli import console
from dispatcher.cli.exits import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    interruptible,
)
from dispatcher.cli.lanes import lane_options, load_config
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.next_view import show_next, steps_of_path
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.signals import run_with_signals
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import job_named
from dispatcher.ledger.store import VerifyState
from dispatcher.report.compliance import compliance_of
from dispatcher.report.next_steps import After
from dispatcher.report.render import compliance_tables
from dispatcher.run.verify_rounds import VerifyRound

__all__ = ["EXIT_FAILED", "verify"]

EXIT_FAILED = EXIT_INVALID  # some devices failed: 1, as a command that could not do its work


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=LedgerParam())
@lane_options
@click.option("--watch", is_flag=True, help="Repeat until every device is on target or final.")
@click.option(
    "--interval",
    type=FiniteFloat(min=0.1, max=86400),
    metavar="S",
    help="Seconds between rounds with --watch (default 30; at most a day).",
)
@interruptible
def verify(
    ledger_path: LedgerAddress,
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    watch: bool,
    interval: float | None,
) -> None:
    """Judge each device of the job against its verify: section, from what it reads.

    LEDGER is the job's ledger, or its job file (its ledger beside it).
    """
    if interval is not None and not watch:
        raise click.UsageError("--interval needs --watch")
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    config = None if config_path is None else str(config_path)
    ledger_path = job_named(ledger_path)  # a database alone: its only job, named
    request = VerifyRequest(ledger_path, watch, 30.0 if interval is None else interval, config)

    def said(number: int, r: VerifyRound) -> None:
        counts = r.counts()
        parts = ", ".join(f"{n:,} {s.value.replace('_', ' ')}" for s, n in counts.items())
        console.note(f"round {number}: {parts}")

    outcome = run_verify(
        settings,
        request,
        events=ConsoleEvents(None),
        drive=run_with_signals,
        on_round=said if watch else None,
    )
    sys.exit(show_verify(outcome, config_path, base_url))


def show_verify(outcome: VerifyOutcome, config: Path | None, base_url: str | None = None) -> int:
    """The compliance, the calls made and the next commands (``config``, ``base_url``: passed
    on); the exit code."""
    spec = outcome.spec
    compliance = compliance_of(outcome.results)
    expect = " or ".join(repr(v) for v in spec.expect)
    console.show(f"{outcome.title}: verify {spec.read} = {expect} (from {spec.source.value})")
    if compliance is None:
        console.warn("the ledger holds no device to verify")
        return EXIT_INCOMPLETE
    for table in compliance_tables(compliance):
        console.show(table)
    calls = outcome.calls
    parts = (
        f"{calls.history_pages:,} history pages, {calls.details:,} details"
        if spec.source.value == "command"
        else f"{calls.getbyimei:,} device look-ups, {calls.datapoints:,} datapoint calls"
    ) + f", {calls.probes:,} probe{'' if calls.probes == 1 else 's'}"
    console.note(
        f"{calls.total:,} calls to OneNET ({parts}), {outcome.calls_per_device():.2f} per device,"
        f" in {outcome.rounds:,} round{'' if outcome.rounds == 1 else 's'}"
    )
    if outcome.unreadable:
        console.warn(
            f"the values of {outcome.unreadable:,} could not be read ({outcome.last_error});"
            " the same command asks again"
        )
    if outcome.stopped is not None:
        console.note(f"stopped ({outcome.stopped}); the verdicts so far are in the ledger")
        return EXIT_INTERRUPTED
    counts = outcome.counts()
    behind = counts[VerifyState.NOT_YET] or counts[VerifyState.NEVER_SEEN] or outcome.unreadable
    if behind and outcome.final and not counts[VerifyState.FAILED]:
        console.note("every device's time to verify is over: those not on target stay so")
    if counts[VerifyState.FAILED]:
        code = EXIT_FAILED
    elif behind:
        code = EXIT_INCOMPLETE
    else:
        console.note("every device is on target")
        code = EXIT_OK
    config_name = None if config is None else str(config)
    after = After(config=config_name, base_url=base_url, verify_open=not outcome.final)
    show_next(steps_of_path(outcome.ledger, after))
    return code
