"""Reading a sheet of an ``.xlsx`` workbook as a job's rows: the same columns as a CSV job.

The sheet is read with python-calamine (imported only when a sheet is read). Its first row that
is not blank is the header; each later row becomes texts as a CSV would give them, numbered as
Excel numbers its rows. A cell keeps its type in a workbook, so each is turned into text by what
it holds: a whole number (``3303.0``) as its digits; an IMEI stored as a number only when all
its 15 digits are there (Excel keeps 15 significant digits, and drops a leading zero); a date in
a time column as that time in OneNET's zone (UTC+8), as a YAML date is. What cannot be taken is
a ``Problem`` at the row, with how to fix the sheet.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dispatcher.errors import JobFileError
from dispatcher.job.rows import SLOT, Problem
from dispatcher.job.values import luhn_ok
from dispatcher.times import format_onenet

if TYPE_CHECKING:
    from python_calamine import CalamineWorkbook

__all__ = ["AS_TEXT", "Cell", "sheet_of", "sheet_rows", "sheet_source"]

Cell = int | float | str | bool | time | date | datetime | timedelta
AS_TEXT = "format the column as text (Format Cells > Text) and type the IMEIs in again"
_TIME_COLUMNS = frozenset({"valid_time", "expired_time"})
_CUT_SHORT = 10_000  # a 15-digit number ending in 4 zeros that fails Luhn: digits were lost


def sheet_source(source: str, sheet: str) -> str:
    """How messages cite a sheet's rows: ``FILE:SHEET!`` (the row number follows the ``!``)."""
    return f"{source}:{sheet}!"


def _open(path: Path, source: str) -> CalamineWorkbook:
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        return CalamineWorkbook.from_path(path)
    except OSError as exc:
        from dispatcher.job.yamlfile import open_error

        raise open_error(source, exc) from exc
    except (CalamineError, ValueError) as exc:
        message = f"cannot be read as an .xlsx workbook ({exc}): save it from Excel as .xlsx"
        raise JobFileError(source, 0, "", message) from None


def sheet_of(path: Path, source: str, sheet: str | None, where: tuple[str, int]) -> str:
    """The name of the sheet to read: ``sheet``, or the workbook's first visible worksheet;
    JobFileError when there is no such sheet (at ``where``: the file and line naming it)."""
    from python_calamine import SheetTypeEnum, SheetVisibleEnum

    with _open(path, source) as book:
        names = list(book.sheet_names)
        if sheet is None:
            visible = [
                m.name
                for m in book.sheets_metadata
                if m.visible == SheetVisibleEnum.Visible and m.typ == SheetTypeEnum.WorkSheet
            ]
            if not (visible or names):
                raise JobFileError(source, 0, "", "the workbook has no sheet")
            return (visible or names)[0]
    if sheet not in names:
        shown = ", ".join(repr(n) for n in names)
        message = f"no sheet {sheet!r} in {source} (its sheets: {shown})"
        raise JobFileError(where[0], where[1], "sheet", message)
    return sheet


def sheet_rows(
    path: Path, source: str, sheet: str
) -> Generator[tuple[int, list[str]] | Problem, None, None]:
    """Every non-blank row of the sheet as texts, with its Excel row number; a cell that cannot
    be taken is a Problem at its row, and the row is left out."""
    from python_calamine import CalamineError

    where = sheet_source(source, sheet)
    with _open(path, source) as book:
        try:
            found = book.get_sheet_by_name(sheet)
        except (CalamineError, ValueError) as exc:
            raise JobFileError(where, 0, "", f"cannot be read ({exc})") from None
    rows = found.iter_rows()
    first_column = (found.start or (0, 0))[1]  # the rows start at the first column used
    names: list[str] = []
    for number, cells in enumerate(rows, 1):
        if all(cell == "" for cell in cells):
            continue
        if not names:  # the header row: which columns hold IMEIs, which times
            texts = [_text(cell) for cell in cells]
            names = [text.strip().lower() for text in texts]
            yield number, texts
            continue
        texts = []
        problem = None
        for index, (name, cell) in enumerate(zip(names, cells, strict=False)):
            text, message = _cell(name, cell)
            if not name and text.strip():
                message = (
                    f"has a value in column {_letters(first_column + index)}, which has no name"
                    " in the header row: name the column (start its name with # to skip it)"
                )
            if message is not None and problem is None:
                problem = Problem(where, number, name or "row", message)
            texts.append(text)
        if problem is not None:
            yield problem
        else:
            yield number, texts


def _letters(column: int) -> str:
    """Excel's letters for a column (0: A, 26: AA)."""
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _cell(name: str, cell: Cell) -> tuple[str, str | None]:
    """The text of a cell in the column ``name`` (lowercase), and what is wrong with it (None:
    nothing). A column that is no field (a note, one ignored) takes any cell as its text."""
    if isinstance(cell, str) or name not in SLOT:
        return (cell, None) if isinstance(cell, str) else (_text(cell), None)
    if name == "imei" and isinstance(cell, int | float) and not isinstance(cell, bool):
        return _imei(cell)
    if isinstance(cell, datetime | date):
        if name not in _TIME_COLUMNS:
            return "", f"is a date cell ({cell}): {_AS_TEXT_ANY}"
        return _time(cell), None
    if isinstance(cell, time | timedelta):
        if name in _TIME_COLUMNS:
            at = str(cell)[:5]  # HH:MM of the cell, as the person typed it
            message = (
                f"is a time of day without a date ({cell}): give a date and time"
                f" (YYYY-MM-DD {at}) or an offset (+1d)"
            )
        else:
            message = f"is a time cell ({cell}): {_AS_TEXT_ANY}"
        return "", message
    return _text(cell), None


_AS_TEXT_ANY = "format the column as text (Format Cells > Text) and type the value in again"


def _text(cell: Cell) -> str:
    """A cell as text: a whole number as its digits (3303.0 is 3303), a truth as true/false."""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        if math.isfinite(cell) and cell.is_integer() and abs(cell) < 2**53:
            return str(int(cell))
        return repr(cell)
    if isinstance(cell, datetime | date):
        return _time(cell)
    return str(cell)


def _time(cell: datetime | date) -> str:
    """A date cell as OneNET writes times (UTC+8, as a YAML date is read), to the second."""
    if not isinstance(cell, datetime):
        return f"{cell.isoformat()}T00:00:00"
    # A workbook keeps times as fractions of a day: 02:00 may come back a microsecond short.
    return format_onenet((cell + timedelta(microseconds=500_000)).replace(microsecond=0))


def _imei(number: int | float) -> tuple[str, str | None]:
    """An IMEI stored as a number: its 15 digits when they are all there, else the problem."""
    if isinstance(number, float) and not (math.isfinite(number) and number.is_integer()):
        return "", f"is the number {number!r}, not 15 digits: {AS_TEXT}"
    digits = str(int(number))
    if len(digits) == 15 and (luhn_ok(digits) or int(digits) % _CUT_SHORT):
        return digits, None
    if len(digits) == 15:
        message = (
            f"is the number {digits}, which fails the check digit and looks cut short (Excel"
            f" shows long numbers as 8.65820E+14 and keeps only what it shows): {AS_TEXT}"
        )
    elif len(digits) == 14:
        zero = " (0" + digits + " passes the check digit)" if luhn_ok("0" + digits) else ""
        message = f"is the number {digits}: a leading zero was lost{zero}; {AS_TEXT}"
    else:
        message = f"is the number {digits}, {len(digits)} digits, not 15: {AS_TEXT}"
    return "", message
