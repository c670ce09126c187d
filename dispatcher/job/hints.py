"""What probably damaged a job file's value or bytes: spreadsheets, editors, YAML escapes.

A spreadsheet that takes a column for numbers writes ``8.65820E+14`` or ``865820030000017.0`` for
an IMEI, ``3311.0`` for an id, and drops an IMEI's leading zero; editors on Chinese Windows save
GBK or UTF-16. These functions run only once a value or a file has already failed, and say how to
fix it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = [
    "SPREADSHEET",
    "control_character",
    "imei_hint",
    "not_utf8_problem",
    "number_hint",
    "unencodable",
    "utf16_problem",
    "utf16_without_bom",
]

SPREADSHEET = "a spreadsheet turned the column into numbers; format it as text and re-export"
_SCIENTIFIC = re.compile(r"[+-]?\d+(?:\.\d*)?[eE][+-]?\d+")
_WHOLE_DECIMAL = re.compile(r"(\d+)\.0+")
# Unicode category Cc but tab, LF and CR, which text (and a quoted CSV field) may hold.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def number_hint(text: str, spreadsheet: bool) -> str:
    """' (...)' for a whole number written as 3311.0 or 3.311E+03, else ''."""
    if _SCIENTIFIC.fullmatch(text):
        return f" (scientific notation: {SPREADSHEET})" if spreadsheet else " (write the digits)"
    m = _WHOLE_DECIMAL.fullmatch(text)
    if m is None:
        return ""
    return f" (a decimal part: {SPREADSHEET})" if spreadsheet else f" (write {m[1]})"


def imei_hint(text: str, luhn_ok: Callable[[str], bool]) -> str:
    """' (...)' for an IMEI a spreadsheet damaged, else ''.

    A 14-digit IMEI whose 15-digit form with a leading zero passes ``luhn_ok`` has probably lost
    that zero.
    """
    if _SCIENTIFIC.fullmatch(text):
        return f" (scientific notation: {SPREADSHEET})"
    m = _WHOLE_DECIMAL.fullmatch(text)
    digits = m[1] if m else text
    if len(digits) == 14 and digits.isascii() and digits.isdigit() and luhn_ok("0" + digits):
        return f" (a lost leading zero? 0{digits} passes the check digit; {SPREADSHEET})"
    if m is not None:
        return f" (a decimal part: {SPREADSHEET})"
    return ""


def unencodable(text: str) -> str | None:
    """What is wrong with text that UTF-8 cannot hold (a lone surrogate), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        return (
            f"holds U+{code:04X}, half of a UTF-16 surrogate pair, which is not text"
            " (an escape such as \\ud800 in YAML?): write the character itself"
        )
    return None


def control_character(text: str) -> str | None:
    """What is wrong with text holding a control character other than tab, LF or CR, else None."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    return f"holds the control character U+{ord(m[0]):04X} at position {m.start() + 1}: remove it"


def utf16_without_bom(data: bytes) -> bool:
    """True when text looks like UTF-16 without a byte-order mark: every other byte is zero."""
    if len(data) < 4:
        return False
    half = (len(data) + 1) // 2
    return max(data[0::2].count(0), data[1::2].count(0)) * 10 >= half * 9


def utf16_problem(head: bytes) -> str | None:
    """The message for a file whose start shows it is UTF-16 or UTF-32 text, else None."""
    if head.startswith(_UTF32_BOMS):
        return "is UTF-32 text (it starts with a UTF-32 byte-order mark): save it as UTF-8"
    if head.startswith(_UTF16_BOMS):
        return "is UTF-16 text (it starts with a UTF-16 byte-order mark): save it as UTF-8"
    if utf16_without_bom(head[:4096]):
        return "looks like UTF-16 text (every other byte is zero): save it as UTF-8"
    return None


def not_utf8_problem(head: bytes, bad_line: bytes) -> str:
    """The message for a line that is not UTF-8: GBK when it (and the file's start) read as such.

    ``head`` is the start of the file, ``bad_line`` the first line that UTF-8 cannot decode.
    """
    if _gb18030(bad_line) and _gb18030(head[: head.rfind(b"\n") + 1] or head):
        return "looks like GBK/GB18030 text: save it as UTF-8"
    return "is not UTF-8 text: save it as UTF-8"


def _gb18030(data: bytes) -> bool:
    """True when bytes decode as GB18030 into text with Chinese in it and no control characters."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(text) is None and _CJK.search(text) is not None
