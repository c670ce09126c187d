"""What ``status`` and ``cancel`` show: the delivery breakdown by device, a round's line, live
progress while a round reads."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import RenderableType
from rich.text import Text

from dispatcher.cli import console
from dispatcher.cli.progress_view import eta
from dispatcher.ledger.delivery import DeliveryBreakdown
from dispatcher.report.render import DELIVERY_LINES, delivery_table
from dispatcher.run.status import StatusRound

__all__ = ["RoundProgress", "answers_line", "breakdown_table", "round_line"]


def breakdown_table(b: DeliveryBreakdown, title: str) -> RenderableType:
    """Devices and commands by delivery state, with what each state means."""
    return delivery_table(b, console.mask(title), meaning=True)


def answers_line(b: DeliveryBreakdown) -> str | None:
    """The devices' answers (confirm_status) by count, or None when none answered yet."""
    if not b.confirm_statuses:
        return None
    parts = " · ".join(f"{name} {n:,}" for name, n in b.confirm_statuses[:8])
    more = len(b.confirm_statuses) - 8
    return "device answers: " + parts + (f" · {more} more" if more > 0 else "")


def round_line(number: int, r: StatusRound, now: DeliveryBreakdown | None = None) -> str:
    """One line per round: what was asked, read, moved, what it cost in calls, and (``now``)
    the job's commands by delivery state after it."""
    line = (
        f"round {number}: read {r.read:,} of {r.commands:,} commands on {r.devices:,} devices,"
        f" {r.changed:,} moved ({r.history_pages:,} history pages, {r.details:,} details)"
    )
    if r.unreadable:
        line += f"; {len(r.unreadable):,} could not be read (last error: {r.last_error})"
    if r.not_asked:
        line += f"; {r.not_asked:,} not asked (stopped)"
    held = now.commands if now is not None else {}
    states = [f"{held[s]:,} {name}" for s, name in DELIVERY_LINES.items() if held.get(s)]
    if states:
        line += "; now " + ", ".join(states)
    return console.mask(line)


class RoundProgress:
    """A one-line live view of the round being read (and its plain line, off a terminal)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.round: StatusRound | None = None
        self.number = 0
        self.clock = clock
        self.started = clock()

    def start(self, number: int, progress: StatusRound) -> None:
        """Follow a new round."""
        self.number, self.round, self.started = number, progress, self.clock()

    def plain(self) -> str | None:
        """Where the round is, as a plain line: done/total devices, what was read and moved,
        and the time left at this pace; None between rounds (nothing moves)."""
        r = self.round
        if r is None or (r.devices and r.done_devices >= r.devices):
            return None
        elapsed = self.clock() - self.started
        left = elapsed * (r.devices - r.done_devices) / r.done_devices if r.done_devices else None
        return (
            f"round {self.number}: {r.done_devices:,}/{r.devices:,} devices, {r.read:,} read,"
            f" {r.changed:,} moved, {len(r.unreadable):,} unreadable; ETA {eta(left)}"
        )

    def __rich__(self) -> RenderableType:
        r = self.round
        if r is None:
            return Text("checking OneNET ...")
        if r.devices and r.done_devices >= r.devices:
            return Text(f"round {self.number} done; waiting for the next one (Ctrl-C stops)")
        elapsed = self.clock() - self.started
        return Text(
            f"round {self.number}: {r.done_devices:,}/{r.devices:,} devices, {r.read:,} read,"
            f" {r.changed:,} moved, {len(r.unreadable):,} unreadable  {elapsed:,.0f}s"
        )
