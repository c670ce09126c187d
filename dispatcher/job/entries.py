"""One YAML mapping of a job file (a target, the defaults, a step) read into an ``Entry``: a text
per field slot as written, with its line, and the problems of its shape; and the node helpers the
job's readers share (a node's line, key and text).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dispatcher.job.hints import unencodable
from dispatcher.job.rows import IMEI, NAMES, SLOT, TIMEOUT, TRIGGER, VALUE, VALUES, Problem
from dispatcher.job.values import suggest
from dispatcher.job.waits import WAIT_KEYS, WaitGiven, has_unit, read_wait

__all__ = ["FROM_STEP", "Entry", "entry", "names", "node_key", "node_line", "node_text"]

FROM_STEP = "from_step"
"""A target's key in a job with steps: the step the device starts at (1-based), the steps
before it not sent (a retry-failed job says where each device left off)."""
_NULL = "tag:yaml.org,2002:null"
_EMPTY = "is empty (null): give a value or leave the field out to use the default"


@dataclass(frozen=True, slots=True)
class Entry:
    """One target (or the defaults) as written: a text per field slot, and where each is."""

    line: int
    values: tuple[str | None, ...]
    lines: tuple[int, ...]
    problems: tuple[Problem, ...] = ()
    broken: bool = False  # a structural problem was reported: never a command
    refused: tuple[int, ...] = ()  # slots written but refused (null, a list): reported here
    wait: WaitGiven | None = None  # a step's (or the defaults') wait: as written (waits.py)
    from_step: int = 0  # a target of a job with steps: its first step sent (0: step 1)
    from_step_line: int = 0


def node_line(node: Node) -> int:
    """The line (from 1) where ``node`` starts."""
    return int(node.start_mark.line) + 1


def node_key(node: Node) -> str:
    """A mapping key as a field name; one that is not printable text is shown escaped."""
    if not isinstance(node, ScalarNode):
        return ""
    key = str(node.value).strip()
    return key if key.isprintable() else ascii(key)


def names(node: Node, source: str, problems: list[Problem]) -> tuple[str, ...]:
    """A list of column names (ignore_columns), lowercase; its problems go to ``problems``."""
    items = node.value if isinstance(node, SequenceNode) else None
    if items is None or not all(isinstance(item, ScalarNode) for item in items):
        message = "must be a list of column names, e.g. [note, comment]"
        problems.append(Problem(source, node_line(node), "ignore_columns", message))
        return ()
    names: list[str] = []
    for item in items:
        text = node_text(item)
        bad = "is empty (null): give a column name" if text is None else unencodable(text)
        if bad or text is None or not text.strip():
            problems.append(
                Problem(source, node_line(item), "ignore_columns", bad or "names no column")
            )
        else:
            names.append(text.strip().lower())
    return tuple(names)


def node_text(node: Node) -> str | None:
    """A scalar's text as written; None for a null or a list or mapping."""
    if isinstance(node, ScalarNode):
        if node.tag == _NULL and not node.style:
            return None
        return str(node.value)
    return None


def entry(node: Node, source: str, *, is_defaults: bool = False, what: str = "") -> Entry:
    """One target, the defaults, or (``what`` "step") a step of a job with steps:."""
    line = node_line(node)
    values: list[str | None] = [None] * len(NAMES)
    lines = [line] * len(NAMES)
    if isinstance(node, ScalarNode) and not is_defaults:  # a bare IMEI
        values[IMEI] = node_text(node)
        return Entry(line, tuple(values), tuple(lines))
    if not isinstance(node, MappingNode):
        if what == "step":
            problem = Problem(source, line, "steps", "each step must be a mapping (op: ...)")
        else:
            problem = Problem(source, line, "targets", "each target must be a mapping (imei: ...)")
        return Entry(line, tuple(values), tuple(lines), (problem,), broken=True)
    problems: list[Problem] = []
    refused: list[int] = []
    first: dict[str, int] = {}
    waits: list[tuple[str, Node, Node]] = []
    from_step = from_step_line = 0
    for knode, vnode in node.value:
        kline, vline = node_line(knode), node_line(vnode)
        name = node_key(knode)
        if name == FROM_STEP:
            if name in first:
                message = f"given twice (first on line {first[name]})"
                problems.append(Problem(source, kline, name, message))
            elif is_defaults:
                places = {"step": "not in a step", "top": "not at the top of the job"}
                message = f"belongs in a target, {places.get(what, 'not in defaults')}"
                problems.append(Problem(source, kline, name, message))
            else:
                first[name] = kline
                from_step, from_step_line = _step_number(vnode, source, problems), vline
            continue
        slot = SLOT.get(name)
        if name in WAIT_KEYS:
            if name in first:
                problems.append(
                    Problem(source, kline, name, f"given twice (first on line {first[name]})")
                )
            elif is_defaults and what in ("step", ""):
                first[name] = kline
                waits.append((name, knode, vnode))
            else:
                where = "at the top of the job" if what == "top" else "in a target"
                message = (
                    f"belongs to a step (what the next step waits for), or to defaults: of a job"
                    f" with steps:, not {where}"
                )
                problems.append(Problem(source, kline, name, message))
            continue
        if slot == VALUE:  # value: carried as a one-item values (res_id gives the resource)
            slot = VALUES
            if "values" in first:
                problems.append(Problem(source, kline, name, "give value or values, not both"))
                continue
        elif slot == VALUES and "value" in first:
            problems.append(Problem(source, kline, name, "give value or values, not both"))
            continue
        if slot is None:
            problems.append(
                Problem(source, kline, name or "?", f"unknown field{suggest(name, NAMES)}")
            )
        elif name in first:
            problems.append(
                Problem(source, kline, name, f"given twice (first on line {first[name]})")
            )
        elif is_defaults and slot == IMEI:
            where = {"step": "not in a step", "top": "not at the top of the job"}.get(
                what, "not in defaults"
            )
            problems.append(Problem(source, kline, name, f"belongs in each target, {where}"))
        else:
            first[name] = kline
            lines[slot] = vline
            if slot == VALUES:
                carried = _values(vnode, name, source, problems)
                if carried is None:
                    refused.append(slot)
                values[slot] = carried
            elif isinstance(vnode, ScalarNode):
                values[slot] = node_text(vnode)
                if values[slot] is None:  # null, ~ or nothing: a value left out by mistake
                    problems.append(Problem(source, vline, name, _EMPTY))
                    refused.append(slot)
            elif slot == TRIGGER and isinstance(vnode, SequenceNode):
                items = [node_text(item) or "?" for item in vnode.value]
                values[slot] = ",".join(items) or "[]"
            else:
                kind = "list" if isinstance(vnode, SequenceNode) else "mapping"
                problems.append(
                    Problem(source, vline, name, f"must be a single value, not a {kind}")
                )
                refused.append(slot)
    wait = None
    if is_defaults and what in ("step", ""):
        wait = _wait(values, lines, waits, source, problems)
    broken = any(not p.warning for p in problems) and not is_defaults
    return Entry(
        line,
        tuple(values),
        tuple(lines),
        tuple(problems),
        broken,
        tuple(refused),
        wait,
        from_step,
        from_step_line,
    )


def _wait(
    values: list[str | None],
    lines: list[int],
    waits: list[tuple[str, Node, Node]],
    source: str,
    problems: list[Problem],
) -> WaitGiven | None:
    """A step's (or the defaults') wait; a ``timeout:`` with a unit is taken out of the command
    field (OneNET's per-attempt seconds) as the wait's timeout."""
    unit: tuple[str, int] | None = None
    text = values[TIMEOUT]
    if text is not None and has_unit(text):
        unit = (text, lines[TIMEOUT])
        values[TIMEOUT] = None
    return read_wait(waits, unit, source, problems)


def _values(node: Node, name: str, source: str, problems: list[Problem]) -> str | None:
    """``value:`` or ``values:`` as the field rules read it: JSON [[res_id, text, infer], ...]
    (infer: the scalar is plain, so its type may be inferred); None after a problem."""
    line = node_line(node)
    items: list[tuple[str | None, Node]]
    if name == "value":
        items = [(None, node)]
    elif isinstance(node, MappingNode):
        items = [(node_text(k) if isinstance(k, ScalarNode) else "?", v) for k, v in node.value]
    else:
        message = "must be a mapping of resource id to value, e.g. {5850: true, 5851: 40}"
        problems.append(Problem(source, line, name, message))
        return None
    carried: list[tuple[str | None, str, bool]] = []
    for res, vnode in items:
        text = node_text(vnode)
        if not isinstance(vnode, ScalarNode) or text is None:
            kind = "list" if isinstance(vnode, SequenceNode) else "mapping"
            message = _EMPTY if isinstance(vnode, ScalarNode) else f"must be a value, not a {kind}"
            problems.append(Problem(source, node_line(vnode), name, message))
            return None
        carried.append((res, text, not vnode.style))
    return orjson.dumps(carried).decode()


def _step_number(node: Node, source: str, problems: list[Problem]) -> int:
    """``from_step:``'s value: a step number (1, 2, ...); 0 after a problem."""
    text = node_text(node)
    if text is not None and isinstance(node, ScalarNode) and not node.style:
        number = text.strip()
        if number.isascii() and number.isdigit() and int(number) >= 1:
            return int(number)
    shown = "empty (null)" if text is None else repr(text)
    message = f"is {shown}: give the number of the step the device starts at (1, 2, ...)"
    problems.append(Problem(source, node_line(node), FROM_STEP, message))
    return 0
