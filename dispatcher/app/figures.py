"""The figures of a run's plan, worked out as the run works them out: a lane per product the job
names when the config has products (each at its own pace), what the ledger holds as done, and
what passed canaries cover; read from the ledger, never written.

May import: config, job, ledger.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from dispatcher.config import Settings
from dispatcher.job.model import Command, Job, Validation
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.store import FINAL, LedgerStore

__all__ = ["LaneFigures", "PlanFigures", "Uncovered", "each_command", "plan_figures"]


@dataclass(frozen=True, slots=True)
class LaneFigures:
    """One lane of the run: its product's commands, those the ledger holds as done, its pace."""

    product: str  # "": the commands that name none (the only lane of a config without products)
    total: int
    done: int
    rate: float | None  # the lane's limits.rate_per_second (None: no limit)
    concurrency: int
    # Rows (devices, with steps) no passed canary of the lane covers: its canary is drawn from
    # them (0: a passed canary covers every command left, none is sent); None: none passed yet.
    uncovered: int | None = None
    base_url: str = ""  # where the lane's commands go (onenet.base_url)

    @property
    def to_send(self) -> int:
        """Commands the lane would send (the ledger's final ones are skipped)."""
        return max(self.total - self.done, 0)


@dataclass(frozen=True, slots=True)
class PlanFigures:
    """What the plan is about: the lanes the run sends on (each product's own, at its own pace,
    all at once), where the ledger is, and what each command of a device is."""

    lanes: tuple[LaneFigures, ...]
    ledger: str
    ledger_exists: bool
    window: str | None  # the first command's window, as the job gives it (None: no window)
    steps: int = 1  # commands per device: a job with steps: sends each device every step

    @property
    def total(self) -> int:
        """The job's commands."""
        return sum(lane.total for lane in self.lanes)

    @property
    def done(self) -> int:
        """Those the ledger holds as final."""
        return sum(lane.done for lane in self.lanes)

    @property
    def to_send(self) -> int:
        """Commands a run would send (the ledger's final ones are skipped)."""
        return sum(lane.to_send for lane in self.lanes)

    @property
    def by_product(self) -> bool:
        """True when the config names products: a lane per product of the job."""
        return any(lane.product for lane in self.lanes)


def plan_figures(
    job: Job,
    checked: Validation,
    settings: Settings,
    path: LedgerAddress,
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
    return LaneFigures(
        product,
        total,
        done,
        limits.rate_per_second,
        limits.concurrency,
        uncovered,
        settings.onenet.base_url,
    )


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


def each_command(job: Job) -> Iterator[Command]:
    """The job's commands, the file closed however the reading ends."""
    commands = job.commands()
    try:
        yield from commands
    finally:
        commands.close()
