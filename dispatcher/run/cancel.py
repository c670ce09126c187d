"""Cancelling a job's waiting commands: ``dispatcher cancel``, one operation on the lane.

Only a command still waiting (send_status 1) can be cancelled, one at a time by its uuid
(``PUT /nbiot/offline/cancel/{uuid}``). ``cancel/all`` is never used: it cancels every waiting
command of the device, other jobs' too (docs/onenet-api.md). A cancel is idempotent in effect, so
one without a usable answer is asked again; a refusal (the command was sent meanwhile, or an
earlier try had cancelled it and its answer was lost) is settled by reading the command's detail,
so what is recorded is what OneNET holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from dispatcher.config import Settings
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.records import Delivery, Row
from dispatcher.onenet.answers import Verdict, detail_item
from dispatcher.onenet.requests import CancelResult
from dispatcher.run.fanout import fan_out
from dispatcher.run.lane import Lane
from dispatcher.run.retrying import retry_query
from dispatcher.run.state import Stop
from dispatcher.run.status import answer_time

__all__ = ["CANCELLED", "CancelReport", "cancel_waiting"]

log = logging.getLogger(__name__)

CANCELLED = 2  # OneNET's send_status of a cancelled command


@dataclass(slots=True)
class CancelReport:
    """What came of the cancels: keys cancelled, refused (with OneNET's answer and the state
    then read), not asked because of a stop, and those no answer could be had for."""

    cancelled: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, int | None]] = field(default_factory=list)
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    not_asked: int = 0
    requests: int = 0


class _Transient(OneNetUnavailable):
    """A refusal worth asking again (throttled, OneNET's internal error)."""


async def cancel_waiting(
    rows: Sequence[Row],
    lane: Lane,
    settings: Settings,
    *,
    record_cancel: Callable[[list[tuple[str, str | None, int | None]]], Awaitable[None]],
    record_delivery: Callable[[list[Delivery]], Awaitable[None]],
    stop: Stop,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CancelReport:
    """Cancel each of ``rows`` (accepted, waiting) by its uuid and record what came of it."""
    report = CancelReport()
    asked: set[str] = set()

    def policy() -> Callable[[Callable[[], Awaitable[CancelResult]]], Awaitable[CancelResult]]:
        return retry_query(settings.retry, stop=stop, sleep=sleep)

    async def one(row: Row) -> None:
        asked.add(row.key)
        assert row.uuid is not None  # waiting rows are accepted ones with a uuid
        uuid = row.uuid

        async def ask() -> CancelResult:
            await lane.pace.acquire()
            report.requests += 1
            result = await lane.client.cancel(row.imei, uuid)
            refusal = result.refusal
            if refusal is not None and refusal.verdict in (Verdict.TRANSIENT, Verdict.RETRY_ONCE):
                raise _Transient(f"cancel {uuid}: {refusal.error or refusal.http_status}")
            return result

        try:
            result = await policy()(ask)
        except OneNetUnavailable as exc:
            report.unanswered.append((row.key, str(exc)))
            await asyncio.shield(record_cancel([(row.key, f"no answer: {exc}"[:300], None)]))
            return
        if result.cancelled:
            report.cancelled.append(row.key)
            await asyncio.shield(record_cancel([(row.key, None, CANCELLED)]))
            return
        refusal = result.refusal
        why = (refusal.error if refusal is not None else "") or f"HTTP {result.http_status}"
        status = await _state_now(row, uuid, lane, settings, stop, sleep, record_delivery, clock)
        if status == CANCELLED:  # an earlier try cancelled it; its answer was lost
            report.cancelled.append(row.key)
            await asyncio.shield(record_cancel([(row.key, None, CANCELLED)]))
            return
        report.refused.append((row.key, why, status))
        await asyncio.shield(record_cancel([(row.key, why[:300], status)]))

    await fan_out(
        list(rows),
        one,
        workers=max(1, settings.limits.concurrency),
        stop=stop,
        taking=lambda: not stop.requested,
        grace_s=None,
    )
    report.not_asked = sum(1 for r in rows if r.key not in asked)
    return report


async def _state_now(
    row: Row,
    uuid: str,
    lane: Lane,
    settings: Settings,
    stop: Stop,
    sleep: Callable[[float], Awaitable[None]],
    record_delivery: Callable[[list[Delivery]], Awaitable[None]],
    clock: Callable[[], float],
) -> int | None:
    """The command's send_status as OneNET now holds it (recorded), or None if unreadable."""

    async def ask() -> dict[str, object]:
        await lane.pace.acquire()
        return await lane.client.detail(row.imei, uuid)

    try:
        raw = await retry_query(settings.retry, stop=stop, sleep=sleep)(ask)
        item, cmd_result = detail_item(raw, row.imei, uuid)
    except OneNetUnavailable as exc:
        log.debug("state of %s after a refused cancel unreadable: %s", row.key, exc)
        return None
    if item.send_status is not None:
        delivery = Delivery(
            key=row.key,
            send_status=item.send_status,
            confirm_status=item.confirm_status,
            send_time=answer_time(item.send_time),
            confirm_time=answer_time(item.confirm_time),
            cmd_result=cmd_result,
            checked_at=clock(),
        )
        await asyncio.shield(record_delivery([delivery]))
    return item.send_status
