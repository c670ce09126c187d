"""How a run is planned before anything is sent: the job file's plan with the command line's
rollout and start in place of its keys, a warning when a canary judged on delivery cannot pass,
and the wait for a scheduled start.

May import: errors, times, job (plan, model), run (state).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from dispatcher.errors import DispatcherError, FlagError
from dispatcher.job.model import Job
from dispatcher.job.plan import Plan, rollout_from_flags
from dispatcher.run.state import Stop
from dispatcher.times import parse_timespec

__all__ = ["canary_cannot_be_delivered", "planned", "wait_for_start"]

_LATE_S: Final = 60.0  # a --start-at this far past is a mistake, not "now"
_AHEAD_S: Final = 366 * 86400.0  # a start further ahead than this is a typo


def planned(plan: Plan, rollout: Mapping[str, Any], start_at: str | None) -> Plan:
    """The job file's plan with the rollout flags given (by name, as ``rollout_from_flags``
    takes them; None: not given) and ``start_at`` in place of its keys; FlagError when one is
    wrong."""
    flags = dict(rollout)
    flags["abort_on_errnos"] = tuple(flags.get("abort_on_errnos") or ())
    try:
        merged = rollout_from_flags(plan.rollout, **flags)
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    start = plan.start_at
    if start_at is not None:
        try:
            spec = parse_timespec(start_at)
        except ValueError as exc:
            raise FlagError(str(exc), "--start-at") from None
        if spec.at is None:
            raise FlagError(
                "give an absolute time, e.g. 2026-12-02T02:00:00 (UTC+8 unless a zone is given)",
                "--start-at",
            )
        if spec.at.timestamp() < time.time() - _LATE_S:
            raise FlagError(
                f"{start_at} has passed: give a time to come, or leave --start-at out to start now",
                "--start-at",
            )
        start = spec.at
    if start is not None and start.timestamp() > time.time() + _AHEAD_S:
        raise FlagError(f"the start {start.isoformat()} is more than a year ahead: is it a typo?")
    return replace(plan, rollout=merged, start_at=start)


def canary_cannot_be_delivered(job: Job, plan: Plan) -> str | None:
    """Why a canary judged on delivery would fail whatever the devices do: its commands may
    not be delivered before its timeout (a window, or a valid_time later than the timeout)."""
    canary = plan.rollout.canary
    if canary is None or canary.wait != "delivered":
        return None
    if plan.window is not None:
        return (
            "rollout.canary.wait is delivered, but the commands wait for the daily window"
            f" {plan.window.text}: a canary timeout of {canary.timeout_s:g}s may end before it"
            " opens, and the canary would fail"
        )
    commands = job.commands()
    try:
        first = next(commands, None)
    except DispatcherError:
        first = None
    finally:
        commands.close()
    valid = None if first is None else first.valid_time
    if (
        valid is not None
        and valid.offset is not None
        and valid.offset.total_seconds() >= (canary.timeout_s)
    ):
        return (
            f"rollout.canary.wait is delivered, but valid_time {valid.text} starts delivery after"
            f" the canary's timeout ({canary.timeout_s:g}s): the canary would fail"
        )
    return None


async def wait_for_start(
    start: float,
    stop: Stop,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    tick_s: float = 1.0,
) -> bool:
    """Wait until ``start`` (unix seconds, this machine's clock); False when stopped first."""
    nap = stop.sleeper(sleep)
    while not stop.requested:
        left = start - clock()
        if left <= 0:
            return True
        await nap(min(tick_s, left))
    return False
