"""A job with ``steps:``: each step's fields laid over the job's defaults, and one row checked
for every step (a device's commands, each knowing the step before it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from dispatcher.job.entries import Entry
from dispatcher.job.fields import RowChecker
from dispatcher.job.rows import Checked, Problem

__all__ = ["check_entry", "each_step", "overlay", "target_steps"]


def overlay(
    d: Entry, step: Entry
) -> tuple[tuple[str | None, ...], tuple[int, ...], tuple[int, ...]]:
    """A step's fields over the job's defaults: (texts, lines, refused slots)."""
    values = tuple(s if s is not None else v for s, v in zip(step.values, d.values, strict=True))
    lines = tuple(
        sl if s is not None else dl
        for s, sl, dl in zip(step.values, step.lines, d.lines, strict=True)
    )
    given = {slot for slot, s in enumerate(step.values) if s is not None}
    refused = (*step.refused, *(slot for slot in d.refused if slot not in given))
    return values, lines, refused


def check_entry(checker: RowChecker, entry: Entry) -> tuple[Checked | None, list[Problem] | None]:
    """One YAML target checked by ``checker``."""
    return checker.check(entry.values, entry.line, entry.line, entry.lines)


def each_step(
    checkers: list[RowChecker],
    check: Callable[[RowChecker], tuple[Checked | None, list[Problem] | None]],
) -> tuple[list[Checked], list[Problem]]:
    """One row checked for every step: its commands (each knowing the step before) and its
    problems, each said once."""
    rows: list[Checked] = []
    problems: dict[Problem, None] = {}
    after: Checked | None = None
    for checker in checkers:
        row, found = check(checker)
        if found:
            problems.update(dict.fromkeys(found))
        if row is not None:
            if after is not None:
                row = row._replace(after=after)
            rows.append(row)
            after = row
    return rows, list(problems)


def target_steps(checkers: list[RowChecker], entry: Entry) -> tuple[list[Checked], list[Problem]]:
    """A YAML target's commands, one per step from its ``from_step`` (the steps before it are
    not its commands, and its first step has no step before it), and their problems."""
    sent = checkers[entry.from_step - 1 :] if entry.from_step else checkers
    return each_step(sent, functools.partial(check_entry, entry=entry))
