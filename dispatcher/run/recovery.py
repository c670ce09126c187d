"""Recovering lost answers: what an earlier run left in doubt, and what this run lost.

Before anything is sent, commands an earlier run left ``in_flight`` (it was killed) or
``in_doubt`` are looked up in OneNET's history (reconcile.py). At the end of a run, answers this
run lost are looked up once they have had time to land (``settle_s``, counted from each command's
last attempt), and those OneNET never created are sent again, for a few rounds. Found ones are
accepted (``reconciled``), look-alike ones stay in doubt with the reason, unreachable ones stay in
doubt for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from dispatcher.ledger.lifecycle import Event
from dispatcher.ledger.store import LedgerStore, Row, Status
from dispatcher.model import Command
from dispatcher.run.context import RunContext
from dispatcher.run.reconcile import reconcile
from dispatcher.run.retrying import retry_query
from dispatcher.run.takeover import WATCH_S, takeover_wait

__all__ = ["Item", "Recovery"]

log = logging.getLogger(__name__)

Item = tuple[Command, Status]
"""A command to send, with its status in the ledger before this run sent it."""


class Recovery:
    """The look-up phases of a run, on its lane."""

    def __init__(
        self,
        ctx: RunContext,
        *,
        resend: Callable[[list[Item]], Awaitable[None]],
        cut_short: Callable[[], bool],
    ) -> None:
        """``ctx.product``: only the rows of that product's lane ("": the default; None: all)."""
        self.ctx = ctx
        self.lane, self.recorder, self.outcomes = ctx.lane, ctx.recorder, ctx.outcomes
        self.settings, self.stop, self.clock, self.sleep = (
            ctx.settings,
            ctx.stop,
            ctx.clock,
            ctx.nap,
        )
        self.resend, self.cut_short = resend, cut_short
        self.stats = ctx.stats
        self.found: set[str] = set()  # keys this run found in the history: not "already final"
        self.product = ctx.product

    async def leftovers(self, reconcile_in_doubt: bool, resend: bool) -> None:
        """Settle what an earlier run left in flight or in doubt, before anything is sent."""
        ledger = self.recorder.ledger
        await self.recorder.flush()
        doubtful = await self.recorder.call(
            _collect, ledger, (Status.IN_FLIGHT, Status.IN_DOUBT), self.product
        )
        if not doubtful:
            return
        log.info("%d commands from an earlier run are in doubt", len(doubtful))
        if reconcile_in_doubt:
            # An earlier run that may still live (a job taken over from another host) may still
            # have these on the wire: looked up only once they can no longer land (takeover.py).
            runs = await self.recorder.call(ledger.runs)
            lost_for = self.settings.retry.request_timeout_s + WATCH_S
            await self._reconcile(doubtful, takeover_wait(runs, lost_for=lost_for))
            return
        rows = doubtful if resend else [r for r in doubtful if r.status is Status.IN_FLIGHT]
        status = Status.PENDING if resend else Status.IN_DOUBT
        event = Event.RESEND if resend else Event.LOSE
        await self.recorder.call(ledger.move, [r.key for r in rows], event)
        for row in rows:
            self.outcomes.moved(row, status)

    async def recover(self) -> None:
        """Look up the answers this run lost, and send again what OneNET never created."""
        ledger = self.recorder.ledger
        for _ in range(self.settings.reliability.reconcile_rounds):
            # After a graceful stop too, so that a Ctrl-C leaves nothing in doubt (nothing is
            # resent then); an immediate stop or a grace run out leaves it to the next run.
            if self.stop.immediate or self.cut_short():
                return
            await self.recorder.flush()  # outcomes still queued may be in doubt too
            rows = await self.recorder.call(_collect, ledger, (Status.IN_DOUBT,), self.product)
            if not rows:
                return
            resend = await self._reconcile(rows)
            if not resend or self.stop.requested:
                return
            await self.resend([(r.command, Status.PENDING) for r in resend])

    async def _reconcile(self, rows: list[Row], takeover: float = 0.0) -> list[Row]:
        """Look ``rows`` up in the history once they had ``settle_s`` to land, and ``takeover``
        seconds from now (what a run that may still live can have on the wire); return the
        active ones OneNET never created (now pending)."""
        rel, lane, outcomes = self.settings.reliability, self.lane, self.outcomes
        latest = max((r.last_attempt_at or 0.0) for r in rows)
        wait = max(latest + rel.settle_s - self.clock(), takeover)
        if takeover > 0:
            self.ctx.notify(
                f"the last run of this job never recorded its end and may still live: what it"
                f" had in flight is looked up in {wait:.0f} s, once none of it can still land"
            )
        if wait > 0:
            await self.sleep(wait)
        if wait > 0 and self.stop.requested:
            # The wait was cut short, and a request may still be landing at OneNET: only the
            # rows that had their time are looked up; the others stay in doubt for the next run.
            landed_by = self.clock() - rel.settle_s if takeover <= 0 else -1.0
            self._still_in_doubt([r for r in rows if (r.last_attempt_at or 0.0) > landed_by])
            rows = [r for r in rows if (r.last_attempt_at or 0.0) <= landed_by]
        if not rows:
            return []
        before = lane.pace.started
        report = await reconcile(
            rows,
            lane.client,
            known_uuids=lambda imei: self.recorder.call(self.recorder.ledger.known_uuids, imei),
            lookback_s=rel.reconcile_lookback_s,
            pace=lane.pace,
            concurrency=self.settings.limits.concurrency,
            stop=self.stop,
            clock_offset_s=lane.clock.offset,
            retry=retry_query(self.settings.retry, stop=self.stop, sleep=self.sleep),
        )
        self.stats.requests += lane.pace.started - before
        now = self.clock()
        for row, uuid in report.found:
            outcomes.settled(
                row, Status.ACCEPTED, 0, "", now, uuid=uuid, reconciled=True,
                event=Event.RECONCILE_FOUND,
            )  # fmt: skip
            self.stats.reconciled += 1
            self.found.add(row.key)
            lane.breakers.disarm()
        for row, reason in report.ambiguous:
            outcomes.settled(
                row, Status.IN_DOUBT, None, reason[:300], now, event=Event.RECONCILE_UNSURE
            )
        self._still_in_doubt(report.unreachable, "history unreachable")
        self._still_in_doubt(report.not_looked_up)
        await self.recorder.flush()
        missing = report.missing
        if missing:
            await self.recorder.call(
                self.recorder.ledger.move, [r.key for r in missing], Event.RECONCILE_MISSING
            )
            for row in missing:  # sent again below, and counted by that outcome
                outcomes.moved(row, Status.PENDING)
                outcomes.undoubt(row.key)
        log.info(
            "reconciled %d: %d found, %d never created, %d ambiguous, %d unreachable",
            len(rows),
            len(report.found),
            len(missing),
            len(report.ambiguous),
            len(report.unreachable),
        )
        return [r for r in missing if r.retired is None]

    def _still_in_doubt(self, rows: list[Row], why: str = "not looked up yet") -> None:
        """Rows left unsettled: those a killed run left in flight become in doubt."""
        now = self.clock()
        for row in rows:
            if row.status is Status.IN_FLIGHT:
                self.outcomes.settled(row, Status.IN_DOUBT, None, why, now, event=Event.LOSE)


def _collect(ledger: LedgerStore, statuses: Iterable[Status], product: str | None) -> list[Row]:
    rows = ledger.rows(set(statuses))
    if product is None:
        return list(rows)
    return [r for r in rows if r.command.product == product]
