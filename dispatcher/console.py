"""What the command line shows: messages, validation summaries, live progress, run summaries.

Used by cli.py only (the library itself never prints). Everything written here, and every log line,
goes through ``mask`` so that a registered secret (the api-key) can never reach the screen or a log.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from dispatcher.jobs import Job, Problem, Validation
from dispatcher.report import Summary, render_summary
from dispatcher.times import format_onenet

if TYPE_CHECKING:
    from dispatcher.runner import RunResult, RunStats

__all__ = [
    "error",
    "live_progress",
    "mask",
    "note",
    "problem",
    "redact",
    "setup_logging",
    "summary_line",
    "summary_table",
    "validation",
    "warn",
]

_secrets: list[str] = []
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


def redact(secret: str) -> None:
    """Never show ``secret``: it is masked in every message and log line from now on."""
    if secret and secret not in _secrets:
        _secrets.append(secret)


def mask(text: str) -> str:
    """``text`` with every registered secret replaced by ***."""
    for secret in _secrets:
        text = text.replace(secret, "***")
    return text


class _MaskingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = mask(record.getMessage())
            record.args = None
        return True


def setup_logging(verbose: int) -> None:
    """Log lines on stderr: warnings by default, info with -v, debug with -vv."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_MaskingFilter())
    root = logging.getLogger("dispatcher")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _print(console: Console, text: str, style: str = "") -> None:
    console.print(Text(mask(text), style=style))


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


def validation(job: Job, v: Validation) -> None:
    """The summary of a validation: commands, devices, the time window, warnings."""
    if v.window_start is not None and v.window_end is not None:
        window = f"{format_onenet(v.window_start)} .. {format_onenet(v.window_end)} (UTC+8)"
    else:
        window = "none"
    verdict = "valid" if v.ok else f"INVALID: {v.errors} error(s)"
    _print(
        _out,
        f"{job.path}: {verdict}; {_n(v.commands, 'valid command')}, {_n(v.devices, 'device')},"
        f" window {window}, {_n(v.warnings, 'warning')}",
        "green" if v.ok else "bold red",
    )


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


class _ProgressLine:
    """A one-line live view of a run's counters, rendered on the display's own schedule."""

    def __init__(self, stats: RunStats) -> None:
        self.stats = stats

    def __rich__(self) -> RenderableType:
        s = self.stats
        elapsed = max(time.monotonic() - s.started_at, 1e-6)
        done, total = s.done, max(s.total, 1)
        sent = done - s.skipped
        rate = sent / elapsed
        remaining = max(s.total - done, 0)
        eta = f"{remaining / rate:,.0f}s" if rate > 0 else "?"
        width = 24
        filled = int(width * min(done / total, 1.0))
        bar = "━" * filled + "╺" + " " * (width - filled)
        return Text.assemble(
            (bar[:width], "cyan"),
            f" {done:,}/{s.total:,} {100 * done / total:5.1f}%  {rate:,.0f}/s  ",
            (f"accepted {s.accepted:,}", "green"),
            " · ",
            (f"rejected {s.rejected:,}", "red" if s.rejected else ""),
            " · ",
            (f"failed {s.failed:,}", "red" if s.failed else ""),
            " · ",
            (f"in doubt {s.in_doubt:,}", "yellow" if s.in_doubt else ""),
            f"  ETA {eta}",
        )


@contextmanager
def live_progress(stats: RunStats, *, enabled: bool | None = None) -> Iterator[None]:
    """Show the run's progress on stderr while the block runs (by default only on a terminal)."""
    if enabled is None:
        enabled = _err.is_terminal
    if not enabled:
        yield
        return
    with Live(_ProgressLine(stats), console=_err, refresh_per_second=4, transient=True):
        yield


def summary_line(result: RunResult) -> None:
    """One line at the end of a run (stdout)."""
    s = result.stats
    total = sum(result.counts.values())
    elapsed = time.monotonic() - s.started_at
    counts = {status.value: n for status, n in result.counts.items()}
    parts = ", ".join(f"{n:,} {name.replace('_', ' ')}" for name, n in counts.items() if n)
    _print(
        _out,
        f"ledger: {total:,} commands, {parts or 'none'}. This run: {s.requests:,} requests"
        f" in {elapsed:,.1f}s, {s.accepted:,} accepted ({s.reconciled:,} found by reconciling),"
        f" {s.rejected:,} rejected, {s.failed:,} failed, {s.in_doubt:,} in doubt,"
        f" {s.skipped:,} already done",
    )


def summary_table(summary: Summary) -> None:
    """The report's summary, as a table on stdout."""
    _out.print(render_summary(summary))
