"""A dry run of a job: every problem, the counts, the window and the fingerprint.

``validate_job`` streams the job's checked rows once (``Job.checked``), so a million-row fleet is
validated in constant memory; duplicates and devices are counted in a temporary on-disk table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dispatcher.job.resources import Hits, ResourceCheck
from dispatcher.job.rows import Checked, PastTimes, Problem
from dispatcher.job.seen import SeenKeys
from dispatcher.model.command import fingerprint_part, job_fingerprint, key_tail
from dispatcher.times import start_of

__all__ = ["CheckedRows", "Validation", "validate_job"]


class CheckedRows(Protocol):
    """What validation reads of a job: its name and its checked rows (``Job`` is one)."""

    @property
    def name(self) -> str: ...

    def checked(
        self, at: datetime, strict: bool, past_times: PastTimes, seen: SeenKeys | None
    ) -> Iterator[Checked | Problem]: ...


_UNSEEN = object()


@dataclass(frozen=True, slots=True)
class Validation:
    """What a dry run found: counts, the time window the commands span, and a fingerprint."""

    commands: int
    devices: int
    errors: int
    warnings: int
    # The earliest valid_time (or the start checked against) and the latest expired_time; a daily
    # window's are those of its next window at the start (an open one's from the start).
    window_start: datetime | None
    window_end: datetime | None
    fingerprint: str  # hex: the job's name and its commands, in any order (job_fingerprint)
    # The first distinct (op, obj_id, obj_inst_id, res_id) of the commands, in job order, and how
    # many more there are (at least, past resources.DISTINCT_CAP): what the summary names.
    resources: tuple[tuple[str, int, int | None, int | None], ...] = field(
        default=(), compare=False
    )
    more_resources: int = field(default=0, compare=False)
    # Commands by product ("": none named), and where each product is first named.
    products: dict[str, int] = field(default_factory=dict, compare=False)
    product_at: dict[str, tuple[str, int]] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return self.errors == 0


def _ignore(problem: Problem) -> None:
    """Drop a problem (the default listener)."""


def validate_job(
    job: CheckedRows,
    *,
    at: datetime | None = None,
    strict: bool = False,
    past_times: PastTimes = "error",
    on_problem: Callable[[Problem], None] = _ignore,
) -> Validation:
    """Check every command for a start at ``at`` (None: now); each problem goes to on_problem.

    ``past_times`` is as for ``Job.scan``. An operation the LwM2M registry says cannot work
    (resources.py) is a warning (an error with ``strict``, and the command not counted).
    """
    start = start_of(at)
    commands = errors = warnings = 0
    total = 0  # the sum of the commands' fingerprint parts
    first: datetime | None = None
    last: datetime | None = None
    # Rows of a fleet share their checked times (one object per distinct text): each is weighed
    # against the window once per run of rows, not once per row.
    valid_seen: object = _UNSEEN
    expired_seen: object = _UNSEEN
    digests: dict[tuple[bytes, bytes], int] = {}  # fingerprint digests of the distinct rows
    resources = ResourceCheck(strict)
    # Rows sharing their ids share one key_tail object (fields.py): looked up once per run.
    tail_seen: object = _UNSEEN
    hits: tuple[Hits, ...] = ()
    products: dict[str, int] = {}
    product_at: dict[str, tuple[str, int]] = {}
    with SeenKeys() as seen:
        for item in job.checked(start, strict, past_times, seen):
            if type(item) is Checked:
                if item.key_tail is not tail_seen:
                    tail_seen = item.key_tail
                    hits = resources.see(item)
                if hits:
                    for hit in hits:
                        problem = resources.hit(hit, item.source, item.line)
                        if problem is not None:
                            errors, warnings = _count(problem, errors, warnings)
                            on_problem(problem)
                    if strict:
                        continue
                commands += 1
                product = item.product
                if product in products:
                    products[product] += 1
                else:
                    products[product] = 1
                    product_at[product] = (item.source, item.line)
                valid, expired = item.valid, item.expired
                if valid is not valid_seen:
                    valid_seen = valid
                    begin = start if valid is None else valid.when
                    if first is None or begin < first:
                        first = begin
                if expired is not expired_seen:
                    expired_seen = expired
                    if last is None or expired.when > last:
                        last = expired.when
                tails = (item.key_tail, item.sent_tail)
                if item.occurrence:  # a copy (allow_duplicates): its key differs
                    tail = key_tail(
                        item.obj_id, item.obj_inst_id, item.res_id, item.args, item.occurrence,
                        item.op, item.mode, item.step,
                    )  # fmt: skip
                    tails = (tail, item.sent_tail)
                digest = digests.get(tails)
                if digest is None:
                    if len(digests) >= 4096:
                        digests.clear()
                    digest = digests[tails] = fingerprint_part(*tails)
                total += (int(item.imei) + 1) * digest
            else:
                assert isinstance(item, Problem)
                errors, warnings = _count(item, errors, warnings)
                on_problem(item)
        devices = seen.groups()
    for problem in resources.closing():
        errors, warnings = _count(problem, errors, warnings)
        on_problem(problem)
    listed, more = resources.listed()
    return Validation(
        commands,
        devices,
        errors,
        warnings,
        first,
        last,
        job_fingerprint(job.name, total),
        listed,
        more,
        products,
        product_at,
    )


def _count(problem: Problem, errors: int, warnings: int) -> tuple[int, int]:
    """The counts of errors and warnings with ``problem`` added."""
    return (errors, warnings + 1) if problem.warning else (errors + 1, warnings)
