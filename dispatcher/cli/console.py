"""What the command line shows: messages, validation summaries, live progress (its lines are
progress_view.py's), run summaries.

Used by cli.py only (the library itself never prints). Everything written here, and every log line,
goes through ``mask`` so that a registered secret (the api-key) can never reach the screen or a log,
and through ``printable``: text from OneNET, a device or a file may hold ANSI/OSC escape sequences
or bidi controls (U+202E), which must never reach the terminal; every message is one line, so a
line break or tab in it becomes a space. Tables put their foreign cells through ``printable`` too
(report/render.py); the styling rich adds is written after, so it is kept.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from dispatcher.cli.progress_view import ProgressLine, ticking
from dispatcher.job.model import Job, Problem, Validation
from dispatcher.job.resources import DISTINCT_CAP
from dispatcher.ledger.store import Status
from dispatcher.lwm2m import describe
from dispatcher.onenet.masking import Mask
from dispatcher.report.render import (
    STATUS_LINES,
    compliance_tables,
    printable,
    render_delivery,
    render_table,
    status_line,
)
from dispatcher.report.summary import Summary
from dispatcher.times import format_onenet

if TYPE_CHECKING:
    from dispatcher.run.state import RunResult, RunStats

__all__ = [
    "error",
    "live",
    "live_progress",
    "mask",
    "note",
    "problem",
    "products_line",
    "redact",
    "setup_logging",
    "show",
    "summary_line",
    "summary_table",
    "validation",
    "warn",
]

# The one masker of secrets (onenet/masking.py, as the client's own messages use): a secret is
# masked where it stands as a whole token, raw or percent-encoded; a short test key that happens
# to be a word ("test") does not garble "latest" or "tested".
_mask = Mask()
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


def redact(secret: str) -> None:
    """Never show ``secret``: it is masked in every message and log line from now on."""
    global _mask
    if secret and secret not in _mask.secrets:
        _mask = Mask((*_mask.secrets, secret))


def mask(text: str) -> str:
    """``text`` with every registered secret (as a whole token) replaced by ***."""
    return _mask(text)


class _MaskingFilter(logging.Filter):
    """Every log line masked and printable, as the console's own lines are."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = printable(mask(record.getMessage()))
        record.args = None
        return True


class _Plain(logging.Formatter):
    """'warning: ...', as the console writes its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(verbose: int) -> None:
    """Log lines on stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    # By default a warning reads like the console's own lines; -v asks for the log's details.
    detailed = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler.setFormatter(detailed if verbose else _Plain())
    handler.addFilter(_MaskingFilter())
    root = logging.getLogger("dispatcher")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _print(console: Console, text: str, style: str = "") -> None:
    console.print(Text(printable(mask(text)), style=style))


def error(message: str) -> None:
    """One line on stderr: what went wrong and how to fix it."""
    _print(_err, f"error: {message}", "bold red")


def warn(message: str) -> None:
    """A warning on stderr."""
    _print(_err, f"warning: {message}", "yellow")


def note(message: str) -> None:
    """A plain note on stderr."""
    _print(_err, message)


def problem(p: Problem) -> None:
    """One job-file problem as FILE:LINE: FIELD: message (on stdout)."""
    _print(_out, f"{p}" + (" (warning)" if p.warning else ""), "yellow" if p.warning else "red")


def validation(job: Job, v: Validation, *, sample: bool = False) -> None:
    """The summary of a validation: commands, devices, the time window, warnings; ``sample``:
    a targets_query's commands were checked on one sample device (its devices come at run time)."""
    if v.window_start is not None and v.window_end is not None:
        window = f"{format_onenet(v.window_start)} .. {format_onenet(v.window_end)} (UTC+8)"
    else:
        window = "none"
    verdict = "valid" if v.ok else f"INVALID: {v.errors} error(s)"
    _print(
        _out,
        f"{job.path}: {verdict}; {_counts(v, sample, bool(job.targets or job.targets_csv))},"
        f" window {window},"
        f" {_n(v.warnings, 'warning')}",
        "green" if v.ok else "bold red",
    )
    if v.resources:
        # The verb is said when the job does more than execute (the default otherwise).
        verbs = any(op != "execute" for op, *_ in v.resources)
        names = ", ".join(
            f"{op} {describe(o, i, r)}" if verbs else describe(o, i, r)
            for op, o, i, r in v.resources
        )
        if v.more_resources:
            at_least = "at least " if len(v.resources) + v.more_resources >= DISTINCT_CAP else ""
            names += f", and {at_least}{v.more_resources:,} more"
        noun = "resource" if len(v.resources) == 1 and not v.more_resources else "resources"
        _print(_out, f"  {noun}: {names}")
    products = products_line(v)
    if products:
        _print(_out, products)
    if job.table is not None and job.table.note:  # a CSV not in UTF-8, or a workbook's sheet
        _print(_out, f"  {job.table.note}")


def _counts(v: Validation, sample: bool, listed: bool) -> str:
    """Commands and devices; with a sample device, what each device the query finds gets."""
    if not sample:
        return f"{_n(v.commands, 'valid command')}, {_n(v.devices, 'device')}"
    if listed:  # the job's own targets beside the query: the sample device is one of them
        return (
            f"{_n(v.commands, 'valid command')} to {_n(max(0, v.devices - 1), 'listed device')}"
            " and the sample, the same to each device the targets_query finds"
        )
    return f"{_n(v.commands, 'valid command')} for each device the targets_query finds"


def products_line(checked: Validation) -> str | None:
    """``products: meters 1,200 · lights 800`` when the job names any product."""
    if set(checked.products) <= {""}:
        return None
    parts = [
        f"{name or '(no product: the top-level sections)'} {n:,}"
        for name, n in sorted(checked.products.items())
    ]
    return "  products: " + " · ".join(parts)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def live_progress(stats: RunStats, *, enabled: bool | None = None) -> AbstractContextManager[None]:
    """Show the run's progress on stderr while the block runs: live on a terminal, off one (by
    default) as a plain line now and then, so that a log from cron is not silent for minutes."""
    line = ProgressLine(stats)
    return live(line, enabled=enabled, plain=line.plain)


def summary_line(result: RunResult) -> None:
    """The end of a run (stdout): the whole job as the ledger holds it, then this run."""
    s = result.stats
    elapsed = time.monotonic() - s.started_at
    registered = sum(result.counts.values())
    total = max(result.total, registered)
    counts = {status.value: n for status, n in result.counts.items()}
    counts["pending"] = counts.get("pending", 0) + result.unregistered
    parts = ", ".join(f"{n:,} {status_line(name)}" for name, n in counts.items() if n)
    _print(_out, f"job: {_n(total, 'command')}: {parts or 'none'}")
    # The send's failures in the words of the ledger summary (report/render.py): apart from a
    # delivery that failed or expired, which status reads later.
    _print(
        _out,
        f"this run: {s.requests:,} requests in {elapsed:,.1f}s, {s.accepted:,} accepted"
        f" ({s.reconciled:,} found by reconciling), {s.rejected:,} rejected, {s.expired:,}"
        f" {STATUS_LINES[Status.EXPIRED]}, {s.failed:,} {STATUS_LINES[Status.FAILED]},"
        f" {s.in_doubt:,} in doubt, {s.skipped:,} already done",
    )


def summary_table(summary: Summary, out: TextIO | None = None) -> None:
    """The report's summary, and the delivery once a command was accepted, on stdout or ``out``."""
    console = _out if out is None else Console(file=out, soft_wrap=True, highlight=False)
    if summary.compliance is not None:  # is the fleet on target: first
        for table in compliance_tables(summary.compliance):
            console.print(table)
    console.print(render_table(summary))
    delivery = render_delivery(summary)
    if delivery is not None:
        console.print(delivery)


def show(renderable: RenderableType) -> None:
    """A table or text on stdout; a plain string is masked, made printable and shown as it is
    (never read as markup: it may hold OneNET's text)."""
    _out.print(Text(printable(mask(renderable))) if isinstance(renderable, str) else renderable)


@contextmanager
def live(
    renderable: RenderableType,
    *,
    enabled: bool | None = None,
    plain: Callable[[], str | None] | None = None,
) -> Iterator[None]:
    """Show ``renderable`` live on stderr while the block runs (by default only on a terminal;
    off one, by default, the ``plain`` line now and then, PLAIN_EVERY_S apart)."""
    if enabled is None and not _err.is_terminal and plain is not None:
        with ticking(plain, note):
            yield
        return
    if enabled is None:
        enabled = _err.is_terminal
    if not enabled:
        yield
        return
    with Live(renderable, console=_err, refresh_per_second=4, transient=True):
        yield
