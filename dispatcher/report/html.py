"""The HTML report: one self-contained page of a ledger (inline CSS and SVG, no script, nothing
fetched; its one link is to the CSV of every problem device beside it, when its table is capped).

The figures come from :func:`~dispatcher.report.summary.summarize` and the ledger's breakdowns
(SQL); the timeline, the delivery states' read times and the problem devices from one streamed
pass over the job's rows, binned and gathered as they go (timeline.py, freshness.py, problems.py)
and capped, so a ledger of a million commands is reported in flat memory. The page begins and
ends with what to do next (next_steps.py: the rules the CLI follows too). Everything shown is
escaped by the template engine (args, error texts and job names may hold markup), and every text
made printable first: control characters and bidi overrides (U+202E, which would show ``exe.txt``
for ``txt.exe``) are left out, as on the terminal.

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
import markupsafe

from dispatcher.ledger.records import DeliveryState
from dispatcher.ledger.store import LedgerStore, Row, Status, VerifyState
from dispatcher.model.command import product_label
from dispatcher.report.compliance import STATE_LINES
from dispatcher.report.freshness import Freshness, ReadTimes
from dispatcher.report.next_steps import After, next_steps
from dispatcher.report.problems import PROBLEM_KINDS, DeviceLine, Gatherer, Problems, problem_kind
from dispatcher.report.problems_csv import EMBED_LIMIT, CsvOffer, ProblemsCsv
from dispatcher.report.render import (
    DELIVERY_LINES,
    WRONG_PRODUCT,
    printable,
    refusal_wording,
    status_line,
)
from dispatcher.report.summary import Summary, summarize
from dispatcher.report.timeline import Histogram, timeline
from dispatcher.times import BEIJING, parse_onenet

__all__ = [
    "PROBLEM_KINDS",
    "PROBLEM_LIMIT",
    "DeviceLine",
    "Problems",
    "problem_kind",
    "write_html",
]

PROBLEM_LIMIT: Final = 500  # lines of the problem table; the CSV beside it has them all


def _finalize(value: object) -> object:
    """Each value the template shows: a text printable (then escaped), anything else as it is."""
    return printable(value) if type(value) is str else value


def _path(value: str) -> markupsafe.Markup:
    """A path that breaks after a ``/`` on a narrow page, never inside a name (escaped,
    printable): ``jobs/`` and ``firmware-update.yaml:31`` each kept whole."""
    parts = printable(value).split("/")
    segments = [part + "/" for part in parts[:-1]] + parts[-1:]
    return markupsafe.Markup("<wbr>").join(
        markupsafe.Markup('<span class="seg">{}</span>').format(seg) for seg in segments if seg
    )


_ENV: Final = jinja2.Environment(
    loader=jinja2.PackageLoader("dispatcher.report", "templates"),
    autoescape=True,  # every value, in text and in attributes
    finalize=_finalize,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["path"] = _path


@dataclass(frozen=True, slots=True)
class _Pass:
    """What one streamed pass over the rows gathers."""

    sends: Histogram  # accepted commands' last attempts, on OneNET's clock when it was read
    deliveries: Histogram  # delivered commands' confirm_time
    untimed: int  # delivered commands without a confirm_time OneNET gave
    problems: Problems
    read: Freshness  # when the delivery states were read
    wrong_product: dict[str, int]  # errno 1 refusals by product


def _scan(rows: Iterable[Row], gatherer: Gatherer) -> _Pass:
    sends, deliveries = Histogram(), Histogram()
    untimed = 0
    read = ReadTimes()
    wrong_product: dict[str, int] = {}
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
        if row.errno == WRONG_PRODUCT and row.status is Status.REJECTED:
            product = row.command.product
            wrong_product[product] = wrong_product.get(product, 0) + 1
        read.add(row)
        gatherer.add(row)
    return _Pass(sends, deliveries, untimed, gatherer.finish(), read.finish(), wrong_product)


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
    path: Path | None = None,
    limit: int = PROBLEM_LIMIT,
    embed_limit: int = EMBED_LIMIT,
    clock: Callable[[], float] = time.time,
) -> int:
    """Write the HTML report of ``ledger`` to ``out``, the file at ``path`` (None: stdout); when
    more than ``limit`` devices need a look, the CSV of them all is written beside ``path``, or
    embedded in a page on stdout when under ``embed_limit`` bytes. Return the lines listed."""
    summary = summarize(ledger)
    now = clock()
    accepted = {p: n.get(Status.ACCEPTED.value, 0) for p, n in summary.by_product.items()}
    with ProblemsCsv(path, embed_limit) as spool:
        with contextlib.closing(ledger.rows(retired=False)) as rows:
            scanned = _scan(rows, Gatherer(limit, accepted, spool))
        offer: CsvOffer | None = None
        if scanned.problems.capped:
            offer = spool.offer()
        else:
            spool.drop()
        try:
            _render(ledger, out, summary, scanned, offer, now, limit)
        except BaseException:
            if offer is not None and path is not None and offer.href is not None:
                with contextlib.suppress(OSError):
                    path.with_name(offer.href).unlink()
            raise
    return len(scanned.problems.rows)


def _render(
    ledger: LedgerStore,
    out: TextIO,
    summary: Summary,
    scanned: _Pass,
    offer: CsvOffer | None,
    now: float,
    limit: int,
) -> None:
    chart = timeline(
        [("Sends", "sends", scanned.sends), ("Deliveries", "deliveries", scanned.deliveries)]
    )
    job = ledger.job()
    # The ledger does not record which stop was a rollout rule's (a skipped step may be one held
    # back): the page never guesses one, as that would advise a cancel, which cannot be undone.
    steps = next_steps(summary, ledger.path, After(job=None if job is None else job.path))
    as_of, oldest_open = scanned.read.lines(now)
    page = _ENV.get_template("report.html.j2").generate(
        title=job.name if job is not None else ledger.path.name,
        job=job,
        ledger_path=str(ledger.path),
        generated=datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m-%d %H:%M:%S UTC+8"),
        summary=summary,
        tiles=_tiles(summary, scanned.problems, as_of),
        statuses=_status_lines(summary),
        delivery=_delivery_lines(summary),
        as_of=as_of,
        never_read=scanned.read.latest is None,
        oldest_open=oldest_open,
        compliance=_compliance_lines(summary),
        chart=chart,
        untimed=scanned.untimed,
        errnos=_errno_lines(ledger, summary, scanned.wrong_product),
        confirms=[] if summary.delivery is None else summary.delivery.confirm_statuses,
        problems=scanned.problems,
        offer=offer,
        limit=limit,
        steps=steps,
        with_config=any(s.argv[1] != "retry-failed" for s in steps),
    )
    for chunk in page:
        out.write(chunk)


def _errno_lines(
    ledger: LedgerStore, summary: Summary, wrong_product: dict[str, int]
) -> list[tuple[int, str, int]]:
    """OneNET's refusals by errno and text; errno 1 by product, in words: a key that works for
    the product's other commands means devices not in it (render.refusal_wording)."""
    lines: list[tuple[int, str, int]] = []
    said = False
    several = len(summary.by_product) > 1
    for errno, text, n in ledger.errno_groups():  # most common text first within an errno
        if errno == 0 or (errno == WRONG_PRODUCT and said):
            continue
        if errno != WRONG_PRODUCT or not wrong_product:
            lines.append((errno, text, n))
            continue
        said = True  # every refused errno 1, by product, with its most common text
        for product, count in sorted(wrong_product.items()):
            accepted = summary.by_product.get(product, {}).get(Status.ACCEPTED.value, 0)
            label = f"{product_label(product)}: " if several else ""
            lines.append((errno, f"{text}: {label}{refusal_wording(errno, text, accepted)}", count))
    return lines


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
        # Worded as the terminal's summary words them (a send that failed apart from a delivery).
        _Line(status_line(name), name.replace(" ", "-").replace("_", "-"), n, _share(n, whole))
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


def _tiles(summary: Summary, problems: Problems, as_of: str) -> list[tuple[str, str, str]]:
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
        note = f"{_share(done, devices):.1%} of {devices:,} with accepted commands, {as_of}"
        tiles.append(("devices delivered", f"{done:,}", note))
    note = "devices, listed below"
    if problems.commands != problems.total:
        note = f"devices ({problems.commands:,} commands), listed below"
    tiles.append(("need a look", f"{problems.total:,}", note))
    return tiles


def _share(n: int, whole: int) -> float:
    return n / whole if whole else 0.0
