"""A results ledger in figures: ``Summary``, and ``summarize`` computing it.

Figures come from SQL over the whole ledger (every run of the job), so a ledger of a million
commands is summed up in flat memory. When the ledger knows its job's size, shares are of the whole
job, and the commands not registered yet are counted. Retired rows (removed from the job file, or
replaced by an edit) are counted apart. What became of the accepted commands (their delivery, as
``dispatcher status`` last read it) is counted by device and by command, and the compliance
(each device against the job's ``verify:``, as ``dispatcher verify`` last judged it) comes first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.ledger.store import LedgerStore, Row
from dispatcher.report.compliance import Compliance, compliance_of

__all__ = ["Summary", "first_row", "summarize"]


@dataclass(frozen=True, slots=True)
class Summary:
    """What a ledger holds, in figures (statuses and figures over the job's active rows)."""

    total: int  # the job's rows in the ledger (retired ones apart)
    by_status: dict[str, int]  # every status, in lifecycle order
    by_errno: dict[int, int]  # non-zero errnos only, most frequent first
    errno_text: dict[int, str]  # each errno's most common error text
    retries: int  # HTTP attempts beyond the first, over attempted commands
    attempts: int  # HTTP attempts in all
    first_at: float | None  # first attempt, unix seconds
    last_at: float | None  # last attempt
    throughput: float | None  # commands with an outcome per second over the sending span
    p50_ms: float | None  # answer latency percentiles (nearest rank)
    p95_ms: float | None
    p99_ms: float | None
    reconciled: int  # outcomes found in OneNET's history rather than in an answer
    runs: int
    stop_reason: str | None  # why the latest run stopped early (None: it did not)
    job_total: int | None = None  # commands in the job, as recorded (None: not recorded)
    unregistered: int = 0  # commands of the job not in the ledger yet
    retired: dict[str, int] = field(default_factory=dict)  # {'removed': n, 'changed': m}
    delivery: DeliveryBreakdown | None = None  # what became of the accepted commands
    by_product: dict[str, dict[str, int]] = field(default_factory=dict)  # {product: {status: n}}
    compliance: Compliance | None = None  # the devices against the job's verify: (never: None)
    stepped: bool = False  # a job of steps (each device's commands are steps: 1, 2, ...)
    handed_over: int = 0  # refused or expired commands handed to a retry job (status kept)
    retry_jobs: dict[str, int] = field(default_factory=dict)  # {retry job: commands handed}


def summarize(ledger: LedgerStore) -> Summary:
    """Figures for the whole ledger, computed by SQLite (no per-command objects kept)."""
    stats = ledger.stats()
    by_errno: dict[int, int] = {}
    texts: dict[int, str] = {}
    for errno, error, n in ledger.errno_groups():  # most common text first within an errno
        if errno != 0:
            by_errno[errno] = by_errno.get(errno, 0) + n
            texts.setdefault(errno, error)
    by_errno = dict(sorted(by_errno.items(), key=lambda item: (-item[1], item[0])))
    p50 = p95 = p99 = None
    if stats.latencies:
        p50, p95, p99 = ledger.latencies_at([_rank(p, stats.latencies) for p in (50, 95, 99)])
    span = None
    if stats.first_at is not None and stats.last_at is not None:
        span = stats.last_at - stats.first_at
    runs = ledger.runs()
    job = ledger.job()
    job_total = None if job is None else job.total
    first = first_row(ledger)
    return Summary(
        total=stats.total,
        by_status={s.value: n for s, n in ledger.counts().items()},
        by_errno=by_errno,
        errno_text={e: texts[e] for e in by_errno},
        retries=stats.retries,
        attempts=stats.attempts,
        first_at=stats.first_at,
        last_at=stats.last_at,
        throughput=stats.with_outcome / span if span else None,
        p50_ms=p50,
        p95_ms=p95,
        p99_ms=p99,
        reconciled=stats.reconciled,
        runs=len(runs),
        stop_reason=runs[-1].stop_reason if runs else None,
        job_total=job_total,
        unregistered=0 if job_total is None else max(0, job_total - stats.total),
        retired=ledger.retired_counts(),
        delivery=ledger.delivery_breakdown(),
        by_product=ledger.product_counts(),
        compliance=compliance_of(ledger.verify_results()),
        stepped=first is not None and bool(first.command.step),
        handed_over=ledger.handed_over(),
        retry_jobs=ledger.retry_jobs(),
    )


def first_row(ledger: LedgerStore) -> Row | None:
    """The first of the job's (active) rows: whether its job has steps (a job's rows all do or
    all do not), and one of its devices."""
    rows = ledger.rows(retired=False)
    try:
        return next(rows, None)
    finally:
        rows.close()


def _rank(percent: int, n: int) -> int:
    """Nearest-rank percentile: the smallest value with at least ``percent``% at or below it."""
    return max(1, -(-percent * n // 100))
