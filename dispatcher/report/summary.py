"""Summaries and exports of a results ledger: a table for people; JSON, CSV, JSON lines for tools.

Figures come from SQL over the whole ledger (every run of the job); exports stream row by row, so
a ledger of a million commands is reported in flat memory. Exports write records and nothing else.
When the ledger knows its job's size, shares are of the whole job, and the commands not registered
yet are counted. Retired rows (removed from the job file, or replaced by an edit) are counted apart.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TextIO

import orjson
from rich.console import RenderableType
from rich.table import Table

from dispatcher.ledger.store import Ledger, Row
from dispatcher.times import BEIJING

__all__ = [
    "EXPORT_FIELDS",
    "Summary",
    "export_record",
    "render_summary",
    "render_table",
    "summarize",
    "summary_dict",
    "write_export",
]

# The columns of every export, in order.
EXPORT_FIELDS: Final = (
    "imei", "obj_id", "obj_inst_id", "res_id", "args", "status", "errno", "error", "uuid",
    "attempts", "source", "valid_time", "expired_time", "sent_valid_time", "sent_expired_time",
    "first_attempt_at", "last_attempt_at", "latency_ms", "reconciled", "retry", "timeout",
    "trigger_msg", "key", "retired",
)  # fmt: skip
_RETIRED_LINES: Final = {"removed": "removed from the job", "changed": "replaced by an edit"}


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


def summarize(ledger: Ledger) -> Summary:
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
    )


def _rank(percent: int, n: int) -> int:
    """Nearest-rank percentile: the smallest value with at least ``percent``% at or below it."""
    return max(1, -(-percent * n // 100))


def render_table(summary: Summary) -> Table:
    """The summary as a two-column table."""
    table = Table(title="Ledger summary", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", justify="right")
    whole = summary.total if summary.job_total is None else summary.job_total
    table.add_row("commands", f"{whole:,}")
    statuses = {name.replace("_", " "): n for name, n in summary.by_status.items()}
    if summary.unregistered:
        statuses["not registered yet"] = summary.unregistered
    for name, n in statuses.items():
        share = f" ({n / whole:.1%})" if whole and n else ""
        table.add_row(f"  {name}", f"{n:,}{share}")
    for errno, n in summary.by_errno.items():
        table.add_row(f"  errno {errno} ({summary.errno_text[errno]})", f"{n:,}")
    for why, n in summary.retired.items():
        if n:
            table.add_row(_RETIRED_LINES.get(why, f"retired ({why})"), f"{n:,}")
    table.add_row("HTTP attempts", f"{summary.attempts:,} ({summary.retries:,} retries)")
    table.add_row("reconciled", f"{summary.reconciled:,}")
    if summary.throughput is not None:
        table.add_row("throughput", f"{summary.throughput:,.1f} commands/s")
    if summary.p50_ms is not None:
        table.add_row(
            "latency p50 / p95 / p99",
            " / ".join(_ms(v) for v in (summary.p50_ms, summary.p95_ms, summary.p99_ms)) + " ms",
        )
    if summary.first_at is not None:
        table.add_row("first attempt", _iso(summary.first_at, "seconds"))
        table.add_row("last attempt", _iso(summary.last_at, "seconds"))
    table.add_row("runs", f"{summary.runs:,}")
    if summary.stop_reason:
        table.add_row("last run stopped", summary.stop_reason)
    return table


def render_summary(summary: Summary) -> RenderableType:
    """The summary for a terminal (the same table as :func:`render_table`)."""
    return render_table(summary)


def summary_dict(summary: Summary) -> dict[str, Any]:
    """The summary as plain JSON-ready data."""
    return {
        "total": summary.total,
        "job_total": summary.job_total,
        "unregistered": summary.unregistered,
        "by_status": dict(summary.by_status),
        "retired": dict(summary.retired),
        "by_errno": [
            {"errno": e, "error": summary.errno_text[e], "count": n}
            for e, n in summary.by_errno.items()
        ],
        "attempts": summary.attempts,
        "retries": summary.retries,
        "reconciled": summary.reconciled,
        "first_attempt_at": _iso(summary.first_at),
        "last_attempt_at": _iso(summary.last_at),
        "throughput_per_s": summary.throughput,
        "latency_ms": {"p50": summary.p50_ms, "p95": summary.p95_ms, "p99": summary.p99_ms},
        "runs": summary.runs,
        "stop_reason": summary.stop_reason,
    }


def export_record(row: Row) -> dict[str, Any]:
    """One command as an export record (the keys of :data:`EXPORT_FIELDS`, in order)."""
    return {
        "imei": row.imei,
        "obj_id": row.obj_id,
        "obj_inst_id": row.obj_inst_id,
        "res_id": row.res_id,
        "args": row.args,
        "status": row.status.value,
        "errno": row.errno,
        "error": row.error,
        "uuid": row.uuid,
        "attempts": row.attempts,
        "source": f"{row.source}:{row.line}",
        "valid_time": row.valid_time,
        "expired_time": row.expired_time,
        "sent_valid_time": row.sent_valid_time,
        "sent_expired_time": row.sent_expired_time,
        "first_attempt_at": _iso(row.first_attempt_at),
        "last_attempt_at": _iso(row.last_attempt_at),
        "latency_ms": row.latency_ms,
        "reconciled": row.reconciled,
        "retry": row.retry,
        "timeout": row.timeout,
        "trigger_msg": row.trigger_msg,
        "key": row.key,
        "retired": None if row.retired is None else row.retired.value,
    }


def write_export(ledger: Ledger, fmt: Literal["csv", "jsonl", "json"], out: TextIO) -> int:
    """Write every command to ``out`` as csv, jsonl or a json array, streaming; return the count.

    CSV follows RFC 4180 (``\\r\\n`` line ends; quotes where needed): give a file opened with
    ``newline=""``. Empty cells are None; booleans are ``true``/``false``.
    """
    if fmt not in ("csv", "jsonl", "json"):
        raise ValueError(f"unknown export format {fmt!r}: use csv, jsonl or json")
    with contextlib.closing(ledger.rows()) as rows:  # closed even if ``out`` fails
        records = map(export_record, rows)
        if fmt == "csv":
            return _write_csv(records, out)
        if fmt == "jsonl":
            return _write_json(records, out, "", "\n", "\n")
        return _write_json(records, out, "[\n", ",\n", "\n]\n", empty="[]\n")


def _write_json(
    records: Iterator[dict[str, Any]], out: TextIO, head: str, sep: str, tail: str, empty: str = ""
) -> int:
    n = 0
    for record in records:
        out.write((sep if n else head) + orjson.dumps(record).decode())
        n += 1
    out.write(tail if n else empty)
    return n


def _write_csv(records: Iterator[dict[str, Any]], out: TextIO) -> int:
    writer = csv.writer(out)
    writer.writerow(EXPORT_FIELDS)
    n = 0
    for record in records:
        writer.writerow(_cell(v) for v in record.values())
        n += 1
    return n


def _cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _iso(at: float | None, timespec: str = "milliseconds") -> str | None:
    """Unix seconds as ISO 8601 in Beijing time (OneNET's zone), with the offset."""
    return None if at is None else datetime.fromtimestamp(at, BEIJING).isoformat(timespec=timespec)


def _ms(value: float | None) -> str:
    """Milliseconds with the precision that matters: 0.42, 7.3, 118."""
    if value is None:
        return "-"
    return f"{value:,.2f}" if value < 1 else f"{value:,.1f}" if value < 10 else f"{value:,.0f}"
