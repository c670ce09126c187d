"""The status use case: what became of a job's accepted commands, read from OneNET into the
ledger, a lane per product the commands to check are of; with ``watch``, until every command is
final. And what cancel shares with it: the devices a probe asks about, the ledger's title.

May import: errors, config, ledger, run, app.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dispatcher.app.clients import open_lane
from dispatcher.app.events import Driver, Events, Quiet, run_plainly
from dispatcher.app.keys import default_keys, lane_keys
from dispatcher.app.resources import existing_ledger
from dispatcher.config import Settings
from dispatcher.errors import BrokeOff, ConfigError, DispatcherError
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.store import LedgerStore
from dispatcher.model.command import product_label
from dispatcher.notify import EventKind, Notifier, ledger_notice
from dispatcher.report.next_steps import After
from dispatcher.run.probe import check_lane
from dispatcher.run.state import Stop
from dispatcher.run.status import StatusRound, Watch

if TYPE_CHECKING:
    from dispatcher.ledger.delivery import DeliveryBreakdown

__all__ = ["StatusOutcome", "StatusRequest", "devices_to_probe", "status", "status_title"]

_PROBE_ROWS = 1000  # rows looked at for the probe's devices


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """The ledger whose commands to follow; one round, or (``watch``) rounds ``interval_s``
    apart until every command is final."""

    ledger: LedgerAddress
    watch: bool = False
    interval_s: float = 30.0
    config: str | None = None  # the config file's name, for the next command a notice says


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    """What was read: the ledger's title, the breakdown by device, and each lane's reading
    (whether its probe found the key or address wrong, what it could not read, a stop)."""

    title: str
    breakdown: DeliveryBreakdown
    lanes: tuple[Watch, ...]
    several: bool


def devices_to_probe(ledger: LedgerStore, n: int, product: str | None = None) -> list[str]:
    """A few devices with commands to check (as many as the errno-1 breaker counts)."""
    first = itertools.islice(ledger.rows_to_check(product), _PROBE_ROWS)
    return list(dict.fromkeys(r.command.imei for r in first))[:n]


def status_title(ledger: LedgerStore) -> str:
    """'job PATH' as the ledger recorded it."""
    record = ledger.job()
    return f"job {record.path}" if record is not None else f"ledger {ledger.path}"


def status(
    settings: Settings,
    request: StatusRequest,
    *,
    events: Events | None = None,
    drive: Driver = run_plainly,
) -> StatusOutcome:
    """Read the delivery states of the ledger's open commands from OneNET into the ledger;
    LedgerError when there is no such ledger, BrokeOff when reading broke off (what was read is
    kept)."""
    events = Quiet() if events is None else events
    default = default_keys(settings, events)
    notifier = Notifier.of(settings.notify, secret=events.secret)
    with existing_ledger(request.ledger, settings) as ledger:
        # A lane per product the commands to check are of (their own key, pace and breakers).
        products = ledger.products_to_check() if settings.products else []
        keys = lane_keys(settings, products, events) if products else default
        several = len(keys.lanes) > 1

        async def read_lane(stop: Stop, name: str, lane_settings: Settings, key: str) -> Watch:
            label = f"{product_label(name)}: " if several else ""

            async def said(number: int, result: StatusRound) -> None:
                # Where the deliveries stand, beside what moved: "391 moved" alone does not say
                # how many are delivered or still waiting.
                events.round_read(label, number, result, ledger.delivery_breakdown())

            async with open_lane(lane_settings, key) as lane:
                watcher = Watch(
                    lane,
                    lane_settings,
                    ledger,
                    stop=stop,
                    clock=time.time,
                    on_start=None if several else events.round_started,
                    on_round=said,
                    product=name if products else None,
                )
                imeis = devices_to_probe(
                    ledger, lane_settings.reliability.breaker_threshold, watcher.product
                )
                if imeis:
                    probe = await check_lane(
                        lane, imeis, settings=lane_settings, stop=stop, sleep=watcher.sleep,
                        clock=time.time,
                    )  # fmt: skip
                    if probe.why is not None:
                        watcher.aborted = probe.why.reason
                        return watcher
                await watcher.run(watch=request.watch, interval_s=request.interval_s)
                return watcher

        async def read(stop: Stop) -> list[Watch]:
            with events.reading(several):
                lanes = keys.lanes.items()
                return list(
                    await asyncio.gather(*(read_lane(stop, n, s, k) for n, (s, k) in lanes))
                )

        try:
            watchers = drive(read)
            breakdown = ledger.delivery_breakdown()
            title = status_title(ledger)
        except ConfigError:
            raise  # a lane's token cannot be made: nothing was read
        except DispatcherError as exc:
            raise BrokeOff(f"status broke off: {exc}; what was read is kept") from exc
        # A watch that ended by itself (not stopped, its key and address good) is told; one that
        # found nothing to follow (every command final before it began) is not told again.
        watched = any(w.rounds for w in watchers)
        ended = (
            request.watch
            and watched
            and all(w.aborted is None and not w.stop.requested for w in watchers)
        )
        told = ended and notifier.wanted(EventKind.WATCH_FINISHED)
        notices = (
            [
                ledger_notice(
                    EventKind.WATCH_FINISHED, ledger, request.ledger, After(config=request.config)
                )
            ]
            if told
            else []
        )
    if notices:
        drive(lambda stop: notifier.deliver(notices, warn=events.warn, until=stop.wait))
    return StatusOutcome(title, breakdown, tuple(watchers), several)
