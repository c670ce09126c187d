"""The devices use case: a product's devices as OneNET's device list gives them, filtered as a
job's ``targets_query`` is (the same resolution, through the product's lane), listed, or written
as a CSV (``imei,#id,#title,#online,#tags,#create_time``) that a job reads as its
targets_csv as it is (columns starting with # are skipped). Never written over a ledger, a
ledger's side file or a job file.

May import: errors, config, job, ledger, onenet, run, app.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from dispatcher.app.events import Driver, Events, Quiet, run_plainly
from dispatcher.app.keys import lane_keys
from dispatcher.app.targeting import resolve_query
from dispatcher.config import Settings
from dispatcher.errors import DispatcherError, Refused
from dispatcher.job.query import TargetsQuery
from dispatcher.ledger.sqlite_files import is_database, side_file_of

if TYPE_CHECKING:
    from dispatcher.run.targets import Resolved

__all__ = ["COLUMNS", "DevicesOutcome", "DevicesRequest", "list_devices"]

COLUMNS: Final = ("imei", "#id", "#title", "#online", "#tags", "#create_time")
"""The CSV's header: a job reading it as its targets_csv skips the columns starting with #."""
_NAMES: Final = frozenset(c.lstrip("#") for c in COLUMNS)


@dataclass(frozen=True, slots=True)
class DevicesRequest:
    """Which devices (the filters of a targets_query), and where to write them (None: only
    list them)."""

    query: TargetsQuery
    output: Path | None = None


@dataclass(frozen=True, slots=True)
class DevicesOutcome:
    """What the list gave (the devices, the pages and calls), and the file written."""

    resolved: Resolved
    written: Path | None = None


def list_devices(
    settings: Settings,
    request: DevicesRequest,
    *,
    events: Events | None = None,
    drive: Driver = run_plainly,
) -> DevicesOutcome:
    """The devices of ``request``'s product that pass its filters (none is an answer, not an
    error); Refused when the output is a ledger or a job file, TargetsUnresolved when the list
    is refused or too long."""
    events = Quiet() if events is None else events
    output = request.output
    if output is not None:
        refuse_output(output)
    product = (request.query.product or "").strip()
    lane, key = lane_keys(settings, [product], events).lanes[product]
    resolved = drive(
        lambda stop: resolve_query(lane, product, key, request.query, stop=stop, empty_ok=True)
    )
    if output is None:
        return DevicesOutcome(resolved)
    write_csv(resolved, output)
    return DevicesOutcome(resolved, output)


def refuse_output(output: Path) -> None:
    """Refused when ``output`` is a ledger, a ledger's side file, or a job file (a YAML one, or
    a CSV with columns a device list does not have)."""
    side = side_file_of(output.resolve())
    if is_database(output) or (side is not None and is_database(side[0])):
        raise Refused(f"{output} is a ledger (or one's side file): write the devices elsewhere")
    if output.suffix.lower() in (".yaml", ".yml"):
        raise Refused(f"{output} is a job file's name: write the devices to a .csv file")
    if output.is_file():
        try:
            with output.open(encoding="utf-8", newline="") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error):
            header = ["?"]
        other = [c for c in header if c.strip().lower().lstrip("#") not in _NAMES]
        if other:
            raise Refused(
                f"{output} has columns a device list does not ({', '.join(other[:3])}): it may"
                " be a job file; write the devices to another file"
            )


def write_csv(resolved: Resolved, output: Path) -> None:
    """The devices as CSV at ``output``, replaced whole (no half-written file is left)."""
    partial = output.with_name(f".{output.name}.partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(COLUMNS)
            for d in resolved.devices:
                online = "" if d.online is None else "true" if d.online else "false"
                out.writerow((d.imei, d.id, d.title, online, ";".join(d.tags), d.create_time))
        os.replace(partial, output)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise DispatcherError(f"{output}: cannot write the devices: {exc.strerror or exc}") from exc
