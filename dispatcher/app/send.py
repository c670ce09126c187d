"""Sending a bound job: the wait for a scheduled start, one client per lane, live progress, and
the run's phases (run/runner.py); shared by the run use case and the demo.

May import: errors, config, job, ledger, run, times, app.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from dispatcher.app.clients import open_clients
from dispatcher.app.events import Events
from dispatcher.app.keys import LaneKeys
from dispatcher.app.planning import wait_for_start
from dispatcher.config import Settings
from dispatcher.job.model import Job
from dispatcher.job.plan import Rollout
from dispatcher.ledger.store import LedgerStore, Status
from dispatcher.run.runner import run_job
from dispatcher.run.state import RunResult, RunStats, Stop
from dispatcher.times import BEIJING, format_onenet

__all__ = ["all_through", "send_job"]


async def send_job(
    job: Job,
    ledger: LedgerStore,
    settings: Settings,
    keys: LaneKeys,
    *,
    events: Events,
    stop: Stop,
    stats: RunStats,
    reconcile: bool = True,
    resend_in_doubt: bool = False,
    rollout: Rollout | None = None,
    start_at: float | None = None,
) -> RunResult | None:
    """Send ``job`` to the settings' OneNET over a client per lane of ``keys`` (a product
    each; "": the commands that name none), with live progress; with ``start_at`` (unix
    seconds), only from then: None when stopped before it came."""
    if start_at is not None:
        shown = format_onenet(datetime.fromtimestamp(start_at, BEIJING))
        events.note(f"waiting for the start at {shown} (UTC+8); Ctrl-C cancels, nothing is sent")
        with events.waiting(start_at):
            if not await wait_for_start(start_at, stop):
                return None
        events.note("the scheduled start has come: sending")
    async with open_clients(keys) as clients:
        default = clients.get("")
        products = {name: (client, keys.lanes[name][0]) for name, client in clients.items() if name}
        with events.progress(stats):
            return await run_job(
                job,
                default if default is not None else next(iter(clients.values())),
                ledger,
                settings,
                stop=stop,
                stats=stats,
                reconcile_in_doubt=reconcile,
                resend_in_doubt=resend_in_doubt,
                rollout=rollout,
                notify=events.warn,
                inform=events.note,
                products=products or None,
                default_lane=default is not None,
            )


# The outcomes that are no problem of the job: accepted, or handed to a retry job (retried), which
# sends them, and whose own run says how that went.
_THROUGH: Final = frozenset({Status.ACCEPTED, Status.RETRIED})


def all_through(counts: Mapping[Status, int], unregistered: int = 0, handed: int = 0) -> bool:
    """Whether a job of these counts needs nothing more of anyone (exit 0): every command
    accepted, or handed to a retry job (``handed`` of them kept their rejected or expired
    outcome here when they were)."""
    others = sum(n for s, n in counts.items() if s not in _THROUGH)
    return unregistered == 0 and others - handed == 0
