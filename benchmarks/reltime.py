"""Job-file times as the bare and naive clients resolve them, each distinct one once: relative
(+2d, +10m) from the start, absolute (``YYYY-MM-DD HH:MM:SS`` or with a ``T``) as OneNET takes
it, ``YYYY-MM-DDTHH:MM:SS``."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

__all__ = ["now_utc8", "time_resolver"]

_UTC8 = timezone(timedelta(hours=8))  # OneNET's clock
_OFFSET = re.compile(r"\+(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def now_utc8() -> datetime:
    """The current time in UTC+8."""
    return datetime.now(_UTC8)


def time_resolver(now: datetime) -> Callable[[str], str]:
    """A job file time -> OneNET's text; each distinct value is worked out once."""
    cache: dict[str, str] = {}

    def resolve(spec: str) -> str:
        text = cache.get(spec)
        if text is None:
            m = _OFFSET.fullmatch(spec)
            if m is None:
                text = spec.replace(" ", "T", 1)  # absolute: OneNET's request form has the T
            else:
                d, h, mi, s = (int(g or 0) for g in m.groups())
                later = now + timedelta(days=d, hours=h, minutes=mi, seconds=s)
                text = later.strftime("%Y-%m-%dT%H:%M:%S")
            cache[spec] = text
        return text

    return resolve
