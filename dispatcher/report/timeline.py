"""Events counted over time in bounded memory, and the bars of a chart of them.

A :class:`Histogram` bins events as they stream by, in at most ``max_bins`` bins of one width from
:data:`WIDTHS`, a ladder whose every width divides the next: when a series outgrows its bins, the
width steps up the ladder and the bins merge exactly. :func:`timeline` puts several series on one
time axis the same way (a common width, at most ``max_bars`` bars) and lays out their panels.
Bins are aligned on OneNET's clock (UTC+8), so an hour or a day starts where a person expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from dispatcher.times import BEIJING

__all__ = ["WIDTHS", "Bar", "Histogram", "Panel", "Tick", "Timeline", "timeline"]

_DAY: Final = 86_400
WIDTHS: Final = (
    1, 2, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, _DAY, 7 * _DAY,
    28 * _DAY, 364 * _DAY, 3640 * _DAY, 36400 * _DAY,
)  # fmt: skip
# Bins count UTC+8 wall-clock seconds: unix seconds plus the offset, from that epoch.
_SHIFT: Final = 8 * 3600
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=BEIJING)


class Histogram:
    """Counts of events by time (unix seconds) in at most ``max_bins`` bins of one width."""

    def __init__(self, max_bins: int = 4096) -> None:
        self.max_bins = max_bins
        self.step = 0  # the index of the width in WIDTHS
        self.bins: dict[int, int] = {}  # bin number (time // width, on UTC+8) -> events
        self.count = 0

    @property
    def width(self) -> int:
        """The width of a bin, in seconds."""
        return WIDTHS[self.step]

    def add(self, at: float) -> None:
        """Count one event at ``at``."""
        key = int((at + _SHIFT) // WIDTHS[self.step])
        self.bins[key] = self.bins.get(key, 0) + 1
        self.count += 1
        while len(self.bins) > self.max_bins and self.step < len(WIDTHS) - 1:
            self.bins = self.at_width(WIDTHS[self.step + 1])
            self.step += 1

    def at_width(self, width: int) -> dict[int, int]:
        """The same counts in bins of ``width``, a width of the ladder no finer than this one's."""
        if width % self.width:
            raise ValueError(f"{width} s is not a multiple of the bins' {self.width} s")
        merged: dict[int, int] = {}
        for key, n in self.bins.items():
            wide = key * self.width // width
            merged[wide] = merged.get(wide, 0) + n
        return merged


@dataclass(frozen=True, slots=True)
class Bar:
    """One bin of a panel, placed in the chart's coordinates."""

    x: float
    y: float
    width: float
    height: float
    count: int
    label: str  # the bin's time span and count, for a tooltip


@dataclass(frozen=True, slots=True)
class Panel:
    """One series of a chart: its bars over a baseline, with its own vertical scale."""

    name: str
    css: str  # the class that colours it
    top: float
    height: float
    peak: int  # the tallest bin's count (the top of the scale)
    total: int
    bars: tuple[Bar, ...]

    @property
    def baseline(self) -> float:
        """Where a bar of nought stands."""
        return self.top + self.height


@dataclass(frozen=True, slots=True)
class Tick:
    """A label on the time axis."""

    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """A chart of several series over one time axis: the SVG's size, its panels and ticks."""

    width: int
    height: int
    left: float  # where the plot starts (the scales are to the left of it)
    right: float
    panels: tuple[Panel, ...]
    ticks: tuple[Tick, ...]
    axis_y: float
    bin_width: str  # '10 min'
    start: str  # the first bin's start, 'YYYY-MM-DD HH:MM UTC+8'
    end: str


def timeline(
    series: Sequence[tuple[str, str, Histogram]],
    *,
    max_bars: int = 72,
    width: int = 960,
    panel_height: int = 110,
) -> Timeline | None:
    """Panels of ``(name, css class, histogram)`` over one time axis; None when none has events."""
    filled = [h for _, _, h in series if h.count]
    if not filled:
        return None
    finest = max(h.step for h in filled)
    for step in range(finest, len(WIDTHS)):
        w = WIDTHS[step]
        binned = [h.at_width(w) if h.count else {} for _, _, h in series]
        first = min(min(b) for b in binned if b)
        last = max(max(b) for b in binned if b)
        if last - first + 1 <= max_bars:
            break
    n = last - first + 1
    left, right, gap, top = 64.0, float(width - 16), 26.0, 22.0
    slot = (right - left) / n
    panels = []
    for (name, css, h), bins in zip(series, binned, strict=True):
        peak = max(bins.values(), default=0)
        bars = []
        for key, count in sorted(bins.items()):
            tall = max(1.0, panel_height * count / peak)
            x = left + (key - first) * slot
            bars.append(
                Bar(
                    x=round(x + slot * 0.1, 2),
                    y=round(top + panel_height - tall, 2),
                    width=round(max(slot * 0.8, 1.0), 2),
                    height=round(tall, 2),
                    count=count,
                    label=f"{_span(key, w)}: {count:,} {name.lower()}",
                )
            )
        panels.append(Panel(name, css, top, panel_height, peak, h.count, tuple(bars)))
        top += panel_height + gap
    axis_y = top - gap
    # Ticks at round times: the finest width of the ladder that gives at most 7 of them.
    every = next((t for t in WIDTHS if t >= w and n * w / t <= 7), WIDTHS[-1])
    fmt = _tick_format(every, n * w)
    ticks = tuple(
        Tick(round(left + i * slot, 2), _local(first + i, w).strftime(fmt))
        for i in range(n)
        if (first + i) * w % every == 0
    )
    return Timeline(
        width=width,
        height=int(axis_y + 22),
        left=left,
        right=right,
        panels=tuple(panels),
        ticks=ticks,
        axis_y=axis_y,
        bin_width=_duration(w),
        start=_local(first, w).strftime("%Y-%m-%d %H:%M UTC+8"),
        end=_local(last + 1, w).strftime("%Y-%m-%d %H:%M UTC+8"),
    )


def _local(key: int, width: int) -> datetime:
    """The start of bin ``key`` of ``width``, as a UTC+8 time."""
    return _EPOCH + timedelta(seconds=key * width)


def _span(key: int, width: int) -> str:
    start, end = _local(key, width), _local(key + 1, width)
    if width >= _DAY:
        return f"{start:%Y-%m-%d} .. {end:%Y-%m-%d}"
    shown = "%H:%M:%S" if width < 60 else "%H:%M"
    return f"{start:%Y-%m-%d} {start.strftime(shown)} .. {end.strftime(shown)}"


def _tick_format(every: int, span: int) -> str:
    if every >= _DAY:
        return "%m-%d"
    if span > _DAY:
        return "%m-%d %H:%M"
    return "%H:%M:%S" if every < 60 else "%H:%M"


def _duration(seconds: int) -> str:
    for unit, name in ((_DAY, "day"), (3600, "h"), (60, "min")):
        if seconds >= unit and seconds % unit == 0:
            n = seconds // unit
            return f"{n} {name}" + ("s" if name == "day" and n != 1 else "")
    return f"{seconds} s"
