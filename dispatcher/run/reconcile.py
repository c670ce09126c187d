"""Settling in-doubt commands against OneNET's history.

OneNET's create call has no idempotency key: a POST whose answer was lost may or may not have
created the command, and sending it again can make a device run it twice. So before anything is sent
again, the history of that device is searched (``GET /nbiot/offline/history``, from a little before
the first attempt, by OneNET's clock) for commands of the same type (EXECUTE, WRITE, READ), window
and trigger that the ledger does not already hold, and the ``args`` of executes and writes are read
in the detail (``/history/{uuid}``).
Which of them settles which row, and when it cannot be told, is matching.py's job.

Every history page and detail call takes a slot of the run's pace, as sends do. Several devices are
looked up at once, through the run's fan-out (fanout.py); a graceful stop asked for meanwhile
starts no new device, an immediate one cancels the look-ups, and the rows not settled stay in doubt
(``not_looked_up``).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.store import Row
from dispatcher.onenet.client import (
    HistoryItem,
    OfflineRequest,
    Outcome,
)
from dispatcher.run.fanout import fan_out
from dispatcher.run.matching import Settled, listed_alike, same_args, settle_rows
from dispatcher.run.pacing import Pace
from dispatcher.run.state import Stop
from dispatcher.times import BEIJING

__all__ = ["CommandClient", "ReconcileReport", "reconcile", "search_start"]

log = logging.getLogger(__name__)

_LOUD = 3  # unreachable devices logged one by one at warning level; the rest are summarised


class CommandClient(Protocol):
    """What the runner and the reconciler need from a OneNET client."""

    async def create(self, req: OfflineRequest) -> Outcome: ...

    async def history(
        self,
        imei: str,
        start: datetime,
        end: datetime | None = None,
        *,
        before_page: Callable[[], Awaitable[None]] | None = None,
        on_date: Callable[[float], None] | None = None,
        lenient: bool = False,
    ) -> list[HistoryItem]: ...

    async def detail(
        self, imei: str, uuid: str, *, on_date: Callable[[float], None] | None = None
    ) -> dict[str, object]: ...


@dataclass(slots=True)
class ReconcileReport:
    """Rows found in the history (with their uuid), never created, not checkable now, that the
    history cannot tell apart (with the reason), or not looked up because of a stop."""

    found: list[tuple[Row, str]] = field(default_factory=list)
    missing: list[Row] = field(default_factory=list)
    unreachable: list[Row] = field(default_factory=list)
    ambiguous: list[tuple[Row, str]] = field(default_factory=list)
    not_looked_up: list[Row] = field(default_factory=list)


def search_start(rows: Sequence[Row], *, clock_offset_s: float, lookback_s: float) -> datetime:
    """Where one device's history search starts, in OneNET's time: ``lookback_s`` before its
    earliest first attempt (OneNET's clock when recorded, else ours plus ``clock_offset_s``)."""

    def first_at(row: Row) -> float:
        if row.first_server_at is not None:
            return row.first_server_at
        ours = row.first_attempt_at if row.first_attempt_at is not None else row.last_attempt_at
        return 0.0 if ours is None else ours + clock_offset_s

    # Whole seconds, as OneNET takes it (a fraction would drop items created in that second).
    earliest = math.floor(min(first_at(r) for r in rows) - lookback_s)
    return datetime.fromtimestamp(earliest, BEIJING)


async def reconcile(
    rows: Sequence[Row],
    client: CommandClient,
    *,
    known_uuids: Callable[[str], Awaitable[set[str]]],
    lookback_s: float,
    pace: Pace,
    concurrency: int = 8,
    clock_offset_s: float = 0.0,
    stop: Stop | None = None,
    retry: Callable[[Callable[[], Awaitable[Settled]]], Awaitable[Settled]] | None = None,
) -> ReconcileReport:
    """Settle ``rows`` against the history, several devices at once; ``clock_offset_s`` is OneNET's
    clock minus ours. A graceful ``stop`` asked for while reconciling starts no new device, an
    immediate one cancels the look-ups; either way the rows not settled are ``not_looked_up``.
    ``retry`` is the look-ups' retry policy (queries are idempotent; None: one attempt each)."""
    report = ReconcileReport()
    by_imei: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_imei[row.command.imei].append(row)
    unreachable = _UnreachableLog()
    stop = stop or Stop()
    # A graceful stop asked for before the call is the caller's to weigh: the runner reconciles
    # after one on purpose, so that a Ctrl-C leaves nothing in doubt.
    heed_graceful = not stop.requested

    def taking() -> bool:
        return not (stop.immediate or (heed_graceful and stop.requested))

    async def look_up(device: tuple[str, list[Row]]) -> None:
        imei, device_rows = device
        start = search_start(device_rows, clock_offset_s=clock_offset_s, lookback_s=lookback_s)

        async def once() -> Settled:
            return await _look_up_device(imei, device_rows, start, client, known_uuids, pace)

        try:
            settled = await (once() if retry is None else retry(once))
        except OneNetUnavailable as exc:
            unreachable.note(imei, exc)
            report.unreachable.extend(device_rows)
            return
        # Recorded whole, once the device is done: a cancelled look-up leaves nothing half-settled.
        report.found.extend(settled.found)
        report.missing.extend(settled.missing)
        report.ambiguous.extend(settled.ambiguous)

    # Look-ups are queries: a stop ends them only when immediate (they have no grace to run out).
    cut = await fan_out(
        list(by_imei.items()),
        look_up,
        workers=max(1, concurrency),
        stop=stop,
        taking=taking,
        grace_s=None,
    )
    if cut:
        log.warning("reconciling stopped at once: %s", stop.reason)
    unreachable.summarise()

    done = {id(r) for r, _ in report.found} | {id(r) for r, _ in report.ambiguous}
    done |= {id(r) for r in report.missing} | {id(r) for r in report.unreachable}
    report.not_looked_up = [r for r in rows if id(r) not in done]
    if report.ambiguous:
        row, reason = report.ambiguous[0]
        log.warning(
            "%d commands stay in doubt, the history cannot tell them apart; first: %s on %s: %s",
            len(report.ambiguous),
            row.key,
            row.command.imei,
            reason,
        )
    return report


async def _look_up_device(
    imei: str,
    rows: list[Row],
    start: datetime,
    client: CommandClient,
    known_uuids: Callable[[str], Awaitable[set[str]]],
    pace: Pace,
) -> Settled:
    """Settle one device's rows: its history from ``start``, then the detail of each item that
    all it lists agrees with, once per uuid."""
    items = await client.history(imei, start, before_page=pace.acquire)
    held = await known_uuids(imei)
    listed = {
        n: [i for i in items if i.uuid not in held and listed_alike(row, i, start)]
        for n, row in enumerate(rows)
    }
    args_of: dict[str, object] = {}
    for n, candidates in listed.items():
        if rows[n].command.op == "read":
            continue  # a read sends no args: the list tells all there is
        for item in candidates:
            if item.uuid not in args_of:
                await pace.acquire()
                detail = await client.detail(imei, item.uuid)
                args_of[item.uuid] = detail.get("args")
    matching = {
        n: [
            i
            for i in candidates
            if rows[n].command.op == "read" or same_args(rows[n], args_of[i.uuid])
        ]
        for n, candidates in listed.items()
    }
    return settle_rows(rows, matching)


class _UnreachableLog:
    """The first few unreachable devices at warning level, the rest in one summary line: a hung
    or down server would otherwise log a line per device of the fleet."""

    def __init__(self) -> None:
        self.count = 0
        self.last_error = ""

    def note(self, imei: str, exc: OneNetUnavailable) -> None:
        self.count += 1
        self.last_error = str(exc)
        level = logging.WARNING if self.count <= _LOUD else logging.DEBUG
        log.log(level, "history of %s unreachable: %s", imei, exc)

    def summarise(self) -> None:
        if self.count > _LOUD:
            log.warning(
                "history unreachable for %d more devices; last error: %s",
                self.count - _LOUD,
                self.last_error,
            )
