"""``dispatcher report``: a ledger's summary, every command's outcome (csv, jsonl, json), or one
self-contained HTML page, on stdout or into a file (never over the job's own files or a ledger:
cli/outputs.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal, TextIO, cast

import click

from dispatcher.cli import console
from dispatcher.cli.exits import fail
from dispatcher.cli.outputs import is_the_ledger, refuse_own_files  # is_the_ledger: kept here too
from dispatcher.errors import DispatcherError
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore
from dispatcher.report import summarize, write_export

__all__ = ["is_the_ledger", "report", "write_report_file"]


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
    if not ledger_path.exists():
        fail(f"{ledger_path}: no such ledger")
    if output is not None:  # before the ledger is read: it may be the ledger that is given
        refuse_own_files(output, ledger_path, None, writing="the report")
    try:
        ledger = Ledger.open(ledger_path, read_only=True)
    except DispatcherError as exc:
        fail(str(exc))
    try:
        if output is not None:
            refuse_own_files(output, ledger_path, ledger.job(), writing="the report")
        if output is None:
            _write_report(ledger, fmt, None)
            sys.stdout.flush()
        else:
            write_report_file(ledger, fmt, output)
            console.note(f"report written to {output}")
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as other shell tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except DispatcherError as exc:
        fail(str(exc))
    finally:
        ledger.close()


def _write_report(ledger: LedgerStore, fmt: str, out: TextIO | None) -> None:
    """The report in ``fmt`` on ``out`` (None: stdout)."""
    if fmt == "table":
        console.summary_table(summarize(ledger), out)
    elif fmt == "html":
        from dispatcher.report.html import write_html  # jinja2 is loaded for this report only

        write_html(ledger, sys.stdout if out is None else out)
    else:
        fmt_ = cast(Literal["csv", "jsonl", "json"], fmt)  # checked by Choice
        write_export(ledger, fmt_, sys.stdout if out is None else out)


def write_report_file(ledger: LedgerStore, fmt: str, path: Path) -> None:
    """The report in ``fmt`` written to ``path``; no half-written file is left when it fails."""
    try:
        out = path.open("w", encoding="utf-8", newline="" if fmt == "csv" else None)
    except OSError as exc:
        fail(f"{path}: cannot write the report: {exc.strerror or exc}")
    try:
        with out:
            _write_report(ledger, fmt, out)
    except BaseException as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            fail(f"{path}: cannot write the report: {exc.strerror or exc}")
        raise
