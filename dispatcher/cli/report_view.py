"""A ledger's report written out: the summary table, an export, the workbook, or the HTML page;
on stdout or into a file, no half-written file left when it fails. Shared by ``report`` and
``demo``."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Literal, TextIO, cast

from dispatcher.cli import console
from dispatcher.cli.exits import fail
from dispatcher.ledger.store import LedgerStore
from dispatcher.report import summarize, write_export

__all__ = ["write_report", "write_report_file"]


def write_report(
    ledger: LedgerStore,
    fmt: str,
    out: TextIO | None,
    *,
    excel: bool = False,
    path: Path | None = None,
) -> None:
    """The report in ``fmt`` on ``out`` (None: stdout); ``excel``: the csv made for Excel;
    ``path``: the file ``out`` writes, when it is one (the HTML page puts its CSV beside it)."""
    if fmt == "table":
        console.summary_table(summarize(ledger), out)
    elif fmt == "html":
        from dispatcher.report.html import write_html  # jinja2 is loaded for this report only

        write_html(ledger, sys.stdout if out is None else out, path=path)
    else:
        fmt_ = cast(Literal["csv", "jsonl", "json"], fmt)  # checked by Choice
        write_export(ledger, fmt_, sys.stdout if out is None else out, excel=excel)


def write_report_file(ledger: LedgerStore, fmt: str, path: Path, *, excel: bool = False) -> None:
    """The report in ``fmt`` written to ``path``; no half-written file is left when it fails."""
    try:
        raw = path.open("wb")
    except OSError as exc:
        fail(f"{path}: cannot write the report: {exc.strerror or exc}")
    try:
        with raw:
            if fmt == "xlsx":
                from dispatcher.report.spreadsheet import write_xlsx  # openpyxl: for xlsx only

                write_xlsx(ledger, raw)
            else:
                newline = "" if fmt == "csv" else None  # csv writes its own CRLF
                with io.TextIOWrapper(raw, encoding="utf-8", newline=newline) as out:
                    write_report(ledger, fmt, out, excel=excel, path=path)
    except BaseException as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            fail(f"{path}: cannot write the report: {exc.strerror or exc}")
        raise
