"""Reading what became of accepted commands: ``dispatcher status``, one operation on the lane.

OneNET's history list (``GET /nbiot/offline/history``) gives every cached command of one device
with its ``send_status``, ``send_time``, ``confirm_status`` and ``confirm_time``, so one paged
query per device and round answers for all of that device's commands. The detail call
(``/history/{uuid}``) is made only where it must be: for a command the list does not show, and
once for a command the device has just answered (5 or 6), whose ``cmd_result`` only the detail
carries. Only commands whose delivery may still change (never read, waiting, sent) are asked
about again (docs/onenet-api.md, "Follow-up calls").

Devices are asked through the run's fan-out (fanout.py): each history page and detail takes a
slot of the lane's pace, a query without a usable answer is asked again (``retry_query``), and a
device whose state cannot be read leaves its commands as they were (``unreadable``). When
``breaker_threshold`` devices in a row cannot be read and none could, the round stops: the
server, the key or the address is wrong, not those devices. A graceful stop starts no new device;
what was read is recorded, in batches, as it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from dispatcher.config import RetrySettings, Settings
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.records import Delivery, Row
from dispatcher.ledger.store import LedgerStore
from dispatcher.onenet.answers import HistoryItem, detail_item
from dispatcher.run.fanout import fan_out
from dispatcher.run.lane import Lane
from dispatcher.run.reconcile import search_start
from dispatcher.run.retrying import retry_query
from dispatcher.run.state import Stop
from dispatcher.times import format_onenet, parse_onenet

__all__ = [
    "StatusRound",
    "Watch",
    "answer_time",
    "delivery_of",
    "delivery_writer",
    "read_round",
    "window_end",
]

log = logging.getLogger(__name__)

_ANSWERED: Final = (5, 6)  # the device answered: success or an error; cmd_result is in the detail
_BATCH = 500  # deliveries recorded per transaction


@dataclass(slots=True)
class StatusRound:
    """What one round of reading came to."""

    commands: int = 0  # commands asked about
    devices: int = 0  # devices asked about
    read: int = 0  # commands whose state was read
    changed: int = 0  # of those, commands whose send_status moved
    unreadable: list[str] = field(default_factory=list)  # keys whose state could not be read
    not_asked: int = 0  # commands left out by a stop
    history_pages: int = 0
    details: int = 0
    last_error: str = ""
    gave_up: str | None = None  # why the round stopped early: no device could be read
    done_devices: int = 0  # devices finished so far (for live progress)


Record = Callable[[list[Delivery]], Awaitable[None]]


async def read_round(
    rows: Iterable[Row],
    lane: Lane,
    record: Record,
    settings: Settings,
    *,
    stop: Stop,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress: StatusRound | None = None,
    totals: tuple[int, int] | None = None,
) -> StatusRound:
    """Read the delivery state of ``rows`` (accepted, with a uuid) from OneNET, device by device,
    and ``record`` it; ``progress``, when given, is the round's record, updated as it goes.

    ``rows`` may stream; each device's rows must then come together (as the ledger's
    ``rows_to_check`` gives them), and ``totals`` (commands, devices) says how many will come.
    A sequence is grouped by device here.
    """
    result = progress or StatusRound()
    if isinstance(rows, Sequence):
        rows = sorted(rows, key=lambda r: (r.command.imei, r.seq))
        totals = (len(rows), len({r.command.imei for r in rows}))
    result.commands, result.devices = totals if totals is not None else (0, 0)
    devices = (
        (imei, list(group)) for imei, group in itertools.groupby(rows, lambda r: r.command.imei)
    )
    reader = _Reader(lane, result, settings, stop=stop, clock=clock, sleep=stop.sleeper(sleep))
    threshold = settings.reliability.breaker_threshold
    queue: list[Delivery] = []
    asked = 0

    async def flush() -> None:
        if queue:
            batch = queue[:]
            queue.clear()
            await asyncio.shield(record(batch))

    def taking() -> bool:
        return not stop.requested and result.gave_up is None

    async def one_device(device: tuple[str, list[Row]]) -> None:
        nonlocal asked
        imei, device_rows = device
        asked += len(device_rows)
        try:
            deliveries = await reader.device(imei, device_rows)
        finally:
            result.done_devices += 1
        queue.extend(deliveries)
        if not deliveries and result.read == 0 and reader.failed_in_a_row >= threshold:
            result.gave_up = (
                f"the delivery state of {reader.failed_in_a_row} devices in a row could not be"
                f" read, and of none so far ({result.last_error}): check onenet.base_url, the"
                " key (api-key, or access key and token) and the network"
            )
        if len(queue) >= _BATCH:
            await flush()

    try:
        await fan_out(
            devices,
            one_device,
            workers=max(1, settings.limits.concurrency),
            stop=stop,
            taking=taking,
            grace_s=None,
        )
    finally:
        await flush()
    result.not_asked = max(0, result.commands - asked)
    return result


class _Reader:
    """One round's look-ups of devices: their history, then the details they need."""

    def __init__(
        self,
        lane: Lane,
        result: StatusRound,
        settings: Settings,
        *,
        stop: Stop,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.lane, self.result, self.clock = lane, result, clock
        self.retry: RetrySettings = settings.retry
        self.lookback_s = settings.reliability.reconcile_lookback_s
        self.stop, self.sleep = stop, sleep
        self.failed_in_a_row = 0

    async def device(self, imei: str, rows: list[Row]) -> list[Delivery]:
        """The deliveries read for one device's rows (those read; the rest noted unreadable)."""
        lane, result = self.lane, self.result
        start = search_start(rows, clock_offset_s=lane.clock.offset, lookback_s=self.lookback_s)

        async def page() -> None:
            await lane.pace.acquire()
            result.history_pages += 1

        async def listing() -> list[HistoryItem]:
            # Each answer's Date keeps the lane's view of OneNET's clock fresh: a run that
            # follows deliveries for hours sends its next steps with times worked out on it.
            sent = lane.clock.local()

            def seen(date: float) -> None:
                lane.clock.observe(date, sent, lane.clock.local())

            return await lane.query(
                lambda: lane.client.history(
                    imei, start, before_page=page, lenient=True, on_date=seen
                )
            )

        try:
            items = await retry_query(self.retry, stop=self.stop, sleep=self.sleep)(listing)
        except OneNetUnavailable as exc:
            self._unreadable(rows, exc)
            return []
        self.failed_in_a_row = 0
        listed = {item.uuid: item for item in items}
        deliveries: list[Delivery] = []
        for row in rows:
            assert row.uuid is not None  # rows to check are accepted ones with a uuid
            item, cmd_result = listed.get(row.uuid), None
            # The detail where the list cannot tell: a command it leaves out or lists without a
            # readable send_status, and one just answered, whose cmd_result only the detail has.
            answered = item is not None and item.send_status in _ANSWERED
            if item is None or item.send_status is None or answered:
                try:
                    item, cmd_result = await self._detail(imei, row.uuid)
                except OneNetUnavailable as exc:
                    # Not recorded: a command just answered stays open until its result is
                    # read, and one not listed stays as it was.
                    self._unreadable([row], exc)
                    continue
            if item.send_status is None:
                self._unreadable([row], OneNetUnavailable(f"{row.uuid}: no send_status"))
                continue
            deliveries.append(delivery_of(row, item, cmd_result, self.clock()))
            result.read += 1
            if item.send_status != row.send_status:
                result.changed += 1
        return deliveries

    async def _detail(self, imei: str, uuid: str) -> tuple[HistoryItem, str | None]:
        lane = self.lane

        async def ask() -> dict[str, object]:
            await lane.pace.acquire()
            self.result.details += 1
            return await lane.query(lambda: lane.client.detail(imei, uuid))

        raw = await retry_query(self.retry, stop=self.stop, sleep=self.sleep)(ask)
        return detail_item(raw, imei, uuid)

    def _unreadable(self, rows: list[Row], exc: OneNetUnavailable) -> None:
        self.failed_in_a_row += 1
        self.result.unreadable.extend(r.key for r in rows)
        self.result.last_error = str(exc)
        log.debug("state of %d commands unreadable: %s", len(rows), exc)


def answer_time(at: datetime | None) -> str | None:
    """A time as OneNET's answers write it (``YYYY-MM-DD HH:MM:SS``, UTC+8)."""
    return None if at is None else format_onenet(at).replace("T", " ")


def delivery_of(row: Row, item: HistoryItem, cmd_result: str | None, at: float) -> Delivery:
    """What the ledger keeps of one command's state as OneNET listed it (or its detail)."""
    return Delivery(
        key=row.key,
        send_status=item.send_status,
        confirm_status=item.confirm_status,
        send_time=answer_time(item.send_time),
        confirm_time=answer_time(item.confirm_time),
        cmd_result=cmd_result,
        checked_at=at,
    )


def delivery_writer(ledger: LedgerStore) -> Record:
    """What a round records with: each batch written to ``ledger`` at once."""

    async def record(batch: list[Delivery]) -> None:
        ledger.record_delivery(batch)

    return record


def window_end(sent_expired_time: str | None) -> float:
    """A window's end as sent (OneNET's format, UTC+8) in unix seconds; -inf when unknown."""
    if sent_expired_time is not None:
        with contextlib.suppress(ValueError):
            return parse_onenet(sent_expired_time).timestamp()
    return -math.inf


@dataclass(slots=True)
class Watch:
    """Rounds of reading until every command is final or every window has closed."""

    lane: Lane
    settings: Settings
    ledger: LedgerStore  # read for the rows to check, written with what was read
    stop: Stop
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    on_round: Callable[[int, StatusRound], Awaitable[None]] | None = None
    on_start: Callable[[int, StatusRound], None] | None = None
    unreadable: set[str] = field(default_factory=set)  # keys last found unreadable
    rounds: int = 0
    aborted: str | None = None  # why it never started: the probe found the key or address wrong
    gave_up: str | None = None  # why a round stopped early: no device could be read
    windows_closed: bool = False  # ended because every window had closed, some still open
    product: str | None = None  # only that product's commands ("": the default's; None: all)

    async def run(self, *, watch: bool, interval_s: float) -> None:
        """One round, or (``watch``) rounds ``interval_s`` apart until done or stopped.

        Watching, a round that could read no device (an outage) does not end the watch; it ends
        two rounds after every window has closed, so that OneNET has had a round's time to turn
        the last waiting commands into expired ones.
        """
        closed_rounds = 0
        while not self.stop.requested:
            commands, devices, latest = self.ledger.count_to_check(self.product)
            if not commands:
                self.gave_up = None
                return
            closed = self.lane.clock.now() >= window_end(latest)
            progress = StatusRound()
            self.rounds += 1
            if self.on_start is not None:
                self.on_start(self.rounds, progress)
            result = await read_round(
                self.ledger.rows_to_check(self.product),
                self.lane,
                delivery_writer(self.ledger),
                self.settings,
                stop=self.stop,
                clock=self.clock,
                sleep=self.sleep,
                progress=progress,
                totals=(commands, devices),
            )
            # A whole round asked about every open command: what it could not read is what is
            # unreadable now. A round cut short adds to what the earlier ones left.
            if result.not_asked and result.gave_up is None:
                self.unreadable.update(result.unreadable)
            else:
                self.unreadable = set(result.unreadable)
            self.gave_up = result.gave_up
            if self.on_round is not None:
                await self.on_round(self.rounds, result)
            if not watch or not self.ledger.count_to_check(self.product)[0]:
                return  # one round asked for, or every command final: no interval to wait out
            closed_rounds += closed
            if closed_rounds >= 2:  # read twice after every window had closed: nothing will move
                self.windows_closed = self.ledger.count_to_check(self.product)[0] > 0
                return
            await self.stop.sleeper(self.sleep)(interval_s)
