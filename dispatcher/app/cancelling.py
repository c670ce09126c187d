"""The cancel use case: the job's commands still waiting on OneNET cancelled one by one by uuid,
after their state is read (a lane per product, each with its own key) and the caller confirms;
commands already sent or delivered are reported, never touched.

May import: errors, config, ledger, run, app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from dispatcher.app.cancel_plan import CancelPlan, LaneCancelled
from dispatcher.app.clients import open_lane
from dispatcher.app.events import Driver, Events, Quiet, run_plainly
from dispatcher.app.keys import default_keys, lane_keys
from dispatcher.app.resources import existing_ledger
from dispatcher.app.watching import devices_to_probe, status_title
from dispatcher.config import Settings
from dispatcher.errors import (
    BrokeOff,
    ConfigError,
    DispatcherError,
    Incomplete,
    Interrupted,
    Refused,
    RunAborted,
)
from dispatcher.ledger.address import LedgerAddress
from dispatcher.ledger.records import OPEN_DELIVERY, DeliveryState, Row, Status
from dispatcher.ledger.store import LedgerStore
from dispatcher.model.command import product_label
from dispatcher.run.cancel import CancelReport, cancel_waiting
from dispatcher.run.probe import check_lane
from dispatcher.run.state import Stop
from dispatcher.run.status import StatusRound, delivery_writer, read_round

__all__ = ["CancelOutcome", "CancelPlan", "CancelRequest", "LaneCancelled", "cancel"]

_EXAMPLES = 5  # devices not of the job named one by one

# Asked before anything is cancelled: the number of commands and of devices; True goes ahead.
Confirm = Callable[[int, int], bool]


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """The ledger whose waiting commands to cancel; only these devices' when ``imeis``."""

    ledger: LedgerAddress
    imeis: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """The plan, how many states could not be read, whether the caller went ahead, and each
    lane's cancels (none when nothing was waiting or the caller said no)."""

    plan: CancelPlan
    unreadable: int
    confirmed: bool
    lanes: tuple[LaneCancelled, ...]

    @property
    def stopped(self) -> bool:
        """Whether a stop cut the cancels short."""
        return any(lane.stopped is not None for lane in self.lanes)


def cancel(
    settings: Settings,
    request: CancelRequest,
    *,
    confirm: Confirm | None = None,
    events: Events | None = None,
    drive: Driver = run_plainly,
) -> CancelOutcome:
    """Read the states of the open commands, then cancel those waiting once ``confirm`` says
    yes (None: go ahead). Raises Refused (a device not of the job), Interrupted (stopped while
    reading), RunAborted (the probe found the key, address or server wrong), Incomplete (the
    reading gave up), LedgerError (no such ledger), BrokeOff (broke off midway): in each case
    but the last, nothing was cancelled."""
    events = Quiet() if events is None else events
    default = default_keys(settings, events)
    with existing_ledger(request.ledger, settings) as ledger, _broke_off():
        title = status_title(ledger)
        wanted = _devices(ledger, request.imeis)
        # A lane per product of the job's commands: each read and cancelled with its own key.
        names = (
            {r.command.product for r in _rows_of(ledger, wanted)} if settings.products else set()
        )
        keys = lane_keys(settings, names, events) if names else default
        several = len(keys.lanes) > 1
        unreadable = sum(
            _read_states(ledger, wanted, s, k, events, drive, product=name if names else None)
            for name, (s, k) in keys.lanes.items()
        )
        waiting, plan = _plan(ledger, wanted, title)
        events.cancel_plan(plan)
        if not waiting:
            return CancelOutcome(plan, unreadable, confirmed=False, lanes=())
        if confirm is not None and not confirm(plan.waiting, plan.devices):
            return CancelOutcome(plan, unreadable, confirmed=False, lanes=())
        lanes: list[LaneCancelled] = []
        for name, (lane_settings, key) in keys.lanes.items():
            mine = [r for r in waiting if not names or r.command.product == name]
            if not mine:
                continue
            if several:
                events.note(f"{product_label(name)}: {len(mine):,} commands")
            done = _cancel(mine, ledger, lane_settings, key, drive, name if several else None)
            events.lane_cancelled(done)
            lanes.append(done)
            if done.stopped is not None:
                break
    return CancelOutcome(plan, unreadable, confirmed=True, lanes=tuple(lanes))


def _plan(
    ledger: LedgerStore, wanted: frozenset[str] | None, title: str
) -> tuple[list[Row], CancelPlan]:
    """The waiting rows (streamed: only those are kept), and the plan the states read make."""
    waiting: list[Row] = []
    states: Counter[DeliveryState] = Counter()
    doubtful = unsent = 0
    for row in _rows_of(ledger, wanted):
        state = row.delivery
        if state is DeliveryState.WAITING:
            waiting.append(row)
        elif state is not None:
            states[state] += 1
        elif row.status in (Status.IN_DOUBT, Status.IN_FLIGHT):
            doubtful += 1
        elif row.status in (Status.PENDING, Status.FAILED, Status.SKIPPED):
            unsent += 1
    devices = len({r.command.imei for r in waiting})
    plan = CancelPlan(title, len(waiting), devices, tuple(states.most_common()), doubtful, unsent)
    return waiting, plan


def _devices(ledger: LedgerStore, imeis: tuple[str, ...]) -> frozenset[str] | None:
    """The devices asked for (None: all of the job's); Refused when one of them is not a device
    of the job (nothing is cancelled then)."""
    if not imeis:
        return None
    wanted = frozenset(imeis)
    found = {r.command.imei for r in ledger.rows(retired=False) if r.command.imei in wanted}
    unknown = sorted(wanted - found)
    if unknown:
        shown = ", ".join(unknown[:_EXAMPLES]) + (" ..." if len(unknown) > _EXAMPLES else "")
        raise Refused(f"--imei {shown}: not a device of this job; nothing was cancelled")
    return wanted


def _rows_of(ledger: LedgerStore, wanted: frozenset[str] | None) -> Iterator[Row]:
    """The job's (active) rows, and the retired versions OneNET holds (an edit's earlier version
    may still run on the device), streamed; only those of ``wanted`` devices when given."""
    for row in ledger.rows():
        if row.retired is not None and row.delivery is None:
            continue
        if wanted is None or row.command.imei in wanted:
            yield row


def _read_states(
    ledger: LedgerStore,
    wanted: frozenset[str] | None,
    settings: Settings,
    api_key: str,
    events: Events,
    drive: Driver,
    *,
    product: str | None = None,
) -> int:
    """Read the current state of the open commands (of ``wanted`` devices; of ``product``'s
    lane when given) from OneNET into the ledger (a status round); how many could not be read."""
    if wanted is None:
        commands, devices, _ = ledger.count_to_check(product)
        rows: Iterable[Row] = ledger.rows_to_check(product)
        totals: tuple[int, int] | None = (commands, devices)
    else:
        rows = [
            r
            for r in _rows_of(ledger, wanted)
            if r.delivery in OPEN_DELIVERY and (product is None or r.command.product == product)
        ]
        commands, totals = len(rows), None
    if not commands:
        return 0

    stops: list[Stop] = []

    async def read(stop: Stop) -> StatusRound | str:
        stops.append(stop)
        async with open_lane(settings, api_key) as lane:
            imeis = _first_devices(ledger, wanted, settings.reliability.breaker_threshold, product)
            probe = await check_lane(
                lane, imeis, settings=settings, stop=stop, sleep=asyncio.sleep, clock=time.time
            )
            if probe.why is not None:
                return probe.why.reason
            writer = delivery_writer(ledger)
            return await read_round(
                rows, lane, writer, settings, stop=stop, clock=time.time, totals=totals
            )

    result = drive(read)
    if stops and stops[0].requested:
        raise Interrupted("stopped while reading the states; nothing was cancelled")
    if isinstance(result, str):  # the probe found the key, address or server wrong
        lane = "" if product is None else f"{product_label(product)}: "
        raise RunAborted(f"{lane}{result}; nothing was cancelled")
    if result.gave_up is not None:
        raise Incomplete(f"{result.gave_up}; nothing was cancelled")
    events.states_read(result)
    if result.not_asked:
        raise Interrupted("stopped while reading the states; nothing was cancelled")
    return len(result.unreadable)


def _first_devices(
    ledger: LedgerStore, wanted: frozenset[str] | None, n: int, product: str | None = None
) -> list[str]:
    """A few devices with commands to check, for the probe."""
    if wanted is not None:
        return sorted(wanted)[:n]
    return devices_to_probe(ledger, n, product)


def _cancel(
    rows: list[Row],
    ledger: LedgerStore,
    settings: Settings,
    api_key: str,
    drive: Driver,
    product: str | None,
) -> LaneCancelled:
    stops: list[Stop] = []

    async def go(stop: Stop) -> CancelReport:
        stops.append(stop)
        async with open_lane(settings, api_key) as lane:
            return await cancel_waiting(
                rows, lane, settings, ledger=ledger, stop=stop, clock=time.time
            )

    report = drive(go)
    stop = stops[0]
    return LaneCancelled(product, report, stop.reason if stop.requested else None)


@contextlib.contextmanager
def _broke_off() -> Iterator[None]:
    """An error once the ledger is open: cancel broke off midway (what it says itself, and a
    lane's token that cannot be made, aside: nothing was asked then)."""
    try:
        yield
    except (ConfigError, Refused, Interrupted, RunAborted, Incomplete):
        raise
    except DispatcherError as exc:
        raise BrokeOff(f"cancel broke off: {exc}; what was done is recorded") from exc
