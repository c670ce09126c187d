"""One job field's text into a value: the parsers of the field rules, and what they return.

Each parser takes the text as written and returns the value, ``ABSENT`` (blank: use the default)
or an ``Err``. They are pure, so ``RowChecker`` caches their answers per distinct text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

from dispatcher.job.hints import control_character, imei_hint, number_hint, unencodable
from dispatcher.job.rows import Problem

__all__ = [
    "ABSENT",
    "LUHN_BYTES",
    "LUHN_DOUBLE",
    "MAX_ARGS_BYTES",
    "TRIGGERS",
    "Err",
    "checked_imei",
    "int_parser",
    "luhn_check_digit",
    "luhn_ok",
    "parse_args",
    "parse_csv_args",
    "parse_trigger",
    "suggest",
]

MAX_ARGS_BYTES = 2048
TRIGGERS = {"register": 1, "update": 2, "notify": 4}
LUHN_DOUBLE = str.maketrans("0123456789", "0246813579")  # each digit doubled, digits summed (Luhn)
LUHN_BYTES = bytes.maketrans(b"0123456789", b"0246813579")  # the same for ASCII bytes (hot path)


class Err:
    """A value's problem; with ``keep``, a warning and the value to use all the same."""

    __slots__ = ("keep", "message")

    def __init__(self, message: str, keep: object = None) -> None:
        self.message = message
        self.keep = keep


ABSENT = object()  # a blank value: use the default


def luhn_ok(imei: str) -> bool:
    """True when a 15-digit IMEI's last digit is its Luhn check digit."""
    digits = imei[0::2] + imei[1::2].translate(LUHN_DOUBLE)
    return (sum(digits.encode()) - 48 * len(digits)) % 10 == 0


def luhn_check_digit(first14: str) -> int:
    """The Luhn check digit that completes a 14-digit IMEI body."""
    digits = first14[0::2] + first14[1::2].translate(LUHN_DOUBLE)
    return -(sum(digits.encode()) - 48 * len(digits)) % 10


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for a near miss among ``choices``, else ''."""
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[match[0]]}?)" if match else ""


def int_parser(lo: int, hi: int, what: str, spreadsheet: bool) -> Callable[[str], object]:
    """A parser of whole numbers lo..hi; ``what`` ends its message, ``spreadsheet`` its hints."""
    digits = len(str(hi))

    def parse(text: str) -> object:
        t = text.strip()
        if not t:
            return ABSENT
        if (
            not (t.isascii() and t.isdigit())
            or len(t.lstrip("0")) > digits  # and int() of thousands of digits raises
            or not lo <= int(t) <= hi
        ):
            hint = number_hint(t, spreadsheet)
            return Err(f"must be a whole number from {lo} to {hi}{what}, got {t!r}{hint}")
        return int(t)

    return parse


def parse_trigger(text: str) -> object:
    """Uplink kinds by name (``register, update``) into a trigger_msg bitmask."""
    if not text.strip():
        return ABSENT
    names = [n for n in re.split(r"[\s,;|+\[\]]+", text.strip().lower()) if n]
    if not names:
        return Err("names no uplink kind (use register, update, notify)")
    mask = 0
    for name in names:
        bit = TRIGGERS.get(name)
        if bit is None:
            hint = suggest(name, TRIGGERS) or " (use register, update, notify)"
            return Err(f"unknown uplink kind {name!r}{hint}")
        mask |= bit
    return mask


def parse_args(text: str) -> object:
    """The command string: at most MAX_ARGS_BYTES of UTF-8; no control character but tab, LF, CR."""
    if not text:
        return ABSENT
    if len(text) > MAX_ARGS_BYTES // 4 and (size := len(text.encode("utf-8"))) > MAX_ARGS_BYTES:
        return Err(f"is {size} bytes in UTF-8; OneNET takes at most {MAX_ARGS_BYTES}")
    if not text.isprintable() and (control := control_character(text)):
        return Err(control)
    return text


def parse_csv_args(text: str) -> object:
    """Args from a CSV cell: every other cell is trimmed, so spaces kept here are pointed out."""
    value = parse_args(text)
    if type(value) is str and value.strip() != value:
        return Err("starts or ends with spaces: they are sent as written", keep=value)
    return value


def checked_imei(
    text: str | None, file: str, where: int, strict: bool
) -> tuple[str, Problem | None]:
    """An imei that is not plainly right: the imei ('' if wrong) and its problem, if any (a
    wrong check digit is a warning, unless ``strict``)."""
    imei = text.strip() if text else ""
    if not (len(imei) == 15 and imei.isdigit() and imei.isascii()):
        if not imei:
            message = "is required"
        else:
            hint = imei_hint(imei, luhn_ok)
            message = unencodable(imei) or f"must be 15 digits, got {imei!r}{hint}"
        return "", Problem(file, where, "imei", message)
    if luhn_ok(imei):
        return imei, None  # spaces around it
    expected = luhn_check_digit(imei[:14])
    message = f"check digit is wrong (Luhn: {imei[:14]}{expected}); is there a typo?"
    return ("" if strict else imei), Problem(file, where, "imei", message, warning=not strict)
