"""A job with ``steps:``: each step's fields laid over the job's defaults, and one row checked
for every step (a device's commands, each knowing the step before it); a target's ``from_step:``
and each step's product checked against the steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

from dispatcher.job.entries import FROM_STEP, Entry
from dispatcher.job.fields import RowChecker
from dispatcher.job.rows import PRODUCT, Checked, Problem

__all__ = [
    "check_entry",
    "each_step",
    "overlay",
    "starts_checked",
    "step_products",
    "target_steps",
]


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


def starts_checked(target: Entry, steps: int, source: str) -> Entry:
    """A target whose ``from_step:`` names no step of the job: its problem added, no command."""
    if not target.from_step:
        return target
    if not steps:
        message = "applies to a job with steps: only (this job has none)"
    elif target.from_step > steps:
        message = f"the job has {steps} step{'s' if steps != 1 else ''}: give 1 to {steps}"
    else:
        return target
    problem = Problem(source, target.from_step_line, FROM_STEP, message)
    return replace(target, problems=(*target.problems, problem), broken=True, from_step=0)


def step_products(defaults: Entry, steps: list[Entry], source: str) -> list[Problem]:
    """A step sent through another product than step 1: refused, at its line. Each product is
    a lane of its own, and lanes do not wait for each other, so a step could not be ordered
    after the step before it (it would be held back on every run)."""

    def product(step: Entry) -> str:
        text = (
            step.values[PRODUCT] if step.values[PRODUCT] is not None else defaults.values[PRODUCT]
        )
        return (text or "").strip()

    def named(name: str) -> str:
        return f"product {name}" if name else "the default product"

    problems: list[Problem] = []
    first = product(steps[0]) if steps else ""
    for number, step in enumerate(steps[1:], 2):
        if (name := product(step)) != first:
            line = step.lines[PRODUCT] if step.values[PRODUCT] is not None else step.line
            message = (
                f"step {number} goes through {named(name)}, step 1 through {named(first)}: a"
                " device's steps go through one product (give product: on the job, in defaults:"
                " or on each target)"
            )
            problems.append(Problem(source, line, "product", message))
    return problems
