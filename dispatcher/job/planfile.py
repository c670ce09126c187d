"""A YAML job's ``rollout:``, ``schedule:`` and ``window:`` sections into a Plan.

Every problem names the line of the value (of the key, when the key is unknown or a value is
missing) and the key by its path (``rollout.canary.size``); all are reported, not only the first.
The value rules are plan.py's (shared with the flags of ``dispatcher run``) and times.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dispatcher.job.entries import node_key, node_line, node_text
from dispatcher.job.plan import (
    Abort,
    Canary,
    Plan,
    Ramp,
    Rollout,
    check_value,
    parse_canary_size,
    parse_canary_then,
    parse_canary_wait,
    parse_count,
    parse_duration,
    parse_number,
)
from dispatcher.job.rows import Problem
from dispatcher.job.values import suggest
from dispatcher.times import (
    DailyWindow,
    format_onenet,
    parse_timespec,
    parse_window,
    parse_zone,
)

__all__ = ["PlanFile", "read_plan", "start_passed"]

_KEYS = {
    "rollout": ("canary", "ramp", "abort"),
    "rollout.canary": ("size", "wait", "timeout", "then"),
    "rollout.ramp": ("start_per_second", "factor", "every_accepted"),
    "rollout.abort": ("max_failure_rate", "min_decided", "on_errnos"),
    "schedule": ("start_at",),
    "window": ("daily", "tz"),
}
_EMPTY = "is empty (null): give a value, or leave the key out"
_T = TypeVar("_T")
_N = TypeVar("_N", int, float)


@dataclass(frozen=True, slots=True)
class PlanFile:
    """What the sections say, and what is wrong with them."""

    plan: Plan
    problems: tuple[Problem, ...]
    start_at_line: int = 0  # of schedule.start_at, for its check against the start


def read_plan(sections: Iterable[tuple[str, Node, int]], source: str) -> PlanFile:
    """The Plan of the sections given as (key, value node, line of the key)."""
    reader = _Reader(source)
    plan = Plan()
    for key, node, line in sections:
        if key == "rollout":
            plan = replace(plan, rollout=reader.rollout(node, line))
        elif key == "schedule":
            plan = replace(plan, start_at=reader.schedule(node, line))
        elif key == "window":
            plan = replace(plan, window=reader.window(node, line))
    return PlanFile(plan, tuple(reader.problems), reader.start_at_line)


def start_passed(plan: Plan, source: str, line: int, at: datetime, strict: bool) -> list[Problem]:
    """A ``schedule.start_at`` that has passed at ``at``: a warning (whoever starts the job
    decides), an error when ``strict``."""
    start_at = plan.start_at
    if start_at is None or start_at >= at:
        return []
    message = (
        f"{format_onenet(start_at)} (UTC+8) has passed at the start checked against"
        f" ({format_onenet(at)} UTC+8)"
    )
    return [Problem(source, line, "schedule.start_at", message, not strict)]


Fields = dict[str, tuple[Node, int]]
"""A section's keys: each one's value and the line of the key."""


class _Reader:
    """Reads the sections of one file, collecting problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.start_at_line = 0

    def problem(self, line: int, path: str, message: str, *, warning: bool = False) -> None:
        self.problems.append(Problem(self.source, line, path, message, warning))

    def mapping(self, node: Node, line: int, path: str, shape: str) -> Fields | None:
        """The keys of the section at ``path`` (its key on ``line``); None if not a mapping."""
        if not isinstance(node, MappingNode):
            empty = isinstance(node, ScalarNode) and node_text(node) is None
            self.problem(line, path, _EMPTY if empty else f"must be {shape}")
            return None
        keys = _KEYS[path]
        found: Fields = {}
        for knode, vnode in node.value:
            key, kline = node_key(knode), node_line(knode)
            if key not in keys:
                hint = suggest(key, keys) or f" (use {', '.join(keys)})"
                self.problem(kline, f"{path}.{key or '?'}", f"unknown field{hint}")
            elif key in found:
                first = found[key][1]
                self.problem(kline, f"{path}.{key}", f"given twice (first on line {first})")
            else:
                found[key] = (vnode, kline)
        return found

    def value(self, node: Node, path: str, parse: Callable[[str], _T]) -> _T | None:
        """A scalar parsed; None (reported) if it is null, not a scalar, or wrong."""
        text = node_text(node)
        if text is None:
            what = "a list" if isinstance(node, SequenceNode) else "a mapping"
            single = isinstance(node, ScalarNode)
            self.problem(
                node_line(node), path, _EMPTY if single else f"must be one value, not {what}"
            )
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.problem(node_line(node), path, str(exc))
            return None

    def get(self, fields: Fields, key: str, path: str, parse: Callable[[str], _T]) -> _T | None:
        """The value of ``key`` if given and right (a problem if wrong)."""
        if key not in fields:
            return None
        return self.value(fields[key][0], f"{path}.{key}", parse)

    def required(self, fields: Fields, key: str, line: int, path: str, what: str) -> bool:
        """True if ``key`` is given; else a problem at the section's ``line``."""
        if key in fields:
            return True
        self.problem(line, f"{path}.{key}", f"is required: {what}")
        return False

    def rollout(self, node: Node, line: int) -> Rollout:
        fields = self.mapping(node, line, "rollout", "a mapping of canary:, ramp: and abort:")
        if fields is None:
            return Rollout()
        canary = self.canary(*fields["canary"]) if "canary" in fields else None
        ramp = self.ramp(*fields["ramp"]) if "ramp" in fields else None
        abort = self.abort(*fields["abort"]) if "abort" in fields else None
        return Rollout(canary, ramp, abort)

    def canary(self, node: Node, line: int) -> Canary | None:
        path = "rollout.canary"
        if isinstance(node, ScalarNode) and node_text(node) is not None:  # canary: 50 / "2%"
            size = self.value(node, path, parse_canary_size)
            return None if size is None else Canary(size=size[0], percent=size[1])
        fields = self.mapping(node, line, path, "a size (50, or 2%) or a mapping with size:")
        if fields is None:
            return None
        canary = Canary()
        what = "a number of commands, or a share such as 2%"
        if self.required(fields, "size", line, path, what) and (
            size := self.get(fields, "size", path, parse_canary_size)
        ):
            canary = replace(canary, size=size[0], percent=size[1])
        if wait := self.get(fields, "wait", path, parse_canary_wait):
            canary = replace(canary, wait=wait)
        timeout = self.get(fields, "timeout", path, parse_duration)
        if timeout is not None:
            canary = replace(canary, timeout_s=timeout)
        if then := self.get(fields, "then", path, parse_canary_then):
            canary = replace(canary, then=then)
        if timeout is not None and canary.wait != "delivered":
            message = "applies only with wait: delivered (waiting for the devices); it is ignored"
            self.problem(node_line(fields["timeout"][0]), f"{path}.timeout", message, warning=True)
        return canary if canary.size or canary.percent else None

    def ramp(self, node: Node, line: int) -> Ramp | None:
        path = "rollout.ramp"
        fields = self.mapping(node, line, path, "a mapping with start_per_second:")
        if fields is None:
            return None
        start = self.get(
            fields, "start_per_second", path, _ranged("start_per_second", parse_number)
        )
        factor = self.get(fields, "factor", path, _ranged("factor", parse_number))
        every = self.get(fields, "every_accepted", path, _ranged("every_accepted", parse_count))
        what = "the first pace, in commands per second"
        if not self.required(fields, "start_per_second", line, path, what) or start is None:
            return None
        ramp = Ramp(start_per_second=start)
        if factor is not None:
            ramp = replace(ramp, factor=factor)
        return ramp if every is None else replace(ramp, every_accepted=every)

    def abort(self, node: Node, line: int) -> Abort | None:
        path = "rollout.abort"
        shape = "a mapping of max_failure_rate:, min_decided: and on_errnos:"
        fields = self.mapping(node, line, path, shape)
        if fields is None:
            return None
        rate = self.get(fields, "max_failure_rate", path, _ranged("max_failure_rate", _rate))
        decided = self.get(fields, "min_decided", path, _ranged("min_decided", parse_count))
        errnos = self.errnos(*fields["on_errnos"]) if "on_errnos" in fields else ()
        if "max_failure_rate" not in fields and "on_errnos" not in fields:
            self.problem(line, path, "gives no rule: set max_failure_rate or on_errnos")
            return None
        if "min_decided" in fields and "max_failure_rate" not in fields:
            message = "applies to max_failure_rate, which is not set; it is ignored"
            where = node_line(fields["min_decided"][0])
            self.problem(where, f"{path}.min_decided", message, warning=True)
        abort = Abort(max_failure_rate=rate, on_errnos=frozenset(errnos))
        return abort if decided is None else replace(abort, min_decided=decided)

    def errnos(self, node: Node, line: int) -> tuple[int, ...]:
        path = "rollout.abort.on_errnos"
        if not isinstance(node, SequenceNode):
            empty = isinstance(node, ScalarNode) and node_text(node) is None
            message = _EMPTY if empty else "must be a list of errnos, e.g. [3, 5006]"
            self.problem(node_line(node), path, message)
            return ()
        found = (self.value(item, path, _ranged("on_errnos", parse_count)) for item in node.value)
        return tuple(errno for errno in found if errno is not None)

    def schedule(self, node: Node, line: int) -> datetime | None:
        fields = self.mapping(node, line, "schedule", "a mapping with start_at:")
        if fields is None or not self.required(fields, "start_at", line, "schedule", "a time"):
            return None
        self.start_at_line = node_line(fields["start_at"][0])
        spec = self.get(fields, "start_at", "schedule", parse_timespec)
        if spec is not None and spec.at is None:
            message = (
                f"{spec.text} is not a moment: give an absolute time such as"
                " 2026-12-01T02:00:00 (UTC+8 unless a zone is given)"
            )
            self.problem(self.start_at_line, "schedule.start_at", message)
            return None
        return None if spec is None else spec.at

    def window(self, node: Node, line: int) -> DailyWindow | None:
        if isinstance(node, ScalarNode) and node_text(node) is not None:  # window: 02:00-06:00
            return self.value(node, "window", parse_window)
        fields = self.mapping(node, line, "window", "a mapping with daily: (and tz:)")
        if fields is None or not self.required(fields, "daily", line, "window", "e.g. 02:00-06:00"):
            return None
        zone = self.get(fields, "tz", "window", _zone_name)
        window = self.get(fields, "daily", "window", lambda text: parse_window(text, zone))
        return None if zone is None and "tz" in fields else window


def _ranged(key: str, parse: Callable[[str], _N]) -> Callable[[str], _N]:
    """``parse``, then the range of the rollout key ``key`` (plan.check_value)."""

    def parse_in_range(text: str) -> _N:
        value = parse(text)
        check_value(key, value)
        return value

    return parse_in_range


def _rate(text: str) -> float:
    """A failure rate: a fraction; a percentage gets a hint."""
    if text.strip().endswith("%"):
        raise ValueError(
            f"must be a fraction from 0 to 1 (write 0.05 for 5%), got {text.strip()!r}"
        )
    return parse_number(text)


def _zone_name(text: str) -> str:
    """The zone as written, once parse_zone takes it."""
    parse_zone(text)
    return text
