"""How a job is to be sent, besides its commands: the rollout (a canary first, a ramp of the pace,
abort rules), the schedule (a start time) and the daily window. Read from the job file's
``rollout:``, ``schedule:`` and ``window:`` sections (planfile.py), each rollout key also settable
by a flag of ``dispatcher run`` (the flag wins: ``rollout_from_flags``).

The value rules live here, once, for the file and the flags alike: each raises ValueError with a
message that reads after the field's name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from dispatcher.times import DailyWindow

__all__ = [
    "MAX_CANARY_TIMEOUT",
    "Abort",
    "Canary",
    "CanaryThen",
    "CanaryWait",
    "Plan",
    "Ramp",
    "Rollout",
    "check_value",
    "parse_canary_size",
    "parse_canary_then",
    "parse_canary_wait",
    "parse_count",
    "parse_duration",
    "parse_number",
    "rollout_from_flags",
]

CanaryWait = Literal["accepted", "delivered"]
CanaryThen = Literal["continue", "pause"]
_WAITS: dict[str, CanaryWait] = {"accepted": "accepted", "delivered": "delivered"}
_THENS: dict[str, CanaryThen] = {"continue": "continue", "pause": "pause"}
MAX_CANARY_TIMEOUT = timedelta(days=30)
"""The longest wait for a canary's devices: a longer one is a typo."""
_DURATION = re.compile(r"\+?\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")


@dataclass(frozen=True, slots=True)
class Canary:
    """A small group sent first, drawn evenly across the job; the rest only once it went well."""

    size: int | None = None  # a number of commands ...
    percent: float | None = None  # ... or a share of the job (0 < percent <= 100)
    wait: CanaryWait = "accepted"  # accepted: its answers; delivered: its devices ran it
    timeout_s: float = 1800.0  # with wait: delivered, how long to wait for its devices
    then: CanaryThen = "continue"  # pause: stop after a good canary (exit 0); the next run goes on

    def count(self, total: int) -> int:
        """How many commands of a job of ``total`` the canary holds (at least 1, at most all)."""
        if total <= 0:
            return 0
        n = math.ceil(total * self.percent / 100.0) if self.percent is not None else self.size or 0
        return max(1, min(total, n))


@dataclass(frozen=True, slots=True)
class Ramp:
    """The pace grows while results stay good: ``start_per_second``, times ``factor`` after each
    ``every_accepted`` more accepted, up to the configured rate (as AWS IoT's exponentialRate)."""

    start_per_second: float
    factor: float = 2.0
    every_accepted: int = 100

    def rate(self, accepted: int, ceiling: float | None) -> float | None:
        """The pace after ``accepted`` accepted commands (None: no limit)."""
        steps = accepted // self.every_accepted if self.every_accepted > 0 else 0
        rate = self.start_per_second * self.factor ** min(steps, 64)
        return rate if ceiling is None else min(rate, ceiling)


@dataclass(frozen=True, slots=True)
class Abort:
    """When to stop a rollout: a failure rate over what was decided, or one of some errnos."""

    max_failure_rate: float | None = None  # rejected+failed (and device failures) over decided
    min_decided: int = 50  # the rate is checked once this many commands have an outcome
    on_errnos: frozenset[int] = frozenset()  # stop at once on any of these


@dataclass(frozen=True, slots=True)
class Rollout:
    """The rollout section: each part optional."""

    canary: Canary | None = None
    ramp: Ramp | None = None
    abort: Abort | None = None

    @property
    def empty(self) -> bool:
        """True when the job is simply sent."""
        return self.canary is None and self.ramp is None and self.abort is None


@dataclass(frozen=True, slots=True)
class Plan:
    """How the job is sent: its rollout, when it starts (None: at once) and its daily window
    (None: each command's own times)."""

    rollout: Rollout = field(default_factory=Rollout)
    start_at: datetime | None = None  # aware
    window: DailyWindow | None = None  # every command's valid_time and expired_time

    def with_rollout(self, rollout: Rollout) -> Plan:
        """This plan with another rollout."""
        return replace(self, rollout=rollout)


def parse_canary_size(text: str) -> tuple[int | None, float | None]:
    """A canary's size as written (``50``, ``2%``): (size, None) or (None, percent)."""
    t = text.strip()
    if m := _PERCENT.fullmatch(t):
        percent = float(m.group(1))
        if not 0 < percent <= 100:
            raise ValueError(f"a share must be more than 0% and at most 100%, got {t!r}")
        return None, percent
    if t.isascii() and t.isdigit() and len(t) <= 12 and int(t) >= 1:
        return int(t), None
    raise ValueError(f"must be a number of commands (1 or more) or a share such as 2%, got {t!r}")


def parse_canary_wait(text: str) -> CanaryWait:
    """What the canary waits for: ``accepted`` (its answers) or ``delivered`` (its devices)."""
    t = text.strip()
    if t in _WAITS:
        return _WAITS[t]
    raise ValueError(f"must be accepted or delivered, got {t!r}")


def parse_canary_then(text: str) -> CanaryThen:
    """What follows a good canary: ``continue`` or ``pause``."""
    t = text.strip()
    if t in _THENS:
        return _THENS[t]
    raise ValueError(f"must be continue or pause, got {t!r}")


def parse_duration(text: str) -> float:
    """A wait as written (``90s``, ``30m``, ``2h``, ``1d``, ``1h30m``, ``+30m``) in seconds,
    more than zero and at most MAX_CANARY_TIMEOUT."""
    t = text.strip()
    m = _DURATION.fullmatch(t)
    if not t or m is None or not any(m.groups()):
        raise ValueError(f"must be a duration such as 90s, 30m, 2h or 1d, got {t!r}")
    parts = [int(g or 0) for g in m.groups()]
    days, hours, minutes, seconds = (min(p, 10**7) for p in parts)  # timedelta's range
    length = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if length <= timedelta(0):
        raise ValueError(f"must be longer than zero, got {t!r}")
    if length > MAX_CANARY_TIMEOUT:
        raise ValueError(f"must be at most {MAX_CANARY_TIMEOUT.days} days, got {t!r}")
    return length.total_seconds()


def parse_number(text: str) -> float:
    """A finite number as written (``2``, ``0.5``)."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"must be a number, got {t!r}")
    return value


def parse_count(text: str) -> int:
    """A whole number as written (``100``, ``-1``)."""
    t = text.strip()
    digits = t[1:] if t[:1] in ("+", "-") else t
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise ValueError(f"must be a whole number, got {t!r}")
    return int(t)


def check_value(key: str, value: float) -> float:
    """``value`` if it is in range for the rollout key ``key`` (``factor``, ``min_decided``...)."""
    ok, rule = _RULES[key]
    if not (math.isfinite(value) and ok(value)):
        raise ValueError(f"must be {rule}, got {value:g}")
    return value


_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "start_per_second": (lambda v: v > 0, "more than 0"),
    "factor": (lambda v: v >= 1, "1 or more"),
    "every_accepted": (lambda v: v >= 1, "1 or more"),
    "max_failure_rate": (lambda v: 0 <= v <= 1, "from 0 to 1 (0.05 is 5%)"),
    "min_decided": (lambda v: v >= 1, "1 or more"),
    "on_errnos": (lambda v: v >= 0, "an errno, 0 or more"),
}


def rollout_from_flags(
    base: Rollout,
    *,
    canary: str | None = None,
    canary_wait: str | None = None,
    canary_timeout: str | None = None,
    canary_then: str | None = None,
    ramp_start: float | None = None,
    ramp_factor: float | None = None,
    ramp_every: int | None = None,
    max_failure_rate: float | None = None,
    min_decided: int | None = None,
    abort_on_errnos: tuple[int, ...] = (),
) -> Rollout:
    """``base`` (the job file's rollout) with each flag given (None or (): not given) in place of
    its key; ValueError naming the flag when its value is wrong or it has nothing to apply to
    (``--canary-wait`` with neither ``--canary`` nor a canary in the file)."""
    return Rollout(
        canary=_canary_flags(base.canary, canary, canary_wait, canary_timeout, canary_then),
        ramp=_ramp_flags(base.ramp, ramp_start, ramp_factor, ramp_every),
        abort=_abort_flags(base.abort, max_failure_rate, min_decided, abort_on_errnos),
    )


def _canary_flags(
    base: Canary | None, size: str | None, wait: str | None, timeout: str | None, then: str | None
) -> Canary | None:
    given = {"--canary-wait": wait, "--canary-timeout": timeout, "--canary-then": then}
    if size is None and base is None:
        if named := [flag for flag, value in given.items() if value is not None]:
            raise ValueError(f"{named[0]} needs --canary (or a canary in the job file)")
        return None
    canary = base or Canary()
    flag = "--canary"
    try:
        if size is not None:
            count, percent = parse_canary_size(size)
            canary = replace(canary, size=count, percent=percent)
        flag = "--canary-wait"
        if wait is not None:
            canary = replace(canary, wait=parse_canary_wait(wait))
        flag = "--canary-timeout"
        if timeout is not None:
            canary = replace(canary, timeout_s=parse_duration(timeout))
        flag = "--canary-then"
        if then is not None:
            canary = replace(canary, then=parse_canary_then(then))
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None
    if timeout is not None and canary.wait != "delivered":
        raise ValueError(
            "--canary-timeout: applies to a canary that waits for its devices:"
            " add --canary-wait delivered"
        )
    return canary


def _checked(flag: str, key: str, value: float) -> float:
    try:
        return check_value(key, value)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def _ramp_flags(
    base: Ramp | None, start: float | None, factor: float | None, every: int | None
) -> Ramp | None:
    if start is None and base is None:
        if factor is not None or every is not None:
            flag = "--ramp-factor" if factor is not None else "--ramp-every-accepted"
            raise ValueError(f"{flag} needs --ramp-start-per-second (or a ramp in the job file)")
        return None
    ramp = base or Ramp(start_per_second=1.0)
    if start is not None:
        ramp = replace(
            ramp, start_per_second=_checked("--ramp-start-per-second", "start_per_second", start)
        )
    if factor is not None:
        ramp = replace(ramp, factor=_checked("--ramp-factor", "factor", factor))
    if every is not None:
        ramp = replace(
            ramp, every_accepted=int(_checked("--ramp-every-accepted", "every_accepted", every))
        )
    return ramp


def _abort_flags(
    base: Abort | None, rate: float | None, decided: int | None, errnos: tuple[int, ...]
) -> Abort | None:
    if base is None and rate is None and decided is None and not errnos:
        return None
    abort = base or Abort()
    if rate is not None:
        rate = _checked("--max-failure-rate", "max_failure_rate", rate)
        abort = replace(abort, max_failure_rate=rate)
    if decided is not None:
        abort = replace(abort, min_decided=int(_checked("--min-decided", "min_decided", decided)))
    if errnos:
        for errno in errnos:
            _checked("--abort-on-errno", "on_errnos", errno)
        abort = replace(abort, on_errnos=frozenset(errnos))
    if abort.max_failure_rate is None and not abort.on_errnos:
        raise ValueError(
            "--min-decided needs --max-failure-rate (or a failure rate in the job file)"
        )
    return abort
