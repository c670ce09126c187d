"""Reading a CSV job file (or a YAML job's targets_csv) as a stream of rows, and its header.

Rows are read one at a time and never held, decoded as encodings.py found when the job was
loaded. Bytes that cannot be read as CSV (a huge line, an unterminated quote) become a one-line
``JobFileError``; the header row names the columns (of a sheet's too), as yamlfile.py describes.
"""

from __future__ import annotations

import csv
import functools
import re
import shlex
from collections.abc import Collection, Generator
from dataclasses import dataclass
from pathlib import Path

from dispatcher.errors import JobFileError
from dispatcher.job.rows import IMEI, NAMES, SLOT, TRIGGER, TRIGGER_MSG, Problem
from dispatcher.job.values import suggest
from dispatcher.job.yamlfile import MAX_LINE, open_error

__all__ = ["CsvHeader", "csv_header", "csv_rows"]


@dataclass(frozen=True, slots=True)
class CsvHeader:
    """A CSV header row: the column of each field slot (None: absent), and its problems."""

    line: int
    columns: tuple[int | None, ...]
    width: int
    problems: tuple[Problem, ...]


def csv_rows(
    path: Path, source: str, codec: str = "utf-8-sig"
) -> Generator[tuple[int, list[str]], None, None]:
    """Every non-blank row of a CSV file with the file line it starts on, streamed; its bytes
    decoded by ``codec`` (encodings.py found it when the job was loaded).

    Lines are read at most MAX_LINE characters at a time (in C, for speed): a longer line comes
    apart into pieces whose fields break the field limit or the row width, and so is reported.
    An Excel ``sep=,`` line before the header is skipped.
    """
    try:
        f = path.open(encoding=codec, newline="")
    except OSError as exc:
        raise open_error(source, exc) from exc
    with f:
        reader = csv.reader(iter(functools.partial(f.readline, MAX_LINE), ""), strict=True)
        previous = 0
        try:
            for row in reader:  # up to the first row that is not blank
                if row and (row[0] or any(row)):
                    if not _separator_line(row, previous + 1, source):
                        yield previous + 1, row
                    previous = reader.line_num
                    break
                previous = reader.line_num
            for row in reader:
                if row and (row[0] or any(row)):
                    yield previous + 1, row
                previous = reader.line_num
        except csv.Error as exc:
            message = str(exc)
            if "field limit" in message:
                message = f"a line or field is longer than {csv.field_size_limit()} characters"
            raise JobFileError(source, previous + 1, "", f"not valid CSV: {message}") from None
        except UnicodeDecodeError:  # the file changed since the job was loaded
            message = f"does not decode as {codec}, as it did when the job was loaded"
            raise JobFileError(source, previous + 1, "", message) from None
        except OSError as exc:
            raise open_error(source, exc) from exc


def _separator_line(row: list[str], line: int, source: str) -> bool:
    """True for Excel's ``sep=,`` line; JobFileError when it names another separator."""
    text = ",".join(row)
    if len(row) > 2 or text[:4].lower() != "sep=":
        return False
    if text[4:] != ",":
        message = f"the line says fields are separated by {text[4:]!r}: save the CSV with commas"
        raise JobFileError(source, line, "", message)
    return True


def csv_header(
    row: list[str],
    line: int,
    source: str,
    *,
    ignore: Collection[str] = (),
    comments: bool = False,
    in_yaml: bool = False,
) -> CsvHeader:
    """Map a header row's names onto field slots; JobFileError without an imei column.

    Names in ``ignore`` (lowercase) and, with ``comments``, names starting with # are skipped;
    ``in_yaml``: the CSV is a YAML job's targets_csv (an unknown column may be ignore_columns:'s).
    """
    columns: list[int | None] = [None] * len(NAMES)
    problems: list[Problem] = []
    for index, cell in enumerate(row):
        name = cell.strip().lower()
        slot = SLOT.get(name)
        if not name or name in ignore or (comments and name.startswith("#")):
            continue  # spreadsheets add unnamed empty columns
        if name == "values":
            message = (
                "is YAML's (a mapping): in a CSV, write one resource per row with res_id and value"
            )
            problems.append(Problem(source, line, name, message))
        elif slot is None:
            shown = name if name.isprintable() else ascii(name)
            hint = suggest(name, NAMES) or (
                " (list it in ignore_columns: or start its name with # to skip it)"
                if in_yaml or not comments
                else f" (start its name with # or give --ignore-column {_quoted(name)} to skip it)"
            )
            problems.append(Problem(source, line, shown, f"unknown column{hint}"))
        elif columns[slot] is not None:
            problems.append(Problem(source, line, name, "column given twice"))
        else:
            columns[slot] = index
    if columns[IMEI] is None:
        hint = ""
        if len(row) == 1 and (";" in row[0] or "\t" in row[0]):
            hint = " (fields must be separated by commas)"
        if any("\x00" in cell for cell in row):
            message = "looks like UTF-16 text (every other byte is zero): save it as UTF-8"
            raise JobFileError(source, line, "", message)
        raise JobFileError(source, line, "imei", f"no imei column in the header row{hint}")
    if columns[TRIGGER] is not None and columns[TRIGGER_MSG] is not None:
        problems.append(Problem(source, line, "trigger", "give trigger or trigger_msg, not both"))
        columns[TRIGGER] = None
    return CsvHeader(line, tuple(columns), len(row), tuple(problems))


def _quoted(name: str) -> str:
    """A column's name as a shell would take it back (quoted only when it must be)."""
    if not name.isprintable():
        return ascii(name)
    return name if re.fullmatch(r"[\w.%+-]+", name) else shlex.quote(name)
