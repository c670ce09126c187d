"""``dispatcher report``: a ledger's summary, every command's outcome (csv, jsonl, json), or one
self-contained HTML page, on stdout or into a file (never over the job's own files or a ledger:
app/outputs.py); the ledger is opened by app/reporting.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dispatcher.app.reporting import ReportRequest, report_ledger
from dispatcher.cli import console
from dispatcher.cli.exits import exit_for
from dispatcher.cli.report_view import write_report, write_report_file
from dispatcher.errors import DispatcherError

__all__ = ["report"]


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl", "json", "html"]),
    default="table",
    show_default=True,
    help="table: a summary; csv/jsonl/json: every command; html: one page with charts.",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to FILE instead of stdout.",
)
def report(ledger_path: Path, fmt: str, output: Path | None) -> None:
    """Summarize a results ledger, export every command's outcome, or write an HTML report."""
    try:
        with report_ledger(ReportRequest(ledger_path, output)) as ledger:
            if output is None:
                write_report(ledger, fmt, None)
                sys.stdout.flush()
            else:
                write_report_file(ledger, fmt, output)
                console.note(f"report written to {output}")
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except DispatcherError as exc:
        exit_for(exc)
