"""``dispatcher status``: what became of a job's accepted commands, read from OneNET into the
ledger, and the breakdown by device; with ``--watch``, until every command is final."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dispatcher.cli import console
from dispatcher.cli.delivery_view import RoundProgress, answers_line, breakdown_table, round_line
from dispatcher.cli.exits import (
    EXIT_BROKEN,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    interruptible,
)
from dispatcher.cli.lanes import open_lane, settings_and_key
from dispatcher.cli.numbers import FiniteFloat
from dispatcher.cli.products import LaneKeys, lane_keys
from dispatcher.cli.signals import run_with_signals
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError, LedgerError
from dispatcher.ledger.sqlite import Ledger
from dispatcher.ledger.store import LedgerStore
from dispatcher.run.probe import check_lane
from dispatcher.run.state import Stop
from dispatcher.run.status import StatusRound, Watch

__all__ = [
    "devices_to_probe",
    "lane_options",
    "open_ledger",
    "status",
    "status_title",
]

_PROBE_ROWS = 1000  # rows looked at for the probe's devices


F = TypeVar("F", bound=Callable[..., Any])


def lane_options(command: F) -> F:
    """The options every command that talks to OneNET takes."""
    for option in reversed(
        (
            click.option(
                "--config", "config_path", type=click.Path(path_type=Path), help="Config file."
            ),
            click.option("--base-url", help="OneNET API base URL (e.g. the emulator's)."),
            click.option(
                "--rate", type=FiniteFloat(min=0), help="Requests per second at most (0: no limit)."
            ),
            click.option(
                "--concurrency", type=click.IntRange(1, 1024), help="Requests in flight at most."
            ),
        )
    ):
        command = option(command)
    return command


def open_ledger(path: Path, settings: Settings) -> LedgerStore:
    """The ledger for writing, or a clear error and exit 1; a file that is not already a ledger
    (an empty one, say, or another file given by mistake) is never made into one."""
    if not path.exists():
        fail(f"{path}: no such ledger (dispatcher run writes it next to the job file)")
    try:  # an existing file that is not a ledger is refused as it is (ledger/schema.py)
        ledger = Ledger.open(path, synchronous=settings.ledger.synchronous)
    except DispatcherError as exc:
        fail(str(exc))
    try:
        if not ledger.total():
            raise LedgerError(
                f"{path} holds no commands: nothing to read (dispatcher run registers its job's"
                " commands in it)"
            )
    except DispatcherError as exc:
        with contextlib.suppress(DispatcherError):
            ledger.close()
        fail(str(exc))
    return ledger


def devices_to_probe(ledger: LedgerStore, n: int, product: str | None = None) -> list[str]:
    """A few devices with commands to check (as many as the errno-1 breaker counts)."""
    first = itertools.islice(ledger.rows_to_check(product), _PROBE_ROWS)
    return list(dict.fromkeys(r.command.imei for r in first))[:n]


def status_title(ledger: LedgerStore) -> str:
    """'job PATH' as the ledger recorded it."""
    record = ledger.job()
    return f"job {record.path}" if record is not None else f"ledger {ledger.path}"


@click.command()
@click.argument("ledger_path", metavar="LEDGER", type=click.Path(path_type=Path))
@lane_options
@click.option("--watch", is_flag=True, help="Poll until every command is final.")
@click.option(
    "--interval",
    type=FiniteFloat(min=0.1, max=86400),
    metavar="S",
    help="Seconds between polls with --watch (default 30; at most a day).",
)
@click.option("--progress/--no-progress", default=None, help="Live progress (default: on a tty).")
@interruptible
def status(
    ledger_path: Path,
    config_path: Path | None,
    base_url: str | None,
    rate: float | None,
    concurrency: int | None,
    watch: bool,
    interval: float | None,
    progress: bool | None,
) -> None:
    """Read from OneNET what became of the job's accepted commands, and show it by device.

    Exit 0 when every state was read (whatever the states are), 3 when some could not be read.
    """
    if interval is not None and not watch:
        raise click.UsageError("--interval needs --watch")
    settings, api_key = settings_and_key(
        config_path, rate=rate, concurrency=concurrency, base_url=base_url
    )
    ledger = open_ledger(ledger_path, settings)
    view = RoundProgress()
    # A lane per product the commands to check are of (their own key, pace and breakers).
    products = ledger.products_to_check() if settings.products else []
    keys = lane_keys(settings, products) if products else LaneKeys({"": (settings, api_key)})
    several = len(keys.lanes) > 1

    async def read_lane(stop: Stop, name: str, lane_settings: Settings, key: str) -> Watch:
        said = functools.partial(_said, f"product {name or '(default)'}: " if several else "")
        async with open_lane(lane_settings, key) as lane:
            watcher = Watch(
                lane,
                lane_settings,
                ledger,
                stop=stop,
                clock=time.time,
                on_start=None if several else view.start,
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
            await watcher.run(watch=watch, interval_s=30.0 if interval is None else interval)
            return watcher

    async def read(stop: Stop) -> list[Watch]:
        with console.live(view, enabled=False if several else progress):
            return list(
                await asyncio.gather(
                    *(read_lane(stop, n, s, k) for n, (s, k) in keys.lanes.items())
                )
            )

    try:
        watchers = run_with_signals(read)
        breakdown = ledger.delivery_breakdown()
        title = status_title(ledger)
    except DispatcherError as exc:
        ledger.close()
        fail(f"status broke off: {exc}; what was read is kept", EXIT_BROKEN)
    ledger.close()
    console.show(breakdown_table(breakdown, f"{title}: delivery by device"))
    answers = answers_line(breakdown)
    if answers:
        # The devices' answers are OneNET's text: shown as a plain string (console.show), never
        # read as markup, without control or bidi characters.
        console.show(answers)
    # The notes about what is still open are of the whole ledger: said once.
    codes = [
        _exit_code(w, breakdown.open if i == 0 else 0, watch, several)
        for i, w in enumerate(watchers)
    ]
    sys.exit(EXIT_INTERRUPTED if EXIT_INTERRUPTED in codes else max(codes))


async def _said(lane: str, number: int, result: StatusRound) -> None:
    console.note(lane + round_line(number, result))


def _exit_code(watcher: Watch, still_open: int, watch: bool, several: bool = False) -> int:
    """0 every state read; 3 some could not be read (the probe's findings too: a wrong key,
    address or server reads none); 130 stopped."""
    if watcher.aborted is not None:  # the probe: the key, the address or the server is wrong
        lane = f"product {watcher.product or '(default)'}: " if several else ""
        console.error(lane + watcher.aborted.replace("nothing was sent", "no state was read"))
        return EXIT_INCOMPLETE
    stop = watcher.stop
    if stop.requested:
        console.note(f"stopped ({stop.reason}); the same command goes on from where it stopped")
        return EXIT_INTERRUPTED
    if watcher.gave_up is not None:
        console.error(f"{watcher.gave_up}; the states not read keep the state last read")
        return EXIT_INCOMPLETE
    if watcher.unreadable:
        console.warn(
            f"the state of {len(watcher.unreadable):,} commands could not be read; they keep"
            " the state last read, and the same command asks again"
        )
        return EXIT_INCOMPLETE
    if watch and watcher.windows_closed and still_open:
        console.note(
            f"every window has closed; {still_open:,} commands are still not final on OneNET"
        )
    elif not watch and still_open and watcher.rounds:
        console.note(f"{still_open:,} commands are not final yet: --watch follows them")
    return EXIT_OK
