"""A job's table of rows: a CSV (read in its encoding) or a sheet of an ``.xlsx`` workbook, found
when the job is loaded, then streamed and checked against its header row on every scan.

Both give the same columns (csvfile.py reads the header); a CSV's rows are numbered by the line
they start on, a sheet's as Excel numbers them, and messages cite them as ``FILE:LINE`` and
``FILE:SHEET!ROW``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any

from dispatcher.errors import JobFileError
from dispatcher.job.csvfile import csv_header, csv_rows
from dispatcher.job.encodings import UTF8, Decoding, decoding_of
from dispatcher.job.fields import RowChecker
from dispatcher.job.rows import NAMES, NEEDS, OP, OPERATION, Checked, Problem
from dispatcher.job.steps import each_step
from dispatcher.job.xlsxfile import sheet_of, sheet_rows, sheet_source
from dispatcher.job.yamlfile import SHEET_SUFFIXES, YamlJob

__all__ = [
    "IN_STEPS",
    "Reading",
    "Table",
    "job_file_table",
    "not_for_yaml",
    "open_table",
    "table_checked",
    "targets_table",
]

IN_STEPS = "in a job with steps:, each step says what is done: give it there"
_IN_YAML = {  # where a YAML job says what a flag says for a CSV job file
    "--encoding": " (encoding: beside its targets_csv)",
    "--ignore-column": " (ignore_columns: beside its targets_csv or targets_xlsx)",
}


@dataclass(frozen=True, slots=True)
class Reading:
    """How the command line says to read a CSV or sheet job file: its encoding (None: found)
    and the columns to skip (lowercase), as ``--encoding`` and ``--ignore-column`` give them."""

    encoding: str | None = None
    ignore_columns: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    """Where a job's rows are: a CSV and how its bytes are decoded, or a workbook's sheet."""

    path: Path
    source: str  # the file's path as given, for messages
    decoding: Decoding = UTF8
    sheet: str | None = None  # the sheet's name: the file is a workbook

    @property
    def rows_source(self) -> str:
        """How messages cite the rows: the CSV's path, or ``FILE:SHEET!``."""
        return self.source if self.sheet is None else sheet_source(self.source, self.sheet)

    @property
    def note(self) -> str:
        """How the table was read, when there is more to say than "a UTF-8 CSV"; else ''."""
        if self.sheet is not None:
            return f"{self.source}: sheet {self.sheet!r}"
        return f"{self.source}: {self.decoding.note}" if self.decoding.note else ""

    def rows(self) -> Generator[tuple[int, list[str]] | Problem, None, None]:
        """Every non-blank row (the header first) with its line or row number, streamed."""
        if self.sheet is not None:
            return sheet_rows(self.path, self.source, self.sheet)
        return csv_rows(self.path, self.source, self.decoding.codec)


def open_table(
    path: Path,
    source: str,
    *,
    encoding: tuple[str | None, str] = (None, "--encoding"),
    sheet: tuple[str | None, str, int] = (None, "", 0),
    ignore: tuple[str, ...] = (),
    in_yaml: bool = False,
) -> Table:
    """The table at ``path``, its header read; JobFileError if it cannot be read as one.

    ``encoding``: a CSV's forced encoding (None: found) and what forces it, for messages;
    ``sheet``: a workbook's sheet to read (None: the first), and the file and line naming it.
    """
    if path.suffix.lower() in SHEET_SUFFIXES:
        name, where, line = sheet
        table = Table(path, source, sheet=sheet_of(path, source, name, (where, line)))
    else:
        forced, how = encoding
        table = Table(path, source, decoding_of(path, source, forced, how))
    rows = table.rows()
    try:
        first = next((r for r in rows if not isinstance(r, Problem)), None)
    finally:
        rows.close()
    if first is None:
        raise JobFileError(table.rows_source, 1, "", "the file is empty")
    csv_header(first[1], first[0], table.rows_source, ignore=ignore, comments=True, in_yaml=in_yaml)
    return table


def job_file_table(path: Path, source: str, reading: Reading) -> Table:
    """The table of a CSV or .xlsx job file, read as ``reading`` says; JobFileError if not."""
    if reading.encoding is not None and path.suffix.lower() in SHEET_SUFFIXES:
        message = "--encoding applies to a CSV: a workbook's sheet holds its own text"
        raise JobFileError(source, 0, "", message)
    encoding = (reading.encoding, "--encoding")
    return open_table(path, source, encoding=encoding, ignore=reading.ignore_columns)


def not_for_yaml(source: str, reading: Reading) -> None:
    """JobFileError when ``reading`` says anything: a YAML job says it in the file."""
    for flag, given in (
        ("--encoding", reading.encoding),
        ("--ignore-column", reading.ignore_columns),
    ):
        if given:
            message = f"{flag} applies to a CSV or .xlsx job file: a YAML job says it in the file"
            raise JobFileError(source, 0, "", message + _IN_YAML[flag])


def targets_table(job_path: Path, source: str, y: YamlJob) -> Table | None:
    """The targets_csv or targets_xlsx of a YAML job, relative to it; None: it has none."""
    if y.targets_csv is None:
        return None
    text, line, key = y.targets_csv
    path = job_path.parent / text
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise JobFileError(source, line, key, f"{what}: {path}")
    return open_table(
        path, str(path), encoding=(y.encoding, "encoding:"),
        sheet=(y.sheet, source, y.sheet_line), ignore=y.ignore_columns, in_yaml=True,
    )  # fmt: skip


def table_checked(
    table: Table,
    checkers: list[RowChecker],
    *,
    ignore: tuple[str, ...],
    in_yaml: bool,
    steps: bool,
    base: int,
) -> Iterator[Checked | Problem]:
    """The table's rows checked (one checker per step), and its problems, in row order.

    ``base``: added to each row's number for its position in the job (the file's index bits).
    """
    source = table.rows_source
    rows = table.rows()
    first = next(rows, None)
    while isinstance(first, Problem):  # a sheet's header row is never one
        first = next(rows, None)
    if first is None:
        raise JobFileError(source, 1, "", "the file is empty")
    header = csv_header(first[1], first[0], source, ignore=ignore, comments=True, in_yaml=in_yaml)
    yield from header.problems
    if steps:
        for slot in OPERATION:
            if header.columns[slot] is not None:
                yield Problem(source, header.line, NAMES[slot], IN_STEPS)
    missing: dict[int, None] = {}
    for checker in checkers:
        # The fields every row's operation needs: known here when no column gives the op.
        op = "read" if header.columns[OP] is not None else checker.default_op
        needs = NEEDS.get(op, NEEDS["read"])
        missing.update(dict.fromkeys(checker.absent(s for s in needs if header.columns[s] is None)))
    for slot in missing:
        message = "no such column" + (", and no default" if in_yaml else "")
        yield Problem(source, header.line, NAMES[slot], message)
    width = header.width
    getter = itemgetter(*(width if c is None else c for c in header.columns))
    check: Callable[[tuple[str | None, ...], int, int], tuple[Checked | list[Checked] | None, Any]]
    if len(checkers) == 1:
        check = checkers[0].check
    else:

        def check(
            raw: tuple[str | None, ...], line: int, pos: int
        ) -> tuple[Checked | list[Checked] | None, list[Problem] | None]:
            rows, problems = each_step(
                checkers, functools.partial(RowChecker.check, raw=raw, line=line, pos=pos)
            )
            return rows, problems or None

    count = 0
    for item in rows:
        count += 1
        if isinstance(item, Problem):  # a sheet's cell that cannot be taken
            yield item
            continue
        line, row = item
        if len(row) != width:
            if len(row) < width or any(row[width:]):
                message = f"has {len(row)} fields, the header has {width}"
                yield Problem(source, line, "row", message)
                continue
            del row[width:]  # trailing empty cells, as some spreadsheets export
        row.append("")
        checked, problems = check(getter(row), line, base | line)
        if problems:
            yield from problems
        if isinstance(checked, list):
            yield from checked
        elif checked is not None:
            yield checked
    if not count:
        yield Problem(source, header.line, "", "no rows after the header row")
