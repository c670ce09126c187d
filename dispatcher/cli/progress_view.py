"""Progress while a command works: the run's live line fitted to the terminal's width (the
figures a person waits on, done/total, rate and ETA, kept; the rest dropped first), and off a
terminal plain progress lines now and then, so that a log is not silent for minutes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from dispatcher.ledger.store import Status

if TYPE_CHECKING:
    from dispatcher.run.state import RunStats

__all__ = ["PLAIN_EVERY_S", "Part", "ProgressLine", "eta", "fitted", "ticking"]

PLAIN_EVERY_S: Final = 10.0  # off a terminal: a progress line this often
_BAR: Final = 24  # cells of the bar
_PLAIN_WIDTH: Final = 200  # a plain line in a log: wide enough for every part


@dataclass(frozen=True, slots=True)
class Part:
    """A part of a progress line: its text, its style, how much it matters (0 most: the last
    to go when the line is too wide), and whether it is a counter (counters are joined by ·)."""

    text: str
    style: str = ""
    rank: int = 0
    counter: bool = False


def fitted(parts: list[Part], width: int) -> Text:
    """``parts`` on one line of at most ``width`` cells: the least important dropped first (the
    later of two alike), the others in their order."""
    kept = list(parts)
    while len(kept) > 1 and _width(kept) > width:
        worst = max(range(len(kept)), key=lambda i: (kept[i].rank, i))
        del kept[worst]
    text = Text()
    for i, part in enumerate(kept):
        if i:
            text.append(" · " if part.counter and kept[i - 1].counter else "  ")
        text.append(part.text, style=part.style)
    return text


def _width(parts: list[Part]) -> int:
    gaps = sum(
        3 if part.counter and parts[i - 1].counter else 2 for i, part in enumerate(parts) if i
    )
    return sum(cell_len(p.text) for p in parts) + gaps


def eta(seconds: float | None) -> str:
    """A time left as ``45s``, ``12m05s`` or ``2h03m`` (``?``: not known yet)."""
    if seconds is None:
        return "?"
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    minutes, s = divmod(whole, 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


class ProgressLine:
    """A one-line live view of a run's counters, fitted to the console's width."""

    def __init__(self, stats: RunStats, clock: Callable[[], float] = time.monotonic) -> None:
        self.stats, self.clock = stats, clock

    def parts(self) -> list[Part]:
        """The line's parts: done/total, rate and ETA matter most; then the failures that
        happened, the accepted, the share, the bar; counters at zero matter least."""
        s = self.stats
        elapsed = max(self.clock() - s.started_at, 1e-6)
        done, total = s.done, max(s.total, 1)
        rate = (done - s.done_at_start) / elapsed
        remaining = max(s.total - done, 0)
        filled = int(_BAR * min(done / total, 1.0))
        bar = ("━" * filled + "╺" + " " * (_BAR - filled))[:_BAR]
        ledger = s.ledger
        rejected = ledger.get(Status.REJECTED, 0) + ledger.get(Status.EXPIRED, 0)
        failed, doubt = ledger.get(Status.FAILED, 0), ledger.get(Status.IN_DOUBT, 0)

        def counter(name: str, n: int, style: str) -> Part:
            return Part(f"{name} {n:,}", style if n else "", 2 if n else 6, counter=True)

        return [
            Part(bar, "cyan", 5),
            Part(f"{done:,}/{s.total:,}"),
            Part(f"{100 * done / total:.1f}%", rank=4),
            Part(f"{rate:,.0f}/s", rank=1),
            Part(f"accepted {ledger.get(Status.ACCEPTED, 0):,}", "green", 3, counter=True),
            counter("rejected", rejected, "red"),
            counter("failed", failed, "red"),
            counter("in doubt", doubt, "yellow"),
            Part(f"ETA {eta(remaining / rate if rate > 0 else None)}"),
        ]

    def plain(self) -> str | None:
        """The line for a log (off a terminal): every part but the bar; None once all is done
        (the summary says the rest) or before the job's size is known."""
        s = self.stats
        if not s.total or s.done >= s.total:
            return None
        return "progress: " + fitted(self.parts()[1:], _PLAIN_WIDTH).plain

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield fitted(self.parts(), options.max_width)


@contextmanager
def ticking(
    line: Callable[[], str | None],
    say: Callable[[str], None],
    every_s: float | None = None,
    wait: Callable[[float], bool] | None = None,
) -> Iterator[None]:
    """While the block runs, ``say`` the ``line`` every ``every_s`` seconds (default
    PLAIN_EVERY_S; nothing when it is None); ``wait(seconds)`` waits, True once the block is
    over (the default: a stop event's)."""
    every_s = PLAIN_EVERY_S if every_s is None else every_s
    done = threading.Event()
    pause = done.wait if wait is None else wait

    def tick() -> None:
        while not pause(every_s) and not done.is_set():
            text = line()
            if text is not None:
                say(text)

    # A thread of the block's own, ended and joined with it: the command's loop is never
    # asked to print, and a line is said even while the loop is busy.
    ticker = threading.Thread(target=tick, name="plain-progress", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        done.set()
        ticker.join()
