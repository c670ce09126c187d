"""``dispatcher cancel``: cancel the job's commands still waiting on OneNET, one by one by uuid,
after reading their state and a confirmation; sent and delivered ones are reported, not touched."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from dispatcher.app.clients import open_lane
from dispatcher.app.keys import default_keys, lane_keys
from dispatcher.app.resources import existing_ledger
from dispatcher.app.watching import devices_to_probe, status_title
from dispatcher.cli import console
from dispatcher.cli.delivery_view import round_line
from dispatcher.cli.exits import (
    EXIT_BREAKER,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    interruptible,
)
from dispatcher.cli.lanes import lane_options, load_config
from dispatcher.cli.observer import ConsoleEvents
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import BrokeOff, ConfigError, DispatcherError
from dispatcher.ledger.records import OPEN_DELIVERY, DeliveryState, Row, Status
from dispatcher.ledger.store import LedgerStore
from dispatcher.run.cancel import CancelReport, cancel_waiting
from dispatcher.run.probe import check_lane
from dispatcher.run.state import Stop
from dispatcher.run.status import StatusRound, delivery_writer, read_round

__all__ = ["cancel"]

_EXAMPLES = 5  # refused or unanswered commands named one by one


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=click.Path(path_type=Path))
@lane_options
@click.option(
    "--imei",
    "imeis",
    multiple=True,
    metavar="IMEI",
    help="Only this device's commands (again for more devices).",
)
@click.option("--yes", is_flag=True, help="Do not ask for a confirmation.")
@interruptible
def cancel(
    ledger_path: Path,
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    imeis: tuple[str, ...],
    yes: bool,
) -> None:
    """Cancel the job's commands still waiting on OneNET (never another job's).

    Their state is read first; commands already sent or delivered are reported, not touched.
    Exit 0 when every waiting command was cancelled, 3 when some could not be.
    """
    if not yes and not sys.stdin.isatty():  # before anything is asked of OneNET
        fail("not on a terminal: confirm with --yes; nothing was cancelled", EXIT_USAGE)
    settings = load_config(config_path, rate=rate, concurrency=concurrency, base_url=base_url)
    events = ConsoleEvents()
    default = default_keys(settings, events)
    with existing_ledger(ledger_path, settings) as ledger, _broke_off():
        title = status_title(ledger)
        wanted = _devices(ledger, imeis)
        # A lane per product of the job's commands: each read and cancelled with its own key.
        names = (
            {r.command.product for r in _rows_of(ledger, wanted)} if settings.products else set()
        )
        keys = lane_keys(settings, names, events) if names else default
        several = len(keys.lanes) > 1
        unreadable = sum(
            _read_states(ledger, wanted, s, k, product=name if names else None)
            for name, (s, k) in keys.lanes.items()
        )
        waiting: list[Row] = []
        states: Counter[DeliveryState] = Counter()
        doubtful = unsent = 0
        for row in _rows_of(ledger, wanted):  # streamed: only the waiting ones are kept
            state = row.delivery
            if state is DeliveryState.WAITING:
                waiting.append(row)
            elif state is not None:
                states[state] += 1
            elif row.status in (Status.IN_DOUBT, Status.IN_FLIGHT):
                doubtful += 1
            elif row.status in (Status.PENDING, Status.FAILED, Status.SKIPPED):
                unsent += 1
        _tell_plan(title, waiting, states, doubtful, unsent)
        if not waiting:
            console.note("nothing to cancel")
            sys.exit(EXIT_INCOMPLETE if unreadable else EXIT_OK)
        if not _confirmed(len(waiting), len({r.command.imei for r in waiting}), yes):
            sys.exit(EXIT_OK)
        codes = []
        for name, (lane_settings, key) in keys.lanes.items():
            mine = [r for r in waiting if not names or r.command.product == name]
            if not mine:
                continue
            if several:
                console.note(f"product {name or '(default)'}: {len(mine):,} commands")
            report, stop = _cancel(mine, ledger, lane_settings, key)
            codes.append(_said(report, stop))
            if stop.requested:
                break
    code = EXIT_INTERRUPTED if EXIT_INTERRUPTED in codes else max(codes)
    if unreadable and code == EXIT_OK:
        console.warn(
            f"the state of {unreadable:,} commands could not be read: those not known to be"
            " waiting were not cancelled; the same command tries them again"
        )
        code = EXIT_INCOMPLETE
    sys.exit(code)


def _devices(ledger: LedgerStore, imeis: tuple[str, ...]) -> frozenset[str] | None:
    """The devices asked for (None: all of the job's); a usage error when one of them is not a
    device of the job (nothing is cancelled then)."""
    if not imeis:
        return None
    wanted = frozenset(imeis)
    found = {r.command.imei for r in ledger.rows(retired=False) if r.command.imei in wanted}
    unknown = sorted(wanted - found)
    if unknown:
        shown = ", ".join(unknown[:_EXAMPLES]) + (" ..." if len(unknown) > _EXAMPLES else "")
        fail(f"--imei {shown}: not a device of this job; nothing was cancelled", EXIT_USAGE)
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
            return await read_round(
                rows,
                lane,
                delivery_writer(ledger),
                settings,
                stop=stop,
                clock=time.time,
                totals=totals,
            )

    result = run_with_signals(read)
    if stops and stops[0].requested:
        fail("stopped while reading the states; nothing was cancelled", EXIT_INTERRUPTED)
    if isinstance(result, str):
        fail(f"{result}; nothing was cancelled", EXIT_BREAKER)
    if result.gave_up is not None:
        fail(f"{result.gave_up}; nothing was cancelled", EXIT_INCOMPLETE)
    console.note(round_line(1, result).replace("round 1", "state read", 1))
    if result.not_asked:
        fail("stopped while reading the states; nothing was cancelled", EXIT_INTERRUPTED)
    return len(result.unreadable)


def _first_devices(
    ledger: LedgerStore, wanted: frozenset[str] | None, n: int, product: str | None = None
) -> list[str]:
    """A few devices with commands to check, for the probe."""
    if wanted is not None:
        return sorted(wanted)[:n]
    return devices_to_probe(ledger, n, product)


def _tell_plan(
    title: str,
    waiting: list[Row],
    states: Counter[DeliveryState],
    doubtful: int,
    unsent: int,
) -> None:
    """What will be cancelled, and what is left as it is."""
    console.note(
        f"{title}: {len(waiting):,} waiting commands on {len({r.command.imei for r in waiting}):,}"
        " devices can be cancelled"
    )
    if states:
        parts = ", ".join(f"{n:,} {s.value}" for s, n in states.most_common())
        console.note(f"left as they are: {parts}")
    if doubtful:
        console.warn(
            f"{doubtful:,} commands are in doubt (OneNET may hold them, under a uuid not known"
            " yet): `dispatcher run` on the job settles them; then cancel again"
        )
    if unsent:
        console.warn(
            f"{unsent:,} commands were never sent: running the job again would send them;"
            " take them out of the job file first"
        )


def _confirmed(commands: int, devices: int, yes: bool) -> bool:
    """True when cancelling may go ahead: ``--yes``, or a yes on a terminal."""
    if yes:
        return True
    try:
        if click.confirm(f"cancel {commands:,} commands on {devices:,} devices?", default=False):
            return True
    except click.Abort:  # Ctrl-C or Ctrl-D at the question
        console.note("nothing was cancelled")
        sys.exit(EXIT_INTERRUPTED)
    console.note("nothing was cancelled")
    return False


def _cancel(
    rows: list[Row], ledger: LedgerStore, settings: Settings, api_key: str
) -> tuple[CancelReport, Stop]:
    stops: list[Stop] = []

    async def go(stop: Stop) -> CancelReport:
        stops.append(stop)
        async with open_lane(settings, api_key) as lane:
            return await cancel_waiting(
                rows,
                lane,
                settings,
                ledger=ledger,
                stop=stop,
                clock=time.time,
            )

    report = run_with_signals(go)
    return report, stops[0]


def _said(report: CancelReport, stop: Stop) -> int:
    """The closing lines, and the exit code."""
    console.show(
        f"cancelled {len(report.cancelled):,}; refused {len(report.refused):,}"
        f" (no longer waiting); not cancelled {len(report.unanswered):,}"
        + (f"; {report.not_asked:,} not asked (stopped)" if report.not_asked else "")
    )
    for key, why, status in report.refused[:_EXAMPLES]:
        now = "unknown" if status is None else f"send_status {status}"
        console.note(f"  refused: {key}: {why} (now {now})")
    for key, why in report.unanswered[:_EXAMPLES]:
        console.note(f"  not cancelled: {key}: {why}")
    if stop.requested:
        console.note(f"stopped ({stop.reason}); the same command cancels the rest")
        return EXIT_INTERRUPTED
    return EXIT_INCOMPLETE if report.unanswered or report.not_asked else EXIT_OK


@contextlib.contextmanager
def _broke_off() -> Iterator[None]:
    """An error once the ledger is open: cancel broke off midway (a lane's token that cannot be
    made aside: nothing was asked then)."""
    try:
        yield
    except ConfigError:
        raise
    except DispatcherError as exc:
        raise BrokeOff(f"cancel broke off: {exc}; what was done is recorded") from exc
