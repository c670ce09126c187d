"""``dispatcher run``: validate a job, bind it to its ledger, and send what is not done yet (the
use case is app/run.py), then say how it ended (run_view.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dispatcher.app.running import RunRequest, run as run_use_case
from dispatcher.cli import console
from dispatcher.cli.exits import EXIT_INTERRUPTED, EXIT_OK, interruptible
from dispatcher.cli.lanes import load_config
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.plan_options import input_options, plan_options, resume_command
from dispatcher.cli.run_view import end_of_run
from dispatcher.cli.signals import run_with_signals
from dispatcher.cli.targets_view import confirmed_targets
from dispatcher.job.model import Reading
from dispatcher.model.command import product_label
from dispatcher.report.render import status_line

__all__ = ["run"]


@click.command()
@click.argument("jobfile", type=click.Path(path_type=Path))
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="Config file.")
@click.option(
    "--ledger",
    "ledger_path",
    type=LedgerParam(),
    help="Results ledger (default: <job file>.ledger.db next to the job file).",
)
@click.option("--rate", type=FiniteFloat(min=0), help="Requests per second at most (0: no limit).")
@click.option("--concurrency", type=click.IntRange(1, 1024), help="Requests in flight at most.")
@click.option("--base-url", help="OneNET API base URL (e.g. the emulator's).")
@click.option("--strict", is_flag=True, help="Treat job-file warnings as errors.")
@click.option("--no-reconcile", is_flag=True, help="Do not look up in-doubt commands in history.")
@click.option(
    "--resend-in-doubt",
    is_flag=True,
    help="With --no-reconcile: resend in-doubt commands (at-least-once).",
)
@click.option(
    "--accept-changes",
    is_flag=True,
    help="Send commands edited since the ledger recorded them as new commands.",
)
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
@click.option("--dry-run", is_flag=True, help="Validate and show the plan; send nothing.")
@click.option(
    "--refresh-targets",
    is_flag=True,
    help="Take the devices a targets_query finds today beyond the frozen list, as new commands.",
)
@click.option("--yes", is_flag=True, help="Send to a targets_query's devices without asking.")
@plan_options
@input_options
@interruptible
def run(
    jobfile: Path,
    config_path: Path | None,
    ledger_path: Path | None,
    rate: float | None,
    concurrency: int | None,
    base_url: str | None,
    strict: bool,
    no_reconcile: bool,
    resend_in_doubt: bool,
    accept_changes: bool,
    progress: bool | None,
    dry_run: bool,
    refresh_targets: bool,
    yes: bool,
    plan_flags: dict[str, Any],
    reading: Reading,
) -> None:
    """Validate JOBFILE, then send every command not yet done, recording each outcome."""
    if resend_in_doubt and not no_reconcile:
        raise click.UsageError("--resend-in-doubt needs --no-reconcile")
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    flags = dict(plan_flags)
    request = RunRequest(
        jobfile,
        ledger=ledger_path,
        config=None if config_path is None else str(config_path),
        strict=strict,
        reconcile=not no_reconcile,
        resend_in_doubt=resend_in_doubt,
        accept_changes=accept_changes,
        dry_run=dry_run,
        start_at=flags.pop("start_at"),
        rollout=flags,
        refresh_targets=refresh_targets,
        reading=reading,
        argv=tuple(sys.argv[1:]),
    )
    outcome = run_use_case(
        settings,
        request,
        events=ConsoleEvents(progress),
        drive=run_with_signals,
        confirm=None if yes else confirmed_targets,
    )
    if outcome.dry_run:
        if outcome.targets is not None:
            console.note("dry run: nothing was sent or frozen; OneNET's device list was read")
        else:
            console.note("dry run: nothing was sent, and nothing was asked of OneNET")
        sys.exit(EXIT_OK)
    result = outcome.result
    if result is None:
        console.note("stopped before the scheduled start: nothing was sent")
        sys.exit(EXIT_INTERRUPTED)
    if set(outcome.by_product) - {""}:  # the job's share of each product
        for product, states in outcome.by_product.items():
            parts = ", ".join(f"{n:,} {status_line(s)}" for s, n in states.items())
            console.note(f"{product_label(product)}: {parts}")
    resume = resume_command(sys.argv[1:], outcome.ledger)
    sys.exit(end_of_run(result, resume=resume, errnos=list(outcome.errnos), ledger=outcome.ledger))
