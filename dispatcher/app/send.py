"""Sending a bound job: the wait for a scheduled start, one client per lane, live progress, and
the run's phases (run/runner.py); shared by the run use case and the demo.

May import: errors, config, job, ledger, run, times, app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Final

from dispatcher.app.clients import open_clients
from dispatcher.app.events import Events
from dispatcher.app.keys import LaneKeys
from dispatcher.app.planning import wait_for_start
from dispatcher.config import Settings
from dispatcher.job.model import Job
from dispatcher.job.plan import Rollout
from dispatcher.ledger.address import PostgresAddress
from dispatcher.ledger.board import ShareBoard
from dispatcher.ledger.store import LedgerStore, Status
from dispatcher.run.runner import run_job
from dispatcher.run.share import product_id
from dispatcher.run.state import RunResult, RunStats, Stop
from dispatcher.times import BEIJING, format_onenet

__all__ = ["all_through", "rate_boards", "send_job"]


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
    async with open_clients(keys) as clients, rate_boards(ledger, keys) as boards:
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
                boards=boards,
            )


@contextlib.asynccontextmanager
async def rate_boards(
    ledger: LedgerStore, keys: LaneKeys
) -> AsyncIterator[dict[str, tuple[ShareBoard, str, str]] | None]:
    """With a PostgreSQL ledger, the board each lane shares its product's rate on with the runs
    of other jobs on any host (run/share.py): the product named by its key and address (never
    the key itself), the lane by host, process, job and product. None with a file ledger."""
    address = ledger.path
    shared = any(lane.limits.rate_per_second is not None for lane, _ in keys.lanes.values())
    if not isinstance(address, PostgresAddress) or not shared:
        yield None  # a file ledger, or no lane with a rate to share: each paces alone
        return
    from dispatcher.ledger.postgres_share import PostgresShareBoard  # psycopg only when used

    board = await asyncio.to_thread(PostgresShareBoard.open, address)
    try:
        # host:pid job, and a token: a rerun in this process is a member of its own (the run
        # before may have sent in the second before it left, which still counts a moment)
        who = f"{socket.gethostname()}:{os.getpid()} {address.name} {secrets.token_hex(3)}"
        yield {
            name: (board, product_id(key, lane.onenet.base_url), f"{who}/{name or 'default'}")
            for name, (lane, key) in keys.lanes.items()
        }
    finally:
        await asyncio.to_thread(board.close)


# The outcomes that are no problem of the job: accepted, or handed to a retry job (retried), which
# sends them, and whose own run says how that went.
_THROUGH: Final = frozenset({Status.ACCEPTED, Status.RETRIED})


def all_through(counts: Mapping[Status, int], unregistered: int = 0, handed: int = 0) -> bool:
    """Whether a job of these counts needs nothing more of anyone (exit 0): every command
    accepted, or handed to a retry job (``handed`` of them kept their rejected or expired
    outcome here when they were)."""
    others = sum(n for s, n in counts.items() if s not in _THROUGH)
    return unregistered == 0 and others - handed == 0
