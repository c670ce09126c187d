"""OneNET timestamps: Beijing time (UTC+8), zones, relative times, formatting and parsing.

OneNET takes and gives times as ``YYYY-MM-DDTHH:MM:SS`` without a zone, meaning UTC+8 (its answers
use a space instead of the ``T``). A job file may also give a time with a zone (converted to UTC+8)
or a relative one (``+30m``, ``+6h``, ``+2d``) counted from the moment the command is sent, or
the start or end of a daily window (``window 02:00-06:00 start``): the next such window at the
moment of sending.
"""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time as wall_time, timedelta, timezone, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "BEIJING",
    "MAX_OFFSET",
    "WINDOW_MIN_LEFT",
    "DailyWindow",
    "TimeSpec",
    "WindowEdge",
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
_WINDOW_SPEC = re.compile(r"window\s+(?P<daily>\S+)(?:\s+(?P<zone>\S+))??\s+(?P<edge>start|end)")
_DAILY = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_FIXED_ZONE = re.compile(
    r"(?:(?:UTC|GMT)\s*)?(?P<sign>[+-])\s*(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?|UTC|GMT|Z", re.I
)
_IANA = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9_+-]+)*")
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


WindowEdge = Literal["start", "end"]
"""Which end of a daily window a TimeSpec means."""

WINDOW_MIN_LEFT = timedelta(seconds=60)
"""A window is taken only if at least this much of it is left at the moment of sending."""


@dataclass(frozen=True, slots=True)
class DailyWindow:
    """Every day from ``opens`` to ``closes`` on the wall clock of ``zone``; a window whose
    ``closes`` is not after ``opens`` (22:00-02:00) ends the next day.

    Days when the clocks change: a wall time they skip (spring forward) is the moment they jump,
    so the window is what is left of it that day, and none when it lies wholly in the skipped
    hour (the next day's is taken); a wall time they repeat (fall back) is its first occurrence.
    """

    opens: wall_time
    closes: wall_time
    zone: tzinfo = BEIJING
    zone_name: str = ""  # as texts name the zone: "" for OneNET's UTC+8

    @property
    def text(self) -> str:
        """``02:00-06:00``, then the zone unless it is UTC+8."""
        span = f"{self.opens:%H:%M}-{self.closes:%H:%M}"
        return f"{span} {self.zone_name}" if self.zone_name else span

    @property
    def length(self) -> timedelta:
        """How long the window is on a day the clocks do not change."""
        minutes = (_minutes(self.closes) - _minutes(self.opens)) % (24 * 60)
        return timedelta(minutes=minutes)

    def spec(self, edge: WindowEdge) -> TimeSpec:
        """The TimeSpec of this window's start or end (``window 02:00-06:00 start``)."""
        return TimeSpec(f"window {self.text} {edge}", window=self, edge=edge)

    def next(self, send_time: datetime) -> tuple[datetime, datetime]:
        """Start and end (UTC+8) of the first window ending at least WINDOW_MIN_LEFT after
        ``send_time`` (naive: UTC+8); the start may have passed (the window is open)."""
        if send_time.tzinfo is None:
            send_time = send_time.replace(tzinfo=BEIJING)
        earliest = send_time + WINDOW_MIN_LEFT
        day = send_time.astimezone(self.zone).date() - timedelta(days=1)  # may still be open
        overnight = timedelta(days=1) if self.closes <= self.opens else timedelta(0)
        for _ in range(8):  # a day's window is missing only inside a skipped hour: never twice
            start = _first_reading(day, self.opens, self.zone)
            end = _first_reading(day + overnight, self.closes, self.zone)
            if end > start and end >= earliest:
                return start.astimezone(BEIJING), end.astimezone(BEIJING)
            day += timedelta(days=1)
        raise ValueError(f"the window {self.text} does not occur after {send_time}")


def _minutes(t: wall_time) -> int:
    return t.hour * 60 + t.minute


def _first_reading(day: date, at: wall_time, zone: tzinfo) -> datetime:
    """The first instant (UTC) the clocks of ``zone`` read ``at`` or later on ``day``."""
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:  # an ordinary time, or one repeated: its first occurrence
        return first
    # Skipped: (PEP 495) fold 0 reads it with the offset before the jump, fold 1 with the one
    # after, so the jump lies between the two; found to the second (offsets are whole seconds).
    low, high = int(second.timestamp()), int(first.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


@dataclass(frozen=True, slots=True)
class TimeSpec:
    """A job file's time: an absolute instant, an offset from the moment of sending, or an end of
    the next daily window at the moment of sending."""

    text: str
    at: datetime | None = None
    offset: timedelta | None = None
    window: DailyWindow | None = None
    edge: WindowEdge = "start"  # with window: which end

    def __post_init__(self) -> None:
        if (self.at is not None) + (self.offset is not None) + (self.window is not None) != 1:
            raise ValueError("a TimeSpec needs exactly one of `at`, `offset` and `window`")

    def resolve(self, send_time: datetime) -> datetime:
        """The instant this time means for a command sent at ``send_time``."""
        if self.at is not None:
            return self.at
        if self.window is not None:
            start, end = self.window.next(send_time)
            return start if self.edge == "start" else end
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
    if text.startswith("window"):
        return _parse_window_spec(text)
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


def _parse_window_spec(text: str) -> TimeSpec:
    m = _WINDOW_SPEC.fullmatch(text)
    if m is None:
        raise ValueError(
            f"{text!r} is not a window time: write e.g. 'window 02:00-06:00 start'"
            " or 'window 22:00-02:00 Europe/Berlin end'"
        )
    window = parse_window(m.group("daily"), m.group("zone"))
    edge: WindowEdge = "start" if m.group("edge") == "start" else "end"
    return TimeSpec(text, window=window, edge=edge)


def parse_window(daily: str, zone: str | None = None) -> DailyWindow:
    """A daily window from ``02:00-06:00`` and a zone as parse_zone takes it (None: UTC+8);
    ValueError if bad."""
    m = _DAILY.fullmatch(daily.strip())
    if m is None:
        raise ValueError(f"{daily!r} is not a daily window: write HH:MM-HH:MM, e.g. 02:00-06:00")
    hour1, minute1, hour2, minute2 = (int(g) for g in m.groups())
    if hour1 > 23 or hour2 > 23 or minute1 > 59 or minute2 > 59:
        hint = " (write midnight as 00:00)" if (hour2, minute2) == (24, 0) else ""
        raise ValueError(f"{daily!r} is not a time of day from 00:00 to 23:59{hint}")
    opens, closes = wall_time(hour1, minute1), wall_time(hour2, minute2)
    if opens == closes:
        raise ValueError(
            f"{daily!r} opens and closes at the same time: a window needs a length"
            " (for the whole day, leave the window out)"
        )
    tz, name = parse_zone(zone)
    return DailyWindow(opens, closes, tz, name)


def parse_zone(text: str | None) -> tuple[tzinfo, str]:
    """A time zone and its name for texts ('' for UTC+8): None or '' is OneNET's UTC+8; an IANA
    name (``Europe/Berlin``); a fixed offset (``+01:00``, ``UTC+1``, ``UTC``). ValueError if bad."""
    name = (text or "").strip()
    if not name:
        return BEIJING, ""
    m = _FIXED_ZONE.fullmatch(name)
    if m is not None:
        hours, minutes = int(m.group("h") or 0), int(m.group("m") or 0)
        if hours > 23 or minutes > 59:
            raise ValueError(f"{name!r} is not a zone offset (at most 23:59 either way)")
        sign = -1 if m.group("sign") == "-" else 1
        delta = sign * timedelta(hours=hours, minutes=minutes)
        if delta == timedelta(hours=8):
            return BEIJING, ""
        sign_text = "-" if delta < timedelta(0) else "+"
        canonical = f"{sign_text}{hours:02d}:{minutes:02d}"
        return timezone(delta, f"UTC{canonical}"), canonical
    if _IANA.fullmatch(name):
        try:
            return ZoneInfo(name), name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValueError(
        f"{name!r} is not a time zone{_zone_hint(name)}: give an IANA name such as"
        " Europe/Berlin, or an offset such as +01:00 or UTC+1"
    )


def _zone_hint(name: str) -> str:
    """' (did you mean X?)' for a near IANA name (case and spelling), else ''."""
    try:
        names = {n.lower(): n for n in available_timezones()}
    except OSError:  # pragma: no cover - no time zone database to look in
        return ""
    if name.lower() in names:
        return f" (did you mean {names[name.lower()]}?)"
    match = difflib.get_close_matches(name.lower(), list(names), n=1, cutoff=0.8)
    return f" (did you mean {names[match[0]]}?)" if match else ""


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
