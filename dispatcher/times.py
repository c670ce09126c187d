"""OneNET timestamps: Beijing time (UTC+8), zones, relative times, formatting and parsing.

OneNET takes and gives times as ``YYYY-MM-DDTHH:MM:SS`` without a zone, meaning UTC+8 (its answers
use a space instead of the ``T``). A job file may also give a time with a zone (converted to UTC+8)
or a relative one (``+30m``, ``+6h``, ``+2d``) counted from the moment the command is sent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

__all__ = [
    "BEIJING",
    "MAX_OFFSET",
    "TimeSpec",
    "format_onenet",
    "now_beijing",
    "parse_onenet",
    "parse_timespec",
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
