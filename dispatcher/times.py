"""OneNET timestamps: Beijing time (UTC+8), zones, relative times, formatting and parsing.

OneNET takes and gives times as ``YYYY-MM-DDTHH:MM:SS`` without a zone, meaning UTC+8 (its answers
use a space instead of the ``T``). A job file may also give a time with a zone (converted to UTC+8)
or a relative one (``+30m``, ``+6h``, ``+2d``) counted from the moment the command is sent, or
the start or end of a daily window (``window 02:00-06:00 start``): the next such window at the
moment of sending.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as clock_time, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "BEIJING",
    "MAX_OFFSET",
    "WINDOW_MIN_LEFT",
    "DailyWindow",
    "ServerClock",
    "TimeSpec",
    "WindowEdge",
    "describe_offset",
    "format_onenet",
    "now_beijing",
    "parse_onenet",
    "parse_timespec",
    "parse_window",
    "parse_zone",
    "start_of",
]

BEIJING: tzinfo = timezone(timedelta(hours=8), "UTC+8")
"""OneNET's clock: China Standard Time, a fixed UTC+8 (no daylight saving)."""

MAX_OFFSET = timedelta(days=3650)
"""The longest relative time accepted; anything longer is a typo."""

_ONENET = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})")
_ABSOLUTE = re.compile(
    r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})[Tt ]+(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,]\d{1,9})?)?"
    r"\s*(?:(?P<z>[Zz])|(?P<sign>[+-])(?P<zh>\d{2}):?(?P<zm>\d{2})?)?"
)
_RELATIVE = re.compile(r"\+\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?")
_HINT = (
    "write YYYY-MM-DDTHH:MM:SS (UTC+8), one with a zone such as Z or +08:00, "
    "or a relative time such as +30m, +6h, +2d"
)


def now_beijing(clock: Callable[[], float] = time.time) -> datetime:
    """The current time as an aware UTC+8 datetime, to the second."""
    return datetime.fromtimestamp(int(clock()), BEIJING)


def start_of(at: datetime | None) -> datetime:
    """The start a job is checked against: ``at`` in UTC+8 (naive: taken as UTC+8), or now."""
    if at is None:
        return now_beijing()
    if at.tzinfo is None:
        return at.replace(tzinfo=BEIJING)
    return at.astimezone(BEIJING)


def format_onenet(dt: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC+8, as OneNET takes it; an aware ``dt`` is converted first."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(BEIJING)
    return (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )


def parse_onenet(text: str) -> datetime:
    """Parse a OneNET timestamp (``T`` or a space before the time) into an aware UTC+8 datetime."""
    m = _ONENET.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a OneNET time (YYYY-MM-DD HH:MM:SS)")
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    return datetime(year, month, day, hour, minute, second, tzinfo=BEIJING)


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """A job file's time: an absolute instant, or an offset from the moment of sending."""

    text: str
    at: datetime | None = None
    offset: timedelta | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.offset is None):
            raise ValueError("a TimeSpec needs exactly one of `at` and `offset`")

    def resolve(self, send_time: datetime) -> datetime:
        """The instant this time means for a command sent at ``send_time``."""
        if self.at is not None:
            return self.at
        assert self.offset is not None  # guaranteed by __post_init__
        return (send_time + self.offset).astimezone(BEIJING)


def parse_timespec(value: object) -> TimeSpec:
    """Read a job file's time: a string, or a datetime/date as YAML may give; ValueError if bad."""
    if isinstance(value, datetime):
        at = value.replace(tzinfo=BEIJING) if value.tzinfo is None else value.astimezone(BEIJING)
        at = at.replace(microsecond=0)
        return TimeSpec(format_onenet(at) if value.tzinfo is None else value.isoformat(), at=at)
    if isinstance(value, date):
        return TimeSpec(value.isoformat(), at=datetime(*value.timetuple()[:3], tzinfo=BEIJING))
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time: {_HINT}")
    text = value.strip()
    if not text:
        raise ValueError(f"is empty: {_HINT}")
    if text.startswith("+"):
        return TimeSpec(text, offset=_parse_offset(text))
    m = _ABSOLUTE.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time: {_HINT}")
    year, month, day, hour, minute = (int(g) for g in m.groups()[:5])
    second = int(m.group(6) or 0)
    zone: tzinfo = BEIJING
    if m.group("z"):
        zone = UTC
    elif m.group("sign"):
        hours, minutes = int(m.group("zh")), int(m.group("zm") or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"{text!r} has an impossible zone offset")
        delta = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-delta if m.group("sign") == "-" else delta)
    try:
        at = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a real date and time ({exc})") from None
    try:
        at = at.astimezone(BEIJING)
    except OverflowError:
        raise ValueError(f"{text!r} is out of range") from None
    return TimeSpec(text, at=at)


def _parse_offset(text: str) -> timedelta:
    m = _RELATIVE.fullmatch(text)
    if m is None or not any(m.groups()):
        raise ValueError(
            f"{text!r} is not a relative time: write e.g. +90s, +30m, +6h, +2d, +1d12h"
        )
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    if max(days, hours, minutes, seconds) > 10**7:
        raise ValueError(f"{text!r} is too far ahead (at most {MAX_OFFSET.days} days)")
    offset = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if offset <= timedelta(0):
        raise ValueError(f"{text!r} must be later than the moment of sending (more than zero)")
    if offset > MAX_OFFSET:
        raise ValueError(f"{text!r} is too far ahead (at most {MAX_OFFSET.days} days)")
    return offset


class ServerClock:
    """OneNET's clock as seen from here: the local clock plus an offset read off its answers.

    OneNET checks ``valid_time`` against its own clock and keeps its history in it, so relative
    times and history searches must use it. An answer's ``Date`` header (RFC 9110 5.6.7) shows
    the server's time truncated to the second, D: the answer was made at a server time in
    [D, D + 1), and at a local time between the request's leaving and the answer's arrival, so the
    offset lies in [D - received, D + 1 - sent]. The offset kept is the middle of the intersection
    of the recent intervals. The tight ones come from the answers made just after and just before
    a second changes: the first and the last answer showing each Date, which are the only ones
    taken (the others are one comparison each). Intervals that do not meet (OneNET's clock was
    stepped) start the intersection again from the newest.
    """

    def __init__(self, clock: Callable[[], float] = time.time, *, keep: int = 16) -> None:
        self._clock = clock
        self._bounds: deque[tuple[float, float]] = deque(maxlen=keep)
        self._date: float | None = None
        self._last: tuple[float, float] | None = None  # the latest answer showing that Date
        self.offset = 0.0
        """OneNET's clock minus the local one, in seconds (0.0 until an answer is seen)."""

    @property
    def known(self) -> bool:
        """True once a Date header has been read."""
        return self._date is not None

    def local(self) -> float:
        """The local clock (unix seconds)."""
        return self._clock()

    def now(self) -> float:
        """OneNET's now, in unix seconds."""
        return self._clock() + self.offset

    def now_beijing(self) -> datetime:
        """OneNET's now as an aware UTC+8 datetime, to the second."""
        return datetime.fromtimestamp(int(self.now()), BEIJING)

    def observe(self, server_date: float, sent_at: float, received_at: float) -> None:
        """Take an answer's Date (unix seconds), its request having left at ``sent_at`` and the
        answer arrived at ``received_at`` (local clock)."""
        if server_date == self._date:
            self._last = (sent_at, received_at)
            return
        if self._date is not None and self._last is not None:
            sent, received = self._last  # made just before the second changed
            self._add(self._date - received, self._date + 1.0 - sent)
        self._date, self._last = server_date, None
        self._add(server_date - received_at, server_date + 1.0 - sent_at)

    def _add(self, low: float, high: float) -> None:
        bounds = self._bounds
        bounds.append((low, high))
        lo = max(b[0] for b in bounds)
        hi = min(b[1] for b in bounds)
        if lo > hi:  # they do not meet: the clock moved; start again from this one
            bounds.clear()
            bounds.append((low, high))
            lo, hi = low, high
        self.offset = (lo + hi) / 2


def describe_offset(seconds: float) -> str:
    """An offset for people: '6m02s ahead', '4.1s behind'."""
    size = abs(seconds)
    way = "ahead of" if seconds > 0 else "behind"
    whole = round(size)
    if size < 60:
        text = f"{size:.1f}s"
    elif whole < 3600:
        text = f"{whole // 60}m{whole % 60:02d}s"
    else:
        text = f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{text} {way}"
