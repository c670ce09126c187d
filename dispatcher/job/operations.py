"""What each operation of a row sends: an execute's args, a write's values typed by the LwM2M
registry (one body, its mode), a read's ids; and the parsers of the operation's own fields (op,
mode, value, values, product). The registry's remarks on a write's values are a row's notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from dispatcher.job.rows import ARGS, MODE, NAMES, OBJ_INST_ID, RES_ID, VALUE, VALUES, Problem
from dispatcher.job.values import ABSENT, Err, suggest
from dispatcher.job.writes import body_problem, typed_value
from dispatcher.model.command import MODES, OPS, Op, WriteValue
from dispatcher.model.writes import body_text

__all__ = [
    "OPTIONAL",
    "OperationChecker",
    "parse_mode",
    "parse_op",
    "parse_product",
    "parse_value",
    "parse_values",
    "required_message",
]

_CACHE_SIZE = 4096


class OperationChecker:
    """Settles what a row's operation sends, for rows of ``file``; typed values cached."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._typed: dict[tuple[int, int, str, bool], WriteValue | Err] = {}

    def settle(
        self,
        op: str,
        given: dict[int, object],
        values: list[Any],
        raw: Sequence[str | None],
        line: int,
        lines: Sequence[int] | None,
        problems: list[Problem],
    ) -> tuple[int | None, str | None, int | None, tuple[str, ...], tuple[WriteValue, ...]] | None:
        """What the operation sends: (res_id, args, mode, notes, typed values); None (and
        problems) if wrong. ``values`` are the row's checked fields after the imei, ``given`` the
        operation's slots.

        A write's args is its body, its res_id the one resource it writes (None for several).
        """
        obj_id, obj_inst_id, res_id, args = values[0], values[1], values[2], values[3]
        mode, value, items = given[MODE], given[VALUE], given[VALUES]
        # The row's own value (a CSV cell) comes before the defaults' values.
        if raw[VALUE]:
            items = None
        elif raw[VALUES]:
            value = None

        def problem(slot: int, message: str) -> None:
            where = lines[slot] if lines and raw[slot] else line
            problems.append(Problem(self.file, where, NAMES[slot], message))

        wrong = len(problems)
        if op != "write":
            for slot, what in ((MODE, mode), (VALUE, value), (VALUES, items)):
                if what is not None:
                    problem(slot, f"applies to op: write only (this is op: {op})")
            if op == "read":
                if args is not None:
                    problem(ARGS, "applies to op: execute only (a read sends no args)")
                if res_id is not None and obj_inst_id is None:
                    problem(RES_ID, "a read of one resource needs obj_inst_id too")
            return None if len(problems) > wrong else (res_id, args, None, (), ())
        if args is not None:
            problem(ARGS, "applies to op: execute only (a write sends values)")
        pairs: list[tuple[int, str, bool]] = []
        if value is not None:  # a CSV cell
            items = ((None, str(value), True),)
        if isinstance(items, tuple):
            for res, text, infer in items:
                if res is None and res_id is None:
                    problem(RES_ID, "is required with value (the resource written)")
                elif res is None:
                    pairs.append((res_id, text, infer))
                elif res_id is not None:
                    problem(RES_ID, "values names the resources written: remove res_id")
                    break
                else:
                    pairs.append((res, text, infer))
        else:
            problem(VALUES, "is required for op: write (or res_id and value)")
        if len(problems) > wrong:
            return None
        encoded: list[WriteValue] = []
        notes: list[str] = []
        for res, text, infer in pairs:
            typed = self._typed_value(obj_id, res, text, infer)
            if isinstance(typed, Err):
                if not isinstance(typed.keep, WriteValue):
                    problem(VALUES if items is not None else VALUE, typed.message)
                    continue
                notes.append(typed.message)
                encoded.append(typed.keep)
            else:
                encoded.append(typed)
        if len(problems) > wrong:
            return None
        if too_big := body_problem(encoded):
            problem(VALUES if items is not None else VALUE, too_big)
            return None
        written = encoded[0].res_id if len(encoded) == 1 else None
        sent_mode = mode if isinstance(mode, int) else MODES["partial"]
        typed_values = tuple(encoded)
        return written, body_text(typed_values), sent_mode, tuple(notes), typed_values

    def _typed_value(self, obj_id: int, res_id: int, text: str, infer: bool) -> WriteValue | Err:
        """A value typed by the registry, once per distinct (resource, text)."""
        cache = self._typed
        key = (obj_id, res_id, text, infer)
        found = cache.get(key)
        if found is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            found = cache[key] = typed_value(obj_id, res_id, text, infer)
        return found


OPTIONAL = {  # the slots each operation can do without
    "execute": frozenset(),
    "write": frozenset({RES_ID}),
    "read": frozenset({OBJ_INST_ID, RES_ID}),
}


def required_message(field: str, op: str) -> str:
    """The message of a required field left out."""
    return "is required" if op == "execute" else f"is required for op: {op}"


def parse_op(text: str) -> object:
    """``op``: execute, write or read (ABSENT when blank)."""
    name = text.strip().lower()
    if not name:
        return ABSENT
    if name in OPS:
        return Op(name)
    hint = suggest(name, OPS) or " (use execute, write or read)"
    return Err(f"unknown operation {text.strip()!r}{hint}")


def parse_product(text: str) -> object:
    """A product's name, as the config's products: name it (checked against it by the CLI)."""
    name = text.strip()
    if not name:
        return ABSENT
    if not (name.isascii() and name.replace("-", "").replace("_", "").isalnum()):
        return Err(f"{name!r} is not a product name (letters, digits, - and _)")
    return name


def parse_mode(text: str) -> object:
    """A write's ``mode``: replace or partial (or OneNET's 1 and 2)."""
    name = text.strip().lower()
    if not name:
        return ABSENT
    if name in MODES:
        return MODES[name]
    if name in ("1", "2"):
        return int(name)
    hint = suggest(name, MODES) or " (use replace or partial)"
    return Err(f"unknown write mode {text.strip()!r}{hint}")


def parse_value(text: str) -> object:
    """A CSV cell's value (its type inferred, unless the registry knows the resource)."""
    return text if text.strip() else ABSENT


def parse_values(text: str) -> object:
    """``values:`` as the YAML reader carries it: [[res_id, text, infer], ...] (JSON); a YAML
    ``value:`` is one item without res_id (null)."""
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Err("must be a mapping of resource id to value, e.g. {5850: true, 5851: 40}")
    if type(items) is dict:  # an error found while reading, reported as written
        return Err(str(items.get("error", "cannot be read")))
    out: list[tuple[int | None, str, bool]] = []
    written: set[int] = set()
    for res, value, infer in items:
        if res is None:  # value: (the row's res_id is the resource)
            out.append((None, str(value), bool(infer)))
            continue
        t = str(res).strip()
        if not (t.isascii() and t.isdigit() and len(t) <= 5 and int(t) <= 65535):
            return Err(f"resource id {t!r} must be a whole number from 0 to 65535")
        if int(t) in written:  # 5851 and "5851": one resource, and OneNET would get both values
            return Err(f"resource {int(t)} is written twice")
        written.add(int(t))
        out.append((int(t), str(value), bool(infer)))
    if not out:
        return Err("names no resource: give resource id: value pairs")
    return tuple(out)
