"""What ``run`` shows of its plan: the plan itself (``--dry-run``, and before a scheduled start),
the estimate of how long sending takes, and the countdown to a scheduled start."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Final
from urllib.parse import urlsplit

from rich.text import Text

from dispatcher.app.figures import LaneFigures, PlanFigures
from dispatcher.cli import console
from dispatcher.job.plan import Canary, Plan, Ramp
from dispatcher.run.rollout import canary_positions
from dispatcher.times import BEIJING, format_onenet

__all__ = [
    "Countdown",
    "estimate_s",
    "plan_lines",
    "show_plan",
]


def estimate_s(count: int, rate: float | None, ramp: Ramp | None) -> float | None:
    """Seconds to send ``count`` commands at ``rate`` (None: unknown, no limit), the ramp's
    slower start counted (every command taken as accepted)."""
    if count <= 0:
        return 0.0
    if ramp is None:
        return None if rate is None else count / rate
    seconds, sent, step = 0.0, 0, 0
    while sent < count:
        pace = ramp.rate(step * ramp.every_accepted, rate)
        assert pace is not None
        if rate is not None and pace >= rate:
            return seconds + (count - sent) / rate
        batch = min(ramp.every_accepted, count - sent)
        seconds += batch / pace
        sent += batch
        step += 1
        if step > 10_000:  # a factor of 1: the ramp never reaches the rate
            return seconds + (count - sent) / pace
    return seconds


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(seconds, 0):.0f}s"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    if days:
        return f"{days}d{h:02d}h{m:02d}m"
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def plan_lines(plan: Plan, figures: PlanFigures, now: float) -> list[str]:
    """The plan, a line per part, for a person to check before anything is sent: each figure
    as the run works it out (each lane at its own pace, a canary per lane, of devices when the
    job has steps)."""
    rollout = plan.rollout
    held = f"holds {figures.done:,} done" if figures.ledger_exists else "new"
    lines = [
        f"ledger    {figures.ledger} ({held})",
        f"to send   {figures.to_send:,} of {figures.total:,} commands",
        f"send to   {_where(figures)}",
    ]
    if figures.by_product:
        for lane in figures.lanes:
            lines.append(
                f"lane      {lane.product or '(default)'}: {lane.to_send:,} of {lane.total:,}"
                f" commands to send, {_pace(lane)}"
            )
    canary = rollout.canary
    if canary is not None:
        lines.append("canary    " + _canary_line(canary, figures))
    pace = "each lane at its own (above)" if figures.by_product else _pace(figures.lanes[0])
    if rollout.ramp is not None:
        r = rollout.ramp
        pace += (
            f"; ramp from {r.start_per_second:g}/s, x{r.factor:g} every {r.every_accepted:,}"
            " accepted" + (" (in each lane)" if figures.by_product else "")
        )
    lines.append(f"pace      {pace}")
    abort = rollout.abort
    if abort is not None:
        parts = []
        if abort.max_failure_rate is not None:
            parts.append(
                f"more than {abort.max_failure_rate:.1%} refused or failed once"
                f" {abort.min_decided:,} are decided"
            )
        if abort.on_errnos:
            parts.append("at once on errno " + ", ".join(map(str, sorted(abort.on_errnos))))
        lines.append("abort     " + ("; ".join(parts) or "no rule"))
    start = now if plan.start_at is None else max(now, plan.start_at.timestamp())
    when = "at once" if plan.start_at is None else _at(plan.start_at.timestamp(), now)
    lines.append(f"start     {when}")
    if figures.window is not None:
        lines.append(f"window    {figures.window}")
    # The lanes send at once: the slowest sets the length.
    each = [estimate_s(lane.to_send, lane.rate, rollout.ramp) for lane in figures.lanes]
    if None in each:
        lines.append("duration  unknown: no rate limit, as fast as OneNET answers")
    else:
        seconds = max((s for s in each if s is not None), default=0.0)
        extra = ""
        if canary is not None and canary.wait == "delivered":
            seconds += canary.timeout_s
            extra = ", the canary's delivery wait counted in full"
        end = datetime.fromtimestamp(start + seconds, BEIJING)
        lines.append(f"duration  about {_duration(seconds)}{extra}")
        lines.append(f"ends      about {format_onenet(end)} (UTC+8)")
    return lines


# OneNET's own hosts (docs/onenet-api.md): the platform and its newer API. A run sent there
# reaches real devices, which a dry run is there to make plain.
_PRODUCTION: Final = frozenset({"api.heclouds.com", "iot-api.heclouds.com"})


def _where(figures: PlanFigures) -> str:
    """Where the commands go: the base URL (each lane's, when they differ), production OneNET
    said as such."""
    urls = dict.fromkeys(lane.base_url for lane in figures.lanes)
    if len(urls) == 1:
        return _url(next(iter(urls)))
    return "; ".join(
        f"{lane.product or '(default)'} {_url(lane.base_url)}" for lane in figures.lanes
    )


def _url(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return f"{url} (production OneNET)" if host.lower() in _PRODUCTION else url


def _pace(lane: LaneFigures) -> str:
    pace = "no limit" if lane.rate is None else f"{lane.rate:g}/s"
    return f"{pace}, {lane.concurrency} at a time"


def _canary_line(canary: Canary, figures: PlanFigures) -> str:
    """The canary as each lane draws it: of commands, or with steps of devices each getting
    every step (the run's own draw, run/rollout.py)."""
    steps = figures.steps
    sizes = []
    for lane in figures.lanes:
        rows = lane.total // steps if lane.uncovered is None else lane.uncovered
        n = len(canary_positions(rows, canary)) if rows else 0  # as CanaryPhase.run draws
        size = f"{n:,} commands" if steps == 1 else (
            f"{n:,} devices ({n * steps:,} commands: each device every step)"
        )  # fmt: skip
        if lane.uncovered == 0:
            size = "none: a canary passed before, and covers every command left"
        elif lane.uncovered is not None:
            size += f" drawn from the {rows:,} rows a passed canary does not cover (edited or new)"
        sizes.append(f"{lane.product or '(default)'} {size}" if figures.by_product else size)
    wait = "their answers" if canary.wait == "accepted" else "their delivery"
    wait += f" (at most {_duration(canary.timeout_s)})" if canary.wait == "delivered" else ""
    if figures.by_product:
        drawn = f"{', '.join(sizes)}: each lane its own, drawn evenly across its commands,"
    else:
        drawn = f"{sizes[0]} drawn evenly across the job,"
    return f"{drawn} judged on {wait}; then {canary.then}"


def _at(when: float, now: float) -> str:
    shown = format_onenet(datetime.fromtimestamp(when, BEIJING))
    if when <= now:
        return f"{shown} (UTC+8), already passed: at once"
    return f"{shown} (UTC+8), in {_duration(when - now)}"


class Countdown:
    """A one-line live view of the wait for a scheduled start."""

    def __init__(self, start: float, clock: Callable[[], float]) -> None:
        self.start, self.clock = start, clock

    def __rich__(self) -> Text:
        left = self.start - self.clock()
        shown = format_onenet(datetime.fromtimestamp(self.start, BEIJING))
        return Text(
            f"starting at {shown} (UTC+8), in {_duration(left)}; Ctrl-C cancels, nothing is sent"
            " until then"
        )


def show_plan(lines: list[str]) -> None:
    """The plan on stderr, indented under a heading."""
    console.note("plan:")
    for line in lines:
        console.note("  " + line)
