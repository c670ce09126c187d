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
from typing import Final

from dispatcher.config import Settings
from dispatcher.errors import OneNetUnavailable
from dispatcher.ledger.records import Row
from dispatcher.ledger.store import LedgerStore
from dispatcher.onenet.answers import Verdict, detail_item
from dispatcher.onenet.requests import CancelResult
from dispatcher.run.fanout import fan_out
from dispatcher.run.lane import Lane
from dispatcher.run.retrying import retry_query
from dispatcher.run.state import Stop
from dispatcher.run.status import delivery_of

__all__ = ["CANCELLED", "CancelReport", "cancel_waiting"]

log = logging.getLogger(__name__)

CANCELLED = 2  # OneNET's send_status of a cancelled command
WAITING = 1  # and of a waiting one
# A refusal worth asking again: throttled, an internal error, an answer that was not OneNET's.
_ASK_AGAIN: Final = (Verdict.TRANSIENT, Verdict.RETRY_ONCE, Verdict.IN_DOUBT)


@dataclass(slots=True)
class CancelReport:
    """What came of the cancels: keys cancelled, refused because no longer waiting (with
    OneNET's answer and the state then read), those not known to be cancelled (no answer, or
    still waiting after a refusal), and how many a stop left unasked."""

    cancelled: list[str] = field(default_factory=list)
    refused: list[tuple[str, str, int | None]] = field(default_factory=list)
    unanswered: list[tuple[str, str]] = field(default_factory=list)
    not_asked: int = 0
    requests: int = 0


async def cancel_waiting(
    rows: Sequence[Row],
    lane: Lane,
    settings: Settings,
    *,
    ledger: LedgerStore,
    stop: Stop,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CancelReport:
    """Cancel each of ``rows`` (accepted, waiting) by its uuid and record what came of it."""
    report = CancelReport()
    asked: set[str] = set()

    nap = stop.sleeper(sleep)

    def policy() -> Callable[[Callable[[], Awaitable[CancelResult]]], Awaitable[CancelResult]]:
        return retry_query(settings.retry, stop=stop, sleep=nap)

    def settle(row: Row, why: str, status: int | None) -> None:
        """Record what the cancel came to, by the command's state as OneNET now holds it."""
        if status == CANCELLED:  # cancelled; by an earlier try whose answer was lost, maybe
            report.cancelled.append(row.key)
            ledger.record_cancel([(row.key, None, CANCELLED)])
        elif status is None or status == WAITING:  # still waiting, or not known: not done
            report.unanswered.append((row.key, why))
            ledger.record_cancel([(row.key, why[:300], status)])
        else:  # sent, delivered, expired...: no longer waiting, left as it is
            report.refused.append((row.key, why, status))
            ledger.record_cancel([(row.key, why[:300], status)])

    async def one(row: Row) -> None:
        asked.add(row.key)
        assert row.uuid is not None  # waiting rows are accepted ones with a uuid
        uuid = row.uuid

        async def ask() -> CancelResult:
            await lane.pace.acquire()
            report.requests += 1
            result = await lane.query(lambda: lane.client.cancel(row.command.imei, uuid))
            refusal = result.refusal
            if refusal is not None and refusal.verdict in _ASK_AGAIN:
                if refusal.throttled and lane.finder is not None:
                    lane.finder.on_throttle(refusal.retry_after)
                raise OneNetUnavailable(
                    f"cancel {uuid}: {refusal.error or f'HTTP {refusal.http_status}'}",
                    retry_after=refusal.retry_after,
                )
            return result

        try:
            result = await policy()(ask)
        except OneNetUnavailable as exc:
            # No usable answer, perhaps after OneNET cancelled it: its detail tells.
            status = await _state_now(row, uuid, lane, settings, stop, nap, ledger, clock)
            settle(row, f"no answer: {exc}", status)
            return
        if result.cancelled:
            report.cancelled.append(row.key)
            ledger.record_cancel([(row.key, None, CANCELLED)])
            return
        refusal = result.refusal
        why = (refusal.error if refusal is not None else "") or f"HTTP {result.http_status}"
        status = await _state_now(row, uuid, lane, settings, stop, nap, ledger, clock)
        settle(row, f"refused: {why}", status)

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
    ledger: LedgerStore,
    clock: Callable[[], float],
) -> int | None:
    """The command's send_status as OneNET now holds it (recorded), or None if unreadable."""

    async def ask() -> dict[str, object]:
        await lane.pace.acquire()
        return await lane.query(lambda: lane.client.detail(row.command.imei, uuid))

    try:
        raw = await retry_query(settings.retry, stop=stop, sleep=sleep)(ask)
        item, cmd_result = detail_item(raw, row.command.imei, uuid)
    except OneNetUnavailable as exc:
        log.debug("state of %s after a refused cancel unreadable: %s", row.key, exc)
        return None
    if item.send_status is not None:
        ledger.record_delivery([delivery_of(row, item, cmd_result, clock())])
    return item.send_status
