"""The xlsx export: every command of a ledger on a worksheet, the csv export's columns and rows,
for Excel and LibreOffice to open as they are.

Written with openpyxl's write-only workbook, which streams each row to a temporary file and writes
strings inline (no shared-string table), while the ledger's rows are read as the csv export reads
them: a ledger of a million commands is written in flat memory.

A text cell is never a formula: a text that begins like one (``=HYPERLINK(...)``, from a job's args,
OneNET's error or a device's answer) is a string cell marked with a quote prefix, so it stays text
even when edited, and is exact (no ``'`` added). The IMEI column is formatted as text (``@``):
typed over, an IMEI stays a text instead of becoming ``8.65820E+14``. The header is bold and
frozen. A ledger of more commands than a sheet holds (1,048,575 and a header, Excel's limit) goes
on over further sheets. Characters XML cannot hold (control characters but tab and line breaks)
become U+FFFD.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, BinaryIO, Final

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from dispatcher.ledger.store import LedgerStore
from dispatcher.report.export import EXPORT_FIELDS, export_record, looks_like_formula

__all__ = ["SHEET_ROWS", "write_xlsx"]

# The commands one sheet holds: Excel's limit of 1,048,576 rows, less the header.
SHEET_ROWS: Final = 1_048_575

# What XML 1.0 cannot hold, as openpyxl refuses it (IllegalCharacterError).
_UNWRITABLE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_TEXT: Final = "@"  # Excel's number format "Text"
_SHEET: Final = "commands"
_MIN_WIDTH: Final = 8

# Widths (in characters) that fit the usual values, so a column is readable when opened: an IMEI,
# a uuid, an ISO time with milliseconds and zone, a key; any other column fits its header.
_WIDTHS: Final = {
    "imei": 17, "args": 24, "error": 28, "uuid": 38, "source": 24, "valid_time": 21,
    "expired_time": 21, "sent_valid_time": 21, "sent_expired_time": 21, "first_attempt_at": 31,
    "last_attempt_at": 31, "key": 34, "send_time": 21, "confirm_time": 21, "cmd_result": 24,
    "status_checked_at": 31, "cancelled_at": 31, "cancel_error": 24, "retried_in": 24,
    "product": 16,
}  # fmt: skip


def write_xlsx(ledger: LedgerStore, out: BinaryIO, *, rows_per_sheet: int = SHEET_ROWS) -> int:
    """Write every command to ``out`` as an xlsx workbook, streaming; return the count. Past
    ``rows_per_sheet`` commands, the next ones go on a new sheet ("commands 2", ...)."""
    book = Workbook(write_only=True)
    imei = EXPORT_FIELDS.index("imei")
    sheet = _new_sheet(book, _SHEET)
    n = 0
    with contextlib.closing(ledger.rows()) as rows:  # closed even if ``out`` fails
        for row in rows:
            if n and n % rows_per_sheet == 0:
                sheet = _new_sheet(book, f"{_SHEET} {n // rows_per_sheet + 1}")
            cells = [_cell(sheet, value) for value in export_record(row).values()]
            if isinstance(cells[imei], str):  # an IMEI is digits: never a formula's cell
                cells[imei] = _styled(sheet, cells[imei], number_format=_TEXT)
            sheet.append(cells)
            n += 1
    book.save(out)
    return n


def _new_sheet(book: Any, title: str) -> Any:
    """A write-only sheet of ``book`` with its columns sized and its header written, frozen."""
    sheet = book.create_sheet(title)
    for n, field in enumerate(EXPORT_FIELDS, 1):
        width = max(_WIDTHS.get(field, 0), len(field) + 2, _MIN_WIDTH)
        sheet.column_dimensions[get_column_letter(n)].width = width
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    sheet.append([_styled(sheet, field, font=bold) for field in EXPORT_FIELDS])
    return sheet


def _cell(sheet: Any, value: object) -> object:
    """``value`` as the sheet takes it: a plain value, or a text cell where openpyxl would
    otherwise write a formula."""
    if not isinstance(value, str):
        return value
    text = _UNWRITABLE.sub("\ufffd", value)
    if looks_like_formula(text):
        cell = _styled(sheet, text)
        cell.data_type = "s"  # openpyxl makes a formula of any text that begins with "="
        cell.quotePrefix = True  # Excel keeps it text when the cell is edited
        return cell
    return text


def _styled(sheet: Any, value: object, **style: object) -> Any:
    """A cell of the write-only ``sheet`` holding ``value`` with ``style`` (font, format, ...)."""
    cell = WriteOnlyCell(sheet, value)
    for name, setting in style.items():
        setattr(cell, name, setting)
    return cell
