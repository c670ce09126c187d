"""Settling in-doubt commands against OneNET's history.

OneNET's create call has no idempotency key: a POST whose answer was lost may or may not have
created the command, and sending it again can make a device run it twice. So before anything is sent
again, the history of that device is searched (``GET /nbiot/offline/history``, from a little before
the first attempt) for an EXECUTE command with the same window and trigger that the ledger does
not already hold, and its ``args`` are checked in the detail (``/history/{uuid}``). Found: it was
created (that uuid is recorded). Not found: it was never created and may be sent. No usable answer:
it stays in doubt, to be settled by a later run.

The history does not carry the LwM2M resource ids, so two in-doubt commands to the same device with
the same window, trigger and args cannot be told apart; they are settled one uuid each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from dispatcher.client import ExecuteRequest, HistoryItem, Outcome
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger import Row
from dispatcher.pacing import Pace
from dispatcher.times import BEIJING, parse_onenet

__all__ = ["CommandClient", "ReconcileReport", "matches", "reconcile"]

log = logging.getLogger(__name__)


class CommandClient(Protocol):
    """What the runner and the reconciler need from a OneNET client."""

    async def execute_offline(self, req: ExecuteRequest) -> Outcome: ...

    async def history(
        self, imei: str, start: datetime, end: datetime | None = None
    ) -> list[HistoryItem]: ...

    async def detail(self, imei: str, uuid: str) -> dict[str, object]: ...


@dataclass(slots=True)
class ReconcileReport:
    """Rows found in the history (with their uuid), never created, or not checkable now."""

    found: list[tuple[Row, str]] = field(default_factory=list)
    missing: list[Row] = field(default_factory=list)
    unreachable: list[Row] = field(default_factory=list)


def matches(row: Row, item: HistoryItem) -> bool:
    """Whether a history item can be the command this row sent (all but ``args``)."""
    if item.type.upper() != "EXECUTE":
        return False
    if item.trigger_msg is not None and item.trigger_msg != row.trigger_msg:
        return False
    if row.sent_expired_time is None or item.expired_time != parse_onenet(row.sent_expired_time):
        return False
    # Without a valid_time, OneNET used its own clock: nothing to compare.
    return row.sent_valid_time is None or item.valid_time == parse_onenet(row.sent_valid_time)


async def reconcile(
    rows: Sequence[Row],
    client: CommandClient,
    *,
    known_uuids: Callable[[str], Awaitable[set[str]]],
    lookback_s: float,
    pace: Pace,
    concurrency: int = 8,
) -> ReconcileReport:
    """Settle ``rows`` against the history: one device's rows in turn, several devices at once."""
    report = ReconcileReport()
    by_imei: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_imei[row.imei].append(row)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def settle_device(imei: str, device_rows: list[Row]) -> None:
        async with gate:
            try:
                await _settle_device(
                    imei, device_rows, client, known_uuids, lookback_s, pace, report
                )
            except OneNetUnavailable as exc:
                log.warning("history of %s unreachable: %s", imei, exc)
                done = {id(r) for r, _ in report.found} | {id(r) for r in report.missing}
                report.unreachable.extend(r for r in device_rows if id(r) not in done)

    async with asyncio.TaskGroup() as tg:
        for imei, device_rows in by_imei.items():
            tg.create_task(settle_device(imei, device_rows))
    return report


async def _settle_device(
    imei: str,
    rows: list[Row],
    client: CommandClient,
    known_uuids: Callable[[str], Awaitable[set[str]]],
    lookback_s: float,
    pace: Pace,
    report: ReconcileReport,
) -> None:
    first = min((r.first_attempt_at or r.last_attempt_at or 0.0) for r in rows)
    start = datetime.fromtimestamp(first, BEIJING) - timedelta(seconds=lookback_s)
    await pace.acquire()
    items = await client.history(imei, start)
    claimed = set(await known_uuids(imei))
    # Oldest first: the earliest matching command is the one the first attempt made.
    items.sort(key=lambda i: i.create_time or datetime.min.replace(tzinfo=BEIJING))
    args_of: dict[str, str] = {}
    for row in rows:
        found = None
        for item in items:
            if item.uuid in claimed or not matches(row, item):
                continue
            if item.uuid not in args_of:
                await pace.acquire()
                detail = await client.detail(imei, item.uuid)
                args_of[item.uuid] = _text(detail.get("args"))
            if args_of[item.uuid] == _text(row.args):
                found = item.uuid
                break
        if found is None:
            report.missing.append(row)
        else:
            claimed.add(found)
            report.found.append((row, found))


def _text(value: object) -> str:
    return "" if value is None else str(value)
