"""A YAML job's ``verify:`` section: what a device that took the job reads, and where from.

``verify: {read: 3/0/3, expect: "2.4.1"}`` (or ``one_of: [...]`` for several good values), with
a ``timeout`` (how long after a device's last step was accepted it may stay unseen or not yet
before verify calls it final; default: the window of the read) and a ``source``: ``command`` (the
value a read command of the job brought back, its ``cmd_result``) or ``datapoints`` (the legacy
platform's latest datapoint of datastream ``<obj>_<inst>_<res>``; nothing is sent to devices).

Every problem names the file, the line and the key (``verify.expect``). With ``source: command``
some step (or, in a job without steps, some command) must read the resource: a read of its
instance or its whole object covers it too (``covers``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dispatcher.job.entries import node_key, node_line, node_text
from dispatcher.job.plan import parse_duration
from dispatcher.job.rows import OBJ_ID, OBJ_INST_ID, OP, RES_ID, Problem
from dispatcher.job.steps import overlay
from dispatcher.job.values import suggest
from dispatcher.job.yamlfile import VERIFY_KEY, YamlJob

__all__ = [
    "VerifySource",
    "VerifySpec",
    "check_coverage",
    "covers",
    "read_verify",
    "uncovered_problem",
    "verify_of",
]

_KEYS: Final = ("read", "expect", "one_of", "timeout", "source")
_PATH: Final = re.compile(r"\s*(\d{1,5})\s*/\s*(\d{1,5})\s*/\s*(\d{1,5})\s*")
_EMPTY: Final = "is empty (null): give a value, or leave the key out"
_T = TypeVar("_T")
_Problem = Callable[[int, str, str], None]  # (line, key under verify., message)


class VerifySource(StrEnum):
    """Where verify reads each device's value."""

    COMMAND = "command"  # a read command's cmd_result (the job's own reads)
    DATAPOINTS = "datapoints"  # GET /devices/datapoints (legacy platform), nothing sent


@dataclass(frozen=True, slots=True)
class VerifySpec:
    """What a device on target reads: the resource, the good values, the timeout, the source."""

    obj_id: int
    obj_inst_id: int
    res_id: int
    expect: tuple[str, ...]  # the values a device on target reads (one: expect:; more: one_of:)
    source: VerifySource = VerifySource.COMMAND
    timeout_s: float | None = None  # None: the read's window (a datapoint: the last step's)
    line: int = 0  # of verify:
    read_line: int = 0  # of verify.read

    @property
    def read(self) -> str:
        """The resource as the job writes it: ``3/0/3``."""
        return f"{self.obj_id}/{self.obj_inst_id}/{self.res_id}"

    @property
    def datastream(self) -> str:
        """The resource's datastream on the legacy platform: ``3_0_3``."""
        return f"{self.obj_id}_{self.obj_inst_id}_{self.res_id}"

    def matches(self, value: str) -> bool:
        """Whether ``value`` is a good one (equality of text, surrounding blanks aside)."""
        return value.strip() in self.expect


def covers(spec: VerifySpec, obj_id: int, obj_inst_id: int | None, res_id: int | None) -> bool:
    """Whether a read of ``obj_id[/obj_inst_id[/res_id]]`` brings back the spec's resource."""
    if obj_id != spec.obj_id:
        return False
    if obj_inst_id is None:
        return True
    return obj_inst_id == spec.obj_inst_id and (res_id is None or res_id == spec.res_id)


def uncovered_problem(spec: VerifySpec, source: str, what: str = "step") -> Problem:
    """The problem of a ``source: command`` verify that no read of the job covers."""
    message = (
        f"{spec.read}: no {what} reads it; add a read step of {spec.read} (or"
        f" {spec.obj_id}/{spec.obj_inst_id}, or {spec.obj_id}), or use source: datapoints"
    )
    return Problem(source, spec.read_line, "verify.read", message)


def entry_covers(spec: VerifySpec, values: tuple[str | None, ...]) -> bool | None:
    """Whether a step's (or a target's) field texts read the spec's resource; None when a
    value cannot be told (a wrong number: that problem is the field rules' to report)."""
    op = (values[OP] or "execute").strip().lower()
    if op != "read":
        return False
    try:
        obj = int(values[OBJ_ID] or "")
        inst = None if values[OBJ_INST_ID] in (None, "") else int(values[OBJ_INST_ID] or "")
        res = None if values[RES_ID] in (None, "") or inst is None else int(values[RES_ID] or "")
    except ValueError:
        return None
    return covers(spec, obj, inst, res)


def check_coverage(
    spec: VerifySpec, entries: Iterable[tuple[str | None, ...]], source: str, what: str
) -> list[Problem]:
    """No problem when one of ``entries`` (field texts, defaults laid over) reads the resource,
    or one cannot be told; else the one problem (``uncovered_problem``)."""
    if spec.source is not VerifySource.COMMAND:
        return []
    for values in entries:
        if entry_covers(spec, values) is not False:
            return []
    return [uncovered_problem(spec, source, what)]


def read_verify(node: Node, line: int, source: str) -> tuple[VerifySpec | None, list[Problem]]:
    """The ``verify:`` section (its key on ``line``) read into a spec, with its problems; None
    when it cannot be used."""
    problems: list[Problem] = []

    def problem(at: int, key: str, message: str) -> None:
        problems.append(Problem(source, at, f"verify.{key}" if key else "verify", message))

    if not isinstance(node, MappingNode):
        empty = isinstance(node, ScalarNode) and node_text(node) is None
        shape = "a mapping of read:, expect: (or one_of:), timeout: and source:"
        problem(line, "", _EMPTY if empty else f"must be {shape}")
        return None, problems
    fields: dict[str, tuple[Node, int]] = {}
    for knode, vnode in node.value:
        key, kline = node_key(knode), node_line(knode)
        if key not in _KEYS:
            hint = suggest(key, _KEYS) or f" (use {', '.join(_KEYS)})"
            problem(kline, key or "?", f"unknown field{hint}")
        elif key in fields:
            problem(kline, key, f"given twice (first on line {fields[key][1]})")
        else:
            fields[key] = (vnode, kline)
    ids = _read(fields, line, problem)
    expect = _expected(fields, line, problem)
    timeout = _scalar(fields, "timeout", problem, parse_duration)
    chosen = _scalar(fields, "source", problem, _source)
    if ids is None or expect is None or problems:
        return None, problems
    read_line = node_line(fields["read"][0])
    spec = VerifySpec(*ids, expect, chosen or VerifySource.COMMAND, timeout, line, read_line)
    return spec, problems


def verify_of(y: YamlJob, source: str) -> tuple[VerifySpec | None, list[Problem]]:
    """The job's ``verify:`` and its problems; with ``source: command``, a read of the resource
    must be among the steps (without steps: among the targets; a targets_csv's rows are checked
    against the ledger's commands when verify runs)."""
    found = [(node, line) for key, node, line in y.sections if key == VERIFY_KEY]
    if not found:
        return None, []
    spec, problems = read_verify(*found[0], source)
    if spec is None:
        return None, problems
    if y.steps:
        entries = [overlay(y.defaults, step)[0] for step in y.steps]
        problems += check_coverage(spec, entries, source, "step")
    elif y.targets_csv is None:
        entries = [overlay(y.defaults, target)[0] for target in y.targets]
        problems += check_coverage(spec, entries, source, "command of the job")
    return spec, problems


def _scalar(
    fields: dict[str, tuple[Node, int]], key: str, problem: _Problem, parse: Callable[[str], _T]
) -> _T | None:
    if key not in fields:
        return None
    vnode, kline = fields[key]
    text = node_text(vnode)
    if text is None or not isinstance(vnode, ScalarNode):
        problem(node_line(vnode) or kline, key, _EMPTY if text is None else "must be one value")
        return None
    try:
        return parse(text)
    except ValueError as exc:
        problem(node_line(vnode), key, str(exc))
        return None


def _source(text: str) -> VerifySource:
    try:
        return VerifySource(text.strip().lower())
    except ValueError:
        raise ValueError(f"must be command or datapoints, got {text.strip()!r}") from None


def _ids(text: str) -> tuple[int, int, int]:
    m = _PATH.fullmatch(text)
    if m is None:
        raise ValueError(
            f"must be a resource as object/instance/resource, such as 3/0/3, got {text.strip()!r}"
        )
    obj, inst, res = (int(g) for g in m.groups())
    if obj > 65534 or inst > 65534 or res > 65534:
        raise ValueError(f"ids are 0..65534, got {text.strip()!r}")
    return obj, inst, res


def _read(
    fields: dict[str, tuple[Node, int]], line: int, problem: _Problem
) -> tuple[int, int, int] | None:
    if "read" not in fields:
        problem(line, "read", "is required: the resource to read, such as 3/0/3")
        return None
    return _scalar(fields, "read", problem, _ids)


def _expected(
    fields: dict[str, tuple[Node, int]], line: int, problem: _Problem
) -> tuple[str, ...] | None:
    if ("expect" in fields) == ("one_of" in fields):
        given = "both are given" if "expect" in fields else "neither is given"
        at = fields["one_of"][1] if "one_of" in fields else line
        problem(at, "expect", f"give exactly one of expect: (a value) or one_of: (a list); {given}")
        return None
    if "expect" in fields:
        value = _scalar(fields, "expect", problem, str.strip)
        return None if value is None else (value,)
    vnode, kline = fields["one_of"]
    if not isinstance(vnode, SequenceNode) or not vnode.value:
        problem(node_line(vnode) or kline, "one_of", 'must be a list of values: ["2.4.1", "2.4.2"]')
        return None
    found: list[str] = []
    for item in vnode.value:
        text = node_text(item)
        if text is None or not isinstance(item, ScalarNode):
            problem(node_line(item), "one_of", "each item must be one value (text)")
            return None
        found.append(text.strip())
    return tuple(dict.fromkeys(found))
