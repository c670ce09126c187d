"""The rules for each command field of a job file, checked row by row.

Every field arrives as text (a CSV cell, or a YAML scalar as written); ``RowChecker`` turns one
row of texts into checked values or into ``Problem`` records naming the file, line and field.
Fleet files repeat most values, so each distinct text is parsed once (small bounded caches).
The ranges are OneNET's (POST /nbiot/execute/offline, see onenet-api.md).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from .times import BEIJING, TimeSpec, format_onenet, parse_timespec

__all__ = [
    "FIELDS",
    "NAMES",
    "Checked",
    "Problem",
    "RowChecker",
    "TimeValue",
    "luhn_check_digit",
    "luhn_ok",
    "suggest",
]

FIELDS = (
    "imei",
    "obj_id",
    "obj_inst_id",
    "res_id",
    "args",
    "valid_time",
    "expired_time",
    "retry",
    "timeout",
    "trigger_msg",
)
"""The command fields, in the order of a row's slots."""
NAMES = (*FIELDS, "trigger")
"""Every name a job file may use for a field; ``trigger`` is trigger_msg by names."""
SLOT = {name: i for i, name in enumerate(NAMES)}
IMEI, OBJ_ID, OBJ_INST_ID, RES_ID, ARGS, VALID, EXPIRED, RETRY, TIMEOUT, TRIGGER_MSG, TRIGGER = (
    range(11)
)
REQUIRED = (OBJ_ID, OBJ_INST_ID, RES_ID, EXPIRED)
MAX_ARGS_BYTES = 2048
TRIGGERS = {"register": 1, "update": 2, "notify": 4}
_CACHE_SIZE = 4096
_new = tuple.__new__
_DOUBLE = str.maketrans("0123456789", "0246813579")  # each digit doubled, digits summed (Luhn)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong in a job file, at a line; a warning does not stop the job."""

    file: str
    line: int
    field: str
    message: str
    warning: bool = False

    def __str__(self) -> str:
        if not self.field:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


class TimeValue(NamedTuple):
    """A checked time: as written, and the instant it means at the checked start."""

    spec: TimeSpec
    when: datetime


class Checked(NamedTuple):
    """One checked row: every value final, ready to become a Command."""

    imei: str
    obj_id: int
    obj_inst_id: int
    res_id: int
    args: str | None
    valid: TimeValue | None
    expired: TimeValue
    retry: int
    timeout: int
    trigger_msg: int
    source: str
    line: int
    pos: int  # unique position of the row in the job (file index << 40 | line)
    occurrence: int = 0


class _Err:
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_ABSENT = object()  # a blank value: use the default
_MISSING = object()  # a required field with no value and no default
_BAD = object()  # the default is wrong (reported once, where it is written)


def luhn_ok(imei: str) -> bool:
    """True when a 15-digit IMEI's last digit is its Luhn check digit."""
    digits = imei[0::2] + imei[1::2].translate(_DOUBLE)
    return (sum(digits.encode()) - 48 * len(digits)) % 10 == 0


def luhn_check_digit(first14: str) -> int:
    """The Luhn check digit that completes a 14-digit IMEI body."""
    digits = first14[0::2] + first14[1::2].translate(_DOUBLE)
    return -(sum(digits.encode()) - 48 * len(digits)) % 10


def suggest(name: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' for a near miss among ``choices``, else ''."""
    lowered = {c.lower(): c for c in choices}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" (did you mean {lowered[match[0]]}?)" if match else ""


def _int_parser(lo: int, hi: int, what: str) -> Callable[[str], object]:
    def parse(text: str) -> object:
        t = text.strip()
        if not t:
            return _ABSENT
        if not (t.isascii() and t.isdigit()) or not lo <= int(t) <= hi:
            return _Err(f"must be a whole number from {lo} to {hi}{what}, got {t!r}")
        return int(t)

    return parse


def _parse_trigger(text: str) -> object:
    if not text.strip():
        return _ABSENT
    names = [n for n in re.split(r"[\s,;|+\[\]]+", text.strip().lower()) if n]
    if not names:
        return _Err("names no uplink kind (use register, update, notify)")
    mask = 0
    for name in names:
        bit = TRIGGERS.get(name)
        if bit is None:
            hint = suggest(name, TRIGGERS) or " (use register, update, notify)"
            return _Err(f"unknown uplink kind {name!r}{hint}")
        mask |= bit
    return mask


def _parse_args(text: str) -> object:
    if not text:
        return _ABSENT
    if len(text) > MAX_ARGS_BYTES // 4 and (size := len(text.encode("utf-8"))) > MAX_ARGS_BYTES:
        return _Err(f"is {size} bytes in UTF-8; OneNET takes at most {MAX_ARGS_BYTES}")
    return text


class RowChecker:
    """Checks rows of one source against the defaults, for a start time ``at``."""

    def __init__(
        self,
        file: str,
        at: datetime,
        *,
        strict: bool = False,
        defaults: Sequence[str | None] = (None,) * 11,
        default_lines: Sequence[int] = (0,) * 11,
        default_file: str = "",
    ) -> None:
        self.file = file
        self.at = at.astimezone(BEIJING)
        self.strict = strict
        self.problems: list[Problem] = []  # the defaults' own problems, reported once
        self._at_text = format_onenet(self.at)
        self._pair_bad = False
        parse_time = self._parse_time
        self._parsers: list[Callable[[str], object]] = [
            str.strip,
            _int_parser(0, 65535, ""),
            _int_parser(0, 65535, ""),
            _int_parser(0, 65535, ""),
            _parse_args,
            parse_time,
            parse_time,
            _int_parser(0, 10, " (OneNET's delivery retries)"),
            _int_parser(5, 40, " seconds"),
            _int_parser(1, 7, " (bits: 1 register, 2 update, 4 notify)"),
            _parse_trigger,
        ]
        self._caches: list[dict[str, object]] = [{} for _ in NAMES]
        self._clean: dict[tuple[str | None, ...], tuple[Any, ...]] = {}
        self._defaults = self._check_defaults(defaults, default_lines, default_file or file)

    def absent(self, slots: Iterable[int]) -> list[int]:
        """Mark slots the source cannot give (CSV columns missing); those left without a default."""
        missing = [slot for slot in slots if self._defaults[slot] is _MISSING]
        for slot in missing:
            self._defaults[slot] = _BAD
        return missing

    def _parse_time(self, text: str) -> object:
        if not text.strip():
            return _ABSENT
        try:
            spec = parse_timespec(text)
        except ValueError as exc:
            return _Err(str(exc))
        when = spec.resolve(self.at)
        if when <= self.at:
            return _Err(
                f"{text.strip()} is in the past at the start checked against "
                f"({self._at_text} UTC+8); OneNET refuses it"
            )
        return TimeValue(spec, when)

    def _value(self, slot: int, text: str) -> object:
        cache = self._caches[slot]
        value = cache.get(text)
        if value is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            value = cache[text] = self._parsers[slot](text)
        return value

    def _check_defaults(
        self, raw: Sequence[str | None], lines: Sequence[int], file: str
    ) -> list[object]:
        out: list[object] = [_MISSING, _MISSING, _MISSING, _MISSING, None, None, _MISSING, 3, 25, 7]
        if raw[TRIGGER] and raw[TRIGGER_MSG]:
            self._default_problem(file, lines[TRIGGER], "trigger", "give trigger or trigger_msg")
            out[TRIGGER_MSG] = _BAD
        for slot in range(1, 11):
            text = raw[slot]
            if not text:
                continue
            value = self._value(slot, text)
            if value is _ABSENT:
                continue
            if isinstance(value, _Err):
                self._default_problem(file, lines[slot], NAMES[slot], value.message)
                value = _BAD
            if out[min(slot, TRIGGER_MSG)] is not _BAD:
                out[min(slot, TRIGGER_MSG)] = value
        valid, expired = out[VALID], out[EXPIRED]
        if (
            isinstance(valid, TimeValue)
            and isinstance(expired, TimeValue)
            and expired.when <= valid.when
        ):
            message = f"must be later than valid_time ({valid.spec.text})"
            self._default_problem(file, lines[EXPIRED], "expired_time", message)
            self._pair_bad = True
        return out

    def _default_problem(self, file: str, line: int, field: str, message: str) -> None:
        self.problems.append(Problem(file, line, field, message))

    def check(
        self, raw: tuple[str | None, ...], line: int, pos: int, lines: Sequence[int] | None = None
    ) -> tuple[Checked | None, list[Problem] | None]:
        """Check one row of 11 texts (None or '': not given); the row (or None) and its problems."""
        rest = raw[1:]
        values = self._clean.get(rest)  # fleets repeat whole rows but for the imei
        problems: list[Problem] | None = None
        if values is None:
            values, problems = self._fields(raw, line, lines)
            if values is not None and problems is None:
                if len(self._clean) >= _CACHE_SIZE:
                    self._clean.clear()
                self._clean[rest] = values
        imei = raw[IMEI]
        good = False
        if imei and len(imei) == 15 and imei.isdigit() and imei.isascii():
            digits = imei[0::2] + imei[1::2].translate(_DOUBLE)  # luhn_ok(), inlined: hot
            good = (sum(digits.encode()) - 720) % 10 == 0  # 720: 15 times ord("0")
        if not good:
            imei, imei_problem = self._imei(imei, line, lines)
            if imei_problem is not None:
                problems = [imei_problem, *(problems or ())]
            if not imei:
                return None, problems
        if values is None:
            return None, problems
        return _new(Checked, (imei, *values, self.file, line, pos, 0)), problems

    def _imei(
        self, text: str | None, line: int, lines: Sequence[int] | None
    ) -> tuple[str, Problem | None]:
        """The imei ('' if wrong) and its problem, if any."""
        imei = text.strip() if text else ""
        where = lines[IMEI] if lines and imei else line
        if not (len(imei) == 15 and imei.isdigit() and imei.isascii()):
            message = f"must be 15 digits, got {imei!r}" if imei else "is required"
            return "", Problem(self.file, where, "imei", message)
        if luhn_ok(imei):
            return imei, None  # spaces around it
        expected = luhn_check_digit(imei[:14])
        message = f"check digit is wrong (Luhn: {imei[:14]}{expected}); is there a typo?"
        return ("" if self.strict else imei), Problem(
            self.file, where, "imei", message, warning=not self.strict
        )

    def _fields(
        self, raw: Sequence[str | None], line: int, lines: Sequence[int] | None
    ) -> tuple[tuple[Any, ...] | None, list[Problem] | None]:
        """Every field but the imei: the values (None if any is wrong) and the problems."""
        problems: list[Problem] | None = None
        ok = True
        values: list[Any] = []
        defaults = self._defaults
        for slot in range(1, 10):
            text = raw[slot]
            if slot == TRIGGER_MSG and raw[TRIGGER]:
                if text:
                    problems = problems or []
                    where = lines[TRIGGER] if lines else line
                    problems.append(
                        Problem(self.file, where, "trigger", "give trigger or trigger_msg")
                    )
                    ok = False
                text, slot = raw[TRIGGER], TRIGGER
            value = self._value(slot, text) if text else _ABSENT
            if value is _ABSENT:
                value = defaults[min(slot, TRIGGER_MSG)]
            elif isinstance(value, _Err):
                problems = problems or []
                where = lines[slot] if lines else line
                problems.append(Problem(self.file, where, NAMES[slot], value.message))
                ok = False
            if value is _MISSING:
                problems = problems or []
                problems.append(
                    Problem(self.file, line, NAMES[min(slot, TRIGGER_MSG)], "is required")
                )
                ok = False
            elif value is _BAD:
                ok = False
            values.append(value)
        if not ok:
            return None, problems
        valid, expired = values[VALID - 1], values[EXPIRED - 1]
        if valid is not None and expired.when <= valid.when:
            if raw[EXPIRED] or raw[VALID]:
                slot = EXPIRED if raw[EXPIRED] else VALID
                message = (
                    f"must be later than valid_time ({valid.spec.text})"
                    if slot == EXPIRED
                    else f"must be earlier than expired_time ({expired.spec.text})"
                )
                where = lines[slot] if lines else line
                return None, [*(problems or ()), Problem(self.file, where, NAMES[slot], message)]
            if self._pair_bad:
                return None, problems
        return tuple(values), problems
