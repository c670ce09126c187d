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

``op`` is execute (the default), write or read. A write names its values (``values:``, a YAML
mapping of resource id to value, or ``res_id`` and ``value``, one resource per CSV row); each is
typed by the LwM2M registry (operations.py, writes.py) and the body is ``args``. What the
registry says of the resource (not writable, a value out of range) is a row's ``notes``, weighed
by resources.py once per distinct command. A read needs ``obj_id`` only: ``obj_inst_id`` and
``res_id`` narrow it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from dispatcher.job.hints import unencodable
from dispatcher.job.operations import (
    OPTIONAL,
    OperationChecker,
    parse_mode,
    parse_op,
    parse_product,
    parse_value,
    parse_values,
    required_message,
)
from dispatcher.job.rows import (
    ARGS,
    EXPIRED,
    IMEI,
    MODE,
    NAMES,
    OP,
    PRODUCT,
    RES_ID,
    TRIGGER,
    TRIGGER_MSG,
    VALID,
    VALUE,
    VALUES,
    Checked,
    PastTimes,
    Problem,
    TimeValue,
)
from dispatcher.job.values import (
    ABSENT,
    LUHN_BYTES,
    Err,
    checked_imei,
    int_parser,
    parse_args,
    parse_csv_args,
    parse_trigger,
)
from dispatcher.model.command import Op, key_tail, sent_tail
from dispatcher.times import BEIJING, DailyWindow, TimeSpec, format_onenet, parse_timespec

__all__ = ["RowChecker"]

_CACHE_SIZE = 4096
_PASSED = {
    VALID: "has passed: the command is sent without it (delivery may start at once)",
    EXPIRED: "has passed: the command will not be sent and is recorded as expired",
}
_WINDOWED = "window: gives the times; remove {}"
_new = tuple.__new__


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
        defaults: Sequence[str | None] = (None,) * len(NAMES),
        default_lines: Sequence[int] = (0,) * len(NAMES),
        default_file: str = "",
        refused_defaults: Iterable[int] = (),
        window: DailyWindow | None = None,
        step: int = 0,
    ) -> None:
        """``from_csv``: the rows are CSV cells (spreadsheet hints, args spaces pointed out).
        ``strict`` makes warnings errors, and the rows they are about not commands.

        ``refused_defaults``: slots whose default was written but refused by the reader (null, a
        list): rows relying on them are not commands, and not reported again.
        ``window``: the job's daily window, every row's valid_time and expired_time.
        ``step``: the step of a job with steps: these rows are (part of their keys).
        """
        self.file = file
        self.at = at.astimezone(BEIJING)
        self.strict = strict
        self.problems: list[Problem] = []  # the defaults' own problems, reported once
        self._past_times = past_times
        self._at_text = format_onenet(self.at)
        self._pair_bad = False
        self._window = window
        self._step = step
        self._from_csv = from_csv
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
            parse_op,
            parse_mode,
            parse_value,
            parse_values,
            parse_product,
        ]
        self._caches: list[dict[str, object]] = [{} for _ in NAMES]
        self._clean: dict[tuple[str | None, ...], tuple[Any, ...]] = {}
        self._defaults = self._check_defaults(defaults, default_lines, default_file or file)
        for slot in refused_defaults:
            self._defaults[slot if slot > TRIGGER else min(slot, TRIGGER_MSG)] = _BAD
        self._operation = OperationChecker(file)

    @property
    def default_op(self) -> str:
        """The operation of rows that give none (execute unless the defaults or step say)."""
        op = self._defaults[OP]
        return op if isinstance(op, str) else Op.EXECUTE

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
        out += [Op.EXECUTE, None, None, None, ""]  # op, mode, value, values, product
        out.insert(TRIGGER, None)  # trigger has no slot of its own here: it is trigger_msg's
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
        for slot in range(1, len(NAMES)):
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
            target = slot if slot > TRIGGER else min(slot, TRIGGER_MSG)
            if out[target] is not _BAD:
                out[target] = value
        op = out[OP]
        if raw[OP] and isinstance(op, str):  # an op said here: fields of another op are wrong
            wrong = [(MODE, "write"), (VALUES, "write")] + (
                [(ARGS, "execute")] if op != "execute" else []
            )
            for slot, only in wrong:
                if raw[slot] and op != only:
                    message = f"applies to op: {only} only (this is op: {op})"
                    self._default_problem(file, lines[slot], NAMES[slot], message)
                    out[slot] = _BAD
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
            if values is not None:
                values += (self.file,)  # the fields after the imei, up to the line: shared
                if problems is None:
                    if len(self._clean) >= _CACHE_SIZE:
                        self._clean.clear()
                    self._clean[rest] = values
        imei = raw[IMEI]
        good = False
        if imei and len(imei) == 15 and imei.isdigit() and imei.isascii():
            # luhn_ok(), inlined on bytes (a C table instead of a dict per digit): hot
            b = imei.encode()
            good = (sum(b[0::2]) + sum(b[1::2].translate(LUHN_BYTES)) - 720) % 10 == 0  # 15 x "0"
        if not good:
            where = lines[IMEI] if lines and imei and imei.strip() else line
            imei, imei_problem = checked_imei(imei, self.file, where, self.strict)
            if imei_problem is not None:
                problems = [imei_problem, *(problems or ())]
            if not imei:
                return None, problems
        if values is None:
            return None, problems
        # Joined, not unpacked: tuple copies in C instead of a list grown item by item (hot).
        row = (imei,) + values + (line, pos, 0, self._step, None)  # noqa: RUF005
        return _new(Checked, row), problems

    def _fields(
        self, raw: Sequence[str | None], line: int, lines: Sequence[int] | None
    ) -> tuple[tuple[Any, ...] | None, list[Problem] | None]:
        """Every field but the imei: the values (None if any is wrong) and the problems."""
        problems: list[Problem] = []
        ok = True
        values: list[Any] = []
        defaults = self._defaults
        given: dict[int, object] = {}  # the operation's slots, as the row or the defaults give them
        for slot in (OP, MODE, VALUE, VALUES, PRODUCT):
            value = self._slot_value(slot, raw, line, lines, problems)
            if value is _BAD:
                ok = False
            given[slot] = value
        named = given[OP]
        op = named if isinstance(named, str) else Op.EXECUTE
        optional = OPTIONAL[op]
        for slot in range(1, 10):
            text = raw[slot]
            if slot == TRIGGER_MSG and raw[TRIGGER]:
                if text:
                    where = lines[TRIGGER] if lines else line
                    problems.append(
                        Problem(self.file, where, "trigger", "give trigger or trigger_msg")
                    )
                    ok = False
                text, slot = raw[TRIGGER], TRIGGER
            elif text and self._window is not None and slot in (VALID, EXPIRED):
                where = lines[slot] if lines else line
                problems.append(
                    Problem(self.file, where, NAMES[slot], _WINDOWED.format(NAMES[slot]))
                )
                ok, text = False, None
            value = self._value(slot, text) if text else ABSENT
            if value is ABSENT:
                value = defaults[min(slot, TRIGGER_MSG)]
            elif isinstance(value, Err):
                where = lines[slot] if lines else line
                warning = value.keep is not None and not self.strict
                problems.append(Problem(self.file, where, NAMES[slot], value.message, warning))
                if warning:
                    value = value.keep
                else:
                    ok = False
            if value is _MISSING:
                if slot in optional:
                    value = None
                else:
                    field = NAMES[min(slot, TRIGGER_MSG)]
                    problems.append(Problem(self.file, line, field, required_message(field, op)))
                    ok = False
            elif value is _BAD:
                ok = False
            values.append(value)
        if not ok:
            return None, problems or None
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
                return None, [*problems, Problem(self.file, where, NAMES[slot], message)]
            if self._pair_bad:
                return None, problems or None
        obj_id, obj_inst_id, res_id, args, _, _, retry, timeout, trigger_msg = values
        settled = self._operation.settle(op, given, values, raw, line, lines, problems)
        if settled is None:
            return None, problems or None
        res_id, args, mode, notes, typed = settled
        values[RES_ID - 1], values[ARGS - 1] = res_id, args
        # Kept with the row's values, so a fleet's repeated rows cost no formatting for either.
        named_product = given[PRODUCT]
        product = named_product if isinstance(named_product, str) else ""
        values += (op, mode, notes, typed, product)
        values.append(key_tail(obj_id, obj_inst_id, res_id, args, 0, op, mode, self._step))
        valid_text = "" if valid is None else valid.spec.text
        values.append(
            sent_tail(valid_text, expired.spec.text, retry, timeout, trigger_msg, product)
        )
        return tuple(values), problems or None

    def _slot_value(
        self,
        slot: int,
        raw: Sequence[str | None],
        line: int,
        lines: Sequence[int] | None,
        problems: list[Problem],
    ) -> object:
        """One of the operation's slots as the row gives it, else its default; _BAD if wrong."""
        text = raw[slot]
        value = self._value(slot, text) if text else ABSENT
        if value is ABSENT:
            return self._defaults[slot]
        if isinstance(value, Err):
            where = lines[slot] if lines else line
            problems.append(Problem(self.file, where, NAMES[slot], value.message))
            return _BAD
        return value
