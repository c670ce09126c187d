"""The rules for each command field of a job file, checked row by row.

Every field arrives as text (a CSV cell, or a YAML scalar as written); ``RowChecker`` turns one
row of texts into checked values or into ``Problem`` records naming the file, line and field.
Fleet files repeat most values, so each distinct text is parsed once (small bounded caches).
The ranges are OneNET's (POST /nbiot/execute/offline, see docs/onenet-api.md).

A time already past at the start checked against is an error by default (``past_times``); while
sending, later than validation, it is not: the sender settles it (sent without a passed
valid_time, recorded as expired after a passed expired_time). A window's times are never past: at
any moment they are the next window's (an open one's start means "from now").

A job with a ``window:`` gives every command its times; a row or default that gives one too is
an error.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

from dispatcher.job.command import key_tail, sent_tail
from dispatcher.job.hints import imei_hint, unencodable
from dispatcher.job.values import (
    ABSENT,
    LUHN_DOUBLE,
    Err,
    int_parser,
    luhn_check_digit,
    luhn_ok,
    parse_args,
    parse_csv_args,
    parse_trigger,
    suggest,
)
from dispatcher.times import BEIJING, DailyWindow, TimeSpec, format_onenet, parse_timespec

__all__ = [
    "FIELDS",
    "NAMES",
    "Checked",
    "PastTimes",
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
_CACHE_SIZE = 4096
PastTimes = Literal["error", "warn", "allow"]
"""What a time already past is: an error, a warning (the command stays), or nothing."""
_PASSED = {
    VALID: "has passed: the command is sent without it (delivery may start at once)",
    EXPIRED: "has passed: the command will not be sent and is recorded as expired",
}
_WINDOWED = "window: gives the times; remove {}"
_new = tuple.__new__


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
    key_tail: bytes  # the key's text after the imei, for occurrence 0 (command.key_tail)
    sent_tail: bytes  # the fingerprint's text after the key (command.sent_tail)
    source: str
    line: int
    pos: int  # unique position of the row in the job (file index << 40 | line)
    occurrence: int = 0


_MISSING = object()  # a required field with no value and no default
_BAD = object()  # the default is wrong (reported once, where it is written)


class RowChecker:
    """Checks rows of one source against the defaults, for a start time ``at``."""

    def __init__(
        self,
        file: str,
        at: datetime,
        *,
        strict: bool = False,
        past_times: PastTimes = "error",
        from_csv: bool = False,
        defaults: Sequence[str | None] = (None,) * 11,
        default_lines: Sequence[int] = (0,) * 11,
        default_file: str = "",
        refused_defaults: Iterable[int] = (),
        window: DailyWindow | None = None,
    ) -> None:
        """``from_csv``: the rows are CSV cells (spreadsheet hints, args spaces pointed out).
        ``strict`` makes warnings errors, and the rows they are about not commands.

        ``refused_defaults``: slots whose default was written but refused by the reader (null, a
        list): rows relying on them are not commands, and not reported again.
        ``window``: the job's daily window, every row's valid_time and expired_time.
        """
        self.file = file
        self.at = at.astimezone(BEIJING)
        self.strict = strict
        self.problems: list[Problem] = []  # the defaults' own problems, reported once
        self._past_times = past_times
        self._at_text = format_onenet(self.at)
        self._pair_bad = False
        self._window = window
        self._parsers: list[Callable[[str], object]] = [
            str.strip,
            int_parser(0, 65535, "", from_csv),
            int_parser(0, 65535, "", from_csv),
            int_parser(0, 65535, "", from_csv),
            parse_csv_args if from_csv else parse_args,
            functools.partial(self._parse_time, VALID),
            functools.partial(self._parse_time, EXPIRED),
            int_parser(0, 10, " (OneNET's delivery retries)", from_csv),
            int_parser(5, 40, " seconds", from_csv),
            int_parser(1, 7, " (bits: 1 register, 2 update, 4 notify)", from_csv),
            parse_trigger,
        ]
        self._caches: list[dict[str, object]] = [{} for _ in NAMES]
        self._clean: dict[tuple[str | None, ...], tuple[Any, ...]] = {}
        self._defaults = self._check_defaults(defaults, default_lines, default_file or file)
        for slot in refused_defaults:
            self._defaults[min(slot, TRIGGER_MSG)] = _BAD

    def absent(self, slots: Iterable[int]) -> list[int]:
        """Mark slots the source cannot give (CSV columns missing); those left without a default."""
        missing = [slot for slot in slots if self._defaults[slot] is _MISSING]
        for slot in missing:
            self._defaults[slot] = _BAD
        return missing

    def _parse_time(self, slot: int, text: str) -> object:
        if not text.strip():
            return ABSENT
        try:
            spec = parse_timespec(text)
        except ValueError as exc:
            return Err(str(exc))
        if spec.window is not None:
            return self._window_time(spec)
        value = TimeValue(spec, spec.resolve(self.at))
        if value.when > self.at or self._past_times == "allow":
            return value
        if self._past_times == "warn":
            return Err(f"{spec.text} {_PASSED[slot]}", keep=value)
        return Err(
            f"{spec.text} is in the past at the start checked against "
            f"({self._at_text} UTC+8); OneNET refuses it"
        )

    def _window_time(self, spec: TimeSpec) -> TimeValue:
        """A window's start or end, checked at the start: an open window's start is that start."""
        return TimeValue(spec, max(spec.resolve(self.at), self.at))

    def _value(self, slot: int, text: str) -> object:
        cache = self._caches[slot]
        value = cache.get(text)
        if value is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            # Only YAML escapes make text UTF-8 cannot hold; it would fail when sent.
            bad = None if text.isascii() else unencodable(text)
            value = cache[text] = Err(bad) if bad else self._parsers[slot](text)
        return value

    def _check_defaults(
        self, raw: Sequence[str | None], lines: Sequence[int], file: str
    ) -> list[object]:
        out: list[object] = [_MISSING, _MISSING, _MISSING, _MISSING, None, None, _MISSING, 3, 25, 7]
        if raw[TRIGGER] and raw[TRIGGER_MSG]:
            self._default_problem(file, lines[TRIGGER], "trigger", "give trigger or trigger_msg")
            out[TRIGGER_MSG] = _BAD
        window = self._window
        if window is not None:
            for slot in (VALID, EXPIRED):
                if raw[slot]:
                    self._default_problem(
                        file, lines[slot], NAMES[slot], _WINDOWED.format(NAMES[slot])
                    )
            out[VALID] = self._window_time(window.spec("start"))
            out[EXPIRED] = self._window_time(window.spec("end"))
        for slot in range(1, 11):
            text = raw[slot]
            if not text or (window is not None and slot in (VALID, EXPIRED)):
                continue
            value = self._value(slot, text)
            if value is ABSENT:
                continue
            if isinstance(value, Err):
                warning = value.keep is not None and not self.strict
                self._default_problem(file, lines[slot], NAMES[slot], value.message, warning)
                value = value.keep if warning else _BAD
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

    def _default_problem(
        self, file: str, line: int, field: str, message: str, warning: bool = False
    ) -> None:
        self.problems.append(Problem(file, line, field, message, warning))

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
            digits = imei[0::2] + imei[1::2].translate(LUHN_DOUBLE)  # luhn_ok(), inlined: hot
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
            if not imei:
                message = "is required"
            else:
                hint = imei_hint(imei, luhn_ok)
                message = unencodable(imei) or f"must be 15 digits, got {imei!r}{hint}"
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
            elif text and self._window is not None and slot in (VALID, EXPIRED):
                problems = problems or []
                where = lines[slot] if lines else line
                problems.append(
                    Problem(self.file, where, NAMES[slot], _WINDOWED.format(NAMES[slot]))
                )
                ok, text = False, None
            value = self._value(slot, text) if text else ABSENT
            if value is ABSENT:
                value = defaults[min(slot, TRIGGER_MSG)]
            elif isinstance(value, Err):
                problems = problems or []
                where = lines[slot] if lines else line
                warning = value.keep is not None and not self.strict
                problems.append(Problem(self.file, where, NAMES[slot], value.message, warning))
                if warning:
                    value = value.keep
                else:
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
        # Kept with the row's values, so a fleet's repeated rows cost no formatting for either.
        obj_id, obj_inst_id, res_id, args, _, _, retry, timeout, trigger_msg = values
        values.append(key_tail(obj_id, obj_inst_id, res_id, args))
        valid_text = "" if valid is None else valid.spec.text
        values.append(sent_tail(valid_text, expired.spec.text, retry, timeout, trigger_msg))
        return tuple(values), problems
