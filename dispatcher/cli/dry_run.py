"""``run --dry-run``: the plan worked out as the run works it out, from the job, the config and the
ledger (read, never written), and nothing sent. Each product of the job is a lane at its own pace;
an edit the run would refuse is refused here the same way (the same comparison, the same message,
exit 1); one it would take is counted in what is to send."""

from __future__ import annotations

import itertools
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from dispatcher.cli import console
from dispatcher.cli.binding_view import tell_binding, tell_refused_edit
from dispatcher.cli.exits import EXIT_OK, fail
from dispatcher.cli.plan_view import LaneFigures, PlanFigures, plan_lines, show_plan
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError
from dispatcher.job.model import Command, Job, Validation
from dispatcher.job.plan import Plan
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import FINAL, LedgerStore
from dispatcher.run.binding import JobChangedError, preview_binding

__all__ = ["plan_figures", "show_dry_run"]


def show_dry_run(
    job: Job,
    checked: Validation,
    plan: Plan,
    path: Path,
    settings: Settings,
    now: float,
    *,
    accept_changes: bool,
) -> NoReturn:
    """Show the plan and exit 0; or exit as the run would stop before sending (an edit it
    refuses, another job's ledger), with its message."""
    console.validation(job, checked)
    ledger = Ledger.open(path, read_only=True) if path.exists() else None
    try:
        edited: frozenset[str] = frozenset()
        if ledger is not None:
            edited = _binding(ledger, job, checked, accept_changes)
        figures = plan_figures(
            job, checked, settings, path, ledger, edited=edited,
            canary=plan.rollout.canary is not None,
        )  # fmt: skip
    finally:
        if ledger is not None:
            ledger.close()
    show_plan(plan_lines(plan, figures, now))
    console.note("dry run: nothing was sent, and nothing was asked of OneNET")
    sys.exit(EXIT_OK)


def _binding(
    ledger: LedgerStore, job: Job, checked: Validation, accept_changes: bool
) -> frozenset[str]:
    """What binding the ledger to the job would say (exits as the run would when it refuses);
    the keys of the edited commands whose ledger version is final: the run sends them again."""
    try:
        binding = preview_binding(
            ledger, job, fingerprint=checked.fingerprint, accept_changes=accept_changes
        )
    except JobChangedError as exc:
        tell_refused_edit(exc)
        fail(str(exc))
    except DispatcherError as exc:
        fail(str(exc))
    diff = binding.diff
    tell_binding(job, replace(binding, diff=None if diff is None or diff.same else diff))
    if diff is None or not diff.changed:
        return frozenset()
    every = ledger.compare(_each(job), apply=False, sample=diff.changed)
    return frozenset(c.command.key for c in every.changed_examples if c.row.status in FINAL)


def plan_figures(
    job: Job,
    checked: Validation,
    settings: Settings,
    path: Path,
    ledger: LedgerStore | None,
    *,
    edited: frozenset[str] = frozenset(),
    canary: bool = False,
) -> PlanFigures:
    """The plan's figures: a lane per product the job names when the config has products (each
    with its own settings), else one; what the ledger holds as done (``edited``: not done);
    with a ``canary``, what passed canaries cover."""
    done = Counter[str]() if ledger is None else _done_by_product(ledger, job, edited)
    steps = len(job.steps) or 1
    covered = Uncovered(ledger, job, steps, canary)
    if settings.products:
        lanes = tuple(
            _lane(settings.for_product(name), name, checked.products[name], done[name],
                  covered.rows(name))
            for name in sorted(checked.products)
        )  # fmt: skip
    else:
        lanes = (_lane(settings, "", checked.commands, done.total(), covered.rows(None)),)
    window = job.plan.window
    shown = None if window is None else f"daily {window.text}"
    return PlanFigures(lanes, str(path), ledger is not None, shown, steps=steps)


def _lane(
    settings: Settings, product: str, total: int, done: int, uncovered: int | None
) -> LaneFigures:
    limits = settings.limits
    return LaneFigures(product, total, done, limits.rate_per_second, limits.concurrency, uncovered)


class Uncovered:
    """What a lane's passed canaries cover, as the run's gate works it out (run/gating.py):
    the rows with a command to send that none covers (a lane is a product, or None: the only
    one). Read from the ledger, never written: a command it does not hold is not covered."""

    def __init__(self, ledger: LedgerStore | None, job: Job, steps: int, canary: bool) -> None:
        self.ledger, self.job, self.steps, self.canary = ledger, job, steps, canary

    def rows(self, product: str | None) -> int | None:
        """The lane's rows no passed canary covers; None: no canary of it passed (or none is
        asked for)."""
        ledger = self.ledger
        if not self.canary or ledger is None or not ledger.canary_covered_before(product):
            return None
        rows: set[int] = set()
        commands = self.job.commands()
        n = 0
        try:
            while batch := list(itertools.islice(commands, 1000)):
                mine = [(n + i, c) for i, c in enumerate(batch)
                        if product is None or c.product == product]  # fmt: skip
                found = ledger.uncovered([c.key for _, c in mine])
                rows.update(i // self.steps for i, c in mine if c.key in found)
                n += len(batch)
        finally:
            commands.close()
        return len(rows)


def _done_by_product(ledger: LedgerStore, job: Job, edited: frozenset[str]) -> Counter[str]:
    """How many of the job's commands of each product the ledger holds as final (and so would
    not be sent), an edited one aside."""
    done = Counter[str]()
    commands = job.commands()
    try:
        while batch := list(itertools.islice(commands, 1000)):
            rows = {r.key: r for r in ledger.rows_of([c.key for c in batch])}
            for command in batch:
                row = rows.get(command.key)
                if row is None or row.retired is not None or command.key in edited:
                    continue
                if row.status in FINAL:
                    done[command.product] += 1
    finally:
        commands.close()
    return done


def _each(job: Job) -> Iterator[Command]:
    """The job's commands, the file closed however the reading ends."""
    commands = job.commands()
    try:
        yield from commands
    finally:
        commands.close()
