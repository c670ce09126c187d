"""Workbooks made for tests, as Excel would save them: openpyxl writes each cell with its type
(a number stays a number, a datetime a date cell), so the reader meets what an operator's .xlsx
holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import openpyxl

__all__ = ["Rows", "write_sheet"]

Rows = Sequence[Sequence[object]]


def write_sheet(
    path: Path,
    rows: Rows,
    *,
    title: str = "Sheet1",
    first_row: int = 1,
    others: Mapping[str, Rows] | None = None,
    hidden: Mapping[str, Rows] | None = None,
) -> Path:
    """Write ``rows`` (None: an empty cell) to the sheet ``title`` from row ``first_row``, then
    the ``others`` sheets; ``hidden`` sheets come first, and are hidden."""
    book = openpyxl.Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    for name, sheet_rows in (hidden or {}).items():
        sheet = book.create_sheet(name)
        sheet.sheet_state = "hidden"
        _fill(sheet, sheet_rows, 1)
    _fill(book.create_sheet(title), rows, first_row)
    for name, sheet_rows in (others or {}).items():
        _fill(book.create_sheet(name), sheet_rows, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def _fill(sheet: object, rows: Rows, first_row: int) -> None:
    for r, row in enumerate(rows, first_row):
        for c, value in enumerate(row, 1):
            if value is not None:
                sheet.cell(row=r, column=c, value=value)  # type: ignore[attr-defined]
