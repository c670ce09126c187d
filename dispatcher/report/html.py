"""The HTML report: one self-contained page of a ledger (inline CSS and SVG, no script, no links).

The figures come from :func:`~dispatcher.report.summary.summarize` and the ledger's breakdowns
(SQL); the timeline and the problem rows from one streamed pass over the job's rows, binned as they
go (timeline.py) and capped, so a ledger of a million commands is reported in flat memory.
Everything shown is escaped by the template engine (args, error texts and job names may hold
markup), and every text made printable first: control characters and bidi overrides (U+202E, which
would show ``exe.txt`` for ``txt.exe``) are left out, as on the terminal.

Imported on its own (not by ``dispatcher.report``), so that only this report loads jinja2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

import jinja2

from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import LedgerStore, Row, Status, VerifyState
from dispatcher.report.compliance import STATE_LINES
from dispatcher.report.render import DELIVERY_LINES, printable
from dispatcher.report.summary import Summary, summarize
from dispatcher.report.timeline import Histogram, timeline
from dispatcher.times import BEIJING, parse_onenet

__all__ = ["PROBLEM_KINDS", "PROBLEM_LIMIT", "ProblemRow", "Problems", "problem_kind", "write_html"]

PROBLEM_LIMIT: Final = 500  # rows of the problem table; the csv export has them all
# What needs a look, most urgent first: the table lists them in this order.
PROBLEM_KINDS: Final = (
    "rejected", "failed", "in doubt", "in flight", "delivery failed", "delivery expired",
    "cancelled", "expired unsent", "skipped", "not sent yet",
)  # fmt: skip
_BY_STATUS: Final = {
    Status.REJECTED: "rejected",
    Status.FAILED: "failed",
    Status.IN_DOUBT: "in doubt",
    Status.IN_FLIGHT: "in flight",
    Status.EXPIRED: "expired unsent",
    Status.PENDING: "not sent yet",
    Status.SKIPPED: "skipped",
}
_BY_DELIVERY: Final = {
    DeliveryState.FAILED: "delivery failed",
    DeliveryState.EXPIRED: "delivery expired",
    DeliveryState.CANCELLED: "cancelled",
}


def _finalize(value: object) -> object:
    """Each value the template shows: a text printable (then escaped), anything else as it is."""
    return printable(value) if type(value) is str else value


_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("dispatcher.report", "templates"),
    autoescape=True,  # every value, in text and in attributes
    finalize=_finalize,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class ProblemRow:
    """One line of the problem table."""

    kind: str  # one of PROBLEM_KINDS
    imei: str
    source: str  # file:line
    status: str
    errno: int | None  # OneNET's refusal; None or 0: none
    detail: str  # the error, the refused cancel, or the device's result
    send_status: int | None
    confirm_status: str | None

    @classmethod
    def of(cls, kind: str, row: Row) -> ProblemRow:
        """The line of ``row``, a problem of ``kind``."""
        if row.status is Status.ACCEPTED:
            detail = row.cancel_error or row.cmd_result or ""
        else:
            detail = row.error
        c = row.command
        return cls(kind, c.imei, f"{c.source}:{c.line}", row.status.value.replace("_", " "),
                   row.errno or None, detail, row.send_status, row.confirm_status)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problems:
    """The commands that need a look: counts by kind, and the first rows, most urgent first."""

    counts: dict[str, int]  # every kind of PROBLEM_KINDS, in that order
    rows: tuple[ProblemRow, ...]  # at most the limit

    @property
    def total(self) -> int:
        """Commands that need a look."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class _Pass:
    """What one streamed pass over the rows gathers."""

    sends: Histogram  # accepted commands' last attempts, on OneNET's clock when it was read
    deliveries: Histogram  # delivered commands' confirm_time
    untimed: int  # delivered commands without a confirm_time OneNET gave
    problems: Problems


def problem_kind(row: Row) -> str | None:
    """The kind of problem a row is (a kind of :data:`PROBLEM_KINDS`), or None when it is fine."""
    kind = _BY_STATUS.get(row.status)
    if kind is None:
        delivery = row.delivery
        kind = None if delivery is None else _BY_DELIVERY.get(delivery)
    return kind


def _scan(rows: Iterable[Row], limit: int) -> _Pass:
    sends, deliveries = Histogram(), Histogram()
    untimed = 0
    counts = dict.fromkeys(PROBLEM_KINDS, 0)
    kept: dict[str, list[ProblemRow]] = {kind: [] for kind in PROBLEM_KINDS}
    for row in rows:
        # On OneNET's clock, as the deliveries' confirm_time is: this machine's may be off.
        sent_at = row.last_server_at if row.last_server_at is not None else row.last_attempt_at
        if row.status is Status.ACCEPTED and sent_at is not None:
            sends.add(sent_at)
        if row.delivery is DeliveryState.DELIVERED:
            at = _onenet_time(row.confirm_time)
            if at is None:
                untimed += 1
            else:
                deliveries.add(at)
        kind = problem_kind(row)
        if kind is not None:
            counts[kind] += 1
            if len(kept[kind]) < limit:  # enough of each kind to fill the table in any case
                kept[kind].append(ProblemRow.of(kind, row))
    shown = [line for kind in PROBLEM_KINDS for line in kept[kind]][:limit]
    return _Pass(sends, deliveries, untimed, Problems(counts, tuple(shown)))


def _onenet_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return parse_onenet(text).timestamp()
    except ValueError:
        return None  # not a time OneNET writes: left out of the chart, never a failed report


def write_html(
    ledger: LedgerStore,
    out: TextIO,
    *,
    limit: int = PROBLEM_LIMIT,
    clock: Callable[[], float] = time.time,
) -> int:
    """Write the HTML report of ``ledger`` to ``out``; return how many problem rows it lists."""
    summary = summarize(ledger)
    with contextlib.closing(ledger.rows(retired=False)) as rows:
        scanned = _scan(rows, limit)
    chart = timeline(
        [("Sends", "sends", scanned.sends), ("Deliveries", "deliveries", scanned.deliveries)]
    )
    job = ledger.job()
    page = _ENV.get_template("report.html.j2").generate(
        title=job.name if job is not None else Path(ledger.path).name,
        job=job,
        ledger_path=str(ledger.path),
        generated=datetime.fromtimestamp(clock(), BEIJING).strftime("%Y-%m-%d %H:%M:%S UTC+8"),
        summary=summary,
        tiles=_tiles(summary, scanned.problems),
        statuses=_status_lines(summary),
        delivery=_delivery_lines(summary),
        compliance=_compliance_lines(summary),
        chart=chart,
        untimed=scanned.untimed,
        errnos=[(e, text, n) for e, text, n in ledger.errno_groups() if e != 0],
        confirms=[] if summary.delivery is None else summary.delivery.confirm_statuses,
        problems=scanned.problems,
        limit=limit,
    )
    for chunk in page:
        out.write(chunk)
    return len(scanned.problems.rows)


@dataclass(frozen=True, slots=True)
class _Line:
    """One line of a breakdown: a name, counts and the share its bar shows."""

    name: str
    css: str
    count: int
    share: float  # 0..1
    commands: int | None = None


def _status_lines(summary: Summary) -> list[_Line]:
    whole = summary.total if summary.job_total is None else summary.job_total
    counts = dict(summary.by_status)
    if summary.unregistered:
        counts["not registered yet"] = summary.unregistered
    return [
        _Line(name.replace("_", " "), name.replace(" ", "-").replace("_", "-"), n, _share(n, whole))
        for name, n in counts.items()
    ]


def _delivery_lines(summary: Summary) -> list[_Line]:
    d = summary.delivery
    if d is None or not sum(d.commands.values()):
        return []
    devices = sum(d.devices.values())
    return [
        _Line(name, f"d-{state.value}", d.devices[state], _share(d.devices[state], devices),
              d.commands[state])
        for state, name in DELIVERY_LINES.items()
        if state is not DeliveryState.UNREAD or d.commands[state]
    ]  # fmt: skip


def _compliance_lines(summary: Summary) -> list[_Line]:
    """The devices by verify state (none: never verified): the page shows them first."""
    c = summary.compliance
    if c is None:
        return []
    return [
        _Line(name, "v-" + state.value.replace("_", "-"), c.by_state[state],
              _share(c.by_state[state], c.devices))
        for state, name in STATE_LINES.items()
    ]  # fmt: skip


def _tiles(summary: Summary, problems: Problems) -> list[tuple[str, str, str]]:
    """The figures at the top: (name, value, a note)."""
    whole = summary.total if summary.job_total is None else summary.job_total
    accepted = summary.by_status.get(Status.ACCEPTED.value, 0)
    c = summary.compliance
    on_target = [] if c is None else [(
        "on target", f"{c.by_state[VerifyState.ON_TARGET]:,}",
        f"{c.on_target_share:.1%} of {c.devices:,} devices verified",
    )]  # fmt: skip
    tiles = [
        *on_target,
        ("commands", f"{whole:,}", f"{summary.runs:,} run" + ("" if summary.runs == 1 else "s")),
        ("accepted", f"{accepted:,}", f"{_share(accepted, whole):.1%} of the job"),
    ]
    d = summary.delivery
    devices = 0 if d is None else sum(d.devices.values())
    if d is not None and devices:
        done = d.devices[DeliveryState.DELIVERED]
        note = f"{_share(done, devices):.1%} of {devices:,} with accepted commands"
        tiles.append(("devices delivered", f"{done:,}", note))
    tiles.append(("need a look", f"{problems.total:,}", "commands, listed below"))
    return tiles


def _share(n: int, whole: int) -> float:
    return n / whole if whole else 0.0
