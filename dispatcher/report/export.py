"""The exports tools read: every command of a ledger as csv, jsonl or one json array.

Delivery columns are as ``dispatcher status`` last read them from OneNET: ``send_status`` (its
number), ``confirm_status`` (the device's answer, by name), ``send_time`` and ``confirm_time`` as
OneNET wrote them (UTC+8), ``cmd_result``, and ``delivery``, the state they mean (empty for a
command OneNET does not hold). Unix times are written as ISO 8601 in UTC+8.

Exports stream row by row, so a ledger of a million commands is exported in flat memory, and
write records and nothing else.

CSV is for spreadsheets, which run a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return as a formula (OWASP, "CSV Injection"): such a text cell (args, an error, a device's
answer: anyone's text) is written with a ``'`` before it, which a spreadsheet shows as text. A
number stays a number: numeric columns (errno, latency_ms, ...) are never prefixed, nor is a text
that is only a number (args ``-5``), which no spreadsheet runs. jsonl and json are exact.

The csv made for Excel (``excel=True``) also starts with a UTF-8 BOM, without which Excel reads
the file in the system's code page (Chinese as mojibake), and writes a text of digits that Excel
would turn into a number (an IMEI shown as ``8.65820E+14``, an id losing its leading zero) as
``="865820..."``: a formula that Excel and LibreOffice both show as that text, every digit kept.
(A leading tab, the other known way, is one of the formula starts above, and LibreOffice keeps it
in the value.)
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Final, Literal, TextIO

import orjson

from dispatcher.ledger.store import LedgerStore, Row
from dispatcher.model import args_text
from dispatcher.times import BEIJING

__all__ = ["EXPORT_FIELDS", "excel_cell", "export_record", "looks_like_formula", "write_export"]

# The columns of every export, in order.
EXPORT_FIELDS: Final = (
    "imei", "obj_id", "obj_inst_id", "res_id", "args", "status", "errno", "error", "uuid",
    "attempts", "source", "valid_time", "expired_time", "sent_valid_time", "sent_expired_time",
    "first_attempt_at", "last_attempt_at", "latency_ms", "reconciled", "retry", "timeout",
    "trigger_msg", "key", "retired", "send_status", "confirm_status", "send_time", "confirm_time",
    "cmd_result", "delivery", "status_checked_at", "cancelled_at", "cancel_error",
    "retried_in", "op", "mode", "step", "product",
)  # fmt: skip


# What a spreadsheet reads as the start of a formula (OWASP, "CSV Injection").
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_NUMBER: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Digits Excel would make a number of and show otherwise: a leading zero is dropped, and in the
# General format a number of 12 digits or more is shown as 8.65820E+14 (past 15, digits are lost).
_LOSSY_DIGITS: Final = re.compile(r"0\d+|\d{12,}")
_BOM: Final = "\ufeff"


def export_record(row: Row) -> dict[str, Any]:
    """One command as an export record (the keys of :data:`EXPORT_FIELDS`, in order)."""
    delivery = row.delivery
    return {
        "imei": row.command.imei,
        "obj_id": row.command.obj_id,
        "obj_inst_id": row.command.obj_inst_id,
        "res_id": row.command.res_id,
        "args": args_text(row.command),
        "status": row.status.value,
        "errno": row.errno,
        "error": row.error,
        "uuid": row.uuid,
        "attempts": row.attempts,
        "source": row.command.where,
        "valid_time": None if row.command.valid_time is None else row.command.valid_time.text,
        "expired_time": row.command.expired_time.text,
        "sent_valid_time": row.sent_valid_time,
        "sent_expired_time": row.sent_expired_time,
        "first_attempt_at": _iso(row.first_attempt_at),
        "last_attempt_at": _iso(row.last_attempt_at),
        "latency_ms": row.latency_ms,
        "reconciled": row.reconciled,
        "retry": row.command.retry,
        "timeout": row.command.timeout,
        "trigger_msg": row.command.trigger_msg,
        "key": row.key,
        "retired": None if row.retired is None else row.retired.value,
        "send_status": row.send_status,
        "confirm_status": row.confirm_status,
        "send_time": row.send_time,
        "confirm_time": row.confirm_time,
        "cmd_result": row.cmd_result,
        "delivery": None if delivery is None else delivery.value,
        "status_checked_at": _iso(row.status_checked_at),
        "cancelled_at": _iso(row.cancelled_at),
        "cancel_error": row.cancel_error,
        "retried_in": row.retried_in,
        # Added later, so after the rest: the columns before keep their places.
        "op": str(row.command.op),
        "mode": row.command.mode,
        "step": row.command.step or None,
        "product": row.command.product or None,
    }


def write_export(
    ledger: LedgerStore,
    fmt: Literal["csv", "jsonl", "json"],
    out: TextIO,
    *,
    excel: bool = False,
) -> int:
    """Write every command to ``out`` as csv, jsonl or a json array, streaming; return the count.

    CSV follows RFC 4180 (``\\r\\n`` line ends; quotes where needed): give a file opened with
    ``newline=""``. Empty cells are None; booleans are ``true``/``false``; a text that a
    spreadsheet would run as a formula gets a ``'`` before it (see the module's docstring).
    ``excel`` (csv only): a BOM first, and digits Excel would mangle written as ``="..."``.
    """
    if fmt not in ("csv", "jsonl", "json"):
        raise ValueError(f"unknown export format {fmt!r}: use csv, jsonl or json")
    if excel and fmt != "csv":
        raise ValueError(f"excel is a csv export's option, not {fmt!r}'s")
    with contextlib.closing(ledger.rows()) as rows:  # closed even if ``out`` fails
        records = map(export_record, rows)
        if fmt == "csv":
            return _write_csv(records, out, excel_cell if excel else _cell, _BOM if excel else "")
        if fmt == "jsonl":
            return _write_json(records, out, "", "\n", "\n")
        return _write_json(records, out, "[\n", ",\n", "\n]\n", empty="[]\n")


def _write_json(
    records: Iterator[dict[str, Any]], out: TextIO, head: str, sep: str, tail: str, empty: str = ""
) -> int:
    n = 0
    for record in records:
        out.write((sep if n else head) + orjson.dumps(record).decode())
        n += 1
    out.write(tail if n else empty)
    return n


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` as a formula: it begins with ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return, and is not simply a number (``-5``)."""
    return text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text)


def _write_csv(
    records: Iterator[dict[str, Any]], out: TextIO, cell: Callable[[object], object], head: str
) -> int:
    out.write(head)
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    n = 0
    for record in records:
        writer.writerow(map(cell, record.values()))
        n += 1
    return n


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and looks_like_formula(value):
        return "'" + value  # shown as text, never run
    return value


def excel_cell(value: object) -> object:
    """``value`` as a cell of a CSV made for Excel: long digit strings (IMEIs) and ones with a
    leading zero as ``="..."`` (text, every digit kept), a formula's text behind a ``'``."""
    if isinstance(value, str) and _LOSSY_DIGITS.fullmatch(value):
        # Digits only, so the formula can hold nothing but this text.
        return f'="{value}"'
    return _cell(value)


def _iso(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 in Beijing time (OneNET's zone), to the millisecond."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, BEIJING).isoformat(timespec="milliseconds")
