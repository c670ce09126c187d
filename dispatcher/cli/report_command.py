"""``dispatcher report``: a ledger's summary, every command's outcome (csv, jsonl, json, xlsx), or
one self-contained HTML page, on stdout or into a file (never over the job's own files or a
ledger: app/outputs.py); the ledger is opened by app/reporting.py. Without ``--format``, ``-o
FILE`` picks the format from FILE's suffix."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Final

import click

from dispatcher.app.reporting import ReportRequest, report_ledger
from dispatcher.cli import console
from dispatcher.cli.exits import exit_for
from dispatcher.cli.ledger_param import LedgerParam
from dispatcher.cli.report_view import write_report, write_report_file
from dispatcher.errors import DispatcherError, FlagError
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.opening import job_named

__all__ = ["report"]

# The format a file's suffix names; any other suffix names none (the table, as without -o).
BY_SUFFIX: Final = {
    ".html": "html", ".csv": "csv", ".jsonl": "jsonl", ".json": "json", ".xlsx": "xlsx",
}  # fmt: skip


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=LedgerParam())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "jsonl", "json", "html", "xlsx"]),
    default=None,
    help="table: a summary; csv/jsonl/json/xlsx: every command; html: one page with charts. "
    "Default: from -o FILE's suffix (.html .csv .jsonl .json .xlsx), else table.",
)
@click.option(
    "--excel",
    is_flag=True,
    help="With --format csv: made for Excel (a UTF-8 BOM, IMEIs and long digits kept as text).",
)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the report to FILE instead of stdout.",
)
def report(ledger_path: LedgerAddress, fmt: str | None, excel: bool, output: Path | None) -> None:
    """Summarize a results ledger, export every command's outcome, or write an HTML report."""
    try:
        ledger_path = job_named(ledger_path)  # a database alone: its only job, named
        chosen = chosen_format(fmt, output, excel=excel)
        with report_ledger(ReportRequest(ledger_path, output)) as ledger:
            if output is None:
                write_report(ledger, chosen, None, excel=excel)
                sys.stdout.flush()
            else:
                write_report_file(ledger, chosen, output, excel=excel)
                console.note(f"report written to {output}")
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except DispatcherError as exc:
        exit_for(exc)


def chosen_format(fmt: str | None, output: Path | None, *, excel: bool) -> str:
    """The report's format: ``fmt`` as given, else the one ``output``'s suffix names, else the
    table; FlagError when the flags disagree (an .html file asked to hold a table, ``--excel``
    with anything but csv, a workbook for stdout)."""
    named = None if output is None else BY_SUFFIX.get(output.suffix.lower())
    if output is not None and named is not None and fmt not in (None, named):
        # Writing what --format says would leave a file its suffix misnames (a text table in
        # an .html file opens as a garbled page): refused rather than guessed.
        raise FlagError(
            f"{output} ends in {output.suffix} but --format {fmt} was given; "
            f"drop --format or use --format {named}"
        )
    chosen = fmt or named or "table"
    if excel and chosen == "xlsx":
        raise FlagError("--excel is for --format csv: an xlsx workbook opens right as it is")
    if excel and chosen != "csv":
        raise FlagError(f"--excel is for --format csv, not {chosen}: use --format csv --excel")
    if chosen == "xlsx" and output is None:
        raise FlagError("--format xlsx writes a workbook: give -o FILE.xlsx")
    return chosen
