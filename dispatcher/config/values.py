"""One config value as its key wants it (numbers, durations, rates), said back for messages,
and the suggestion for a misspelt key.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from dispatcher.errors import ConfigError

__all__ = ["coerce", "duration", "nearest", "number", "rate", "shown", "suggest"]


def duration(value: Any, where: str) -> float:
    """Seconds, from a number or text such as 90s, 30m, 1h, 1d."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number(value, where)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    amount, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    try:
        seconds = float(amount) * unit
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):  # float() reads nan, inf and 1e999 too
        raise ConfigError(f"{where}: must be a duration such as 1h, 30m or 3600, not {value!r}")
    return seconds


def coerce(value: Any, default: Any, where: str) -> Any:
    """``value`` as the type of the key's ``default`` wants it."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: must be true or false, not {value!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: must be a whole number, not {value!r}")
        return value
    if isinstance(default, float) or default is None:
        return rate(value, where) if where.endswith("rate_per_second") else number(value, where)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be text, not {value!r}")
    return value


def number(value: Any, where: str) -> float:
    """A finite number (not a boolean)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(f"{where}: must be a number, not one this large") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: must be a number, not {value!r}")
    return number


def rate(value: Any, where: str) -> float | None:
    """A rate: a positive number, or 0 / null / 'unlimited' for no limit."""
    if value is None or value == "unlimited":
        return None
    rate = number(value, where)
    return None if rate == 0 else rate


def shown(number: int) -> str:
    """A whole number for a message; Python refuses to write one of thousands of digits."""
    return str(number) if number.bit_length() <= 64 else "a number this large"


def nearest(name: str, choices: Mapping[str, object]) -> str | None:
    """The one of ``choices`` ``name`` is most likely a misspelling of, if any."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return close[0] if close else None


def suggest(name: str, choices: Mapping[str, object]) -> str:
    """' (did you mean ...?)' for the nearest of ``choices``, else ' (known: ...)'."""
    close = nearest(name, choices)
    return f" (did you mean {close!r}?)" if close else f" (known: {', '.join(sorted(choices))})"
